"""The network: token tables, the three encoders, the comparator and the MLP head (PyTorch)."""
