"""Contracts every stage shares: settings, STFT presets, audio I/O, atomic writes, reasons."""
