"""tinyprune.example stage."""
