"""Each epoch's batches for ``objective=contrastive`` (an extension): positive pairs, and optionally a
hard negative beside each.

A contrastive batch needs only positive pairs (label 1): every other pair's in1 in the batch serves
as a negative of each in0 (in-batch negatives, :mod:`object2vec.training.objectives`). So an epoch
is the label-1 records, shuffled, cut into batches of ``mini_batch_size`` positives (the global
batch: under DDP each rank cuts its shard into batches of its share).

With ``contrastive_hard_negatives`` each positive brings one label-0 record *of the same in0* (same
tokens) into its batch, drawn afresh each epoch among that in0's label-0 records (none if it has
none); the objective adds those in1 to the candidates of every in0 of the batch. Label-0 records are
otherwise not trained on. Under DDP each rank finds partners within its own shard.

The plan depends only on ``(seed, epoch)``, as in :mod:`object2vec.data.sampling`.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..hyperparameters import Hyperparameters
from .pairs import PairData


def contrastive_rows(data: PairData, hp: Hyperparameters, epoch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's records in training order and where each positive's group (it and its partner) starts."""
    rng = np.random.default_rng([seed, epoch])
    labels = positive_labels(data)
    positives = np.flatnonzero(labels == 1)
    order = positives[rng.permutation(len(positives))]
    if hp.bucket_width:  # group positives of similar lengths (stable: the shuffle survives inside a cell)
        b0 = data.in0.lengths[order] // hp.bucket_width
        b1 = data.in1.lengths[order] // hp.bucket_width
        order = order[np.argsort(b0 * (int(b1.max(initial=0)) + 1) + b1, kind="stable")]
    if not hp.contrastive_hard_negatives:
        return order, np.arange(len(order))
    negatives = np.flatnonzero(labels == 0)
    keys = data.in0.keys
    negatives = negatives[np.argsort(keys[negatives], kind="stable")]  # label-0 records grouped by in0
    sorted_keys = keys[negatives]
    lo = np.searchsorted(sorted_keys, keys[order], side="left")
    hi = np.searchsorted(sorted_keys, keys[order], side="right")
    has = hi > lo
    pick = lo + np.floor(rng.random(len(order)) * (hi - lo)).astype(np.int64)  # uniform in [lo, hi)
    sizes = 1 + has.astype(np.int64)
    starts = np.cumsum(sizes) - sizes
    rows = np.empty(int(sizes.sum()), dtype=np.int64)
    rows[starts] = order
    rows[starts[has] + 1] = negatives[pick[has]]
    return rows, starts


def contrastive_batches(
    data: PairData, hp: Hyperparameters, epoch: int, seed: int, *, size: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(records, labels)`` of each batch: ``size`` positives (default ``mini_batch_size``; under DDP
    the rank's share of it) and their partners.

    With ``bucket_width`` the batch order is shuffled, as for SageMaker's batches.
    """
    rows, starts = contrastive_rows(data, hp, epoch, seed)
    cuts = [*starts[:: size or hp.mini_batch_size].tolist(), len(rows)]
    chunks = [slice(a, b) for a, b in itertools.pairwise(cuts)]
    if hp.bucket_width:
        chunks = [chunks[i] for i in np.random.default_rng([seed, epoch, 1]).permutation(len(chunks))]
    labels = positive_labels(data)
    return [(rows[c], labels[rows[c]]) for c in chunks]


def positive_labels(data: PairData) -> np.ndarray:
    """The labels; pairs given without labels are all positives (all a contrastive objective needs)."""
    return data.labels if data.labels is not None else np.ones(len(data), dtype=np.int8)
