"""The training loop: epochs of shuffled batches, metrics, early stopping with best-weight restore.

Read top to bottom: :func:`fit` plans each epoch (:mod:`object2vec.data.sampling`), has the
:class:`~object2vec.training.epoch.EpochRunner` step the optimizers over it, evaluates on the
validation split, tells the callbacks (:mod:`object2vec.training.callbacks`), asks
:class:`~object2vec.training.early_stopping.EarlyStopping` whether to go on and has the
:class:`~object2vec.training.checkpoint.Checkpointer` save the run. The weights of the epoch with the
lowest validation loss are restored at the end. Without a validation split every epoch runs and the
last weights are kept.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import reporting
from ..data.pairs import PairData
from ..data.sampling import Batch, epoch_batches
from ..nn.model import Object2VecNet
from . import distributed
from .allocator import keep_freed_memory
from .callbacks import Callback
from .checkpoint import Checkpointer, fingerprint
from .early_stopping import BestWeights, EarlyStopping
from .epoch import EpochRunner
from .metrics import evaluate, log_metrics, loss_of
from .optimizers import Optimizers
from .precision import resolve_precision

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`fit` learned about the run; ``history`` has one dict per epoch."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    test: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": self.history, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early, "test": self.test}


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
    callbacks: Sequence[Callback] = (),
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
        on_step: called with each trained :class:`~object2vec.data.sampling.Batch` (tracing, tests).
        callbacks: told about every epoch (:class:`~object2vec.training.callbacks.Callback`); one
            returning True ends training after that epoch.

    Under ``torchrun`` each rank passes its own shard; gradients, row_sparse updates and metrics
    are combined across ranks, so every rank ends with the same weights.
    """
    hp = net.hp
    device = torch.device(device)
    keep_freed_memory()  # step temporaries are reused instead of page-faulted in afresh (allocator.py)
    net.to(device).train()
    model: nn.Module = net
    if distributed.context().is_distributed and any(p.requires_grad for p in net.parameters()):
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    optimizers = Optimizers(net, hp)
    # mini_batch_size is the global batch under DDP: each rank takes its share
    shards = distributed.gather_objects(len(train)) if distributed.context().is_distributed else None
    share = distributed.batch_share(hp.mini_batch_size, shards=shards)
    if distributed.context().is_distributed:
        _note(distributed.batch_share_line(hp.mini_batch_size))
    runner = EpochRunner(model, optimizers, train, hp, device, resolve_precision(precision, device), on_step)
    early = EarlyStopping(hp.early_stopping_patience, hp.early_stopping_tolerance)
    best = BestWeights()
    data_id = None
    if checkpoint_dir is not None:  # what the run trains on, so a resume on other data is refused
        data_id = {
            name: distributed.gather_objects(fingerprint(split)) for name, split in [("train", train), ("validation", validation)]
        }
    checkpointer = Checkpointer(checkpoint_dir, net, seed, data_id)
    result = TrainResult()
    start_epoch, skip = 1, 0

    def save(epoch: int, batch: int) -> None:
        checkpointer.save(
            optimizers=optimizers.state_dict(), epoch=epoch, batch=batch, history=result.history,
            best_epoch=result.best_epoch, stopped_early=result.stopped_early, early=early.state_dict(), best_state=best.state,
        )  # fmt: skip

    if resume and (state := checkpointer.load(device)) is not None:
        net.load_state_dict(state["model"])
        optimizers.load_state_dict(state["optimizers"])
        result.history, result.best_epoch, result.stopped_early = state["history"], state["best_epoch"], state["stopped_early"]
        early.load_state_dict(state["early"])
        best.state = state["best_state"]
        start_epoch, skip = state["epoch"], state["batch"]
        _note(f"Resuming from {checkpointer.path}: epoch {start_epoch}, batch {skip}.")

    for epoch in range(start_epoch, hp.epochs + 1):
        if early.should_stop:
            break
        batches = epoch_batches(train, hp, epoch, seed, size=share)
        steps, weights = distributed.step_weights([len(b.labels) for b in batches], device)
        batches = batches[:steps]  # every rank steps together
        todo, weights = batches[skip:], weights[skip:]
        if max_steps is not None:
            todo = todo[: max(max_steps - runner.steps, 0)]
        ran = runner.run(epoch, todo, skip + 1, len(batches), functools.partial(save, epoch), checkpoint_every, weights)
        skip = 0

        record = _epoch_record(epoch, ran, device)
        log_metrics("train", record["train"], epoch)
        reporting.emit(reporting.throughput_line(record["throughput"]))
        if validation is not None:
            extra: dict[str, Any] = {"objective": runner.objective} if runner.objective is not None else {}  # an extension
            record["validation"] = evaluate(net, validation, device, **extra)
            log_metrics("validation", record["validation"], epoch)
        reporting.emit(reporting.progress_line(100 * epoch / hp.epochs))
        result.history.append(record)
        stop_requested = any([bool(cb.on_epoch_end(record)) for cb in callbacks])  # every callback sees every epoch

        if max_steps is not None and runner.steps >= max_steps:
            break
        if validation is not None:
            watched = loss_of(hp)
            if early.update(epoch, record["validation"][watched]):
                result.best_epoch = epoch
                best.keep(net, last=epoch == hp.epochs or early.should_stop or stop_requested)
            if early.should_stop:
                result.stopped_early = epoch < hp.epochs
                _note(
                    f"Early stopping at epoch {epoch}: validation {watched} did not fall by more than "
                    f"{hp.early_stopping_tolerance:g} from the epoch before for {early.bad_epochs} epochs in a row; "
                    f"restoring epoch {result.best_epoch}."
                )
        if stop_requested and not early.should_stop:
            early.should_stop, result.stopped_early = True, epoch < hp.epochs
            _note(f"Stopping after epoch {epoch}: a callback asked to stop.")
        save(epoch + 1, 0)

    best.restore(net)
    if result.best_epoch is None:
        result.best_epoch = len(result.history)
    if test is not None:
        result.test = evaluate(net, test, device, objective=runner.objective)
        log_metrics("test", result.test)
    net.eval()
    return result


def _note(message: str) -> None:
    """A message about the run (not a SageMaker metric line): rank 0 only, shown in every log format."""
    if reporting.is_main_process():
        logger.info(message)


def _epoch_record(epoch: int, ran: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The epoch's history entry: train metrics and throughput over every rank's pairs."""
    pairs = distributed.all_reduce_sum([ran["pairs"]], device)[0]
    return {
        "epoch": epoch,
        "train": ran["meter"].reduced(device),
        "throughput": pairs / max(ran["seconds"], 1e-9),
        "seconds": ran["seconds"],
    }
