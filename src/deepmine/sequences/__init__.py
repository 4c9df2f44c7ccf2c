"""Sequences and time series: inputs (wide rows, long format, one timed series), cleaning, windows."""
