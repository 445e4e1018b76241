"""vocalmine separation stage."""
