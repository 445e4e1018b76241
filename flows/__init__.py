"""vocalmine flows stage."""
