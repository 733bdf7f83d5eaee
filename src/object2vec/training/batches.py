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


def batch_inputs(data: PairData, batch: Batch, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (*side_tensors(data.in0, batch.left, device), *side_tensors(data.in1, batch.right, device))


def sequential_batches(data: PairData, size: int) -> Iterator[Batch]:
    """Every pair once, in file order (evaluation and prediction)."""
    for start in range(0, len(data), size):
        idx = np.arange(start, min(start + size, len(data)))
        labels = data.labels[idx] if data.labels is not None else idx
        yield Batch(idx, idx, labels)


def label_tensor(labels: np.ndarray, hp: Hyperparameters, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(labels))
    return t.to(device, dtype=torch.float32 if hp.is_regression else torch.int64)
