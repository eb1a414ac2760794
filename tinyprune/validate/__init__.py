"""tinyprune.validate stage."""
