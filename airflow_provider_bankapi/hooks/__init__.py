"""hooks of the Banking API provider."""
