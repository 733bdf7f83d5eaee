"""The parts of benchmarks/train_throughput.py: configurations, baselines, and one module per measurement."""
