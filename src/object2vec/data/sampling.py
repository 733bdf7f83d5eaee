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

Two extensions (off by default): ``negative_sampling_distinct`` draws a negative again while its in1
is the same sequence as its positive's (StarSpace's rule; with label tokens as in1, a record's own
label would otherwise come back as one of its "negatives" once in every few draws), and
``mini_batch_tokens`` cuts batches by their token count instead of only by pairs, so a batch of long
documents costs about what a batch of short ones does. ``negative_sampling_grouped`` puts each
record's pair and its negatives one after the other (records shuffled), so they share a batch and
the training step encodes their in0 once (:func:`object2vec.training.batches.batch_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..hyperparameters import Hyperparameters
from .contrastive import contrastive_batches
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
    if labels is None:  # read_pairs(require_label=True) gives training data its labels
        raise ValueError("training pairs need labels")
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
    if hp.negative_sampling_distinct:
        other = _redraw_same_in1(data, src, other, rng)
    if hp.negative_sampling_grouped:
        return _grouped(labels, other.astype(index), hp.negative_sampling_rate, rng, index)
    left = np.concatenate([np.arange(n, dtype=index), src.astype(index)])
    right = np.concatenate([np.arange(n, dtype=index), other.astype(index)])
    labels = np.concatenate([labels, np.zeros(len(src), dtype=labels.dtype)])
    order = np.arange(len(left), dtype=index if len(left) < 2**31 else np.int64)
    rng.shuffle(order)
    return Batch(left[order], right[order], labels[order])


def _grouped(labels: np.ndarray, other: np.ndarray, rate: int, rng: np.random.Generator, index: Any) -> Batch:
    """The records in shuffled order, each followed at once by its negatives (``other``, ``rate`` per
    positive in the order of the positives), so that they share a batch and in0 is encoded once."""
    n = len(labels)
    order: np.ndarray = np.arange(n, dtype=index)
    rng.shuffle(order)
    positive = labels == 1
    sizes = 1 + rate * positive[order]  # pairs of each record, in the shuffled order
    left = np.repeat(order, sizes)
    within = np.arange(len(left)) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # 0: the record's own pair
    rank = np.cumsum(positive) - 1  # a positive's place among the positives: where its negatives are
    drawn = other[np.maximum(rank[left] * rate + within - 1, 0)]
    own = within == 0
    right: np.ndarray = np.where(own, left, drawn).astype(index)
    return Batch(left, right, np.where(own, labels[left], 0).astype(labels.dtype))


def _redraw_same_in1(data: PairData, src: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``other`` with every draw whose in1 equals its source's in1 drawn again (uniformly over the
    records), until none is left; a source whose in1 every record shares keeps its draw."""
    key = _in1_keys(data)
    if len(np.unique(key)) < 2:
        return other  # one in1 for all: nothing else to draw
    other = other.copy()
    same = np.flatnonzero(key[other] == key[src])
    while len(same):
        other[same] = rng.integers(0, len(data), size=len(same))
        same = same[key[other[same]] == key[src[same]]]
    return other


def _in1_keys(data: PairData) -> np.ndarray:
    """An integer per record, equal for records whose in1 sequences are equal: ``(n,)``."""
    side = data.in1
    lengths = side.lengths
    if len(lengths) and lengths.min() == lengths.max() == 1:  # one token each (labels): the token is the key
        return side.tokens.astype(np.int64)
    seqs = [side[i].tobytes() for i in range(len(side))]
    return np.unique(np.asarray(seqs, dtype=object), return_inverse=True)[1]


def _token_chunks(data: PairData, pairs: Batch, size: int, budget: int) -> list[slice]:
    """Consecutive slices of the epoch's pairs, each of at most ``size`` pairs and ``budget`` tokens
    (both sides, as truncated); a pair longer than the budget is a batch of its own."""
    tokens = data.in0.lengths[pairs.left] + data.in1.lengths[pairs.right]
    cum = np.concatenate([[0], np.cumsum(tokens)])  # cum[i]: tokens of the pairs before pair i
    chunks, start = [], 0
    while start < len(tokens):
        fit = int(np.searchsorted(cum, cum[start] + budget, side="right")) - 1  # pairs [start, fit) hold <= budget
        end = min(max(fit, start + 1), start + size)
        chunks.append(slice(start, end))
        start = end
    return chunks


def epoch_batches(data: PairData, hp: Hyperparameters, epoch: int, seed: int, *, size: int | None = None) -> list[Batch]:
    """The batches of ``size`` pairs (default ``mini_batch_size``) one process trains on in ``epoch``.

    With ``bucket_width > 0`` pairs are grouped by the lengths of both sides (in steps of
    ``bucket_width``) so a batch pads little, and the batch order is shuffled. Under DDP each rank
    plans its own shard with its share of ``mini_batch_size`` as ``size``
    (:func:`object2vec.training.distributed.batch_share`), and ``mini_batch_tokens`` is shared in the
    same proportion. ``objective=contrastive`` plans its own batches (:mod:`object2vec.data.contrastive`),
    of ``size`` positives.
    """
    size = size or hp.mini_batch_size
    if hp.objective == "contrastive":
        return [Batch(rows, rows, labels) for rows, labels in contrastive_batches(data, hp, epoch, seed, size=size)]
    pairs = epoch_pairs(data, hp, epoch, seed)
    if hp.bucket_width:
        # key = (in0 bucket, in1 bucket): a batch is cut from pairs whose two sides both have similar
        # lengths; the stable sort keeps the epoch's shuffle inside each cell
        b0 = data.in0.lengths[pairs.left] // hp.bucket_width
        b1 = data.in1.lengths[pairs.right] // hp.bucket_width
        order = np.argsort(b0 * (int(b1.max()) + 1) + b1, kind="stable")
        pairs = Batch(pairs.left[order], pairs.right[order], pairs.labels[order])
    # every batch is a slice (a view) of the epoch's arrays: no second copy of the plan
    if hp.mini_batch_tokens:
        budget = max(1, hp.mini_batch_tokens * size // hp.mini_batch_size)  # this rank's share of the tokens
        chunks = _token_chunks(data, pairs, size, budget)
    else:
        chunks = [slice(i, i + size) for i in range(0, len(pairs.left), size)]
    if hp.bucket_width:
        rng = np.random.default_rng([seed, epoch, 1])
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return [Batch(pairs.left[c], pairs.right[c], pairs.labels[c]) for c in chunks]
