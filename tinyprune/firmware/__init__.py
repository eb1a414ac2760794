"""tinyprune.firmware stage."""
