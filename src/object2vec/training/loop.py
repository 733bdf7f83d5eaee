"""The training loop: epochs of shuffled batches, metrics, early stopping with best-weight restore.

Read top to bottom: :func:`fit` plans each epoch (:mod:`object2vec.sampling`), steps the optimizer
over it, evaluates on the validation split, and stops after ``early_stopping_patience`` epochs in a
row whose validation loss did not beat the reference by ``early_stopping_tolerance``. The weights of
the epoch with the lowest validation loss are restored at the end. Without a validation split every
epoch runs and the last weights are kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import reporting
from ..data.pairs import PairData, Side
from ..data.sampling import Batch, epoch_batches
from ..errors import CheckpointError, HyperparameterError
from ..hyperparameters import Hyperparameters
from ..nn.model import Object2VecNet
from . import distributed
from .allocator import keep_freed_memory
from .lazy_optim import LazyOptimizer

EVAL_BATCH_SIZE = 4096
CHECKPOINT = "latest.pt"
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


# --------------------------------------------------------------------------------------------------
# The loop


def _checkpoint_state(net: Object2VecNet, optimizers: Optimizers, seed: int, **progress: Any) -> dict[str, Any]:
    return {
        "hyperparameters": net.hp.to_dict(),
        "seed": seed,
        "model": net.state_dict(),
        "optimizers": optimizers.state_dict(),
        **progress,
    }


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """``folder/latest.pt``, written to a temporary name and renamed (rank 0 only)."""
    if not distributed.context().is_main:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".latest.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, folder / CHECKPOINT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(folder: Path, net: Object2VecNet, seed: int, device: torch.device) -> dict[str, Any] | None:
    path = folder / CHECKPOINT
    if not path.is_file():
        reporting.emit(f"No checkpoint in {folder}; starting from the beginning.")
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a damaged file: say which and why
        raise CheckpointError(f"{path}: cannot be read ({e}); delete it to start over") from None
    if state.get("hyperparameters") != net.hp.to_dict() or state.get("seed") != seed:
        raise CheckpointError(
            f"{path}: was written by a run with other hyperparameters or seed; resume with the same ones or delete it"
        )
    return state


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
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    on_step: Callable[[Batch], None] | None = None,
) -> TrainResult:
    """Train ``net`` in place and return the run's history (see the module docstring).

    Args:
        max_steps: end after that many optimizer steps in this call (``--dry-run`` uses 1).
        precision: fp32, bf16, fp16 (CUDA) or auto: the autocast dtype of training steps;
            evaluation always runs in fp32.
        checkpoint_dir: write ``latest.pt`` there after every epoch and every ``checkpoint_every``
            steps (atomically, rank 0).
        resume: continue from ``checkpoint_dir/latest.pt``: same weights, optimizer state, early
            stopping state and data order; the batches after the checkpoint are replayed.
        on_step: called with each trained :class:`~object2vec.sampling.Batch` (tracing, tests).

    Under ``torchrun`` each rank passes its own shard; gradients, row_sparse updates and metrics
    are combined across ranks, so every rank ends with the same weights.
    """
    hp = net.hp
    device = torch.device(device)
    ctx = distributed.context()
    keep_freed_memory()  # step temporaries are reused instead of page-faulted in afresh (allocator.py)
    net.to(device).train()
    model: nn.Module = net
    if ctx.is_distributed and any(p.requires_grad for p in net.parameters()):
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    optimizers = Optimizers(net, hp)
    precision = resolve_precision(precision, device)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 gradients underflow unscaled
    watched = loss_of(hp)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    result = TrainResult()
    early = {"best_loss": float("inf"), "reference": float("inf"), "bad_epochs": 0, "finished": False}
    best_state = None
    start_epoch, skip, steps = 1, 0, 0

    if resume and folder is not None and (state := load_checkpoint(folder, net, seed, device)) is not None:
        net.load_state_dict(state["model"])
        optimizers.load_state_dict(state["optimizers"])
        result.history, result.best_epoch, result.stopped_early = state["history"], state["best_epoch"], state["stopped_early"]
        early, best_state = state["early"], state["best_state"]
        start_epoch, skip = state["epoch"], state["batch"]
        reporting.emit(f"Resuming from {folder / CHECKPOINT}: epoch {start_epoch}, batch {skip}.")

    def checkpoint(epoch: int, batch: int) -> None:
        if folder is not None:
            save_checkpoint(
                folder,
                _checkpoint_state(
                    net, optimizers, seed, epoch=epoch, batch=batch, history=result.history, best_epoch=result.best_epoch,
                    stopped_early=result.stopped_early, early=early, best_state=best_state,
                ),
            )  # fmt: skip

    for epoch in range(start_epoch, hp.epochs + 1):
        if early["finished"]:
            break
        batches = epoch_batches(train, hp, epoch, seed)
        batches = batches[: distributed.all_reduce_min(len(batches), device)]  # every rank steps together
        todo = batches[skip:]
        if max_steps is not None:
            todo = todo[: max(max_steps - steps, 0)]
        meter = Meter(hp)
        pairs = sum(len(b.labels) for b in todo)
        bar = tqdm(
            total=pairs,
            unit="pair",
            unit_scale=True,
            desc=f"epoch {epoch}",
            disable=not reporting.show_progress_bar(),
            leave=False,
        )
        start = time.perf_counter()
        for i, batch in enumerate(todo, start=skip + 1):
            inputs = batch_inputs(train, batch, device)
            labels = label_tensor(batch.labels, hp, device)
            optimizers.zero_grad()
            with autocast(precision, device):
                out = model(*inputs)
            loss = compute_loss(out.float(), labels, hp)
            if scaler is None:
                loss.backward()
                optimizers.step()
            else:
                scaler.scale(loss).backward()
                optimizers.step_scaled(scaler)
            meter.add(out.detach(), labels, loss.detach())
            bar.update(len(labels))
            steps += 1
            if on_step is not None:
                on_step(batch)
            if checkpoint_every and steps % checkpoint_every == 0 and i < len(batches):
                checkpoint(epoch, i)
        elapsed = time.perf_counter() - start
        bar.close()
        skip = 0

        pairs = distributed.all_reduce_sum([pairs], device)[0]
        record: dict[str, Any] = {
            "epoch": epoch,
            "train": meter.reduced(device),
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
        if validation is not None:
            loss = record["validation"][watched]
            if loss < early["best_loss"]:  # keep the best weights even when the gain is below tolerance
                early["best_loss"], result.best_epoch = loss, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if loss < early["reference"] - hp.early_stopping_tolerance:
                early["reference"], early["bad_epochs"] = loss, 0
            else:
                early["bad_epochs"] += 1
                if early["bad_epochs"] >= hp.early_stopping_patience:
                    early["finished"] = True
                    result.stopped_early = epoch < hp.epochs
                    reporting.emit(
                        f"Early stopping at epoch {epoch}: validation {watched} did not improve by "
                        f"{hp.early_stopping_tolerance:g} for {early['bad_epochs']} epochs; restoring epoch {result.best_epoch}."
                    )
        checkpoint(epoch + 1, 0)

    if best_state is not None:
        net.load_state_dict(best_state)
    if result.best_epoch is None:
        result.best_epoch = len(result.history)
    if test is not None:
        result.test = evaluate(net, test, device)
        log_metrics("test", result.test)
    net.eval()
    return result
