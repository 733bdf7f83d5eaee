"""Synthetic pairs with planted structure, for the demo, tests and benchmarks.

Each side's vocabulary is split into ``groups + 1`` equal bands of token ids (think: users and items
from latent groups, or sentences about a topic). A sequence of group ``g`` draws its tokens from band
``g``, except that each token is replaced with probability ``noise`` by a token of the last band, which
every group shares (like function words). The label depends only on the two groups:

* classification: 1 if the in1 group is the one matched to the in0 group (a fixed random permutation),
  else 0; half of the pairs are drawn as matches;
* regression: a fixed random group-by-group affinity (unit variance) plus ``label_noise``.

A model that recovers the groups scores near-perfectly; a model that ignores the inputs scores
chance (classification) or the label variance (regression).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..files import atomic_write_bytes


def make_pairs(
    n: int,
    *,
    vocab_size: tuple[int, int] = (200, 200),
    groups: int = 8,
    max_len: tuple[int, int] = (10, 10),
    task: str = "classification",
    noise: float = 0.1,
    label_noise: float = 0.1,
    seed: int = 0,
    structure_seed: int = 1234,
) -> list[dict[str, Any]]:
    """``n`` records ``{"label", "in0", "in1"}``; the same ``structure_seed`` gives the same task.

    >>> rows = make_pairs(3, vocab_size=(16, 16), groups=2, max_len=(3, 2), seed=1)
    >>> sorted(rows[0]), all(1 <= len(r["in1"]) <= 2 for r in rows)
    (['in0', 'in1', 'label'], True)
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be classification or regression; got {task!r}")
    structure = np.random.default_rng(structure_seed)
    match = structure.permutation(groups)
    affinity = structure.normal(size=(groups, groups))
    rng = np.random.default_rng(seed)
    g0 = rng.integers(0, groups, n)
    if task == "classification":
        positive = rng.random(n) < 0.5
        other = (match[g0] + rng.integers(1, groups, n)) % groups  # any group but the match
        g1 = np.where(positive, match[g0], other)
        labels: list[Any] = positive.astype(int).tolist()
    else:
        g1 = rng.integers(0, groups, n)
        labels = (affinity[g0, g1] + label_noise * rng.normal(size=n)).round(4).tolist()
    in0 = _sequences(rng, g0, vocab_size[0], groups, max_len[0], noise)
    in1 = _sequences(rng, g1, vocab_size[1], groups, max_len[1], noise)
    return [{"label": y, "in0": a, "in1": b} for y, a, b in zip(labels, in0, in1, strict=True)]


def _sequences(
    rng: np.random.Generator, group: np.ndarray, vocab: int, groups: int, max_len: int, noise: float
) -> list[list[int]]:
    band = vocab // (groups + 1)
    if band < 1:
        raise ValueError(f"vocab_size {vocab} is too small for {groups} groups plus a shared band")
    lengths = rng.integers(1, max_len + 1, len(group))
    total = int(lengths.sum())
    owner = np.repeat(group, lengths)
    swap = rng.random(total) < noise
    owner[swap] = groups  # the shared band
    tokens = owner * band + rng.integers(0, band, total)
    bounds = np.cumsum(lengths)[:-1]
    return [t.tolist() for t in np.split(tokens, bounds)]


def write_jsonl(records: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write records as JSON Lines (gzip when the name ends in ``.gz``)."""
    path = Path(path)
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    if path.suffix == ".gz":
        import gzip

        data = gzip.compress(data)
    atomic_write_bytes(path, data)
    return path
