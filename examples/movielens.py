"""MovieLens 100k with Object2Vec: the AWS notebook's experiments, reproduced and beaten.

Five tasks on ml-100k, after the AWS Object2Vec movie-recommendation notebook, each beside baselines measured in the same run:

(a) rating regression, ``ua.base`` -> ``ua.test`` (``--folds`` adds the u1-u5 mean), the notebook's
    hyperparameters against ours (side tokens and the user's other ratings as in0 tokens), one
    model and the mean of ``--ensemble`` seeds of it;
(b) rating > 3 classification;
(c) nearest movies by title (the notebook's check: Die Hard near The Terminator);
(d) top-10 lists scored by hits@10 / NDCG@10 on ``ua.test`` ratings >= 4, by a top-N model trained
    with ``negative_sampling_rate`` and by a contrastive two-tower model served from a faiss index
    (with the time that takes against scoring every pair with the MLP), beside the rating model and
    popularity;
(e) a UMAP map of movie vectors coloured by genre.

Early stopping and every choice use a random 5% of ``ua.base``; our models are then refit on all
of ``ua.base`` for the chosen epoch count. ``ua.test`` is scored once and chooses nothing.
The data is read where it is (``--data-dir``) or downloaded from GroupLens into a cache folder;
MovieLens may not be redistributed, so none of it belongs in this repository.

Run (``pip install -e '.[examples]'``)::

    python examples/movielens.py --data-dir ../shared/data/ml-100k --out movielens_output \\
        --map docs/movielens_map.png

See ``docs/movielens.md`` for the numbers.

The reusable parts sit beside this file: ``movielens_data`` (files, ratings, token sequences),
``movielens_baselines`` (baselines and metrics), ``movielens_models`` (hyperparameters, training,
refit, ensembles), ``movielens_stack`` (task (b)'s stack) and ``movielens_retrieval`` (task (d)
through a neighbour index). This file is the walkthrough.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from movielens_baselines import (
    baselines,
    best_threshold,
    bias_baseline,
    classification_baselines,
    ease_penalty,
    ease_scores,
    rmse,
    table,
    topn_metrics,
)
from movielens_data import URL, MovieLens, default_data_dir, download, find_title, primary_genre, validation_split
from movielens_models import (
    ENSEMBLE,
    MODELS,
    TOPN,
    TUNED,
    TWO_TOWER,
    Ensemble,
    Trained,
    frequent_movies,
    movie_vectors,
    neighbour_rank,
    score_matrix,
    top_list,
    train_ensemble,
    train_model,
)
from movielens_retrieval import index_score_matrix, movie_index, retrieval_speed
from movielens_stack import stacked_liked


def regression(ml: MovieLens, args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Trained | Ensemble]:
    """Task (a): rating regression on ua.test (and, with ``--folds``, the mean over u1-u5). Our model
    is also trained ``--ensemble`` times with different seeds; the mean of those is its own row."""
    base, test = ml.split("ua")
    rows, out, trained = [], {}, {}
    for name, pred in baselines(base, test).items():
        out[name] = {"rmse": rmse(pred, test.rating)}
        rows.append((f"baseline: {name}", "", "", out[name]["rmse"], out[name]["rmse"] ** 2))
    for name, model in MODELS["regression"].items():
        fits: list[tuple[str, Trained | Ensemble]]
        if name == TUNED and args.ensemble > 1:
            ensemble = train_ensemble(ml, base, model, args)
            fits = [(name, ensemble.members[0]), (ENSEMBLE, ensemble)]
        else:
            fits = [(name, train_model(ml, base, model, args))]
        for label, t in fits:
            trained[label] = t
            val = rmse(t.validation_scores, t.validation.rating)
            test_rmse = rmse(t.predict(test), test.rating)
            out[label] = {"validation_rmse": val, "rmse": test_rmse, **t.summary(), "hyperparameters": model.hyperparameters}
            rows.append((f"Object2Vec {label}", t.epochs(), f"{val:.4f}", test_rmse, test_rmse**2))
    table(
        f"(a) rating regression, ua.base -> ua.test ({len(test):,} ratings)",
        ("model", "best/run epochs", "validation RMSE", "ua.test RMSE", "ua.test MSE"),
        rows,
    )
    results["regression"] = {"ua": out}
    if args.folds:
        results["regression"]["folds"] = folds(ml, args)
    return trained


def folds(ml: MovieLens, args: argparse.Namespace) -> dict[str, Any]:
    """RMSE of the baselines and the tuned model on each of u1-u5 (80/20 splits), and the mean."""
    per_fold: dict[str, list[float]] = {}
    for fold in range(1, 6):
        base, test = ml.split(f"u{fold}")
        for name, pred in baselines(base, test).items():
            per_fold.setdefault(f"baseline: {name}", []).append(rmse(pred, test.rating))
        ensemble = train_ensemble(ml, base, MODELS["regression"][TUNED], args)
        for name, t in ((TUNED, ensemble.members[0]), (ENSEMBLE, ensemble))[: 1 + (args.ensemble > 1)]:
            per_fold.setdefault(f"Object2Vec {name}", []).append(rmse(t.predict(test), test.rating))
            print(f"fold u{fold}: Object2Vec {name} RMSE {per_fold[f'Object2Vec {name}'][-1]:.4f}", flush=True)
    rows = [(name, *values, float(np.mean(values))) for name, values in per_fold.items()]
    table("(a) rating regression, five folds u1-u5", ("model", "u1", "u2", "u3", "u4", "u5", "mean RMSE"), rows)
    return {name: {"rmse": values, "mean": float(np.mean(values))} for name, values in per_fold.items()}


def classification(
    ml: MovieLens, args: argparse.Namespace, results: dict[str, Any], regressors: dict[str, Trained | Ensemble]
) -> dict[str, Trained]:
    """Task (b): rating > 3 on ua.test, by classifiers, by a regression model's rating above a threshold
    chosen on the validation carve-out, and by a stack of it (see :func:`stacked_liked`)."""
    base, test = ml.split("ua")
    liked = test.rating > 3
    rows, out, trained, stacks = [], {}, {}, {}
    for name, pred in classification_baselines(base, test).items():
        out[name] = {"accuracy": float(np.mean(pred == liked))}
        rows.append((f"baseline: {name}", "", out[name]["accuracy"]))
    for name, model in MODELS["classification"].items():
        t = trained[name] = train_model(ml, base, model, args)
        acc = float(np.mean((t.predict(test) > 0.5) == liked))
        out[name] = {"accuracy": acc, **t.summary(), "hyperparameters": model.hyperparameters}
        rows.append((f"Object2Vec {name} (softmax, P > 0.5)", t.epochs(), acc))
    for regressor in (TUNED, ENSEMBLE):
        if regressor not in regressors:
            continue
        r = regressors[regressor]
        threshold = best_threshold(r.validation_scores, r.validation.rating > 3)  # chosen on validation, not test
        acc = float(np.mean((r.predict(test) > threshold) == liked))
        name = f"Object2Vec {regressor} regression > {threshold:.2f}"
        out[name] = {"accuracy": acc, "threshold": threshold}
        rows.append((name, "", acc))
    for regressor in (TUNED, ENSEMBLE) if args.stack_folds else ():
        if regressor in regressors:
            acc = float(
                np.mean(stacked_liked(ml, base, test, MODELS["regression"][TUNED], regressors[regressor], args, stacks) == liked)
            )
            name = f"Object2Vec {regressor} regression, stacked ({args.stack_folds} folds)"
            out[name] = {"accuracy": acc, "folds": args.stack_folds}
            rows.append((name, "", acc))
    table(
        f"(b) rating > 3, ua.base -> ua.test ({len(test):,} ratings, {liked.mean():.1%} liked)",
        ("model", "best/run epochs", "ua.test accuracy"),
        rows,
    )
    results["classification"] = out
    return trained


def neighbours(ml: MovieLens, args: argparse.Namespace, results: dict[str, Any], model: Trained) -> None:
    """Task (c): the nearest movies of a few titles by the cosine of their enc1 vectors (and the AWS check)."""
    from object2vec.retrieval.neighbors import NeighborIndex

    ids = frequent_movies(model, args.min_ratings)
    vectors = movie_vectors(model, ids)
    out: dict[str, Any] = {"movies_indexed": len(ids), "min_ratings": args.min_ratings}
    for metric in ("cosine", "l2"):
        index = NeighborIndex.build(vectors, ids.tolist(), metric=metric)
        for title in args.titles:
            movie = find_title(ml.movies, title)
            if movie not in set(ids.tolist()):
                print(f"\n{ml.movies.title[movie]} has fewer than {args.min_ratings} training ratings; not indexed")
                continue
            found, scores = index.neighbors(movie, k=args.k)
            key = ml.movies.title[movie]
            out.setdefault(metric, {})[key] = [(ml.movies.title[m], float(s)) for m, s in zip(found, scores, strict=True)]
            if metric == "cosine":
                table(
                    f"(c) nearest movies of {key} (cosine of enc1 vectors, {len(ids):,} movies with >= {args.min_ratings} ratings)",
                    ("movie", "genres", "cosine"),
                    [
                        (ml.movies.title[m], ", ".join(ml.movies.genre_names(m)), float(s))
                        for m, s in zip(found, scores, strict=True)
                    ],
                )
    # The AWS notebook's check: Die Hard (1988) near The Terminator (1984)
    terminator, die_hard = find_title(ml.movies, "Terminator, The (1984)"), find_title(ml.movies, "Die Hard (1988)")
    ranks = {metric: neighbour_rank(vectors, ids, terminator, die_hard, metric) for metric in ("cosine", "l2")}
    check = ranks if None not in ranks.values() else {}
    if check:
        print(
            f"\nAWS check: Die Hard (1988) is neighbour #{check['cosine']} of Terminator, The (1984) by cosine, "
            f"#{check['l2']} by Euclidean distance (of {len(ids) - 1})"
        )
    out["die_hard_rank_from_terminator"] = check
    results["neighbours"] = out


def recommendations(ml: MovieLens, args: argparse.Namespace, results: dict[str, Any], model: Trained) -> None:
    """Task (d): top-10 movies per user among those they have not rated in ua.base; hits@10 and NDCG@10
    of their ua.test ratings >= 4, by a two-tower model through a faiss index, a top-N model, the
    rating model, EASE (the item-item baseline), popularity and movie biases; and the time of the index
    against the MLP."""
    base, test = ml.split("ua")
    movies = np.arange(1, len(ml.movies.title))
    users = np.unique(test.user)
    topn = train_model(ml, base, MODELS["top-n"][TOPN], args)
    topn_scores = score_matrix(topn, users, movies)
    two_tower = train_model(ml, base, MODELS["top-n"][TWO_TOWER], args)
    index = movie_index(two_tower, movies)
    popularity = np.bincount(base.movie, minlength=len(movies) + 1)[1:].astype(np.float64)
    n_users = len(ml.users.age)
    penalty = ease_penalty(*validation_split(base, args.validation_fraction, args.seed), n_users, len(movies) + 1, args.k)
    rankers = {
        f"Object2Vec {TWO_TOWER} (cosine, faiss index)": index_score_matrix(two_tower, index, users, movies),
        f"Object2Vec {TOPN} (score + log(1 + ratings))": topn_scores + np.log1p(popularity),
        f"Object2Vec {TOPN} (score)": topn_scores,
        f"Object2Vec {TUNED} (predicted rating)": score_matrix(model, users, movies),
        f"baseline: EASE item-item (penalty {penalty:g}, chosen on validation)": ease_scores(
            base, n_users, len(movies) + 1, penalty
        )[users],
        "baseline: popularity (ratings in ua.base)": popularity,
        "baseline: mean + movie bias": bias_baseline(base)(np.zeros(len(movies), np.int64), movies),
    }
    out: dict[str, Any] = topn_metrics(rankers, base, test, users, args.k)
    out[f"Object2Vec {TOPN} (score + log(1 + ratings))"].update(
        topn.summary(), hyperparameters=MODELS["top-n"][TOPN].hyperparameters
    )
    out[f"Object2Vec {TWO_TOWER} (cosine, faiss index)"].update(
        two_tower.summary(), hyperparameters=MODELS["top-n"][TWO_TOWER].hyperparameters
    )
    k = args.k
    table(
        f"(d) top-{k} among unrated movies; positives: ua.test ratings >= 4 "
        f"({out['baseline: popularity (ratings in ua.base)']['positives']:,} of "
        f"{out['baseline: popularity (ratings in ua.base)']['queries']} users)",
        ("ranking", f"hits@{k}", f"NDCG@{k}", "MRR"),
        [(name, m[f"hits@{k}"], m[f"ndcg@{k}"], m["mrr"]) for name, m in out.items()],
    )
    speed = retrieval_speed(two_tower, index, topn, np.arange(1, len(ml.users.age)), movies, k)
    table(
        f"(d) top-{k} over all {speed['movies']:,} movies for each of the {speed['users']} users (best of 3)",
        ("how", "seconds", "ms per user"),
        [
            (f"{TWO_TOWER}: user vectors + exact faiss index (cosine)", speed["index_seconds"],
             1000 * speed["index_seconds"] / speed["users"]),
            (f"{TOPN}: user vectors + comparator and MLP on every pair", speed["mlp_seconds"],
             1000 * speed["mlp_seconds"] / speed["users"]),
        ],
    )  # fmt: skip
    print(f"the index is {speed['speedup']:.1f}x faster")
    out["retrieval_speed"] = speed
    user = args.user
    rated = set(base.movie[base.user == user].tolist())
    liked = set(test.movie[(test.user == user) & (test.rating >= 4)].tolist())
    for name, t, what, prior in (
        (TWO_TOWER, two_tower, "cosine", np.zeros(len(movies))),
        (TOPN, topn, "score + log(1 + ratings)", np.log1p(popularity)),
        (TUNED, model, "predicted rating", np.zeros(len(movies))),
    ):
        top = top_list(t, user, movies, rated, prior, k)
        table(
            f"(d) {name}: top-{k} for user {user} ({ml.users.age[user]}, {ml.users.gender[user]}, {ml.users.occupation[user]}); "
            f"* = rated >= 4 in ua.test",
            ("movie", what),
            [(("* " if m in liked else "  ") + ml.movies.title[m], s) for m, s in top],
        )
        out.setdefault("examples", {})[name] = {"user": user, "top": [(ml.movies.title[m], s) for m, s in top]}
    results["recommend"] = out


def genre_map(ml: MovieLens, args: argparse.Namespace, results: dict[str, Any], model: Trained) -> None:
    """Task (e): a UMAP map of movie vectors coloured by genre."""
    from object2vec.retrieval.plots import plot_map

    ids = frequent_movies(model, args.min_ratings)
    counts = ml.movies.genres[1:].sum(axis=0)
    colors = [primary_genre(ml.movies, m, counts) for m in ids.tolist()]
    path = args.map or args.out / "movielens_map.png"
    plot_map(
        movie_vectors(model, ids),
        path,
        method=args.map_method,
        colors=colors,
        names=[ml.movies.title[m] for m in ids.tolist()],
        title=f"MovieLens 100k: enc1 vectors of {len(ids):,} movies with >= {args.min_ratings} ratings",
        seed=args.seed,
        max_categories=12,
        legend_title="rarest genre",
    )
    print(f"\n(e) map of {len(ids):,} movies written to {path}")
    results["map"] = {"path": str(path), "movies": len(ids)}


# --------------------------------------------------------------------------------------------------

TASKS = ("regression", "classification", "neighbours", "recommend", "map")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=None, help=f"unpacked ml-100k folder [download {URL} to {default_data_dir()}]"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("movielens_output"), help="folder for models and results.json [movielens_output]"
    )
    parser.add_argument(
        "--task",
        nargs="+",
        choices=(*TASKS, "all"),
        default=["all"],
        help="which parts to run, e.g. regression classification [all]",
    )
    parser.add_argument("--folds", action="store_true", help="regression: also train and score on u1-u5 and report the mean")
    parser.add_argument("--epochs", type=int, default=None, help="override every model's maximum epochs (smoke tests)")
    parser.add_argument(
        "--validation-fraction", type=float, default=0.05, help="share of ua.base held out for early stopping [0.05]"
    )
    parser.add_argument(
        "--min-ratings", type=int, default=20, help="neighbours and map: movies with at least this many ratings [20]"
    )
    parser.add_argument(
        "--titles",
        nargs="+",
        default=["Terminator, The (1984)", "Toy Story (1995)", "Schindler's List (1993)"],
        help="neighbours: movies to look up",
    )
    parser.add_argument("--user", type=int, default=1, help="recommend: the user whose top list is printed [1]")
    parser.add_argument("-k", "--k", type=int, default=10, help="neighbours and top lists [10]")
    parser.add_argument("--map", type=Path, default=None, help="map image path [OUT/movielens_map.png]")
    parser.add_argument("--map-method", choices=("umap", "tsne", "pca"), default="umap", help="map projection [umap]")
    parser.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="score the early-stopped models instead of refitting ours on all of ua.base for their best epoch count",
    )
    parser.add_argument(
        "--ensemble", type=int, default=5, help="(a), (b): also average this many seeds of our rating model (1: off) [5]"
    )
    parser.add_argument(
        "--stack-folds",
        type=int,
        default=5,
        help="(b): also stack our rating model(s) with a logistic regression fitted on this many folds' "
        "out-of-fold predictions of ua.base (0: off) [5]",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto [cpu]")
    parser.add_argument("--seed", type=int, default=0, help="seed of every model and of the validation split [0]")
    args = parser.parse_args(argv)
    if args.stack_folds < 0 or args.stack_folds == 1:
        parser.error(f"--stack-folds must be 0 (no stack) or at least 2; got {args.stack_folds}")
    started = time.perf_counter()
    ml = MovieLens.open(args.data_dir if args.data_dir is not None else download(default_data_dir()))
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = TASKS if "all" in args.task else tuple(args.task)
    results: dict[str, Any] = {"data": str(ml.folder), "seed": args.seed, "validation_fraction": args.validation_fraction}
    regressors: dict[str, Trained | Ensemble] = {}
    if "regression" in tasks:
        regressors = regression(ml, args, results)
    if "classification" in tasks:
        classification(ml, args, results, regressors)
    if {"neighbours", "recommend", "map"} & set(tasks):
        model = regressors.get(TUNED) or train_model(ml, ml.split("ua")[0], MODELS["regression"][TUNED], args)
        model.estimator.save(args.out / "model")
        for task, run in (("neighbours", neighbours), ("recommend", recommendations), ("map", genre_map)):
            if task in tasks:
                run(ml, args, results, model)
    results["seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"\nnumbers in {args.out / 'results.json'} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
