"""make bench: throughput, alert latency and memory of the job and its baselines (issue 6)."""
