"""tinyprune.prune stage."""
