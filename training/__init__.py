"""vocalmine training stage."""
