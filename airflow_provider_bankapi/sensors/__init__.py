"""sensors of the Banking API provider."""
