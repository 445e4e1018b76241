"""vocalmine mining stage."""
