"""Label-embedding classification: score every label for each document and keep the best (StarSpace's workflow).

A model trained on document-label pairs (``object2vec prepare --task label-pairs``: in0 the
document, in1 its label token, label 1, negatives drawn in training) classifies a document by
scoring it against every candidate label with its own pair score, as ``predict`` scores one pair:
each document is encoded once, each label once, and the comparator, MLP and output layer run on all
their pairs (:func:`object2vec.retrieval.recommend.pair_scores`). A label's score is the probability
of the positive class, or the predicted value of a regression model.

Labels are an item file of ``in1`` items (``{"id": "Sports", "in1": [2]}``, what ``prepare`` writes
as ``labels.jsonl``; :mod:`object2vec.retrieval.items`), a list of records or ids, or ``None`` for
every ``in1`` token id. ``object2vec predict MODEL DOCS --labels labels.jsonl --top-k 3`` writes one
``{"labels": [...], "scores": [...]}`` per document, best first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .items import Items, as_items
from .recommend import pair_scores


def label_catalogue(model: Any, labels: Any = None) -> Items:
    """The candidate labels as ``in1`` items (see the module docstring for what ``labels`` may be)."""
    return as_items(labels, model, "in1")


def top_labels(model: Any, u: np.ndarray, labels: Items, k: int = 1) -> list[tuple[list[Any], list[float]]]:
    """The ``k`` best labels of each document vector ``u`` ``(n, enc_dim)``: ``(ids, scores)`` per
    document, best first; equal scores keep the catalogue's order."""
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    if len(u) == 0:
        return []
    scores = pair_scores(model, u, labels.vectors(model))  # (n, labels): log-odds, or values for regression
    if not model._fitted().hp.is_regression:
        scores = 1.0 / (1.0 + np.exp(-scores.astype(np.float64)))  # the positive class's probability
    k = min(k, len(labels))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (n, k)
    picked = np.take_along_axis(scores, order, axis=1)
    return [([labels.ids[j] for j in row], [float(x) for x in values]) for row, values in zip(order, picked, strict=True)]


def predict_labels(model: Any, documents: Any, labels: Any = None, k: int = 1) -> list[tuple[list[Any], list[float]]]:
    """:func:`top_labels` of documents given as token-id lists or text (``model.embed(in0=...)``), or
    as records ``{"in0": ids, "in0_weights": [...]}`` (a weighted-mean model's id lists need their weights)."""
    documents = list(documents)
    catalogue = label_catalogue(model, labels)
    if documents and all(isinstance(d, dict) for d in documents):
        weights = [d["in0_weights"] for d in documents] if "in0_weights" in documents[0] else None
        u = model.embed(in0=[d["in0"] for d in documents], weights=weights)
    else:
        u = model.embed(in0=documents)
    return top_labels(model, u, catalogue, k)
