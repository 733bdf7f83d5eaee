"""The Object2Vec models of examples/movielens.py: their hyperparameters, features, training and refit.

A :class:`Model` is one configuration (features and hyperparameters); :func:`train_model` fits it
with early stopping on a validation share of the base ratings, then refits it on all of them for
the chosen epoch count; :class:`Ensemble` averages several seeds of one configuration.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from movielens_data import MovieLens, Ratings, Tokens, validation_split

# The hyperparameters of the AWS movie-recommendation notebook, ids only: in0 = [user], in1 = [movie].
AWS_REGRESSION = {
    "enc0_network": "pooled_embedding",
    "enc1_network": "pooled_embedding",
    "enc_dim": 1024,
    "mlp_layers": 1,
    "mlp_dim": 256,
    "mlp_activation": "tanh",
    "output_layer": "mean_squared_error",
    "optimizer": "adam",
    "learning_rate": 0.001,
    "mini_batch_size": 64,
    "epochs": 20,
    "early_stopping_patience": 3,
    "early_stopping_tolerance": 0.01,
}
AWS_CLASSIFICATION = {
    **AWS_REGRESSION,
    "enc_dim": 2048,
    "mlp_dim": 1024,
    "mlp_activation": "relu",
    "mini_batch_size": 2048,
    "output_layer": "softmax",
}
# Ours: side tokens and the user's other ratings as tokens (see Tokens), small vectors, strong dropout.
# Chosen by RMSE on the validation split carved out of ua.base (docs/movielens.md); ua.test played no part.
TUNED_REGRESSION = {
    "enc0_network": "pooled_embedding",
    "enc1_network": "pooled_embedding",
    "enc_dim": 64,
    "comparator_list": "hadamard, concat, abs_diff",
    "mlp_layers": 1,
    "mlp_dim": 64,
    "mlp_activation": "relu",
    "dropout": 0.5,
    "output_layer": "mean_squared_error",
    "optimizer": "adam",
    "learning_rate": 0.002,
    "mini_batch_size": 128,
    "epochs": 60,
    "early_stopping_patience": 3,
    "early_stopping_tolerance": 0.001,
}
TUNED_CLASSIFICATION = {**TUNED_REGRESSION, "output_layer": "softmax"}
# Top-N: "did the user rate this movie 4 or 5", with Object2Vec's negative sampling: each positive pair
# also trains on its in0 with the in1 of another training pair drawn at random, labelled 0. Chosen by
# hits@10 on the validation carve-out (docs/movielens.md).
TOPN_CLASSIFICATION = {**TUNED_CLASSIFICATION, "negative_sampling_rate": 10}
# Top-N by a two-tower model (the contrastive objective, an extension: docs/objectives.md): every
# rating is a positive (what a user chose to watch and rate), each scored against the other positives
# of its batch of 1,024 (InfoNCE over cosines, temperature 0.1) with the logQ correction, so the cosine
# estimates log P(movie | user) rather than how much more than average the user likes it. The towers
# share one token table (Tokens(shared=True)): a candidate movie is the vector that stands for "rated
# it 4-5" in users' histories. No MLP: a user's list is their vector's nearest movie vectors, served
# by a faiss index. Chosen by hits@10 on the validation carve-out and stability over seeds
# (docs/movielens.md, "The two-tower model of (d)").
TWO_TOWER_CONTRASTIVE = {
    **TUNED_CLASSIFICATION,
    "objective": "contrastive",
    "negative_sampling_rate": 0,  # the batch's other positives are the negatives
    "contrastive_logq_correction": True,
    "contrastive_temperature": 0.1,
    "enc_dim": 192,  # the best on the carve-out with seeds 0 and 1, separate tables or shared (docs/movielens.md)
    "mini_batch_size": 1024,
    "tied_token_embedding_weight": True,  # one table for both towers (Tokens(shared=True))
}


@dataclass
class Model:
    """One Object2Vec configuration: its features (see :class:`Tokens`) and hyperparameters."""

    side: bool
    history: str | None  # None, "rated" or "rating"
    hyperparameters: dict[str, Any]
    raters: int | None = None  # with history: in1 also holds up to this many of the movie's raters (and how)
    positives: str | None = None  # top-N models: "liked" (ratings >= 4) or "rated" (every rating), labelled 1
    uniform_negatives: int = 0  # top-N: this many negatives per positive drawn uniformly over movies, once
    refit: bool = True  # refit on all of the base ratings for the chosen epoch count (not the notebook's protocol)

    def tokens(self, ml: MovieLens, train: Ratings) -> Tokens:
        if self.history is None:
            return Tokens(ml.users, ml.movies, side=self.side)
        shared = bool(self.hyperparameters.get("tied_token_embedding_weight"))  # one table: one vocabulary
        return Tokens(ml.users, ml.movies, side=self.side, history=train, kind=self.history, raters=self.raters, shared=shared)


MODELS = {
    "regression": {
        "aws-notebook": Model(False, None, AWS_REGRESSION, refit=False),
        "ids+features": Model(True, "rating", TUNED_REGRESSION),
    },
    "classification": {
        "aws-notebook": Model(False, None, AWS_CLASSIFICATION, refit=False),
        "ids+features": Model(True, "rating", TUNED_CLASSIFICATION),
    },
    "top-n": {
        "ids+features top-n": Model(True, "rating", TOPN_CLASSIFICATION, positives="liked"),
        "ids+features two-tower": Model(True, "rating", TWO_TOWER_CONTRASTIVE, positives="rated"),
    },
}
TUNED = "ids+features"  # the rating model the neighbour, recommendation and map tasks use
ENSEMBLE = f"{TUNED} ensemble"  # the mean of --ensemble such models, seeds --seed, --seed + 1, ...
TOPN = "ids+features top-n"
TWO_TOWER = "ids+features two-tower"


@dataclass
class Trained:
    """A trained model with the features it reads and the ratings it was trained on.

    ``validation_scores`` are the predictions for ``validation`` of the model that early stopping
    chose; after a refit on every rating (``estimator`` then has seen ``validation``) they are the
    only honest ones, and choices such as the threshold of task (b) are made on them.
    """

    estimator: Any
    tokens: Tokens
    train: Ratings
    validation: Ratings
    seconds: float
    validation_scores: np.ndarray
    best_epoch: int
    epochs_run: int
    refit: bool = False
    seed: int = 0

    def predict(self, ratings: Ratings) -> np.ndarray:
        """Predicted rating (regression) or P(liked) (classification), one per rating."""
        return predictions(self.estimator, self.tokens, ratings)

    def epochs(self) -> str:
        """``best/run`` epochs of the early-stopped fit, ``+ refit`` when the model was trained again on every rating."""
        return f"{self.best_epoch}/{self.epochs_run}" + (" + refit" if self.refit else "")

    def summary(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "refit": self.refit,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class Ensemble:
    """Models of one configuration trained with different seeds on the same split; their predictions
    are averaged. Seeds differ only in initial vectors, dropout and batch order, and their errors
    are partly independent, so the mean is closer than a typical member (docs/movielens.md)."""

    members: list[Trained]

    @property
    def validation(self) -> Ratings:
        return self.members[0].validation

    @property
    def validation_scores(self) -> np.ndarray:
        return np.mean([m.validation_scores for m in self.members], axis=0)

    def predict(self, ratings: Ratings) -> np.ndarray:
        return np.mean([m.predict(ratings) for m in self.members], axis=0)

    def epochs(self) -> str:
        return (
            f"{len(self.members)} x "
            + ", ".join(str(m.best_epoch) for m in self.members)
            + (" + refit" if self.members[0].refit else "")
        )

    def summary(self) -> dict[str, Any]:
        return {"members": [m.summary() for m in self.members], "seconds": round(sum(m.seconds for m in self.members), 1)}


def train_ensemble(ml: MovieLens, base: Ratings, model: Model, args: argparse.Namespace) -> Ensemble:
    """``--ensemble`` models of ``model``, seeded ``--seed``, ``--seed`` + 1, ...; the first is the single model."""
    return Ensemble([train_model(ml, base, model, args, seed=args.seed + i) for i in range(args.ensemble)])


def predictions(estimator: Any, tokens: Tokens, ratings: Ratings) -> np.ndarray:
    out = estimator.predict(tokens.pairs(ratings))
    return out[:, 0] if out.shape[1] == 1 else out[:, 1]


def topn_pairs(
    tokens: Tokens, ratings: Ratings, rate: int, negatives: list[tuple[int, list[int]]], rated: set[tuple[int, int]], seed: int
):
    """Records for a top-N model: each rating labelled 1 and ``rate`` negatives per positive labelled 0,
    the positive's in0 with a ``(movie, in1)`` drawn uniformly from ``negatives`` (skipping pairs in ``rated``)."""
    pairs = tokens.pairs(ratings)
    out = [{**p, "label": 1} for p in pairs]
    rng = np.random.default_rng(seed)
    for p, u in zip(pairs, ratings.user.tolist(), strict=True):
        for j in rng.integers(0, len(negatives), size=rate).tolist():
            movie, in1 = negatives[j]
            if (u, movie) not in rated:
                out.append({"label": 0, "in0": p["in0"], "in1": in1})
    return out


def train_model(ml: MovieLens, base: Ratings, model: Model, args: argparse.Namespace, seed: int | None = None) -> Trained:
    """Fit on ``base`` minus a random validation share, which drives early stopping; with ``--refit``,
    fit again on all of ``base`` for the epoch count early stopping chose. ``seed`` seeds the model
    (default ``--seed``); the validation split always comes from ``--seed``."""
    from object2vec import Object2Vec

    seed = args.seed if seed is None else seed

    train, validation = validation_split(base, args.validation_fraction, args.seed)
    hp = dict(model.hyperparameters)
    if args.epochs is not None:
        hp["epochs"] = args.epochs
    if model.uniform_negatives:
        hp["negative_sampling_rate"] = 0  # the negatives are in the data
    started = time.perf_counter()
    tokens = model.tokens(ml, train)

    def records(tokens: Tokens, train: Ratings, validation: Ratings | None) -> tuple[list, list | None]:
        if model.positives is None:  # rating models: every rating, labelled by its value or by rating > 3
            label = "rating" if hp["output_layer"] == "mean_squared_error" else "liked"
            return tokens.pairs(train, label), validation and tokens.pairs(validation, label)
        keep = lambda r: r.take(np.flatnonzero(r.rating >= 4)) if model.positives == "liked" else r  # noqa: E731
        rate = model.uniform_negatives or hp["negative_sampling_rate"]
        rated = set(zip(train.user.tolist(), train.movie.tolist(), strict=True))
        if model.uniform_negatives:  # every movie equally likely, drawn once, instead of the sampler's per-epoch draw
            movies = list(enumerate(tokens.movie))[1:]
            fit = topn_pairs(tokens, keep(train), rate, movies, rated, args.seed)
        else:  # the sampler draws in1 of other training records: movies in proportion to their ratings
            fit = topn_pairs(tokens, keep(train), 0, [], rated, args.seed)
            movies = list(zip(keep(train).movie.tolist(), [p["in1"] for p in fit], strict=True))
        return fit, validation and topn_pairs(tokens, keep(validation), rate, movies, set(), args.seed + 1)

    fit, held = records(tokens, train, validation)
    estimator = Object2Vec(seed=seed, device=args.device, **hp, **tokens.hyperparameters()).fit(fit, validation=held)
    validation_scores = predictions(estimator, tokens, validation)
    best, run = estimator.metrics_["best_epoch"], len(estimator.metrics_["epochs"])
    if not (model.refit and args.refit):
        return Trained(
            estimator, tokens, train, validation, time.perf_counter() - started, validation_scores, best, run, seed=seed
        )
    tokens = model.tokens(ml, base)
    fit, _ = records(tokens, base, None)
    refit_hp = {**hp, **tokens.hyperparameters(), "epochs": best}
    estimator = Object2Vec(seed=seed, device=args.device, **refit_hp).fit(fit)
    return Trained(estimator, tokens, base, validation, time.perf_counter() - started, validation_scores, best, run, True, seed)


def movie_vectors(t: Trained, movies: np.ndarray) -> np.ndarray:
    """enc1 vectors of ``movies`` (each read with its full token sequence)."""
    return t.estimator.embed(in1=[t.tokens.movie[m] for m in movies.tolist()])


def frequent_movies(t: Trained, min_ratings: int) -> np.ndarray:
    """Movie ids with at least ``min_ratings`` training ratings: rarer movies' vectors are mostly their start values."""
    count = np.bincount(t.train.movie, minlength=len(t.tokens.movie))
    return np.flatnonzero(count >= min_ratings)


def score_matrix(t: Trained, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Object2Vec scores ``(users, movies)``, each side read with its full tokens: the predicted rating of a
    regression model, the log-odds of label 1 of a classifier (``object2vec.retrieval.recommend.pair_scores``)."""
    from object2vec.retrieval.recommend import pair_scores

    user_vectors = t.estimator.embed(in0=[t.tokens.user[u] for u in users.tolist()])
    return pair_scores(t.estimator, user_vectors, movie_vectors(t, movies))


def top_list(t: Trained, user: int, movies: np.ndarray, rated: set[int], prior: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best ``(movie, score + prior)`` of ``movies`` for ``user`` that are not in ``rated``
    (``prior`` is indexed by movie id - 1), as ``object2vec recommend`` would list them."""
    from object2vec.retrieval.recommend import recommend

    scores = recommend(
        t.estimator, t.tokens.user[user], k=len(movies), candidates={m: t.tokens.movie[m] for m in movies.tolist()}
    )
    ranked = sorted(((s + prior[m - 1], m) for m, s in scores if m not in rated), reverse=True)
    return [(m, s) for s, m in ranked[:k]]


def neighbour_rank(vectors: np.ndarray, ids: np.ndarray, query: int, target: int, metric: str) -> int | None:
    """The rank (1 = nearest) of movie ``target`` among the neighbours of movie ``query``, by ``metric``;
    None when either is not among ``ids`` (the movies ``vectors`` belong to)."""
    from object2vec.retrieval.neighbors import NeighborIndex

    if not {query, target} <= set(ids.tolist()):
        return None
    found, _ = NeighborIndex.build(vectors, ids.tolist(), metric=metric).neighbors(query, k=len(ids) - 1)
    return found.index(target) + 1
