"""vocalmine storage stage."""
