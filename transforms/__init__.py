"""Beam building blocks of the anomaly detector: parsing, window statistics, detection."""
