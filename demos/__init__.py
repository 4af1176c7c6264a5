"""Runnable demonstrations, from the repository root only (not in the wheel): make demo, make demo-curl."""
