"""Baselines, metrics and tables of examples/movielens.py: what every Object2Vec number stands beside.

The baselines are the classic ones of rating prediction (global mean, per-user mean, mean + user +
movie biases) and their classification counterparts; they are fitted on the same training ratings
as the models and scored on the same test file.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from movielens_data import Ratings


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))


def bias_baseline(train: Ratings, reg_user: float = 15.0, reg_movie: float = 10.0, iterations: int = 10):
    """mean + b_user + b_movie fitted by alternating least squares (scikit-surprise's ``BaselineOnly`` defaults).

    Returns a function ``(users, movies) -> predictions``.
    """
    mu = float(train.rating.mean())
    n_u, n_m = int(train.user.max()) + 1, int(train.movie.max()) + 1
    bu, bm = np.zeros(n_u), np.zeros(n_m)
    for _ in range(iterations):
        r = train.rating - mu - bm[train.movie]
        bu = np.bincount(train.user, r, n_u) / (reg_user + np.bincount(train.user, minlength=n_u))
        r = train.rating - mu - bu[train.user]
        bm = np.bincount(train.movie, r, n_m) / (reg_movie + np.bincount(train.movie, minlength=n_m))

    def predict(users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        u = np.where(users < n_u, users, 0)
        m = np.where(movies < n_m, movies, 0)
        return mu + np.where(users < n_u, bu[u], 0.0) + np.where(movies < n_m, bm[m], 0.0)

    return predict


def baselines(train: Ratings, test: Ratings) -> dict[str, np.ndarray]:
    """Predicted ratings of ``test`` by the global mean, each user's mean, and mean + user + movie biases."""
    mu = float(train.rating.mean())
    n_u = max(int(train.user.max()), int(test.user.max())) + 1
    count = np.bincount(train.user, minlength=n_u)
    user_mean = np.where(count > 0, np.bincount(train.user, train.rating, n_u) / np.maximum(count, 1), mu)
    return {
        "global mean": np.full(len(test), mu),
        "per-user mean": user_mean[test.user],
        "user + movie biases": bias_baseline(train)(test.user, test.movie),
    }


def classification_baselines(train: Ratings, test: Ratings) -> dict[str, np.ndarray]:
    """Predicted "liked" (rating > 3) for ``test``: the majority class, each user's majority, and the
    bias baseline's rating above a threshold chosen for accuracy on the training ratings."""
    liked = train.rating > 3
    n_u = max(int(train.user.max()), int(test.user.max())) + 1
    share = np.bincount(train.user, liked, n_u) / np.maximum(np.bincount(train.user, minlength=n_u), 1)
    biases = bias_baseline(train)
    threshold = best_threshold(biases(train.user, train.movie), liked)
    return {
        "majority class": np.full(len(test), liked.mean() > 0.5),
        "per-user majority": share[test.user] > 0.5,
        f"user + movie biases > {threshold:.2f}": biases(test.user, test.movie) > threshold,
    }


def best_threshold(scores: np.ndarray, liked: np.ndarray) -> float:
    """The cut ``scores > t`` with the highest accuracy on (scores, liked)."""
    candidates = np.quantile(scores, np.linspace(0.01, 0.99, 197))
    return float(max(candidates, key=lambda t: np.mean((scores > t) == liked)))


def rating_statistics(train: Ratings, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Per pair, from ``train``: the user's mean rating, share of ratings > 3 and log(1 + count); the
    movie's mean and share shrunk towards 3.5 and 0.55 by five pseudo-ratings, and log(1 + count)."""
    size = int(max(train.user.max(), train.movie.max(), users.max(), movies.max())) + 1
    liked = (train.rating > 3).astype(float)

    def per(ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.bincount(ids, weights, minlength=size)

    n_user, n_movie = per(train.user, np.ones(len(train))), per(train.movie, np.ones(len(train)))
    seen = np.maximum(n_user[users], 1)
    return np.column_stack([
        per(train.user, train.rating)[users] / seen,
        per(train.user, liked)[users] / seen,
        np.log1p(n_user[users]),
        (per(train.movie, train.rating)[movies] + 5 * 3.5) / (n_movie[movies] + 5),
        (per(train.movie, liked)[movies] + 5 * 0.55) / (n_movie[movies] + 5),
        np.log1p(n_movie[movies]),
    ])  # fmt: skip


def topn_metrics(rankers: dict[str, np.ndarray], train: Ratings, held: Ratings, users: np.ndarray, k: int) -> dict[str, Any]:
    """hits@k, NDCG@k and MRR of each ranking of movies 1..n for ``users`` (a row per user, or one row for all).

    A user's candidates are the movies they did not rate in ``train``; each of their ``held`` ratings
    >= 4 is a positive, ranked against the candidates that are not positives (pessimistic ties)."""
    from object2vec.retrieval.recommend import ranking_metrics

    n_movies = next(iter(rankers.values())).shape[-1] + 1
    rated = np.zeros((int(users.max()) + 1, n_movies), bool)
    ok = train.user <= users.max()
    rated[train.user[ok], train.movie[ok]] = True
    liked = held.rating >= 4
    positive = np.zeros_like(rated)
    ok = liked & (held.user <= users.max())
    positive[held.user[ok], held.movie[ok]] = True
    out = {}
    for name, scores in rankers.items():
        per_query, pos_per_query = [], []
        for i, u in enumerate(users.tolist()):
            keep = ~rated[u, 1:]
            per_query.append((scores[i] if scores.ndim == 2 else scores)[keep])
            pos_per_query.append(np.flatnonzero(positive[u, 1:][keep]))
        out[name] = ranking_metrics(per_query, pos_per_query, k=k)
    return out


EASE_LAMBDAS = (50.0, 100.0, 200.0, 400.0, 800.0)  # the L2 penalties tried on the validation carve-out


def ease_scores(train: Ratings, n_users: int, n_movies: int, penalty: float) -> np.ndarray:
    """EASE (Steck, WWW 2019), the strong item-item baseline of top-N recommendation: the weights ``B``
    that best rebuild the user x movie "rated it" matrix ``X`` from the user's *other* movies
    (``diag(B) = 0``) under an L2 ``penalty``, in closed form. Scores ``X @ B``, ``(n_users, n_movies - 1)``
    for movies 1..n_movies - 1. One dense inversion of a movies x movies matrix: fine for 1,682
    movies, not for a large catalogue (where a two-tower model and an index are the tool)."""
    x = _rated_matrix(train, n_users, n_movies)
    return x @ _ease_weights(x.T @ x, penalty)


def ease_penalty(train: Ratings, held: Ratings, n_users: int, n_movies: int, k: int) -> float:
    """The :data:`EASE_LAMBDAS` penalty with the best hits@k on ``held`` (a validation carve-out) for a model fitted on ``train``."""
    users = np.unique(held.user[held.rating >= 4])
    x = _rated_matrix(train, n_users, n_movies)
    gram = x.T @ x  # the same for every penalty
    hits = [
        topn_metrics({"ease": x[users] @ _ease_weights(gram, lam)}, train, held, users, k)["ease"][f"hits@{k}"]
        for lam in EASE_LAMBDAS
    ]
    return EASE_LAMBDAS[int(np.argmax(hits))]


def _rated_matrix(train: Ratings, n_users: int, n_movies: int) -> np.ndarray:
    """1 where a user rated a movie, ``(n_users, n_movies - 1)`` for movies 1..n_movies - 1."""
    x = np.zeros((n_users, n_movies - 1))
    x[train.user, train.movie - 1] = 1.0
    return x


def _ease_weights(gram: np.ndarray, penalty: float) -> np.ndarray:
    """EASE's closed form: ``B = I - P / diag(P)`` with ``P = (X'X + penalty I)^-1``, i.e. ``diag(B) = 0``."""
    p = np.linalg.inv(gram + penalty * np.eye(len(gram)))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Print an aligned table: first column left, the others right."""
    cells = [tuple(f"{c:.4f}" if isinstance(c, float) else str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()
