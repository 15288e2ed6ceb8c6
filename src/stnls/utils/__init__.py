"""Internal helpers: argument checks and environment switches."""
