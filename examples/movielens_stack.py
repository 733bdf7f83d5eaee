"""Task (b)'s stack in examples/movielens.py: out-of-fold predictions and a logistic regression on top.

A regression model's predicted rating is a strong feature for "liked" (rating > 3), but a threshold
on it alone ignores how the user and the movie usually rate; the stack learns that combination from
predictions of models that never saw the rating they predict.
"""

from __future__ import annotations

import argparse

import numpy as np

from movielens_baselines import rating_statistics
from movielens_data import MovieLens, Ratings
from movielens_models import Ensemble, Model, Trained, predictions


def stack_folds(n: int, args: argparse.Namespace) -> np.ndarray:
    """The fold (0 .. ``--stack-folds`` - 1) of each of ``n`` ratings: a random permutation (``--seed``), dealt round."""
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(args.seed).permutation(n)] = np.arange(n) % args.stack_folds
    return fold


def out_of_fold(
    ml: MovieLens, base: Ratings, folds: np.ndarray, model: Model, member: Trained, args: argparse.Namespace
) -> np.ndarray:
    """Each rating of ``base`` predicted by ``member``'s configuration (its seed, its refit epoch count, no early
    stopping) trained on the other folds, with histories from those folds only: predictions by models
    that never saw the rating, as the refit model never saw ``ua.test``."""
    from object2vec import Object2Vec

    hp = {**model.hyperparameters, "epochs": member.best_epoch}
    out = np.empty(len(base))
    for k in range(args.stack_folds):
        train, held = base.take(np.flatnonzero(folds != k)), np.flatnonzero(folds == k)
        tokens = model.tokens(ml, train)
        estimator = Object2Vec(seed=member.seed, device=args.device, **hp, **tokens.hyperparameters()).fit(tokens.pairs(train))
        out[held] = predictions(estimator, tokens, base.take(held))
        print(f"(b) stack: seed {member.seed}, fold {k + 1}/{args.stack_folds} predicted", flush=True)
    return out


def stacked_liked(
    ml: MovieLens,
    base: Ratings,
    test: Ratings,
    model: Model,
    regressor: Trained | Ensemble,
    args: argparse.Namespace,
    cache: dict[int, np.ndarray],
) -> np.ndarray:
    """Task (b) by a stack: a logistic regression fitted on ``base``'s out-of-fold predictions of ``regressor``
    (the mean over its members) and the user's and movie's rating statistics, applied to its ``test``
    predictions; liked where P > 0.5. Every input of the fit comes from ``base``; ``cache`` keeps each
    member's out-of-fold predictions (the single model is the ensemble's first member)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    members = regressor.members if isinstance(regressor, Ensemble) else [regressor]
    folds = stack_folds(len(base), args)
    for member in members:
        if member.seed not in cache:
            cache[member.seed] = out_of_fold(ml, base, folds, model, member, args)
    oof = np.mean([cache[member.seed] for member in members], axis=0)
    features = np.empty((len(base), 7))
    features[:, 0] = oof
    for k in range(args.stack_folds):
        held = np.flatnonzero(folds == k)
        features[held, 1:] = rating_statistics(base.take(np.flatnonzero(folds != k)), base.user[held], base.movie[held])
    scale = StandardScaler().fit(features)
    stack = LogisticRegression(C=1.0, max_iter=1000).fit(scale.transform(features), base.rating > 3)
    test_features = np.column_stack([regressor.predict(test), rating_statistics(base, test.user, test.movie)])
    return stack.predict_proba(scale.transform(test_features))[:, 1] > 0.5
