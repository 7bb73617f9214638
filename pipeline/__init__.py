"""The streaming anomaly-detection job: options, assembly and entry point."""
