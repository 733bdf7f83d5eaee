"""Which pairs each training step sees: shuffling, negative sampling, bucketing and sharding.

An epoch is planned up front as three arrays, ``left`` (in0 record), ``right`` (in1 record) and
``labels``, so a drawn negative costs no copy of any sequence: it is just another index pair. The
plan depends only on ``(seed, epoch)``, which makes runs repeatable and lets a resumed run see the
same order.

Negative sampling (``negative_sampling_rate = N``): every record whose label is 1 contributes N
extra pairs ``(its in0, the in1 of another record drawn uniformly at random)`` labelled 0, drawn
afresh each epoch from the training split only. The drawn record is never the record itself; it may
happen to hold the same in1 tokens (a popular item), which is the usual noise of this method.
Records with other labels are trained as given and contribute no negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hyperparameters import Hyperparameters
from .pairs import PairData


@dataclass(frozen=True)
class Batch:
    """Row indices into the in0 and in1 sides, and the label of each pair."""

    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray


def epoch_pairs(data: PairData, hp: Hyperparameters, epoch: int, seed: int) -> Batch:
    """Every pair of one epoch, positives plus freshly drawn negatives, in shuffled order."""
    rng = np.random.default_rng([seed, epoch])
    n = len(data)
    index = np.int32 if n < 2**31 else np.int64  # 4 bytes a pair: the plan of 10M pairs is 40 MB a side, not 80
    labels = data.labels
    if not (hp.negative_sampling_rate and n > 1):
        # the shuffled pairs are (order[k], order[k]): one array serves as both sides. shuffle(arange)
        # is what permutation(n) does, so the order is the same, in the index type rather than int64
        order = np.arange(n, dtype=index)
        rng.shuffle(order)
        return Batch(order, order, labels[order])
    positives = np.flatnonzero(labels == 1)
    src = np.repeat(positives, hp.negative_sampling_rate)
    other = rng.integers(0, n - 1, size=len(src))
    other += other >= src  # skip the record itself: uniform over the n - 1 others
    left = np.concatenate([np.arange(n, dtype=index), src.astype(index)])
    right = np.concatenate([np.arange(n, dtype=index), other.astype(index)])
    labels = np.concatenate([labels, np.zeros(len(src), dtype=labels.dtype)])
    order = np.arange(len(left), dtype=index if len(left) < 2**31 else np.int64)
    rng.shuffle(order)
    return Batch(left[order], right[order], labels[order])


def epoch_batches(data: PairData, hp: Hyperparameters, epoch: int, seed: int, *, size: int | None = None) -> list[Batch]:
    """The batches of ``size`` pairs (default ``mini_batch_size``) one process trains on in ``epoch``.

    With ``bucket_width > 0`` pairs are grouped by the lengths of both sides (in steps of
    ``bucket_width``) so a batch pads little, and the batch order is shuffled. Under DDP each rank
    plans its own shard with its share of ``mini_batch_size`` as ``size``
    (:func:`object2vec.training.distributed.batch_share`).
    """
    pairs = epoch_pairs(data, hp, epoch, seed)
    size = size or hp.mini_batch_size
    if hp.bucket_width:
        # key = (in0 bucket, in1 bucket): a batch is cut from pairs whose two sides both have similar
        # lengths; the stable sort keeps the epoch's shuffle inside each cell
        b0 = data.in0.lengths[pairs.left] // hp.bucket_width
        b1 = data.in1.lengths[pairs.right] // hp.bucket_width
        order = np.argsort(b0 * (int(b1.max()) + 1) + b1, kind="stable")
        pairs = Batch(pairs.left[order], pairs.right[order], pairs.labels[order])
    # every batch is a slice (a view) of the epoch's arrays: no second copy of the plan
    chunks = [slice(i, i + size) for i in range(0, len(pairs.left), size)]
    if hp.bucket_width:
        rng = np.random.default_rng([seed, epoch, 1])
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return [Batch(pairs.left[c], pairs.right[c], pairs.labels[c]) for c in chunks]
