"""Epoch plans: the same order as a plain int64 permutation, in a quarter of the memory."""

from __future__ import annotations

import numpy as np
import pytest

from object2vec.data.pairs import PairData, Side
from object2vec.data.sampling import epoch_batches
from object2vec.hyperparameters import Hyperparameters


def _data(n: int = 203) -> PairData:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    side = Side(rng.integers(0, 10, offsets[-1]).astype(np.uint16), offsets)
    return PairData(side, side, rng.integers(0, 2, n).astype(np.int8))


def _reference_batches(data, hp, epoch, seed):
    """The plan as it was first written: int64 permutation, a copied array per batch."""
    rng = np.random.default_rng([seed, epoch])
    n = len(data)
    left, right, labels = np.arange(n), np.arange(n), data.labels
    if hp.negative_sampling_rate and n > 1:
        src = np.repeat(np.flatnonzero(labels == 1), hp.negative_sampling_rate)
        other = rng.integers(0, n - 1, size=len(src))
        other += other >= src
        left, right = np.concatenate([left, src]), np.concatenate([right, other])
        labels = np.concatenate([labels, np.zeros(len(src), dtype=labels.dtype)])
    order = rng.permutation(len(left))
    left, right, labels = left[order], right[order], labels[order]
    order = np.arange(len(left))
    if hp.bucket_width:
        b0, b1 = data.in0.lengths[left] // hp.bucket_width, data.in1.lengths[right] // hp.bucket_width
        order = np.argsort(b0 * (int(b1.max()) + 1) + b1, kind="stable")
    chunks = [order[i : i + hp.mini_batch_size] for i in range(0, len(order), hp.mini_batch_size)]
    if hp.bucket_width:
        perm = np.random.default_rng([seed, epoch, 1]).permutation(len(chunks))
        chunks = [chunks[i] for i in perm]
    return [(left[c], right[c], labels[c]) for c in chunks]


@pytest.mark.parametrize("negatives", [0, 2])
@pytest.mark.parametrize("bucket_width", [0, 3])
def test_the_plan_is_unchanged_by_the_compact_layout(negatives, bucket_width):
    hp = Hyperparameters(
        enc0_max_seq_len=12,
        enc0_vocab_size=10,
        mini_batch_size=16,
        negative_sampling_rate=negatives,
        bucket_width=bucket_width,
    )
    data = _data()
    ours = epoch_batches(data, hp, 3, seed=7)
    reference = _reference_batches(data, hp, 3, seed=7)
    assert len(ours) == len(reference)
    for batch, (left, right, labels) in zip(ours, reference, strict=True):
        assert batch.left.tolist() == left.tolist() and batch.right.tolist() == right.tolist()
        assert batch.labels.tolist() == labels.tolist()


def test_batches_are_views_of_one_int32_plan():
    hp = Hyperparameters(enc0_max_seq_len=12, enc0_vocab_size=10, mini_batch_size=16)
    batches = epoch_batches(_data(), hp, 1, seed=0)
    assert all(b.left.dtype == np.int32 for b in batches)
    assert all(b.left.base is not None and b.left.base is batches[0].left.base for b in batches)
