"""MovieLens 100k for examples/movielens.py: the files, the ratings, and the token sequences Object2Vec reads.

The data is read where it is or downloaded once from GroupLens into a cache folder; MovieLens may
not be redistributed, so none of it belongs in this repository.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
FILES = ("ua.base", "ua.test", "u.item", "u.user")
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def default_data_dir() -> Path:
    return Path(os.environ.get("OBJECT2VEC_CACHE_DIR") or Path.home() / ".cache" / "object2vec") / "ml-100k"


def download(target: Path) -> Path:
    """Fetch the official GroupLens zip once and unpack it to ``target`` (MovieLens may not be redistributed)."""
    if all((target / f).is_file() for f in FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = target.parent / "ml-100k.zip"
    print(f"downloading {URL} (5 MB) to {archive}", flush=True)
    with urllib.request.urlopen(URL, timeout=60) as response, open(archive, "wb") as fh:
        shutil.copyfileobj(response, fh)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(target.parent)  # the zip holds one folder, ml-100k/
    return target


@dataclass
class Ratings:
    """One ratings file: parallel arrays of user id, movie id, rating (1-5) and timestamp."""

    user: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, idx: np.ndarray) -> Ratings:
        return Ratings(self.user[idx], self.movie[idx], self.rating[idx], self.time[idx])


def read_ratings(path: Path) -> Ratings:
    """``user<TAB>movie<TAB>rating<TAB>timestamp`` lines (u.data, ua.base, ...)."""
    table = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    return Ratings(table[:, 0], table[:, 1], table[:, 2].astype(np.float32), table[:, 3])


@dataclass
class Movies:
    """u.item, indexed by movie id (row 0 unused): title, release year (0 if unknown), 19 genre flags."""

    title: list[str]
    year: np.ndarray
    genres: np.ndarray  # (n + 1, 19) bool

    def genre_names(self, movie: int) -> list[str]:
        return [g for g, on in zip(GENRES, self.genres[movie], strict=True) if on]


def read_movies(path: Path) -> Movies:
    """``id|title|release date|video date|url|19 genre flags``, latin-1 encoded."""
    rows = [line.split("|") for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
    n = max(int(r[0]) for r in rows)
    title, year, genres = [""] * (n + 1), np.zeros(n + 1, np.int64), np.zeros((n + 1, len(GENRES)), bool)
    for r in rows:
        i = int(r[0])
        title[i] = r[1]
        year[i] = int(r[2][-4:]) if r[2][-4:].isdigit() else 0
        genres[i] = [flag == "1" for flag in r[5 : 5 + len(GENRES)]]
    return Movies(title, year, genres)


@dataclass
class Users:
    """u.user, indexed by user id (row 0 unused)."""

    age: np.ndarray
    gender: list[str]
    occupation: list[str]


def read_users(path: Path) -> Users:
    """``id|age|gender|occupation|zip code``."""
    rows = [line.split("|") for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
    n = max(int(r[0]) for r in rows)
    age, gender, occupation = np.zeros(n + 1, np.int64), [""] * (n + 1), [""] * (n + 1)
    for r in rows:
        i = int(r[0])
        age[i], gender[i], occupation[i] = int(r[1]), r[2], r[3]
    return Users(age, gender, occupation)


@dataclass
class MovieLens:
    """The files of one ml-100k folder."""

    folder: Path
    users: Users
    movies: Movies

    @classmethod
    def open(cls, folder: Path) -> MovieLens:
        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing:
            raise SystemExit(
                f"error: {folder} lacks {', '.join(missing)}; expected the unpacked ml-100k folder (or omit --data-dir to download it)"
            )
        return cls(folder, read_users(folder / "u.user"), read_movies(folder / "u.item"))

    def split(self, name: str) -> tuple[Ratings, Ratings]:
        """(``name``.base, ``name``.test) ratings, e.g. ``ua`` or ``u1``."""
        return read_ratings(self.folder / f"{name}.base"), read_ratings(self.folder / f"{name}.test")


def find_title(movies: Movies, title: str) -> int:
    exact = [i for i, t in enumerate(movies.title) if t.lower() == title.lower()]
    found = exact or [i for i, t in enumerate(movies.title) if title.lower() in t.lower()]
    if not found:
        raise SystemExit(f"error: no movie title contains {title!r}; titles look like 'Terminator, The (1984)'")
    return found[0]


def primary_genre(movies: Movies, movie: int, counts: np.ndarray) -> str:
    """The movie's rarest genre (Action + Sci-Fi -> Sci-Fi): the most telling one; Drama only when alone."""
    own = np.flatnonzero(movies.genres[movie])
    return GENRES[own[np.argmin(counts[own])]] if len(own) else "unknown"


# --------------------------------------------------------------------------------------------------
# Token sequences


AGE_EDGES = (18, 25, 35, 45, 50, 56)  # the MovieLens 1M age groups
RATING_GROUPS = (2.5, 3.5)  # history="rating": 1-2, 3, 4-5
HISTORY_KINDS = ("rated", "rating")
YEAR_EDGES = (1930, 1940, 1950, 1960, 1970, 1980, 1985, 1990, 1993, 1995, 1996, 1997)


class Tokens:
    """Token ids of each user (in0) and each movie (in1).

    Plain mode is the AWS notebook's: in0 = [user id], in1 = [movie id]. With ``side`` each side also
    gets tokens of what u.user and u.item say: in0 = [user, age group, gender, occupation] and
    in1 = [movie, release-year group, one token per genre]; ``pooled_embedding`` averages them, so a
    user or movie with few ratings borrows from others of its kind. With ``history`` (the training
    ratings) in0 also holds one token per movie the user rated: ``history="rated"`` says only that
    (the implicit feedback of SVD++), ``history="rating"`` also how (one token per movie and rating
    group 1-2, 3, 4-5). A training pair's in0 leaves out the token of its own movie, so the label
    never leaks into the input and training sees what a new pair will see: the user's *other*
    ratings. Feature tokens are numbered after the ids, so ids keep their value.

    With ``shared`` (and ``history``) both sides number their tokens in one vocabulary, for a model
    whose towers share one token table (``tied_token_embedding_weight``): a movie's own token in in1
    is the history token "rated it 4-5" (``history="rating"``; "rated it" with ``"rated"``), and its
    year and genre tokens follow in0's. A movie is then the same vector whether it is the candidate
    or in a user's history, so users who liked similar movies land near the movies they have in
    common; in1's first token is no longer the movie id.
    """

    def __init__(
        self,
        users: Users,
        movies: Movies,
        *,
        side: bool = False,
        history: Ratings | None = None,
        kind: str = "rated",
        raters: int | None = None,
        shared: bool = False,
        seed: int = 0,
    ):
        n_users, n_movies = len(users.age), len(movies.title)  # ids 1..n-1; row 0 unused, as in the notebook
        self.user: list[list[int]] = [[u] for u in range(n_users)]
        self.movie: list[list[int]] = [[m] for m in range(n_movies)]
        self.history: list[dict[int, int]] = [{} for _ in range(n_users)]  # user -> {movie: its history token}
        self.raters: list[dict[int, int]] = [{} for _ in range(n_movies)]  # movie -> {user: its rater token}
        vocab0, vocab1 = n_users, n_movies
        if side:
            occupations = sorted(set(users.occupation[1:]))
            genders = sorted(set(users.gender[1:]))
            age_base, gender_base = vocab0, vocab0 + len(AGE_EDGES) + 1
            occ_base = gender_base + len(genders)
            vocab0 = occ_base + len(occupations)
            for u in range(1, n_users):
                self.user[u] += [
                    age_base + int(np.searchsorted(AGE_EDGES, users.age[u], side="right")),
                    gender_base + genders.index(users.gender[u]),
                    occ_base + occupations.index(users.occupation[u]),
                ]
            year_base, genre_base = vocab1, vocab1 + len(YEAR_EDGES) + 2  # + 1 group for "unknown year"
            vocab1 = genre_base + len(GENRES)
            for m in range(1, n_movies):
                year = movies.year[m]
                group = len(YEAR_EDGES) + 1 if year == 0 else int(np.searchsorted(YEAR_EDGES, year, side="right"))
                self.movie[m] += [year_base + group, *(genre_base + np.flatnonzero(movies.genres[m])).tolist()]
        if history is not None:
            if kind not in HISTORY_KINDS:
                raise ValueError(f"kind must be one of {', '.join(HISTORY_KINDS)}; got {kind!r}")
            groups = (
                np.searchsorted(RATING_GROUPS, history.rating, side="right") if kind == "rating" else np.zeros(len(history), int)
            )
            for u, m, g in zip(history.user.tolist(), history.movie.tolist(), groups.tolist(), strict=True):
                self.history[u][m] = vocab0 + g * n_movies + m
            for u in range(1, n_users):
                self.user[u] += sorted(self.history[u].values())
            vocab0 += n_movies * (len(RATING_GROUPS) + 1 if kind == "rating" else 1)
            if raters is not None:  # the item side, symmetric: one token per user who rated the movie (and how)
                rng = np.random.default_rng(seed)
                by_movie: list[list[tuple[int, int]]] = [[] for _ in range(n_movies)]
                for u, m, g in zip(history.user.tolist(), history.movie.tolist(), groups.tolist(), strict=True):
                    by_movie[m].append((u, vocab1 + g * n_users + u))
                for m, rows in enumerate(by_movie):
                    if len(rows) > raters:  # a popular movie keeps a fixed random sample of its raters
                        rows = [rows[i] for i in sorted(rng.choice(len(rows), raters, replace=False).tolist())]
                    self.raters[m] = dict(rows)
                    self.movie[m] += sorted(self.raters[m].values())
                vocab1 += n_users * (len(RATING_GROUPS) + 1 if kind == "rating" else 1)
        if shared:
            if history is None or raters is not None:
                raise ValueError("shared needs a history and no raters (in1 then holds only movie tokens)")
            liked = vocab0 - n_movies  # the history tokens of the top rating group start here
            self.movie = [[liked + t if t < n_movies else vocab0 + t - n_movies for t in seq] for seq in self.movie]
            vocab0 = vocab1 = vocab0 + vocab1 - n_movies
        self.vocab0, self.vocab1 = vocab0, vocab1

    def hyperparameters(self) -> dict[str, int]:
        return {
            "enc0_vocab_size": self.vocab0,
            "enc1_vocab_size": self.vocab1,
            "enc0_max_seq_len": max(len(t) for t in self.user),
            "enc1_max_seq_len": max(len(t) for t in self.movie),
        }

    def in0(self, user: int, movie: int) -> list[int]:
        """The user's tokens for a pair with ``movie``: without that movie's own history token."""
        own = self.history[user].get(movie)
        if own is None:
            return self.user[user]
        return [t for t in self.user[user] if t != own]  # the user id token stays, so never empty

    def in1(self, user: int, movie: int) -> list[int]:
        """The movie's tokens for a pair with ``user``: without that user's own rater token."""
        own = self.raters[movie].get(user)
        if own is None:
            return self.movie[movie]
        return [t for t in self.movie[movie] if t != own]

    def pairs(self, ratings: Ratings, label: str = "rating") -> list[dict[str, Any]]:
        """Object2Vec records; ``label`` is ``rating`` (regression) or ``liked`` (rating > 3, as class 0/1)."""
        labels = ratings.rating.tolist() if label == "rating" else (ratings.rating > 3).astype(int).tolist()
        return [
            {"label": y, "in0": self.in0(u, m), "in1": self.in1(u, m)}
            for u, m, y in zip(ratings.user.tolist(), ratings.movie.tolist(), labels, strict=True)
        ]


def validation_split(ratings: Ratings, fraction: float, seed: int) -> tuple[Ratings, Ratings]:
    """A random ``fraction`` of the ratings for early stopping; the test file is never used to choose."""
    rng = np.random.default_rng(seed)
    held = rng.random(len(ratings)) < fraction
    return ratings.take(np.flatnonzero(~held)), ratings.take(np.flatnonzero(held))
