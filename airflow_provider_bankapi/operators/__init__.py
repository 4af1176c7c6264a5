"""operators of the Banking API provider."""
