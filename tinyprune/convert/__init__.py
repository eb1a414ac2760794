"""tinyprune.convert stage."""
