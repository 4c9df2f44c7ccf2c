"""Tasks: each turns a table and a config into a fitted Predictor."""
