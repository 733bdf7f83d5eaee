"""SageMaker's metrics (accuracy and cross_entropy, or mean_squared_error) over batches and whole
splits, combined across ranks, and the ``#quality_metric`` lines SageMaker's log parsers read.

The embedding objectives (extensions, :mod:`object2vec.training.objectives`) add their own metrics:
``cosine_mean_squared_error``, or ``contrastive_cross_entropy`` and ``contrastive_accuracy`` (the
share of positives ranked first among their batch's candidates); a ``sagemaker+...`` objective also
reports ``loss``, the weighted sum that it minimises and early stopping watches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .. import console, reporting
from ..data.contrastive import positive_labels
from ..data.pairs import PairData
from ..data.sampling import Batch
from ..hyperparameters import Hyperparameters
from ..nn.model import Object2VecNet
from . import distributed
from .batches import batch_inputs, label_tensor, sequential_batches
from .objectives import CONTRASTIVE_METRIC, COSINE_METRIC, EmbeddingObjective, Parts

EVAL_BATCH_SIZE = 4096


class Meter:
    """Sums loss and correct predictions over batches; reports SageMaker's metric names."""

    def __init__(self, hp: Hyperparameters):
        self.regression = hp.is_regression
        self.head = hp.has_head
        self.weight = hp.objective_weight
        self.loss_sum = 0.0
        self.correct: float = 0  # counts; floats once summed over ranks
        self.count: float = 0
        self.parts: dict[str, list[float]] = {}  # an embedding objective's metrics: name -> [sum, rows]

    def add(self, out: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        n = len(labels)
        self.loss_sum += float(loss) * n
        self.count += n
        if not self.regression:
            self.correct += int((out.argmax(dim=1) == labels).sum())

    def add_parts(self, parts: Parts) -> None:
        for name, (total, rows) in parts.items():
            sums = self.parts.setdefault(name, [0.0, 0.0])
            sums[0] += total
            sums[1] += rows

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.head:
            loss = self.loss_sum / max(self.count, 1)
            if self.regression:
                out = {"mean_squared_error": loss, "rmse": loss**0.5}
            else:
                out = {"accuracy": self.correct / max(self.count, 1), "cross_entropy": loss}
        for name, (total, rows) in self.parts.items():
            out[name] = total / max(rows, 1)
        if self.head and self.parts:  # a joint objective: the weighted sum it minimises
            part = out.get(COSINE_METRIC, out.get(CONTRASTIVE_METRIC, 0.0))
            out["loss"] = out["mean_squared_error" if self.regression else "cross_entropy"] + self.weight * part
        return out

    def reduced(self, device: torch.device) -> dict[str, float]:
        """Metrics over every rank's pairs (the same dict on every rank)."""
        if not self.parts:
            self.loss_sum, self.correct, self.count = distributed.all_reduce_sum(
                [self.loss_sum, self.correct, self.count], device
            )
            return self.metrics()
        names = list(self.parts)
        flat = [self.loss_sum, self.correct, self.count, *(x for name in names for x in self.parts[name])]
        summed = distributed.all_reduce_sum(flat, device)
        self.loss_sum, self.correct, self.count = summed[:3]
        self.parts = {name: summed[3 + 2 * i : 5 + 2 * i] for i, name in enumerate(names)}
        return self.metrics()


def loss_of(hp: Hyperparameters) -> str:
    """The metric early stopping watches: the loss the objective minimises (SageMaker's: the output layer's)."""
    if hp.objective == "sagemaker":
        return "mean_squared_error" if hp.is_regression else "cross_entropy"
    if not hp.has_head:
        return COSINE_METRIC if hp.embedding_objective == "cosine" else CONTRASTIVE_METRIC
    return "loss"


def compute_loss(out: torch.Tensor, labels: torch.Tensor, hp: Hyperparameters) -> torch.Tensor:
    return F.mse_loss(out, labels) if hp.is_regression else F.cross_entropy(out, labels)


@torch.inference_mode()
def evaluate(
    net: Object2VecNet,
    data: PairData,
    device: torch.device,
    batch_size: int = EVAL_BATCH_SIZE,
    objective: EmbeddingObjective | None = None,
) -> dict[str, float]:
    """Accuracy and cross_entropy (softmax) or mean_squared_error and rmse (regression) on ``data``;
    for an embedding objective, its metrics (contrastive ones over batches of ``mini_batch_size``
    pairs in a fixed shuffled order, since in-batch negatives depend on the batch). ``objective`` is
    the training run's (``fit`` passes it, so validation applies the same logQ correction)."""
    was_training = net.training
    net.eval()
    meter = Meter(net.hp)
    with console.progress(len(data), desc="evaluating", unit=" pairs", unit_scale=True) as bar:
        if net.hp.objective == "sagemaker":
            for batch in sequential_batches(data, batch_size):
                labels = label_tensor(batch.labels, net.hp, device)
                out = net(*batch_inputs(data, batch, device))
                meter.add(out, labels, compute_loss(out, labels, net.hp))
                bar.update(len(batch.labels))
        else:
            objective = objective or EmbeddingObjective(net.hp)
            for batch in _evaluation_batches(data, net.hp, batch_size):
                labels = label_tensor(batch.labels, net.hp, device)
                out, u, v = net(*batch_inputs(data, batch, device), encodings=True)
                if net.hp.has_head:
                    meter.add(out, labels, compute_loss(out, labels, net.hp))
                meter.add_parts(objective(u, v, labels, data, batch, gather=False)[1])
                bar.update(len(batch.labels))
    net.train(was_training)
    return meter.reduced(device)


def _evaluation_batches(data: PairData, hp: Hyperparameters, batch_size: int) -> Iterator[Batch]:
    if hp.embedding_objective != "contrastive":
        yield from sequential_batches(data, batch_size)
        return
    order = np.random.default_rng(0).permutation(len(data))  # files are often sorted (by user, by query)
    labels = positive_labels(data)
    for start in range(0, len(order), hp.mini_batch_size):
        idx = order[start : start + hp.mini_batch_size]
        yield Batch(idx, idx, labels[idx])


def log_metrics(split: str, metrics: dict[str, float], epoch: int | None = None) -> None:
    for name, value in metrics.items():
        reporting.emit(reporting.quality_line(split, name, value, epoch))
