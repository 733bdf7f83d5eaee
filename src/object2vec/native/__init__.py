"""Compiled C kernels (JSON Lines scanner, row-sparse optimizer steps, bag means, hcnn and LSTM steps),
built on first use with the system C compiler; every caller has a PyTorch fallback. The C source is in
``csrc/``; :mod:`.library` builds, verifies and loads it, :mod:`.kernels` calls it on tensors."""
