"""Early stopping on the validation loss, and the best epoch's weights to restore at the end.

SageMaker documents two hyperparameters: training stops after ``early_stopping_patience`` epochs in
a row in which the validation loss did not improve on the reference by ``early_stopping_tolerance``.
Whatever the stopping rule, the weights of the epoch with the lowest validation loss are kept and
restored when training ends.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class EarlyStopping:
    """Watches one validation loss per epoch; :attr:`should_stop` turns true when patience runs out.

    >>> stop = EarlyStopping(patience=2, tolerance=0.1)
    >>> [stop.update(epoch, loss) for epoch, loss in enumerate([1.0, 0.95, 0.93], start=1)]
    [True, True, True]
    >>> stop.should_stop, stop.best_epoch
    (True, 3)
    """

    def __init__(self, patience: int, tolerance: float):
        self.patience = patience
        self.tolerance = tolerance
        self.best_loss = float("inf")
        self.best_epoch: int | None = None
        self.reference = float("inf")
        self.bad_epochs = 0
        self.should_stop = False

    def update(self, epoch: int, loss: float) -> bool:
        """Record ``epoch``'s validation loss; returns whether it is the best so far (weights to keep)."""
        improved = loss < self.best_loss  # keep the best weights even when the gain is below tolerance
        if improved:
            self.best_loss, self.best_epoch = loss, epoch
        if loss < self.reference - self.tolerance:
            self.reference, self.bad_epochs = loss, 0
        else:
            self.bad_epochs += 1
            self.should_stop = self.bad_epochs >= self.patience
        return improved

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "reference": self.reference,
            "bad_epochs": self.bad_epochs,
            "finished": self.should_stop,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss, self.best_epoch = state["best_loss"], state.get("best_epoch")
        self.reference, self.bad_epochs, self.should_stop = state["reference"], state["bad_epochs"], state["finished"]


class BestWeights:
    """A copy of the weights of the best epoch so far, restored into the network at the end."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None

    def keep(self, net: nn.Module) -> None:
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def restore(self, net: nn.Module) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)
