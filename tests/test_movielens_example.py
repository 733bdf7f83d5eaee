"""examples/movielens.py (and the movielens_* modules beside it) runs end to end on a tiny generated
ml-100k folder (so the example cannot rot)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
MODULES = ("movielens", "movielens_data", "movielens_baselines", "movielens_models", "movielens_stack")
TITLES = ["Terminator, The (1984)", "Die Hard (1988)", "Toy Story (1995)", "Amélie (2001)", "Schindler's List (1993)"]
OCCUPATIONS = ["technician", "writer", "other"]


def ml_100k_folder(folder: Path, users: int = 30, movies: int = 24, seed: int = 0) -> None:
    """ml-100k's file formats: tab-separated ratings, pipe-separated u.user and u.item (latin-1)."""
    rng = random.Random(seed)
    folder.mkdir()
    items = []
    for m in range(1, movies + 1):
        title = TITLES[m - 1] if m <= len(TITLES) else f"Movie {m} (19{70 + m % 30})"
        date = "" if m == movies else f"01-Jan-19{70 + m % 30}"  # one movie without a release date, as in u.item
        flags = ["1" if (m + g) % 7 == 0 or g == m % 19 else "0" for g in range(19)]
        items.append("|".join([str(m), title, date, "", "http://us.imdb.com/M/title-exact?x", *flags]))
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    people = [f"{u}|{rng.randint(12, 70)}|{rng.choice('MF')}|{rng.choice(OCCUPATIONS)}|{10000 + u}" for u in range(1, users + 1)]
    (folder / "u.user").write_text("\n".join(people) + "\n", encoding="latin-1")
    taste = {u: rng.random() < 0.5 for u in range(1, users + 1)}
    base, test = [], []
    for u in range(1, users + 1):
        seen = rng.sample(range(1, movies + 1), 14)
        for n, m in enumerate(seen):
            rating = 5 if taste[u] == (m % 2 == 0) else rng.choice([1, 2, 3])
            line = f"{u}\t{m}\t{rating}\t{880000000 + 1000 * n}"
            (test if n < 4 else base).append(line)
    for name in ("ua", *(f"u{k}" for k in range(1, 6))):
        (folder / f"{name}.base").write_text("\n".join(base) + "\n")
        (folder / f"{name}.test").write_text("\n".join(test) + "\n")
    (folder / "u.data").write_text("\n".join(base + test) + "\n")


@pytest.fixture(scope="module")
def ml():
    """The example's modules, imported as ``python examples/movielens.py`` imports them (examples/ on sys.path)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield SimpleNamespace(**{name.removeprefix("movielens_"): importlib.import_module(name) for name in MODULES})
    finally:
        sys.path.remove(str(EXAMPLES))
        for name in MODULES:
            sys.modules.pop(name, None)


def test_the_files_are_read_as_ml_100k_writes_them(ml, tmp_path):
    ml_100k_folder(tmp_path / "ml")
    movielens = ml.data.MovieLens.open(tmp_path / "ml")
    assert movielens.movies.title[4] == "Amélie (2001)" and movielens.movies.year[24] == 0
    base, test = movielens.split("ua")
    assert len(base) == 30 * 10 and len(test) == 30 * 4 and set(base.rating.tolist()) <= {1.0, 2.0, 3.0, 5.0}
    tokens = ml.data.Tokens(movielens.users, movielens.movies, side=True, history=base)
    pair = tokens.pairs(base.take([0]), "liked")[0]
    assert pair["in0"][0] == base.user[0] and pair["in1"][0] == base.movie[0] and pair["label"] in (0, 1)
    assert max(max(t) for t in tokens.user) < tokens.vocab0 and max(max(t) for t in tokens.movie) < tokens.vocab1


def test_the_example_prints_every_task_beside_its_baselines(ml, tmp_path, capsys, monkeypatch):
    for module in ("faiss", "sklearn", "matplotlib"):
        pytest.importorskip(module)
    for models in ml.models.MODELS.values():  # the flow is under test, not the sizes: keep every model tiny
        for name, model in models.items():
            small = {**model.hyperparameters, "enc_dim": 8, "mlp_dim": 8}
            monkeypatch.setitem(models, name, dataclasses.replace(model, hyperparameters=small))
    ml_100k_folder(tmp_path / "ml")
    out = tmp_path / "out"
    args = ["--data-dir", str(tmp_path / "ml"), "--out", str(out), "--epochs", "2", "--min-ratings", "1", "-k", "3"]
    results = ml.movielens.main([*args, "--folds", "--validation-fraction", "0.2", "--map-method", "pca", "--ensemble", "2"])
    printed = capsys.readouterr().out
    for text in (
        "baseline: user + movie biases",
        "Object2Vec aws-notebook",
        "Object2Vec ids+features",
        "Object2Vec ids+features top-n",
        "+ refit",
        "popularity",
        "baseline: EASE item-item",
        "AWS check",
    ):
        assert text in printed
    assert set(results["regression"]["ua"]) >= {"global mean", "per-user mean", "user + movie biases", "ids+features"}
    assert len(results["regression"]["folds"]["Object2Vec ids+features"]["rmse"]) == 5
    ensemble = results["regression"]["ua"]["ids+features ensemble"]
    assert len(ensemble["members"]) == 2 and "Object2Vec ids+features ensemble" in printed
    assert len(results["regression"]["folds"]["Object2Vec ids+features ensemble"]["rmse"]) == 5
    assert any(name.startswith("Object2Vec ids+features ensemble regression > ") for name in results["classification"])
    assert 0 <= results["classification"]["ids+features"]["accuracy"] <= 1
    for model in ("ids+features", "ids+features ensemble"):
        assert 0 <= results["classification"][f"Object2Vec {model} regression, stacked (5 folds)"]["accuracy"] <= 1
    assert results["neighbours"]["die_hard_rank_from_terminator"]["cosine"] >= 1
    assert 0 <= results["recommend"]["baseline: popularity (ratings in ua.base)"]["hits@3"] <= 1
    assert 0 <= results["recommend"]["Object2Vec ids+features two-tower (cosine, faiss index)"]["hits@3"] <= 1
    speed = results["recommend"]["retrieval_speed"]
    assert speed["users"] == 30 and speed["index_seconds"] > 0 and speed["mlp_seconds"] > 0
    assert (out / "movielens_map.png").stat().st_size > 10_000 and (out / "model" / "config.json").is_file()
    assert (out / "results.json").is_file()


def test_ease_rebuilds_a_users_movies_from_their_other_movies(ml):
    # users 1-3 rated movies 1 and 2 together; user 4 rated only movie 1: EASE should put movie 2 first for user 4
    users, movies = np.array([1, 1, 2, 2, 3, 3, 4]), np.array([1, 2, 1, 2, 1, 2, 1])
    train = ml.data.Ratings(users, movies, np.full(7, 5.0), np.zeros(7, np.int64))
    scores = ml.baselines.ease_scores(train, n_users=5, n_movies=4, penalty=1.0)
    assert scores.shape == (5, 3) and np.argmax(scores[4, 1:]) == 0  # movie 2 before movie 3
    assert scores[4, 1] > 0 and scores[4, 2] == 0  # movie 3 was never rated with anything
    held = ml.data.Ratings(np.array([4]), np.array([2]), np.array([5.0]), np.zeros(1, np.int64))
    assert ml.baselines.ease_penalty(train, held, 5, 4, k=1) in ml.baselines.EASE_LAMBDAS


def test_top_n_records_label_ratings_one_and_never_draw_a_rated_movie_as_a_negative(ml, tmp_path):
    ml_100k_folder(tmp_path / "ml")
    movielens = ml.data.MovieLens.open(tmp_path / "ml")
    base, _ = movielens.split("ua")
    tokens = ml.data.Tokens(movielens.users, movielens.movies, side=True, history=base, kind="rating")
    rated = set(zip(base.user.tolist(), base.movie.tolist(), strict=True))
    movies = list(enumerate(tokens.movie))[1:]
    records = ml.models.topn_pairs(tokens, base, 3, movies, rated, seed=0)
    positives = [r for r in records if r["label"] == 1]
    negatives = [r for r in records if r["label"] == 0]
    assert len(positives) == len(base) and 0 < len(negatives) <= 3 * len(base)
    for r in negatives:
        user, movie = r["in0"][0], r["in1"][0]  # the id tokens come first on each side
        assert (user, movie) not in rated


def test_a_pairs_in1_leaves_out_its_own_raters_token(ml, tmp_path):
    ml_100k_folder(tmp_path / "ml")
    movielens = ml.data.MovieLens.open(tmp_path / "ml")
    base, _ = movielens.split("ua")
    tokens = ml.data.Tokens(movielens.users, movielens.movies, side=True, history=base, kind="rating", raters=5)
    assert all(len(r) <= 5 for r in tokens.raters) and max(max(t) for t in tokens.movie) < tokens.vocab1
    i = next(i for i, (u, m) in enumerate(zip(base.user.tolist(), base.movie.tolist(), strict=True)) if u in tokens.raters[m])
    user, movie = int(base.user[i]), int(base.movie[i])
    own = tokens.raters[movie][user]
    pair = tokens.pairs(base.take([i]))[0]
    assert own in tokens.movie[movie] and own not in pair["in1"]
    assert pair["in1"] == [t for t in tokens.movie[movie] if t != own]


def test_shared_tokens_make_a_candidate_movie_the_token_of_liking_it_in_a_history(ml, tmp_path):
    ml_100k_folder(tmp_path / "ml")
    movielens = ml.data.MovieLens.open(tmp_path / "ml")
    base, _ = movielens.split("ua")
    own = ml.data.Tokens(movielens.users, movielens.movies, side=True, history=base, kind="rating")
    shared = ml.data.Tokens(movielens.users, movielens.movies, side=True, history=base, kind="rating", shared=True)
    assert shared.vocab0 == shared.vocab1 == own.vocab0 + own.vocab1 - len(movielens.movies.title)
    assert shared.user == own.user  # in0 is unchanged
    liked = next(i for i, r in enumerate(base.rating.tolist()) if r >= 4)
    user, movie = int(base.user[liked]), int(base.movie[liked])
    assert shared.movie[movie][0] == own.history[user][movie] and shared.movie[movie][0] in shared.user[user]
    sides = {t for seq in shared.movie[1:] for t in seq[1:]}  # year and genre tokens, after in0's
    assert min(sides) >= own.vocab0 and max(sides) < shared.vocab1
    pair = shared.pairs(base.take([liked]))[0]
    assert pair["in1"] == shared.movie[movie] and shared.movie[movie][0] not in pair["in0"]  # its own rating left out
    with pytest.raises(ValueError, match="shared needs a history"):
        ml.data.Tokens(movielens.users, movielens.movies, side=True, shared=True)


def test_stack_folds_deal_every_rating_to_one_fold_evenly(ml):
    args = argparse.Namespace(seed=3, stack_folds=5)
    folds = ml.stack.stack_folds(103, args)
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 21, 21, 21]
    assert np.array_equal(folds, ml.stack.stack_folds(103, args))  # the same folds for every member
    assert not np.array_equal(folds, ml.stack.stack_folds(103, argparse.Namespace(seed=4, stack_folds=5)))


def test_rating_statistics_read_only_the_ratings_given(ml):
    train = ml.data.Ratings(np.array([1, 1, 2]), np.array([5, 6, 5]), np.array([4, 2, 5]), np.zeros(3, np.int64))
    stats = ml.baselines.rating_statistics(train, np.array([1, 3]), np.array([5, 7]))
    np.testing.assert_allclose(stats[0], [3.0, 0.5, np.log1p(2), (9 + 17.5) / 7, (2 + 2.75) / 7, np.log1p(2)])
    np.testing.assert_allclose(stats[1], [0.0, 0.0, 0.0, 3.5, 0.55, 0.0])  # a user and a movie it never saw


@pytest.mark.parametrize("folds", ["1", "-2"])
def test_a_stack_needs_two_folds_or_none(ml, folds, capsys):
    with pytest.raises(SystemExit):
        ml.movielens.main(["--stack-folds", folds])
    assert f"--stack-folds must be 0 (no stack) or at least 2; got {folds}" in capsys.readouterr().err
