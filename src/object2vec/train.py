"""The training loop: epochs of shuffled batches, metrics, early stopping with best-weight restore.

Read top to bottom: :func:`fit` plans each epoch (:mod:`object2vec.sampling`), steps the optimizer
over it, evaluates on the validation split, and stops after ``early_stopping_patience`` epochs in a
row whose validation loss did not beat the reference by ``early_stopping_tolerance``. The weights of
the epoch with the lowest validation loss are restored at the end. Without a validation split every
epoch runs and the last weights are kept.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import reporting
from .config import Hyperparameters
from .data import PairData, Side
from .errors import HyperparameterError
from .model import Object2VecNet
from .sampling import Batch, epoch_batches
from .sparse import LazyOptimizer

EVAL_BATCH_SIZE = 4096
FUSED = ("adam", "adagrad", "sgd")  # optimizers with a fused CPU/CUDA kernel (torch >= 2.4)


@dataclass
class TrainResult:
    """What :func:`fit` learned about the run; ``history`` has one dict per epoch."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    test: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": self.history, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early, "test": self.test}


# --------------------------------------------------------------------------------------------------
# Tensors


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


# --------------------------------------------------------------------------------------------------
# Optimizers


def _dense_optimizer(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    cls = {
        "adam": torch.optim.Adam,
        "adagrad": torch.optim.Adagrad,
        "rmsprop": torch.optim.RMSprop,
        "sgd": torch.optim.SGD,
        "adadelta": torch.optim.Adadelta,
    }[name]
    fast = {"fused": True} if name in FUSED else {"foreach": True}  # one kernel over all tensors, not a loop
    return cls(params, lr=lr, weight_decay=weight_decay, **fast)


class Optimizers:
    """The dense optimizer, plus a lazy one (:mod:`object2vec.sparse`) for ``row_sparse`` token tables."""

    def __init__(self, net: Object2VecNet, hp: Hyperparameters):
        tables = [e for e in net.embeddings() if e.row_sparse]
        dense = [p for p in net.parameters() if p.requires_grad]  # row_sparse tables are not autograd parameters
        self.optimizers: list[Any] = []
        if dense:
            self.optimizers.append(_dense_optimizer(hp.optimizer, dense, hp.learning_rate, hp.weight_decay))
        if tables:
            self.optimizers.append(LazyOptimizer(tables, hp.optimizer, hp.learning_rate, hp.weight_decay))

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad()

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def step_scaled(self, scaler: torch.amp.GradScaler) -> None:
        """fp16: unscale, skip the step on inf/nan gradients, adapt the scale."""
        dense = self.optimizers[0] if self.optimizers and not isinstance(self.optimizers[0], LazyOptimizer) else None
        if dense is not None:
            scaler.step(dense)
        for opt in self.optimizers:
            if isinstance(opt, LazyOptimizer):
                opt.step(scale=scaler.get_scale())
        scaler.update()

    def state_dict(self) -> list[dict[str, Any]]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        for opt, state in zip(self.optimizers, states, strict=True):
            opt.load_state_dict(state)


# --------------------------------------------------------------------------------------------------
# Precision

PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 matrix units exist here (AVX-512 BF16 / AMX on CPU, Ampere or newer on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` picks bf16 where the hardware runs it natively, else fp32; fp16 needs CUDA."""
    if precision not in PRECISIONS:
        raise HyperparameterError([f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}."])
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise HyperparameterError(["precision=fp16 needs a CUDA device; use bf16 (or auto) on a CPU."])
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: weights, optimizer state and the loss stay fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


# --------------------------------------------------------------------------------------------------
# Metrics


class Meter:
    """Sums loss and correct predictions over batches; reports SageMaker's metric names."""

    def __init__(self, hp: Hyperparameters):
        self.regression = hp.is_regression
        self.loss_sum = 0.0
        self.correct = 0
        self.count = 0

    def add(self, out: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
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
    return meter.metrics()


def log_metrics(split: str, metrics: dict[str, float], epoch: int | None = None) -> None:
    for name, value in metrics.items():
        reporting.emit(reporting.quality_line(split, name, value, epoch))


# --------------------------------------------------------------------------------------------------
# The loop


def fit(
    net: Object2VecNet,
    train: PairData,
    validation: PairData | None = None,
    test: PairData | None = None,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    max_steps: int | None = None,
    precision: str = "fp32",
) -> TrainResult:
    """Train ``net`` in place and return the run's history (see the module docstring).

    ``max_steps`` ends training after that many optimizer steps (``--dry-run`` uses 1).
    ``precision`` (fp32, bf16, fp16 on CUDA, auto) sets the autocast dtype of training steps;
    evaluation always runs in fp32.
    """
    hp = net.hp
    device = torch.device(device)
    net.to(device).train()
    optimizers = Optimizers(net, hp)
    precision = resolve_precision(precision, device)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 gradients underflow unscaled
    watched = loss_of(hp)
    result = TrainResult()
    best_loss, reference, bad_epochs, best_state = float("inf"), float("inf"), 0, None
    steps = 0

    for epoch in range(1, hp.epochs + 1):
        batches = epoch_batches(train, hp, epoch, seed)
        meter = Meter(hp)
        if max_steps is not None:
            batches = batches[: max(max_steps - steps, 0)]
        pairs = sum(len(b.labels) for b in batches)
        bar = tqdm(
            total=pairs,
            unit="pair",
            unit_scale=True,
            desc=f"epoch {epoch}",
            disable=not reporting.show_progress_bar(),
            leave=False,
        )
        start = time.perf_counter()
        for batch in batches:
            steps += 1
            inputs = batch_inputs(train, batch, device)
            labels = label_tensor(batch.labels, hp, device)
            with autocast(precision, device):
                out = net(*inputs)
            loss = compute_loss(out.float(), labels, hp)
            optimizers.zero_grad()
            if scaler is None:
                loss.backward()
                optimizers.step()
            else:
                scaler.scale(loss).backward()
                optimizers.step_scaled(scaler)
            meter.add(out.detach(), labels, loss.detach())
            bar.update(len(labels))
        elapsed = time.perf_counter() - start
        bar.close()

        record: dict[str, Any] = {
            "epoch": epoch,
            "train": meter.metrics(),
            "throughput": pairs / max(elapsed, 1e-9),
            "seconds": elapsed,
        }
        log_metrics("train", record["train"], epoch)
        reporting.emit(reporting.throughput_line(record["throughput"]))
        if validation is not None:
            record["validation"] = evaluate(net, validation, device)
            log_metrics("validation", record["validation"], epoch)
        reporting.emit(reporting.progress_line(100 * epoch / hp.epochs))
        result.history.append(record)

        if max_steps is not None and steps >= max_steps:
            break
        if validation is None:
            continue
        loss = record["validation"][watched]
        if loss < best_loss:  # keep the best weights even when the gain is below tolerance
            best_loss, result.best_epoch = loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if loss < reference - hp.early_stopping_tolerance:
            reference, bad_epochs = loss, 0
        else:
            bad_epochs += 1
            if bad_epochs >= hp.early_stopping_patience:
                result.stopped_early = epoch < hp.epochs
                reporting.emit(
                    f"Early stopping at epoch {epoch}: validation {watched} did not improve by "
                    f"{hp.early_stopping_tolerance:g} for {bad_epochs} epochs; restoring epoch {result.best_epoch}."
                )
                break

    if best_state is not None:
        net.load_state_dict(best_state)
    if result.best_epoch is None:
        result.best_epoch = len(result.history)
    if test is not None:
        result.test = evaluate(net, test, device)
        log_metrics("test", result.test)
    net.eval()
    return result
