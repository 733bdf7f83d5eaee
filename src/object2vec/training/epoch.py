"""One epoch of training steps: forward under autocast, loss, backward, optimizer step, metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import reporting
from ..data.pairs import PairData
from ..data.sampling import Batch
from ..hyperparameters import Hyperparameters
from .batches import batch_inputs, label_tensor
from .metrics import Meter, compute_loss
from .optimizers import Optimizers
from .precision import autocast


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

    def step(self, batch: Batch, meter: Meter, weight: float = 1.0) -> None:
        """One optimizer step on ``batch``; ``weight`` scales this rank's loss under DDP (its share of
        the global batch, :func:`object2vec.training.distributed.step_weights`)."""
        inputs = batch_inputs(self.train, batch, self.device)
        labels = label_tensor(batch.labels, self.hp, self.device)
        self.optimizers.zero_grad()
        with autocast(self.precision, self.device):
            out = self.model(*inputs)
        loss = compute_loss(out.float(), labels, self.hp)
        scaled = loss if weight == 1.0 else loss * weight
        if self.scaler is None:
            scaled.backward()
            self.optimizers.step()
        else:
            self.scaler.scale(scaled).backward()
            self.optimizers.step_scaled(self.scaler)
        meter.add(out.detach(), labels, loss.detach())
        self.steps += 1
        if self.on_step is not None:
            self.on_step(batch)

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
        bar = tqdm(
            total=pairs,
            unit="pair",
            unit_scale=True,
            desc=f"epoch {epoch}",
            disable=not reporting.show_progress_bar(),
            leave=False,
        )
        start = time.perf_counter()
        for i, batch in enumerate(batches, start=first):
            self.step(batch, meter, 1.0 if weights is None else weights[i - first])
            bar.update(len(batch.labels))
            if checkpoint is not None and every and self.steps % every == 0 and i < epoch_length:
                checkpoint(i)
        bar.close()
        return {"meter": meter, "pairs": pairs, "seconds": time.perf_counter() - start}
