"""The HTML report: one self-contained file (data profile, preprocessing, model, metrics, plots, explanations)."""
