"""MovieLens task (d) served by a neighbour index: the contrastive two-tower model's movie vectors in a
faiss index, each user's list read from it by cosine, and the time that takes against scoring every
(user, movie) pair with a model's comparator and MLP.

A two-tower model (``objective=contrastive``, an extension: ``docs/objectives.md``) has no MLP; its
pair score is the cosine of the user's enc0 vector and the movie's enc1 vector, so the best movies
for a user are that vector's nearest neighbours, which an index finds without scoring the catalogue
pair by pair.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from movielens_models import Trained, movie_vectors


def user_vectors(t: Trained, users: np.ndarray) -> np.ndarray:
    """enc0 vectors of ``users`` (their full token sequences)."""
    return t.estimator.embed(in0=[t.tokens.user[u] for u in users.tolist()])


def movie_index(t: Trained, movies: np.ndarray) -> Any:
    """An exact cosine index (``object2vec.retrieval.neighbors.NeighborIndex``) of the movies' enc1 vectors."""
    from object2vec.retrieval.neighbors import NeighborIndex

    return NeighborIndex.build(movie_vectors(t, movies), movies.tolist(), metric="cosine", kind="exact")


def index_score_matrix(t: Trained, index: Any, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Cosine scores ``(users, movies)`` as the index returns them: every movie for every user, nearest
    first, put back in ``movies`` order so the ranking metrics can leave out each user's rated movies."""
    ids, scores = index.search(user_vectors(t, users), k=len(movies))
    column = {m: i for i, m in enumerate(movies.tolist())}
    out = np.full((len(users), len(movies)), -np.inf, dtype=np.float32)
    for row, (found, s) in enumerate(zip(ids, scores, strict=True)):
        out[row, [column[m] for m in found]] = s[: len(found)]
    return out


def retrieval_speed(
    two_tower: Trained, index: Any, scorer: Trained, users: np.ndarray, movies: np.ndarray, k: int, repeats: int = 3
) -> dict[str, Any]:
    """Seconds for the top ``k`` of the whole catalogue for every user (best of ``repeats``): through the
    index, and by the comparator and MLP of ``scorer`` on every (user, movie) pair
    (``object2vec.retrieval.recommend.pair_scores``). Both embed the users; the movie vectors are
    computed once beforehand for both (the index holds them)."""
    from object2vec.retrieval.recommend import pair_scores

    candidates = movie_vectors(scorer, movies)

    def by_index() -> None:
        index.search(user_vectors(two_tower, users), k=k)

    def by_mlp() -> None:
        scores = pair_scores(scorer.estimator, user_vectors(scorer, users), candidates)
        np.argpartition(-scores, k, axis=1)[:, :k]

    seconds = {}
    for name, run in (("index", by_index), ("mlp", by_mlp)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        seconds[name] = min(times)
    return {
        "users": len(users),
        "movies": len(movies),
        "k": k,
        "index_seconds": seconds["index"],
        "mlp_seconds": seconds["mlp"],
        "speedup": seconds["mlp"] / max(seconds["index"], 1e-9),
    }
