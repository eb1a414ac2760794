"""tinyprune.bench stage."""
