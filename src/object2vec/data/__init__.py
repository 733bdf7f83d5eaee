"""Pairs as packed arrays: JSON Lines reading (compiled scanner, pyarrow, per-record), the binary cache,
sampling into batches, and synthetic data.

Nothing is imported here: ``object2vec.data.pairs`` is the entry point (:func:`~object2vec.data.pairs.read_pairs`).
"""
