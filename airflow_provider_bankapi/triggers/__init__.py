"""triggers of the Banking API provider."""
