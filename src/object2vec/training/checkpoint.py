"""Checkpoints: everything needed to continue a run exactly where it stopped (``--resume``).

``latest.pt`` holds the weights, the optimizers' state, the early-stopping state, the best epoch's
weights, the history and the position (epoch, batch); it is written atomically by rank 0 after
every epoch and every ``checkpoint_every`` steps, and read with ``weights_only=True`` (no pickled
code runs). A checkpoint of other hyperparameters or another seed is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from .. import reporting
from ..errors import CheckpointError
from ..files import atomic_path
from ..nn.model import Object2VecNet
from . import distributed

CHECKPOINT = "latest.pt"

logger = logging.getLogger(__name__)


class Checkpointer:
    """Writes and reads ``folder/latest.pt``; with no folder it does nothing."""

    def __init__(self, folder: str | os.PathLike | None, net: Object2VecNet, seed: int):
        self.folder = Path(folder) if folder is not None else None
        self.net = net
        self.seed = seed

    @property
    def path(self) -> Path | None:
        return self.folder / CHECKPOINT if self.folder is not None else None

    def save(self, **state: Any) -> None:
        """Write the network, its seed and ``state`` (rank 0 only)."""
        if self.path is None or not distributed.context().is_main:
            return
        full = {"hyperparameters": self.net.hp.to_dict(), "seed": self.seed, "model": self.net.state_dict(), **state}
        with atomic_path(self.path, unnamed=True) as tmp:  # a kill mid-write leaves no file
            torch.save(full, tmp)

    def load(self, device: torch.device) -> dict[str, Any] | None:
        """The saved state, or None when there is no checkpoint yet."""
        if self.path is None:
            return None
        if not self.path.is_file():
            if reporting.is_main_process():
                logger.info(f"No checkpoint in {self.folder}; starting from the beginning.")
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=True)
        except Exception as e:  # a damaged file: say which and why
            raise CheckpointError(f"{self.path}: cannot be read ({e}); delete it to start over") from None
        if state.get("hyperparameters") != self.net.hp.to_dict() or state.get("seed") != self.seed:
            raise CheckpointError(
                f"{self.path}: was written by a run with other hyperparameters or seed; resume with the same ones or delete it"
            )
        return state
