"""tinyprune.boards stage."""
