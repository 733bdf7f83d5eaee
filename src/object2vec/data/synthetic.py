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


def make_documents(
    n: int,
    *,
    vocab_size: int = 30_000,
    classes: int = 20,
    lengths: tuple[int, int] = (100, 1000),
    topic_words: int = 500,
    topic_share: tuple[float, float] = (0.1, 0.4),
    shared_topics: float = 0.5,
    label_noise: float = 0.05,
    seed: int = 0,
    structure_seed: int = 1234,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` labelled documents of token ids that look like news text to a bag-of-words classifier.

    Every token is drawn either from a background Zipf distribution over the whole vocabulary
    (function words and everything else) or, with a per-document probability drawn from
    ``topic_share``, from the document's class topic: ``topic_words`` ids with Zipf weights. Classes
    come in pairs whose topics share a ``shared_topics`` fraction of their words (the hard
    confusions: sports/football), and a ``label_noise`` fraction of documents is written about a
    random other class. Lengths are log-uniform in ``lengths``. The same ``structure_seed`` gives
    the same task; ``seed`` draws the documents.

    Returns the documents (int64 arrays) and their classes.

    >>> docs, labels = make_documents(3, vocab_size=1000, classes=4, lengths=(5, 9), topic_words=50, seed=1)
    >>> len(docs), all(5 <= len(d) <= 9 for d in docs), labels.tolist()
    (3, True, [1, 2, 3])
    """
    structure = np.random.default_rng(structure_seed)
    background = 1.0 / np.arange(1, vocab_size + 1) ** 1.05
    background_cdf = np.cumsum(background / background.sum())
    low = min(200, vocab_size // 4)  # topics avoid the most frequent (function) words
    topics = np.stack([structure.choice(np.arange(low, vocab_size), size=topic_words, replace=False) for _ in range(classes)])
    shared = int(topic_words * shared_topics)
    for c in range(0, classes - 1, 2):
        topics[c + 1, :shared] = topics[c, :shared]
    topic_weights = 1.0 / np.arange(1, topic_words + 1) ** 0.8
    topic_cdf = np.cumsum(topic_weights / topic_weights.sum())
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    written = np.where(rng.random(n) < label_noise, rng.integers(0, classes, n), labels)
    sizes = np.exp(rng.uniform(np.log(lengths[0]), np.log(lengths[1] + 1), n)).astype(np.int64).clip(*lengths)
    share = np.repeat(rng.uniform(*topic_share, n), sizes)
    owner = np.repeat(written, sizes)
    total = int(sizes.sum())
    topical = rng.random(total) < share
    picks = np.minimum(np.searchsorted(topic_cdf, rng.random(total)), topic_words - 1)
    words = np.minimum(np.searchsorted(background_cdf, rng.random(total)), vocab_size - 1)
    tokens = np.where(topical, topics[owner, picks], words).astype(np.int64)
    return np.split(tokens, np.cumsum(sizes)[:-1]), labels
