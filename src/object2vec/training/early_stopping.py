"""Early stopping on the validation loss, and the best epoch's weights to restore at the end.

SageMaker documents the rule: ``early_stopping_tolerance`` is the loss reduction needed *between
consecutive epochs* to count as an improvement, and ``early_stopping_patience`` is the number of
consecutive epochs without such an improvement after which training stops. So a loss that falls
steadily but by less than the tolerance each epoch stops training, even though every epoch is the
best so far. Whatever the stopping rule, the weights of the epoch with the lowest validation loss
are kept and restored when training ends.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class EarlyStopping:
    """Watches one validation loss per epoch; :attr:`should_stop` turns true when patience runs out.

    A loss falling 0.06 an epoch never falls by the tolerance of 0.1 between two epochs, so with a
    patience of 2 training stops after epoch 3, though each epoch was the best so far:

    >>> stop = EarlyStopping(patience=2, tolerance=0.1)
    >>> [stop.update(epoch, loss) for epoch, loss in enumerate([1.0, 0.94, 0.88], start=1)]
    [True, True, True]
    >>> stop.bad_epochs, stop.should_stop, stop.best_epoch
    (2, True, 3)
    """

    def __init__(self, patience: int, tolerance: float):
        self.patience = patience
        self.tolerance = tolerance
        self.best_loss = float("inf")
        self.best_epoch: int | None = None
        self.previous = float("inf")  # the last epoch's loss: the first epoch always improves on nothing
        self.bad_epochs = 0
        self.should_stop = False

    def update(self, epoch: int, loss: float) -> bool:
        """Record ``epoch``'s validation loss; returns whether it is the best so far (weights to keep)."""
        improved = loss < self.best_loss  # keep the best weights even when the gain is below tolerance
        if improved:
            self.best_loss, self.best_epoch = loss, epoch
        if loss < self.previous - self.tolerance:  # reduced by more than the tolerance since the last epoch
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            self.should_stop = self.bad_epochs >= self.patience
        self.previous = loss
        return improved

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "previous": self.previous,
            "bad_epochs": self.bad_epochs,
            "finished": self.should_stop,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss, self.best_epoch = state["best_loss"], state.get("best_epoch")
        self.previous, self.bad_epochs, self.should_stop = state["previous"], state["bad_epochs"], state["finished"]


class BestWeights:
    """A copy of the weights of the best epoch so far, restored into the network at the end."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None

    def keep(self, net: nn.Module, last: bool = False) -> None:
        """Keep ``net``'s weights as the best; ``last``: no epoch follows, so the network's own weights
        stay the best and no copy is made (a copy of a 500,000 x 100 table and its kin costs 0.1 s)."""
        self.state = None if last else {k: v.detach().clone() for k, v in net.state_dict().items()}

    def restore(self, net: nn.Module) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)
