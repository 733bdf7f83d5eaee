"""Checkpoints: everything needed to continue a run exactly where it stopped (``--resume``).

``latest.pt`` holds the weights, the optimizers' state, the early-stopping state, the best epoch's
weights, the history and the position (epoch, batch), and what the run was: its hyperparameters,
seed and a fingerprint of its data. It is written atomically by rank 0 after every epoch and every
``checkpoint_every`` steps (every rank learns whether the write worked, so a full or read-only disk
stops the whole job with one message), and read with ``weights_only=True`` (no pickled code runs).
A checkpoint of other hyperparameters, another seed or other data is refused: resuming it would
silently train on a different plan.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import reporting
from ..data.pairs import PairData, Side
from ..errors import CheckpointError
from ..files import atomic_path, explain_write_error
from ..nn.model import Object2VecNet
from . import distributed

CHECKPOINT = "latest.pt"

logger = logging.getLogger(__name__)


def fingerprint(data: PairData | None) -> str | None:
    """``"N pairs, blake2b HEX"``: a content hash of the packed arrays (about 1 GB/s), so that
    data edited in place is told apart from the data a checkpoint was trained on."""
    if data is None:
        return None
    digest = hashlib.blake2b(digest_size=12)
    arrays = (*_side_arrays(data.in0), *_side_arrays(data.in1), data.labels)
    for array in arrays:
        if array is not None:
            digest.update(str(array.dtype).encode())
            digest.update(np.ascontiguousarray(array).view(np.uint8).data)
    return f"{len(data)} pairs, blake2b {digest.hexdigest()}"


def _side_arrays(side: Side) -> tuple[np.ndarray | None, ...]:
    """A side's tokens and offsets, and its per-token weights when it has them (weighted-mean pooling)."""
    return (side.tokens, side.offsets, side.weights)


class Checkpointer:
    """Writes and reads ``folder/latest.pt``; with no folder it does nothing.

    ``data`` describes the run's data (:func:`fingerprint` of each split, per rank); a checkpoint
    that recorded other data is refused by :meth:`load`.
    """

    def __init__(self, folder: str | os.PathLike | None, net: Object2VecNet, seed: int, data: dict[str, Any] | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.net = net
        self.seed = seed
        self.data = data

    @property
    def path(self) -> Path | None:
        return self.folder / CHECKPOINT if self.folder is not None else None

    def save(self, **state: Any) -> None:
        """Write the network, the run's identity and ``state`` (rank 0 writes; every rank calls)."""
        if self.path is not None:
            distributed.on_main(lambda: self._write(state))

    def _write(self, state: dict[str, Any]) -> None:
        assert self.path is not None
        full = {
            "hyperparameters": self.net.hp.to_dict(), "seed": self.seed, "data": self.data,
            "model": self.net.state_dict(), **state,
        }  # fmt: skip
        try:
            with atomic_path(self.path, unnamed=True) as tmp, open(tmp, "wb") as fh:  # a kill mid-write leaves no file
                torch.save(full, fh)  # to a file object: a full disk's OSError stays visible (explain_write_error)
        except Exception as e:  # torch reports a full disk as a RuntimeError
            raise CheckpointError(f"cannot write the checkpoint {self.path}: {explain_write_error(self.path, e)}") from None

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
        if not isinstance(state, dict):
            raise CheckpointError(f"{self.path}: is not an object2vec checkpoint; delete it to start over")
        if state.get("hyperparameters") != self.net.hp.to_dict() or state.get("seed") != self.seed:
            raise CheckpointError(
                f"{self.path}: was written by a run with other hyperparameters or seed; resume with the same ones or delete it"
            )
        recorded = state.get("data")
        if recorded is not None and self.data is not None and recorded != self.data:
            split = next((k for k in self.data if recorded.get(k) != self.data[k]), "train")
            raise CheckpointError(
                f"{self.path}: was written for other {split} data ({_describe(recorded.get(split))}; this run reads "
                f"{_describe(self.data[split])}); resume with the data the run started with, or delete the checkpoint to start over"
            )
        return state


def _describe(fingerprints: list[str | None] | None) -> str:
    """One rank's fingerprint as is; several ranks' joined (a different process count shards differently)."""
    if not fingerprints or all(f is None for f in fingerprints):
        return "none"
    if len(fingerprints) == 1:
        return str(fingerprints[0])
    return f"{len(fingerprints)} shards: " + "; ".join(map(str, fingerprints))
