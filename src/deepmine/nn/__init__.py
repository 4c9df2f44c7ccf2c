"""Model registry and building blocks."""
