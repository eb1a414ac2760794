"""tinyprune.report stage."""
