"""JSON Lines pairs to packed arrays, validated before anything trains.

A dataset is held as two :class:`Side` objects, each one flat token array plus ``int64`` offsets,
and one label array. Tokens are stored in the narrowest type that holds every id read: ``uint16``
for ids below 65,536 (any vocabulary up to that size), else ``int32``; batches are widened to
``int64`` only when they are handed to the model. Ten million pairs of twenty tokens a side take
about 1 GB this way, against tens of GB as Python dicts. Token id 0 is an ordinary token; sequence
ends come from the offsets, never from a padding id.

Every record is checked while it is read (:mod:`object2vec.data.jsonl` reads files into type-checked
arrays; the schema checks here are vectorised over them), and all problems are reported together
(the first 20 in file order, and the total), each a :class:`~object2vec.errors.Problem` read as
``file:line: field: what is wrong; what was expected`` (``records[i]`` for records given in Python).
Nothing is trained on a file that has a problem.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Union, cast

import numpy as np

from ..errors import DataError, Line, Location, Problem, Problems
from ..files import cache_dir
from ..hyperparameters import Hyperparameters
from .cache import read_file
from .jsonl import LineOf, Parser, Raw, byte_range, list_files, narrow, open_lines

__all__ = ["PairData", "Schema", "Side", "cache_dir", "list_files", "open_lines", "read_pairs"]

MAX_SHOWN = 20

PathLike = str | os.PathLike
Records = Sequence[Mapping[str, Any]]
Source = Union[PathLike, Records, "PairData"]


@dataclass(frozen=True)
class Side:
    """One side (in0 or in1) of many pairs: ``tokens[offsets[i]:offsets[i+1]]`` is sequence ``i``,
    and ``weights`` the same slice of its per-token weights (read only for a weighted-mean pooling)."""

    tokens: np.ndarray  # (total_tokens,) uint16 or int32 (the narrowest that holds every id)
    offsets: np.ndarray  # (n + 1,) int64, offsets[0] == 0
    weights: np.ndarray | None = None  # (total_tokens,) float32, or None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat tokens and lengths of sequences ``idx``, gathered without a Python loop."""
        positions, lengths = self.positions(idx)
        return self.tokens[positions], lengths

    def take_weights(self, idx: np.ndarray) -> np.ndarray | None:
        """Flat per-token weights of sequences ``idx`` (as :meth:`take` gathers their tokens), or None."""
        return None if self.weights is None else self.weights[self.positions(idx)[0]]

    def positions(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the tokens of sequences ``idx`` lie in ``tokens``, in order, and their lengths."""
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        ends = np.cumsum(lengths)
        # position j of the output reads tokens[starts[k] + (j - ends[k-1])] for its sequence k
        shift = np.repeat(starts - (ends - lengths), lengths)
        return shift + np.arange(ends[-1] if len(ends) else 0), lengths

    @classmethod
    def from_lists(cls, seqs: Iterable[Sequence[int]], weights: Iterable[Sequence[float]] | None = None) -> Side:
        seqs = list(seqs)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.asarray([t for s in seqs for t in s], dtype=np.int64).reshape(-1)
        flat_weights = None if weights is None else np.asarray([w for s in weights for w in s], dtype=np.float32).reshape(-1)
        return cls(narrow(flat), offsets, flat_weights)

    @property
    def nbytes(self) -> int:
        return self.tokens.nbytes + self.offsets.nbytes + (0 if self.weights is None else self.weights.nbytes)

    @cached_property
    def keys(self) -> np.ndarray:
        """One int64 key per sequence (:func:`sequence_keys`), computed on first use and kept."""
        return sequence_keys(self.tokens, self.offsets)


_KEY_PRIMES = (2_147_483_647, 2_147_483_629)  # two primes below 2**31: each term (token + 1) * a stays below 2**53
_KEY_CHUNK = 1 << 22  # tokens hashed at once: bounded temporaries on large data


def sequence_keys(tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A 62-bit key per sequence: equal sequences get equal keys, and two different ones the same key
    with probability about 2**-61 (two polynomial hashes modulo primes, position-dependent factors).

    Contrastive objectives compare keys to tell a repeated item in a batch from a true negative, and
    to find the label-0 pairs of an in0 (:mod:`object2vec.data.contrastive`).

    >>> side = Side.from_lists([[3, 1], [1, 3], [3, 1]])
    >>> k = sequence_keys(side.tokens, side.offsets)
    >>> bool(k[0] == k[2]), bool(k[0] == k[1])
    (True, False)
    """
    n = len(offsets) - 1
    keys = np.zeros(n, dtype=np.int64)
    if n == 0:
        return keys
    longest = int(np.diff(offsets).max())
    rng = np.random.default_rng(0x0B2EC)  # fixed: keys must agree across processes and runs
    factors = [rng.integers(1, p, size=longest, dtype=np.int64) for p in _KEY_PRIMES]
    start = 0
    while start < n:  # whole sequences, about _KEY_CHUNK tokens at a time
        stop = max(start + 1, int(np.searchsorted(offsets, offsets[start] + _KEY_CHUNK, side="right")) - 1)
        stop = min(stop, n)
        lo, hi = int(offsets[start]), int(offsets[stop])
        lengths = np.diff(offsets[start : stop + 1])
        position = np.arange(hi - lo) - np.repeat(offsets[start:stop] - lo, lengths)
        token = tokens[lo:hi].astype(np.int64) + 1
        bounds = offsets[start:stop] - lo
        parts = [np.add.reduceat(token * a[position] % p, bounds) % p for a, p in zip(factors, _KEY_PRIMES, strict=True)]
        keys[start:stop] = parts[0] * _KEY_PRIMES[1] + parts[1]
        start = stop
    return keys


@dataclass(frozen=True)
class PairData:
    """Pairs as packed arrays; ``labels`` is float32 (regression), int8 (classes: at most 30) or ``None``."""

    in0: Side
    in1: Side
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.in0)

    @property
    def nbytes(self) -> int:
        return self.in0.nbytes + self.in1.nbytes + (0 if self.labels is None else self.labels.nbytes)


@dataclass(frozen=True)
class Schema:
    """What a valid record looks like for one model."""

    vocab_size: tuple[int, int]
    max_seq_len: tuple[int, int]
    regression: bool
    num_classes: int
    weighted: tuple[bool, bool] = (False, False)  # whether each side needs per-token weights (``in0_weights``)

    @classmethod
    def from_hyperparameters(cls, hp: Hyperparameters) -> Schema:
        hp = hp.resolve()
        return cls(
            vocab_size=(hp.encoder(0).vocab_size, hp.encoder(1).vocab_size),
            max_seq_len=(hp.encoder(0).max_seq_len, hp.encoder(1).max_seq_len),
            regression=hp.is_regression,
            num_classes=hp.num_classes,
            weighted=(hp.encoder(0).pooling == "weighted_mean", hp.encoder(1).pooling == "weighted_mean"),
        )

    def weighted_sides(self, sides: tuple[str, ...]) -> tuple[str, ...]:
        """Which of ``sides`` carry per-token weights."""
        return tuple(side for side in sides if self.weighted[_side_index(side)])

    def expected_label(self) -> str:
        if self.regression:
            return "a finite number"
        return f"an integer class in [0, {self.num_classes})"


# --------------------------------------------------------------------------------------------------
# Schema checks, vectorised over the arrays of :mod:`object2vec.data.jsonl`


def _check(raw: Raw, schema: Schema, problems: Problems, locate: Callable[[int], Location]) -> dict[str, Any]:
    """Schema checks and truncation, vectorised; returns the final arrays (valid only without problems)."""
    out: dict[str, Any] = {}
    bad_records: set[int] = set()
    for side, flat in raw.tokens.items():
        index = _side_index(side)
        vocab, limit = schema.vocab_size[index], schema.max_seq_len[index]
        lens = raw.lengths[side]
        weights = raw.weights.get(side)
        if len(flat) and (flat.min() < 0 or flat.max() >= vocab):
            _report_tokens(flat, lens, vocab, side, raw.where, problems, locate, bad_records)
        if len(lens) and lens.max() > limit:  # truncate: keep the first `limit` tokens of each sequence
            starts = np.repeat(np.cumsum(lens) - lens, lens)
            keep = (np.arange(len(flat)) - starts) < limit
            flat, lens = flat[keep], np.minimum(lens, limit)
            if weights is not None:
                weights = weights[keep]
                _report_weightless(weights, lens, limit, side, raw.where, problems, locate)
        out[side] = (flat, lens, weights)
    if raw.labels is not None:
        out["labels"] = _check_labels(raw.labels, schema, raw.where, problems, locate)
    return out


def _report_tokens(
    flat: np.ndarray,
    lens: np.ndarray,
    vocab: int,
    side: str,
    where: np.ndarray,
    problems: Problems,
    locate: Callable[[int], Location],
    bad: set[int],
) -> None:
    ends = np.cumsum(lens)
    name = f"enc{_side_index(side)}_vocab_size"
    reported = set()
    for pos in np.flatnonzero((flat < 0) | (flat >= vocab)):
        rec = int(np.searchsorted(ends, pos, side="right"))
        if rec in reported:
            continue
        reported.add(rec)
        bad.add(rec)
        k, value = int(pos - (ends[rec] - lens[rec])), int(flat[pos])
        at, expected, advice = locate(int(where[rec])), f"a token id in [0, {vocab})", f"raise {name} or re-index"
        if value == -(2**63):
            problems.add(Problem(at, side, f"token {k} does not fit in 64 bits", expected, advice))
        elif value < 0:  # not advice to whoever trains: a negative id is wrong for every model
            problems.add(Problem(at, side, f"token {k} is {value}", f"{expected} (ids are never negative)"))
        else:
            problems.add(Problem(at, side, f"token {k} is {value}, not less than {name}={vocab}", expected, advice))


def _report_weightless(
    weights: np.ndarray,
    lens: np.ndarray,
    limit: int,
    side: str,
    where: np.ndarray,
    problems: Problems,
    locate: Callable[[int], Location],
) -> None:
    """Sequences whose kept (first ``limit``) tokens all weigh 0: a weighted mean of nothing."""
    if not len(weights):
        return
    for rec in np.flatnonzero(np.add.reduceat(weights, np.cumsum(lens) - lens) <= 0)[: MAX_SHOWN + 1].tolist():
        problems.add(
            Problem(
                locate(int(where[rec])), f"{side}_weights", f"the first {limit} weights (max_seq_len) are all 0",
                "a positive weight among the tokens kept", f"or a larger enc{_side_index(side)}_max_seq_len",
            )
        )  # fmt: skip


def _check_labels(
    labels: np.ndarray, schema: Schema, where: np.ndarray, problems: Problems, locate: Callable[[int], Location]
) -> np.ndarray:
    expected = schema.expected_label()
    finite = np.isfinite(labels)
    bad = ~finite
    if not schema.regression:
        bad |= (labels != np.floor(labels)) | (labels < 0) | (labels >= schema.num_classes)
    for i in np.flatnonzero(bad)[: MAX_SHOWN + 1].tolist():
        value = labels[i]
        shown = repr(int(value)) if finite[i] and value == int(value) else repr(float(value))
        at = locate(int(where[i]))
        if not finite[i]:
            problems.add(Problem(at, "label", f"{shown} is not a finite number", expected))
        else:
            problems.add(Problem(at, "label", f"{shown} is out of range", expected, "raise num_classes or re-label"))
    problems.count += max(int(bad.sum()) - (MAX_SHOWN + 1), 0)
    if bad.any():
        labels = np.where(bad, 0.0, labels)  # the read fails anyway; avoid casting NaN to int
    return labels.astype(np.float32) if schema.regression else labels.astype(np.int8)  # 1 byte a pair: num_classes <= 30


def _side_index(side: str) -> int:
    return 0 if side == "in0" else 1


# --------------------------------------------------------------------------------------------------
# Sources: files (through object2vec.data.jsonl and its binary cache) and in-memory records


def read_pairs(
    source: Source | Iterable[Source],
    schema: Schema,
    *,
    require_label: bool = True,
    sides: tuple[str, ...] = ("in0", "in1"),
    cache: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> PairData:
    """Read and validate pairs from files, directories, ``.gz`` files or in-memory records.

    Args:
        source: a path (file, ``.jsonl.gz`` or directory), a list of record dicts, a
            :class:`PairData`, or a list of paths.
        schema: vocabulary sizes, sequence limits and label kind to check against.
        require_label: training and evaluation need labels; prediction does not.
        sides: which of in0/in1 each record must carry.
        cache: keep a binary copy of each parsed file under :func:`cache_dir`, keyed by a hash of
            the file's bytes, so the next read skips JSON parsing (a changed file is parsed again;
            a damaged or altered copy is detected, and replaced: :mod:`object2vec.data.cache`).
            Schema checks run on every read, so one cache serves every model.
        shard: ``(rank, world_size)``: read only this rank's share: a byte range of each file
            (every ``world_size``-th line of a gzip file, every ``world_size``-th record in memory).

    Tokens are stored as ``uint16`` when every id is below 65,536, else ``int32``.

    Returns:
        The pairs as packed arrays, sequences truncated to ``max_seq_len``.

    Raises:
        DataError: listing the first 20 problems in file order (``file:line: field: ...``) and their
            count; ``DataError.found`` holds them as :class:`~object2vec.errors.Problem` values whose
            location is a ``Line`` or, for records, the record's index.

    >>> schema = Schema((10, 10), (5, 5), regression=False, num_classes=2)
    >>> data = read_pairs([{"label": 1, "in0": [0, 3], "in1": [9]}], schema)
    >>> len(data), data.in0[0].tolist(), data.labels.tolist()
    (1, [0, 3], [1])
    """
    if isinstance(source, PairData):
        return source
    problems = Problems()
    parts: list[tuple[Raw, Callable[[int], Location]]] = []
    locate: Callable[[int], Location]  # where record i is, for messages
    if _is_records(source):
        locate = int  # problems name records[i] (or what the caller calls them)
        parser = Parser(sides, require_label, problems, locate, schema.expected_label(), weights=schema.weighted_sides(sides))
        recs = list(source)[shard[0] :: shard[1]]  # type: ignore[arg-type]
        parts.append((parser.block(recs, np.arange(shard[0], shard[0] + shard[1] * len(recs), shard[1], dtype=np.int64)), locate))
    else:
        # records and PairData are handled above: what is left is a path or a list of paths
        paths = cast(list[PathLike], [source] if isinstance(source, (str, os.PathLike)) else list(source))
        for path in paths:
            for file in list_files(path):
                problems.expect(file)
                locate = LineOf(file) if byte_range(file, shard) else functools.partial(Line, str(file))
                parser = Parser(
                    sides, require_label, problems, locate, schema.expected_label(), from_json=True,
                    weights=schema.weighted_sides(sides),
                )  # fmt: skip
                parts.append((read_file(file, parser, cache, shard), locate))
    checked = [_check(raw, schema, problems, locate) for raw, locate in parts]
    del parts  # the raw labels and line numbers are not needed any more: free them before assembling
    if problems.count:
        raise DataError(problems.shown, problems.count)
    data = _assemble(checked, sides, require_label, schema)
    if len(data) == 0:
        raise DataError([Problem(_describe(source), None, "no records", "at least one JSON object per line")])
    return data


def _assemble(checked: list[dict[str, Any]], sides: tuple[str, ...], require_label: bool, schema: Schema) -> PairData:
    n = sum(len(c[sides[0]][1]) for c in checked)
    built = []
    for side in ("in0", "in1"):
        if side not in sides:  # an embedding request: the other side is n empty sequences
            built.append(Side(np.zeros(0, np.uint16), np.zeros(n + 1, np.int64)))
            continue
        tokens = [c[side][0] for c in checked]
        lengths = np.concatenate([c[side][1] for c in checked]) if checked else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        weights = [c[side][2] for c in checked if c[side][2] is not None]
        joined = None if not weights else weights[0] if len(weights) == 1 else np.concatenate(weights)
        built.append(Side(tokens[0] if len(tokens) == 1 else np.concatenate(tokens), offsets, joined))
    labels = None
    if require_label:
        dtype = np.float32 if schema.regression else np.int8
        labels = np.concatenate([c["labels"] for c in checked]).astype(dtype, copy=False) if checked else np.zeros(0, dtype)
    return PairData(built[0], built[1], labels)


def _is_records(source: Any) -> bool:
    return isinstance(source, (list, tuple)) and (len(source) == 0 or isinstance(source[0], Mapping))


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "records" if _is_records(source) else "input"
