"""tinyprune.codegen stage."""
