"""One epoch of training steps: forward under autocast, loss, backward, optimizer step, metrics.

After each step two things are checked, and agreed by every rank (one tiny all-reduce under
``torchrun``), so that no rank leaves the others waiting in a collective. Both use the loss value
the metrics read anyway: no extra device synchronisation.

* a loss that is not finite stops training with :class:`NonFiniteLoss`, naming the epoch and batch;
* a SIGTERM or SIGINT that arrived during the epoch (:mod:`object2vec.interrupts`) lets the step
  finish, checkpoints the position after it and raises :class:`~object2vec.interrupts.Interrupted`
  (after an epoch's last batch no checkpoint is written: the epoch's metrics are not computed yet,
  and the previous checkpoint is kept).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from .. import console, interrupts
from ..data.pairs import PairData
from ..data.sampling import Batch
from ..errors import Object2VecError
from ..hyperparameters import Hyperparameters
from . import distributed
from .batches import batch_inputs, label_tensor
from .metrics import Meter, compute_loss
from .objectives import EmbeddingObjective
from .optimizers import Optimizers
from .precision import autocast


class NonFiniteLoss(Object2VecError):
    """The training loss became NaN or infinite: training stops (the weights are still finite)."""


class EpochRunner:
    """Steps a model over an epoch's batches; the same object serves every epoch of a run."""

    def __init__(
        self,
        model: nn.Module,
        optimizers: Optimizers,
        train: PairData,
        hp: Hyperparameters,
        device: torch.device,
        precision: str,
        on_step: Callable[[Batch], None] | None = None,
    ):
        self.model, self.optimizers, self.train, self.hp = model, optimizers, train, hp
        self.device, self.precision, self.on_step = device, precision, on_step
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 gradients underflow unscaled
        self.steps = 0  # optimizer steps taken in this run (all epochs)
        self.objective = EmbeddingObjective(hp, train) if hp.embedding_objective else None

    def step(self, batch: Batch, meter: Meter, weight: float = 1.0) -> str | None:
        """Train on one batch; returns ``"loss"`` (it was not finite) or ``"signal"`` (a stop signal
        arrived) when training must stop after it (see the module docstring), else None. ``weight``
        scales this rank's mean loss under DDP (its share of the global batch,
        :func:`object2vec.training.distributed.step_weights`); the metrics read the unscaled loss."""
        inputs = batch_inputs(self.train, batch, self.device, once=self.hp.negative_sampling_grouped)
        labels = label_tensor(batch.labels, self.hp, self.device)
        self.optimizers.zero_grad()
        out = None
        if self.objective is not None:  # an extension: SageMaker's objective takes the path below, unchanged
            loss = trained = self._objective_loss(cast(tuple[torch.Tensor, ...], inputs), labels, batch, meter, weight)
        else:
            with autocast(self.precision, self.device):
                out = self.model(*inputs)
            loss = compute_loss(out.float(), labels, self.hp)
            trained = loss if weight == 1.0 else loss * weight
        if self.scaler is None:
            trained.backward()
            self.optimizers.step()
        else:
            self.scaler.scale(trained).backward()
            self.optimizers.step_scaled(self.scaler)
        self.last_loss = float(loss.detach())  # the metrics' own synchronisation
        if out is not None:
            meter.add(out.detach(), labels, self.last_loss)
        self.steps += 1
        if self.on_step is not None:
            self.on_step(batch)
        flags = [not math.isfinite(self.last_loss), interrupts.pending() is not None]
        if distributed.context().is_distributed:
            flags = distributed.any_rank(flags, self.device)
        return "loss" if flags[0] else "signal" if flags[1] else None

    def _objective_loss(
        self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor, batch: Batch, meter: Meter, weight: float
    ) -> torch.Tensor:
        """The loss of a cosine or contrastive objective, plus the output layer's for ``sagemaker+...``.

        ``weight`` scales the rank's mean losses (the output layer's, the cosine's); the contrastive
        loss gathers every rank's candidates and is already scaled to the global batch."""
        assert self.objective is not None
        with autocast(self.precision, self.device):
            out, u, v = self.model(*inputs, encodings=True)
        loss, parts = self.objective(u, v, labels, self.train, batch)
        meter.add_parts(parts)
        if self.objective.kind == "cosine" and weight != 1.0:
            loss = loss * weight
        if self.hp.has_head:
            head = compute_loss(out.float(), labels, self.hp)
            meter.add(out.detach(), labels, head.detach())
            loss = (head if weight == 1.0 else head * weight) + self.hp.objective_weight * loss
        return loss

    def run(
        self,
        epoch: int,
        batches: list[Batch],
        first: int,
        epoch_length: int,
        checkpoint: Callable[[int], None] | None = None,
        every: int = 0,
        weights: list[float] | None = None,
    ) -> dict[str, Any]:
        """Train on ``batches``, numbered from ``first`` (1-based: a resumed epoch starts later) in an
        epoch of ``epoch_length`` batches; call ``checkpoint(i)`` after batch ``i`` every ``every``
        steps, except after the epoch's last batch (the epoch's own checkpoint follows). ``weights``
        scale each batch's loss (DDP: see :meth:`step`). Returns the epoch's meter, pair count and
        seconds (not yet combined across ranks)."""
        meter = Meter(self.hp)
        pairs = sum(len(b.labels) for b in batches)
        bar = console.progress(pairs, desc=f"epoch {epoch}", unit=" pairs", unit_scale=True)
        start = time.perf_counter()
        with interrupts.deferred():
            for i, batch in enumerate(batches, start=first):
                stopped = self.step(batch, meter, 1.0 if weights is None else weights[i - first])
                if stopped == "loss":
                    bar.close()
                    shown = f" ({self.last_loss})" if not math.isfinite(self.last_loss) else " (on another rank)"
                    raise NonFiniteLoss(
                        f"training stopped: the loss is not a finite number{shown} at epoch {epoch}, batch {i} of "
                        f"{epoch_length}; lower learning_rate, check the labels' scale, or train in fp32"
                    )
                if stopped == "signal":
                    bar.close()
                    signum = interrupts.pending() or signal.SIGTERM
                    if checkpoint is not None and i < epoch_length:
                        checkpoint(i)
                    interrupts.clear()
                    raise interrupts.Interrupted(signum, f"after epoch {epoch}, batch {i} of {epoch_length}")
                bar.update(len(batch.labels))
                if checkpoint is not None and every and self.steps % every == 0 and i < epoch_length:
                    checkpoint(i)
        bar.close()
        return {"meter": meter, "pairs": pairs, "seconds": time.perf_counter() - start}
