"""The ``object2vec`` command. Each verb is one method of the Python API.

One module per group of verbs, each registering on :data:`object2vec.cli.base.main`:
:mod:`.train` (train, hyperparameters), :mod:`.evaluate`, :mod:`.prepare`, :mod:`.serve` (predict,
embed, serve), :mod:`.retrieval` (index, recommend, cluster, plot), :mod:`.tune`. User errors print one clear
message (no traceback) and exit with status 2.
"""

from __future__ import annotations

from . import evaluate, export, prepare, retrieval, serve, train, tune  # noqa: F401  (each registers its commands)
from .base import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
