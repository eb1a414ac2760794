"""tinyprune.data stage."""
