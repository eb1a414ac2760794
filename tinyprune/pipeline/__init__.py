"""tinyprune.pipeline stage."""
