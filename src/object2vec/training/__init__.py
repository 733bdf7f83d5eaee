"""Training: the epoch loop, early stopping and checkpoints, the lazy row-sparse optimizer, distributed
(DDP) helpers, precision and memory settings, and rank-aware logging."""
