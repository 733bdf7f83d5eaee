"""Recommendations: rank ``in1`` items for an ``in0`` (a user, a query) and measure how well that ranks.

Two ways to score a candidate ``v`` for a query ``u``:

* ``by="score"`` (default): the model's own judgement of the pair, batched over every candidate (each
  side encoded once, then the comparator, MLP and output layer run on all pairs). For
  classification the score is the **log-odds of the positive class** (``positive_class``, default
  the last class: 1 for binary labels) computed from the logits, ``z_pos - logsumexp(z_other)``;
  ``sigmoid(score)`` is the probability ``predict`` returns. Ranking by probabilities would make
  every confident item tie at 1.0 in float32. For regression the score is the predicted value.
  A model trained with ``objective=cosine`` or ``contrastive`` (extensions) has no output layer: its
  pair score is the cosine, the same ranking as ``by="embedding"``, which a neighbour index over the
  item vectors (``object2vec index build``, cosine by default) serves without scoring every item.
* ``by="embedding"``: the cosine similarity of the two encoders' vectors. It only means something
  when both encoders embed into one space (same kind of object on both sides, tied tokens, or a
  model trained for it: the cosine and contrastive objectives); ``score`` is the safer default.

Candidates default to the vocabulary of ``in1``: every token id ``0..enc1_vocab_size-1`` as a
one-token item whose id is the token. Items of several tokens (or text) come as an item file
(JSON Lines with ``id`` and ``in1``, see :mod:`object2vec.retrieval.items`), a list of records, or a mapping
``id -> in1``.

Ranking metrics treat each held-out ``(in0, positive in1)`` pair as one case, ranked against that
``in0``'s candidates that are not among its positives (other positives are filtered out, as in
knowledge-graph evaluation, so a user with five held-out items is not penalised for ranking them above
each other). Ties are handled explicitly, unlike StarSpace, whose evaluation ranks a positive
ahead of every candidate with an equal score, so a model that gives every item the same score looks
perfect:

* ``ties="pessimistic"`` (default): the positive ranks behind every candidate with an equal score.
  A constant model gets the worst rank; a metric never rewards failing to tell items apart.
* ``ties="expected"``: each metric's expected value over a uniformly random order among the tied
  candidates. A constant model scores exactly what a random ranking scores on average.

``hits@k`` is the share of cases with rank ≤ k, ``ndcg@k`` is ``1 / log2(1 + rank)`` when rank ≤ k
(one relevant item per case, so the ideal DCG is 1), and ``mrr`` the mean of ``1 / rank`` (not
truncated at k).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson
import torch

from ..data.pairs import Schema, list_files, open_lines
from ..errors import DataError
from ..nn.model import compare
from ..text.tokenize import read_text_pairs
from .items import Items, as_items, embed_one

BYS = ("score", "embedding")
TIES = ("pessimistic", "expected")
PAIRS_PER_BATCH = 1 << 18  # comparator+MLP rows evaluated at once: (2**18, mlp_dim) floats stay small


def query_vector(model: Any, in0: Any) -> np.ndarray:
    """The enc0 vector ``(enc_dim,)`` of one ``in0``: a token id, a list of token ids, or text."""
    return embed_one(model, "in0", in0, "in0 query")


@torch.inference_mode()
def pair_scores(model: Any, u: np.ndarray, v: np.ndarray, positive_class: int | None = None) -> np.ndarray:
    """Scores ``(q, n)`` of every pair of query vectors ``u`` ``(q, d)`` and item vectors ``v`` ``(n, d)``.

    The comparator, MLP and output layer of the model, as in ``predict`` (see the module docstring
    for what the score is); the cosine for a model trained without them.
    """
    net = model._fitted()
    hp = net.hp
    if not hp.has_head:
        return cosine_scores(u, v)
    pos = _positive_class(hp, positive_class)
    device = next(net.parameters()).device
    vt = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(device)
    out = np.empty((len(u), len(v)), dtype=np.float32)
    step = max(1, PAIRS_PER_BATCH // max(1, len(v)))
    for start in range(0, len(u), step):
        ut = torch.from_numpy(np.ascontiguousarray(u[start : start + step], dtype=np.float32)).to(device)
        q = len(ut)
        left = ut[:, None, :].expand(q, len(v), -1).reshape(-1, hp.enc_dim)  # (q*n, d)
        right = vt[None].expand(q, -1, -1).reshape(-1, hp.enc_dim)  # (q*n, d)
        y = net.output(net.mlp(compare(left, right, hp.comparator_list)))  # (q*n, output_dim)
        if hp.is_regression:
            s = y[:, 0]
        else:
            others = torch.cat([y[:, :pos], y[:, pos + 1 :]], dim=1)
            s = y[:, pos] - torch.logsumexp(others, dim=1)  # log-odds of the positive class
        out[start : start + q] = s.reshape(q, len(v)).float().cpu().numpy()
    return out


def cosine_scores(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cosine similarities ``(q, n)`` of ``u`` ``(q, d)`` and ``v`` ``(n, d)``."""
    un = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return (un @ vn.T).astype(np.float32)


def score_items(model: Any, u: np.ndarray, items: Items, by: str = "score", positive_class: int | None = None) -> np.ndarray:
    """Scores ``(q, len(items))`` of query vectors ``u`` against every item."""
    if by not in BYS:
        raise DataError([f"by: {by!r} is not a ranking; expected one of {', '.join(BYS)}"])
    v = items.vectors(model)
    return pair_scores(model, u, v, positive_class) if by == "score" else cosine_scores(u, v)


def recommend(
    model: Any,
    in0: Any,
    k: int = 10,
    candidates: Any = None,
    exclude: Iterable[Any] | None = None,
    by: str = "score",
    positive_class: int | None = None,
) -> list[tuple[Any, float]]:
    """The ``k`` best ``in1`` items for ``in0``: ``[(item_id, score), ...]``, best first.

    Args:
        model: a trained :class:`~object2vec.Object2Vec`.
        in0: a token id (``5``), a list of token ids, or text for a model with a vocabulary.
        candidates: see the module docstring; ``None`` ranks the whole ``in1`` vocabulary.
            Pass an :class:`~object2vec.retrieval.items.Items` to reuse its vectors across calls.
        exclude: ids to leave out (items already seen); ids that are not candidates are ignored.
        by: ``score`` (the model's pair score) or ``embedding`` (cosine similarity).

    Equal scores keep the candidates' order. ``k`` above the number of candidates left is clipped
    with a warning.

    Raises:
        DataError: an invalid ``in0``, empty or invalid candidates, an unknown ``by``.
    """
    items = as_items(candidates, model, "in1")
    scores = score_items(model, query_vector(model, in0)[None], items, by, positive_class)[0]
    keep = np.ones(len(items), dtype=bool)
    for item_id in exclude or ():
        try:
            keep[items.position(item_id)] = False
        except LookupError:
            continue
    rows = np.flatnonzero(keep)
    if k > len(rows):
        warnings.warn(f"k={k} is more than the {len(rows)} candidates left; returning all {len(rows)}", stacklevel=2)
    order = rows[np.argsort(-scores[rows], kind="stable")][:k]
    return [(items.ids[r], float(scores[r])) for r in order]


# --------------------------------------------------------------------------------------------------
# Ranking metrics


def ranking_metrics(
    scores_per_query: Sequence[np.ndarray],
    positives_per_query: Sequence[Sequence[int] | np.ndarray],
    k: int = 10,
    ties: str = "pessimistic",
) -> dict[str, float]:
    """hits@k, NDCG@k and MRR of held-out positives, with explicit tie handling.

    Args:
        scores_per_query: for each query, the scores of its candidates (higher is better).
        positives_per_query: for each query, the positions of its positives among those candidates.
        ties: ``pessimistic`` or ``expected`` (see the module docstring).

    Returns:
        ``{"hits@K": ..., "ndcg@K": ..., "mrr": ..., "queries": ..., "positives": ...}``, means over
        every (query, positive) case; queries without positives are skipped.

    A model that scores every item alike must not look good:

    >>> ranking_metrics([np.zeros(100)], [[3]], k=10)
    {'hits@10': 0.0, 'ndcg@10': 0.0, 'mrr': 0.01, 'queries': 1, 'positives': 1}
    >>> ranking_metrics([np.zeros(100)], [[3]], k=10, ties="expected")["hits@10"]
    0.1
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}; got {ties!r}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")
    if len(scores_per_query) != len(positives_per_query):
        raise ValueError(f"{len(scores_per_query)} score lists for {len(positives_per_query)} positive lists; expected one each")
    longest = max((len(s) for s in scores_per_query), default=0)
    ranks = np.arange(1, longest + 2)  # every rank a case can have, 1..n
    # prefix sums over ranks 0..n: expected metrics average a metric over a run of tied ranks
    cum = {
        "hits": np.concatenate([[0.0], np.cumsum(ranks <= k)]),
        "ndcg": np.concatenate([[0.0], np.cumsum(np.where(ranks <= k, 1 / np.log2(ranks + 1), 0))]),
        "mrr": np.concatenate([[0.0], np.cumsum(1 / ranks)]),
    }
    totals = dict.fromkeys(cum, 0.0)
    cases = queries = 0
    for q, (scores, positives) in enumerate(zip(scores_per_query, positives_per_query, strict=True)):
        s = np.asarray(scores, dtype=np.float64)
        if np.isnan(s).any():
            raise ValueError(f"scores of query {q} include NaN; expected numbers (leave excluded candidates out instead)")
        pos = np.unique(np.asarray(positives, dtype=np.int64))
        if len(pos) == 0:
            continue
        if pos.min() < 0 or pos.max() >= len(s):
            raise ValueError(f"positives of query {q}: position {int(pos.max())} is outside its {len(s)} candidates")
        negatives = np.sort(np.delete(s, pos))
        above_or_tied = len(negatives) - np.searchsorted(negatives, s[pos], side="left")
        above = len(negatives) - np.searchsorted(negatives, s[pos], side="right")
        tied = above_or_tied - above
        for name, c in cum.items():
            if ties == "pessimistic":
                rank = above + tied + 1
                totals[name] += float((c[rank] - c[rank - 1]).sum())
            else:  # mean of the metric over ranks above+1 .. above+tied+1
                totals[name] += float(((c[above + tied + 1] - c[above]) / (tied + 1)).sum())
        cases += len(pos)
        queries += 1
    mean = {name: round(total / cases, 6) if cases else float("nan") for name, total in totals.items()}
    return {f"hits@{k}": mean["hits"], f"ndcg@{k}": mean["ndcg"], "mrr": mean["mrr"], "queries": queries, "positives": cases}


def evaluate_ranking(
    model: Any,
    data: Any,
    k: int = 10,
    candidates: Any = None,
    exclude: Any = None,
    by: str = "score",
    ties: str = "pessimistic",
    positive_class: int | None = None,
    min_label: float | None = None,
) -> dict[str, float]:
    """Rank every candidate for each ``in0`` of held-out pairs ``data`` and score its positives.

    Args:
        data: held-out pairs (JSON Lines path or records). Positives are pairs whose label is
            ``positive_class`` (classification; default the last class), whose label is at least
            ``min_label`` (regression; every pair when ``None``), or every pair when unlabelled.
        candidates: the catalogue (see :func:`recommend`); positives outside it are skipped and
            counted in ``skipped`` (with a warning).
        exclude: pairs already seen (e.g. the training file): each ``in0``'s seen items are removed
            from its candidates, unless they are held-out positives.

    Returns:
        :func:`ranking_metrics`' dict plus ``candidates`` and ``skipped``.
    """
    net = model._fitted()
    items = as_items(candidates, model, "in1")
    in0s, in1s, labels = _pairs(model, data)
    if labels is None:
        positive = np.ones(len(in0s), dtype=bool)
    elif net.hp.is_regression:
        positive = np.ones(len(in0s), dtype=bool) if min_label is None else labels >= min_label
    else:
        positive = labels == _positive_class(net.hp, positive_class)
    row_of = {tuple(seq): r for r, seq in enumerate(items.sequences)}
    wanted: dict[tuple[int, ...], list[int]] = defaultdict(list)
    skipped = 0
    for a, b, p in zip(in0s, in1s, positive, strict=True):
        if not p:
            continue
        row = row_of.get(b)
        if row is None:
            skipped += 1
        else:
            wanted[a].append(row)
    if skipped:
        warnings.warn(f"{skipped} held-out positives are not among the {len(items)} candidates; they are skipped", stacklevel=2)
    seen: dict[tuple[int, ...], set[int]] = defaultdict(set)
    if exclude is not None:
        seen_in0, seen_in1, _ = _pairs(model, exclude)
        for a, b in zip(seen_in0, seen_in1, strict=True):
            if a in wanted and b in row_of:
                seen[a].add(row_of[b])
    queries = list(wanted)
    u = model.embed(in0=[list(q) for q in queries]) if queries else np.zeros((0, net.hp.enc_dim), np.float32)
    scores_per_query, positives_per_query = [], []
    chunk = max(1, PAIRS_PER_BATCH // max(1, len(items)))
    for start in range(0, len(queries), chunk):
        block = score_items(model, u[start : start + chunk], items, by, positive_class)
        for q, scores in zip(queries[start : start + chunk], block, strict=True):
            positives = sorted(set(wanted[q]))
            keep = np.ones(len(items), dtype=bool)
            keep[list(seen[q] - set(positives))] = False
            position = np.cumsum(keep) - 1  # row -> position among the kept candidates
            scores_per_query.append(scores[keep])
            positives_per_query.append(position[positives])
    result = ranking_metrics(scores_per_query, positives_per_query, k, ties)
    return {**result, "candidates": len(items), "skipped": skipped}


def seen_items(model: Any, pairs: Any, in0: Any, candidates: Items) -> list[Any]:
    """Ids of ``candidates`` paired with ``in0`` anywhere in ``pairs`` (e.g. the training file), any label."""
    seq = [int(in0)] if isinstance(in0, (int, np.integer)) else in0
    key = tuple(_encoded_in0(model, seq))
    row_of = {tuple(s): r for r, s in enumerate(candidates.sequences)}
    in0s, in1s, _ = _pairs(model, pairs)
    return [candidates.ids[row_of[b]] for a, b in zip(in0s, in1s, strict=True) if a == key and b in row_of]


# --------------------------------------------------------------------------------------------------


def _positive_class(hp: Any, positive_class: int | None) -> int:
    if hp.is_regression:
        return 0
    pos = hp.num_classes - 1 if positive_class is None else positive_class
    if not 0 <= pos < hp.num_classes:
        raise DataError([f"positive_class: {pos} is not a class; expected an integer in [0, {hp.num_classes})"])
    return pos


def _encoded_in0(model: Any, seq: Any) -> list[int]:
    data = read_text_pairs(
        [{"in0": seq}], Schema.from_hyperparameters(model._fitted().hp), model._text, require_label=False, sides=("in0",)
    )
    return data.in0[0].tolist()


def _pairs(model: Any, source: Any) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], np.ndarray | None]:
    """``(in0 tuples, in1 tuples, labels or None)`` of pairs, validated like evaluation data."""
    schema = Schema.from_hyperparameters(model._fitted().hp)
    data = read_text_pairs(source, schema, model._text, require_label=_has_labels(source))
    in0 = [tuple(data.in0[i].tolist()) for i in range(len(data))]
    in1 = [tuple(data.in1[i].tolist()) for i in range(len(data))]
    return in0, in1, data.labels


def _has_labels(source: Any) -> bool:
    """Whether the first record carries a label (then every record must, as in evaluation)."""
    if isinstance(source, (list, tuple)):
        return bool(source) and isinstance(source[0], dict) and "label" in source[0]
    for file in list_files(source):
        with open_lines(file) as fh:
            for raw in fh:
                if raw.strip():
                    try:
                        first = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        return True  # let the reader report the line
                    return isinstance(first, dict) and "label" in first
    return True
