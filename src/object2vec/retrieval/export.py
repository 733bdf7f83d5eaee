"""Embeddings out of object2vec: NumPy arrays with their ids, and TensorBoard projector files.

``save_embeddings_npy("items.npy", vectors, ids)`` writes ``items.npy`` and ``items.ids.json`` (a JSON
list, so string and integer ids come back as they went in). ``save_projector_tsv(folder, ...)``
writes what the TensorBoard Embedding Projector loads (https://projector.tensorflow.org: "Load",
then the two files; or ``tensorboard --logdir folder``, which reads ``projector_config.pbtxt``):

    folder/
      vectors.tsv              one vector per line, tab-separated
      metadata.tsv             one row per vector; a header row only when there are several columns
                               (the projector's rule: a single column has no header)
      projector_config.pbtxt   points TensorBoard at the two files

Every file is written atomically (temporary name, then ``os.replace``).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_bytes


def ids_path(path: str | os.PathLike) -> Path:
    """``items.npy`` -> ``items.ids.json``."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".npy") + ".ids.json")


def save_embeddings_npy(path: str | os.PathLike, vectors: np.ndarray, ids: Sequence[Any]) -> tuple[Path, Path]:
    """Write ``vectors`` ``(n, dim)`` as float32 ``.npy`` and their ids beside it; returns both paths.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = save_embeddings_npy(folder / "items.npy", np.eye(2), ["a", 7])
    >>> vectors, ids = load_embeddings_npy(folder / "items.npy")
    >>> vectors.shape, ids
    ((2, 2), ['a', 7])
    """
    x = np.asarray(vectors, dtype=np.float32)
    plain = [int(i) if isinstance(i, np.integer) else i for i in ids]
    if x.ndim != 2 or len(plain) != len(x):
        raise ValueError(f"expected a 2-D array with one id per row; got shape {x.shape} and {len(plain)} ids")
    path = Path(path)
    buffer = io.BytesIO()
    np.save(buffer, x)
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_bytes(ids_path(path), json.dumps(plain).encode())
    return path, ids_path(path)


def load_embeddings_npy(path: str | os.PathLike) -> tuple[np.ndarray, list[Any]]:
    """Read what :func:`save_embeddings_npy` wrote: ``(vectors, ids)``."""
    return np.load(path), json.loads(ids_path(path).read_text())


def save_projector_tsv(
    folder: str | os.PathLike, vectors: np.ndarray, metadata: Mapping[str, Sequence[Any]] | Sequence[Any] | None = None
) -> Path:
    """Write TensorBoard projector files for ``vectors``; returns the folder.

    Args:
        metadata: one label per vector (a list), or named columns (``{"id": [...], "genre": [...]}``).
            Tabs and newlines inside values become spaces, so every row stays one line.
    """
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors: shape {x.shape}; expected a 2-D array (rows, dim)")
    folder = Path(folder)
    lines = ["\t".join(f"{v:.6g}" for v in row) for row in x]
    atomic_write_bytes(folder / "vectors.tsv", ("\n".join(lines) + "\n").encode())
    config = 'embeddings {\n  tensor_path: "vectors.tsv"\n'
    if metadata is not None:
        columns = dict(metadata) if isinstance(metadata, Mapping) else {"label": list(metadata)}
        for name, values in columns.items():
            if len(values) != len(x):
                raise ValueError(f"metadata column {name!r}: {len(values)} values for {len(x)} vectors; expected one per vector")
        rows = [[_cell(v) for v in values] for values in zip(*columns.values(), strict=True)]
        header = [] if len(columns) == 1 else ["\t".join(_cell(c) for c in columns)]
        text = "\n".join(header + ["\t".join(r) for r in rows]) + "\n"
        atomic_write_bytes(folder / "metadata.tsv", text.encode())
        config += '  metadata_path: "metadata.tsv"\n'
    atomic_write_bytes(folder / "projector_config.pbtxt", (config + "}\n").encode())
    return folder


def _cell(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""
