"""SageMaker's metrics (accuracy and cross_entropy, or mean_squared_error) over batches and whole
splits, combined across ranks, and the ``#quality_metric`` lines SageMaker's log parsers read."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import reporting
from ..data.pairs import PairData
from ..hyperparameters import Hyperparameters
from ..nn.model import Object2VecNet
from . import distributed
from .batches import batch_inputs, label_tensor, sequential_batches

EVAL_BATCH_SIZE = 4096


class Meter:
    """Sums loss and correct predictions over batches; reports SageMaker's metric names."""

    def __init__(self, hp: Hyperparameters):
        self.regression = hp.is_regression
        self.loss_sum = 0.0
        self.correct: float = 0  # counts; floats once summed over ranks
        self.count: float = 0

    def add(self, out: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor | float) -> None:
        n = len(labels)
        self.loss_sum += float(loss) * n
        self.count += n
        if not self.regression:
            self.correct += int((out.argmax(dim=1) == labels).sum())

    def metrics(self) -> dict[str, float]:
        loss = self.loss_sum / max(self.count, 1)
        if self.regression:
            return {"mean_squared_error": loss, "rmse": loss**0.5}
        return {"accuracy": self.correct / max(self.count, 1), "cross_entropy": loss}

    def reduced(self, device: torch.device) -> dict[str, float]:
        """Metrics over every rank's pairs (the same dict on every rank)."""
        self.loss_sum, self.correct, self.count = distributed.all_reduce_sum([self.loss_sum, self.correct, self.count], device)
        return self.metrics()


def loss_of(hp: Hyperparameters) -> str:
    """The metric early stopping watches: the output layer's own loss."""
    return "mean_squared_error" if hp.is_regression else "cross_entropy"


def compute_loss(out: torch.Tensor, labels: torch.Tensor, hp: Hyperparameters) -> torch.Tensor:
    return F.mse_loss(out, labels) if hp.is_regression else F.cross_entropy(out, labels)


@torch.inference_mode()
def evaluate(net: Object2VecNet, data: PairData, device: torch.device, batch_size: int = EVAL_BATCH_SIZE) -> dict[str, float]:
    """Accuracy and cross_entropy (softmax) or mean_squared_error and rmse (regression) on ``data``."""
    was_training = net.training
    net.eval()
    meter = Meter(net.hp)
    for batch in sequential_batches(data, batch_size):
        labels = label_tensor(batch.labels, net.hp, device)
        out = net(*batch_inputs(data, batch, device))
        meter.add(out, labels, compute_loss(out, labels, net.hp))
    net.train(was_training)
    return meter.reduced(device)


def log_metrics(split: str, metrics: dict[str, float], epoch: int | None = None) -> None:
    for name, value in metrics.items():
        reporting.emit(reporting.quality_line(split, name, value, epoch))
