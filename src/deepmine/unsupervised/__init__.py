"""Unsupervised mining: anomaly detection (:mod:`.anomalies`), detectors by name (:mod:`.detectors`) and
deep clustering (:mod:`.cluster`)."""
