"""Sources, schema inference and splits."""
