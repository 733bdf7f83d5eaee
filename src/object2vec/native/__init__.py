"""Compiled C kernels (JSON Lines scanner, row-sparse optimizer steps, bag means, hcnn and LSTM steps),
built on first use with the system C compiler; every caller has a PyTorch fallback."""
