"""Metrics (scikit-learn) and plots."""
