"""Batches as tensors: the index arrays of :mod:`object2vec.data.sampling` turned into token ids,
lengths and labels on the training device."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data.pairs import PairData, Side
from ..data.sampling import Batch
from ..hyperparameters import Hyperparameters


def side_tensors(side: Side, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat token ids and lengths of rows ``idx`` of one side, as int64 tensors on ``device``."""
    tokens, lengths = side.take(idx)
    return (
        torch.from_numpy(tokens.astype(np.int64)).to(device, non_blocking=True),
        torch.from_numpy(lengths).to(device, non_blocking=True),
    )


def side_weights(side: Side, idx: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """Flat per-token weights of rows ``idx`` of one side (float32 on ``device``), or None without weights."""
    weights = side.take_weights(idx)
    return None if weights is None else torch.from_numpy(weights).to(device, non_blocking=True)


def batch_inputs(data: PairData, batch: Batch, device: torch.device, once: bool = False) -> tuple[torch.Tensor | None, ...]:
    """The network's arguments for a batch: tokens and lengths of each side, then each side's weights
    (or None). ``once``: each distinct in0 record is given once, and a last argument maps every pair
    to its record's row (negative_sampling_grouped: a positive and its negatives share one in0)."""
    left, index = batch.left, None
    if once:
        left, inverse = np.unique(batch.left, return_inverse=True)
        index = torch.from_numpy(inverse.astype(np.int64)).to(device, non_blocking=True)
    return (
        *side_tensors(data.in0, left, device),
        *side_tensors(data.in1, batch.right, device),
        side_weights(data.in0, left, device),
        side_weights(data.in1, batch.right, device),
        *((index,) if once else ()),
    )


def sequential_batches(data: PairData, size: int) -> Iterator[Batch]:
    """Every pair once, in file order (evaluation and prediction)."""
    for start in range(0, len(data), size):
        idx = np.arange(start, min(start + size, len(data)))
        labels = data.labels[idx] if data.labels is not None else idx
        yield Batch(idx, idx, labels)


def label_tensor(labels: np.ndarray, hp: Hyperparameters, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(labels))
    return t.to(device, dtype=torch.float32 if hp.is_regression else torch.int64)
