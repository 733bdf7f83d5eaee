"""JSON Lines pairs to packed arrays, validated before anything trains.

A dataset is held as two :class:`Side` objects, each one flat token array plus ``int64`` offsets,
and one label array. Tokens are stored in the narrowest type that holds every id read: ``uint16``
for ids below 65,536 (any vocabulary up to that size), else ``int32``; batches are widened to
``int64`` only when they are handed to the model. Ten million pairs of twenty tokens a side take
about 1 GB this way, against tens of GB as Python dicts. Token id 0 is an ordinary token; sequence
ends come from the offsets, never from a padding id.

Every record is checked while it is read, and all problems are reported together (the first 20
and the total), each as ``file:line: field: what is wrong; what was expected``. Nothing is trained
on a file that has a problem.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import hashlib
import json
import math
import os
import shutil
import tempfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np
import orjson

from . import arrow_lines
from .config import Hyperparameters
from .errors import DataError, Problems

MAX_SHOWN = 20
_BLOCK_BYTES = 4 << 20  # lines parsed per block: bounded memory, enough blocks to keep every worker busy
_AHEAD = 2  # blocks parsed at once on worker threads (pyarrow and numpy release the GIL)
CACHE_VERSION = 2  # 2: tokens stored as uint16 where every id fits

PathLike = str | os.PathLike
Records = Sequence[Mapping[str, Any]]
Source = Union[PathLike, Records, "PairData"]


@dataclass(frozen=True)
class Side:
    """One side (in0 or in1) of many pairs: ``tokens[offsets[i]:offsets[i+1]]`` is sequence ``i``."""

    tokens: np.ndarray  # (total_tokens,) uint16 or int32 (the narrowest that holds every id)
    offsets: np.ndarray  # (n + 1,) int64, offsets[0] == 0

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat tokens and lengths of sequences ``idx``, gathered without a Python loop."""
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        ends = np.cumsum(lengths)
        # position j of the output reads tokens[starts[k] + (j - ends[k-1])] for its sequence k
        shift = np.repeat(starts - (ends - lengths), lengths)
        return self.tokens[shift + np.arange(ends[-1] if len(ends) else 0)], lengths

    @classmethod
    def from_lists(cls, seqs: Iterable[Sequence[int]]) -> Side:
        seqs = list(seqs)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.asarray([t for s in seqs for t in s], dtype=np.int64).reshape(-1)
        return cls(_narrow(flat), offsets)

    @property
    def nbytes(self) -> int:
        return self.tokens.nbytes + self.offsets.nbytes


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

    @classmethod
    def from_hyperparameters(cls, hp: Hyperparameters) -> Schema:
        hp = hp.resolve()
        return cls(
            vocab_size=(hp.enc0_vocab_size, hp.enc1_vocab_size),
            max_seq_len=(hp.enc0_max_seq_len, hp.enc1_max_seq_len),
            regression=hp.is_regression,
            num_classes=hp.num_classes,
        )

    def expected_label(self) -> str:
        if self.regression:
            return "a finite number"
        return f"an integer class in [0, {self.num_classes})"


# --------------------------------------------------------------------------------------------------
# Sources


def list_files(path: PathLike) -> list[Path]:
    """A file, or every visible file of a directory (a SageMaker channel), sorted by name."""
    p = Path(path)
    if p.is_dir():
        files = sorted(
            f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
        )
        if not files:
            raise DataError([f"{p}: the directory holds no data files; expected JSON Lines files (.jsonl or .jsonl.gz)"])
        return files
    if not p.exists():
        raise DataError([f"{p}: no such file or directory"])
    return [p]


def open_lines(path: Path) -> BinaryIO:
    """Open a JSON Lines file for binary line reading; gzip is detected by its magic bytes."""
    fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if fh.peek(2)[:2] == b"\x1f\x8b":
        fh.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return fh


def _decode(raw: bytes) -> Any:
    """orjson for speed; the stdlib parser only to name a problem orjson refuses (NaN, Infinity)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as fast_error:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(str(fast_error)) from None


# --------------------------------------------------------------------------------------------------
# Reading: parse and type-check (schema-free, cacheable), then check against a schema (vectorised)

_MISSING = object()
_INT32 = np.iinfo(np.int32)
_UINT16 = np.iinfo(np.uint16)


@dataclass
class _Raw:
    """Type-checked records before any schema check: untruncated tokens and raw labels.

    ``where[i]`` locates record ``i`` (a line number, or an index into in-memory records) for
    messages. This is what the binary cache stores: it does not depend on vocabulary sizes,
    sequence limits or the label kind, so one cache serves every model trained on the file.
    """

    tokens: dict[str, np.ndarray]  # side -> flat uint16 or int32 (int64 if some id does not fit; never cached)
    lengths: dict[str, np.ndarray]  # side -> int64
    labels: np.ndarray | None  # float64
    where: np.ndarray  # int64 line numbers (files) or record indices


class _Parser:
    """Turns decoded records into :class:`_Raw` blocks.

    The fast path handles a block of well-formed records with a few C-level passes (``map``,
    ``chain``, ``np.fromiter``) and no per-token Python; any irregularity sends that block to the
    slow path, which checks record by record and words each problem. ``from_json`` says that the
    records were decoded from JSON text (so they hold only JSON types), which lets the fast path
    check token types by re-serialising instead of calling ``type`` on every token.
    """

    def __init__(
        self,
        sides: tuple[str, ...],
        require_label: bool,
        problems: Problems,
        locate: Callable[[int], str],
        expected_label: str,
        from_json: bool = False,
    ):
        self.sides, self.require_label, self.problems, self.locate = sides, require_label, problems, locate
        self.expected_label, self.from_json = expected_label, from_json

    def block(self, recs: list[Any], where: np.ndarray) -> _Raw:
        return self._fast(recs, where) or self._slow(recs, where)

    def _fast(self, recs: list[Any], where: np.ndarray) -> _Raw | None:
        try:
            seqs = {side: list(map(itemgetter(side), recs)) for side in self.sides}
            labels = list(map(itemgetter("label"), recs)) if self.require_label else None
        except (KeyError, TypeError, IndexError):
            return None
        tokens, lengths = {}, {}
        for side, lists in seqs.items():
            if set(map(type, lists)) != {list}:
                return None
            lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
            if len(lens) and lens.min() == 0:
                return None
            if not (_json_ints(lists) if self.from_json else set(map(type, chain.from_iterable(lists))) == {int}):
                return None
            try:
                flat = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=int(lens.sum()))
            except OverflowError:
                return None
            tokens[side], lengths[side] = _narrow(flat), lens
        label_array = None
        if labels is not None:
            if not set(map(type, labels)) <= {int, float}:
                return None
            try:
                label_array = np.array(labels, dtype=np.float64)
            except OverflowError:
                return None
        return _Raw(tokens, lengths, label_array, where)

    def _slow(self, recs: list[Any], where: np.ndarray) -> _Raw:
        flat: dict[str, list[int]] = {s: [] for s in self.sides}
        lens: dict[str, list[int]] = {s: [] for s in self.sides}
        labels: list[float] = []
        kept: list[int] = []
        for i, rec in enumerate(recs):
            at = self.locate(int(where[i]))
            if isinstance(rec, ValueError):
                self.problems.add(f"{at}: malformed JSON ({rec}); expected one JSON object per line")
                continue
            if type(rec) is not dict:
                self.problems.add(
                    f'{at}: record is {_jtype(rec)}; expected a JSON object like {{"label": 1, "in0": [4, 2], "in1": [7]}}'
                )
                continue
            ok = all([self._check_sequence(rec.get(side), side, at) for side in self.sides])
            label = rec.get("label", _MISSING) if self.require_label else 0.0
            if label is _MISSING:
                self.problems.add(f"{at}: label: missing; expected {self.expected_label}")
                ok = False
            elif type(label) not in (int, float):
                self.problems.add(f"{at}: label: got {_show(label)} ({_jtype(label)}); expected {self.expected_label}")
                ok = False
            elif abs(label) > 1e300 and math.isfinite(label):
                label = float("inf")
            if not ok:
                continue
            for side in self.sides:
                flat[side].extend(rec[side])
                lens[side].append(len(rec[side]))
            labels.append(float(label))
            kept.append(i)
        tokens = {}
        for side in self.sides:
            values = flat[side]
            try:
                tokens[side] = _narrow(np.asarray(values, dtype=np.int64).reshape(-1))
            except OverflowError:  # an id beyond int64 is out of every vocabulary: name it now
                tokens[side] = np.asarray([v if -(2**63) <= v < 2**63 else -(2**63) for v in values], dtype=np.int64)
        return _Raw(
            tokens,
            {side: np.asarray(lens[side], dtype=np.int64) for side in self.sides},
            np.asarray(labels, dtype=np.float64) if self.require_label else None,
            where[np.asarray(kept, dtype=np.int64)] if kept else where[:0],
        )

    def _check_sequence(self, seq: Any, side: str, at: str) -> bool:
        if seq is None:
            self.problems.add(f"{at}: {side}: missing; expected a non-empty list of integer token ids")
        elif type(seq) is not list:
            self.problems.add(f"{at}: {side}: got {_show(seq)} ({_jtype(seq)}); expected a non-empty list of integer token ids")
        elif not seq:
            self.problems.add(f"{at}: {side}: empty list; expected at least one token id")
        elif set(map(type, seq)) != {int}:
            k, bad = next((k, t) for k, t in enumerate(seq) if type(t) is not int)
            self.problems.add(f"{at}: {side}: token {k} is {_show(bad)} ({_jtype(bad)}); expected an integer token id")
        else:
            return True
        return False


def _json_ints(lists: list[list[Any]]) -> bool:
    """Whether every element of ``lists`` (values decoded from JSON) is an integer.

    One ``orjson.dumps`` instead of a ``type`` call per token: orjson writes every float with a ``.``
    or an exponent ``e``, booleans as ``true``/``false``, NaN and infinities as ``null``, strings in
    quotes and objects in braces, and a nested list adds a ``[``. An integer beyond 64 bits cannot be
    written at all.
    """
    try:
        text = orjson.dumps(lists)
    except orjson.JSONEncodeError:
        return False
    return text.count(b"[") == len(lists) + 1 and not any(mark in text for mark in (b".", b"e", b"n", b'"', b"{"))


def _narrow(flat: np.ndarray) -> np.ndarray:
    """The narrowest storage for these ids: uint16 when all are in [0, 65536), int32 when they fit
    there (always, for valid data: vocabularies stop at 3 million), else unchanged (int64)."""
    if len(flat) == 0:
        return flat.astype(np.uint16)
    low, high = flat.min(), flat.max()
    if low >= 0 and high <= _UINT16.max:
        return flat.astype(np.uint16)
    if low >= _INT32.min and high <= _INT32.max:
        return flat.astype(np.int32)
    return flat


class _Growing:
    """A 1-D array filled block by block in place, so a file's arrays never exist twice.

    Concatenating a list of blocks at the end would hold every value twice for a moment (2 x 0.8 GB
    for the tokens of 10 million pairs). Here the array is allocated once at a projected final size
    (pages that are never written are never resident), widened to a larger integer type only if a
    block needs it, grown by ``realloc`` if the projection falls short, and trimmed at the end.
    """

    def __init__(self, dtype: Any):
        self.array = np.empty(0, dtype)
        self.size = 0

    def append(self, values: np.ndarray, done: float | None) -> None:
        """Add ``values``; ``done`` is the share of the input read so far (``None`` if unknown)."""
        dtype = np.promote_types(self.array.dtype, values.dtype)
        if dtype != self.array.dtype:
            self.array = self.array[: self.size].astype(dtype)
        need = self.size + len(values)
        if need > len(self.array):
            projected = need / done * 1.05 if done else 0  # a little over, so one allocation usually suffices
            self.array.resize(int(max(need, projected, 1.5 * len(self.array), 1024)), refcheck=False)  # realloc
        self.array[self.size : need] = values
        self.size = need

    def finish(self) -> np.ndarray:
        if len(self.array) != self.size:
            self.array.resize(self.size, refcheck=False)  # give the unused tail back
        return self.array


class _Accumulator:
    """Collects a file's :class:`_Raw` blocks into one :class:`_Raw` without a second copy."""

    def __init__(self, sides: tuple[str, ...], require_label: bool):
        self.tokens = {s: _Growing(np.uint16) for s in sides}
        self.lengths = {s: _Growing(np.int64) for s in sides}
        self.labels = _Growing(np.float64) if require_label else None
        self.where = _Growing(np.int64)

    def add(self, raw: _Raw, done: float | None) -> None:
        for side, grow in self.tokens.items():
            grow.append(raw.tokens[side], done)
            self.lengths[side].append(raw.lengths[side], done)
        if self.labels is not None:
            self.labels.append(raw.labels, done)  # type: ignore[arg-type]
        self.where.append(raw.where, done)

    def finish(self) -> _Raw:
        return _Raw(
            {s: g.finish() for s, g in self.tokens.items()},
            {s: g.finish() for s, g in self.lengths.items()},
            self.labels.finish() if self.labels is not None else None,
            self.where.finish(),
        )


def _check(raw: _Raw, schema: Schema, problems: Problems, locate: Callable[[int], str]) -> dict[str, Any]:
    """Schema checks and truncation, vectorised; returns the final arrays (valid only without problems)."""
    out: dict[str, Any] = {}
    bad_records: set[int] = set()
    for side, flat in raw.tokens.items():
        index = _side_index(side)
        vocab, limit = schema.vocab_size[index], schema.max_seq_len[index]
        lens = raw.lengths[side]
        if len(flat) and (flat.min() < 0 or flat.max() >= vocab):
            _report_tokens(flat, lens, vocab, side, raw.where, problems, locate, bad_records)
        if len(lens) and lens.max() > limit:  # truncate: keep the first `limit` tokens of each sequence
            starts = np.repeat(np.cumsum(lens) - lens, lens)
            keep = (np.arange(len(flat)) - starts) < limit
            flat, lens = flat[keep], np.minimum(lens, limit)
        out[side] = (flat, lens)
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
    locate: Callable[[int], str],
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
        at = locate(int(where[rec]))
        if value == -(2**63):
            problems.add(
                f"{at}: {side}: token {k} does not fit in 64 bits; expected a token id in [0, {vocab}) (raise {name} or re-index)"
            )
        elif value < 0:
            problems.add(f"{at}: {side}: token {k} is {value}; expected a token id in [0, {vocab}) (ids are never negative)")
        else:
            problems.add(
                f"{at}: {side}: token {k} is {value}, not less than {name}={vocab}; expected a token id in [0, {vocab}) (raise {name} or re-index)"
            )


def _check_labels(
    labels: np.ndarray, schema: Schema, where: np.ndarray, problems: Problems, locate: Callable[[int], str]
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
            problems.add(f"{at}: label: {shown} is not a finite number; expected {expected}")
        else:
            problems.add(f"{at}: label: {shown} is out of range; expected {expected} (raise num_classes or re-label)")
    problems.count += max(int(bad.sum()) - (MAX_SHOWN + 1), 0)
    if bad.any():
        labels = np.where(bad, 0.0, labels)  # the read fails anyway; avoid casting NaN to int
    return labels.astype(np.float32) if schema.regression else labels.astype(np.int8)  # 1 byte a pair: num_classes <= 30


def _side_index(side: str) -> int:
    return 0 if side == "in0" else 1


def _jtype(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a float"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Sources: files (with the binary cache) and in-memory records


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Decoding creates millions of lists that hold no cycles; the cyclic GC rescanning them after
    every few thousand allocations costs about 2/3 of the parse time, so it sleeps meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _byte_range(file: Path, shard: tuple[int, int]) -> tuple[int, int] | None:
    """The bytes rank ``r`` of ``w`` reads: a line belongs to the rank whose range holds its first byte.
    ``None`` for a whole-file read (one rank, or a gzip file, which cannot be entered mid-way)."""
    rank, world = shard
    if world == 1 or _is_gzip(file):
        return None
    size = file.stat().st_size
    return size * rank // world, size * (rank + 1) // world


def _blocks(fh: BinaryIO, span: tuple[int, int] | None) -> Iterator[tuple[bytes, int]]:
    """Whole lines, about ``_BLOCK_BYTES`` at a time, each block with the byte offset it starts at.

    With ``span`` the stream is positioned at the first line starting inside it, and only lines
    starting before its end are read (the last one to its end, wherever that is).
    """
    pos = fh.tell()
    carry = b""
    while True:
        data = fh.read(_BLOCK_BYTES)
        if span is not None and pos + len(carry) + len(data) >= span[1]:  # the range ends in here
            tail = carry + data
            cut = max(span[1] - 1 - pos, 0)
            newline = tail.find(b"\n", cut)
            while newline < 0:  # the last line runs past this read
                more = fh.read(_BLOCK_BYTES)
                if not more:
                    break
                tail += more
                newline = tail.find(b"\n", cut)
            block = tail if newline < 0 else tail[: newline + 1]
            if block and pos < span[1]:
                yield block, pos
            return
        if not data:
            if carry:
                yield carry, pos
            return
        newline = data.rfind(b"\n")
        if newline < 0:
            carry += data
            continue
        block, carry = carry + data[: newline + 1], data[newline + 1 :]
        yield block, pos
        pos += len(block)


def _read_ahead(blocks: Iterator[tuple[bytes, int]], parser: _Parser, arrow: bool) -> Iterator[tuple[bytes, int, Any]]:
    """Each block with :func:`arrow_lines.parse`'s ``(line starts, arrays or None)``, parsed up to
    ``_AHEAD`` blocks ahead on worker threads: one pyarrow call keeps 2 cores only ~60% busy, and
    the line checks and conversions release the GIL too. ``arrow=False``: no parsing here."""
    if not arrow:
        yield from ((block, pos, (arrow_lines.line_starts(block), None)) for block, pos in blocks)
        return
    with ThreadPoolExecutor(max_workers=_AHEAD, thread_name_prefix="object2vec-read") as pool:
        pending: deque[tuple[bytes, int, Future]] = deque()
        for block, pos in blocks:
            pending.append((block, pos, pool.submit(arrow_lines.parse, block, parser.sides, parser.require_label, _narrow)))
            if len(pending) > _AHEAD:
                block, pos, parsed = pending.popleft()
                yield block, pos, parsed.result()
        while pending:
            block, pos, parsed = pending.popleft()
            yield block, pos, parsed.result()


def _parse_file(file: Path, parser: _Parser, shard: tuple[int, int] = (0, 1)) -> _Raw:
    """Stream a file (or this rank's shard of it) in blocks of lines into one :class:`_Raw`.

    Each block goes to pyarrow's multi-threaded reader when it provably holds one valid record a
    line (:mod:`object2vec.arrow_lines`), else to the per-record reader that words every problem.
    ``where`` holds line numbers, or byte offsets when reading a byte range (see :class:`_LineOf`).
    A damaged file becomes a problem, not an exception.
    """
    acc = _Accumulator(parser.sides, parser.require_label)
    lineno = 0
    span = _byte_range(file, shard)
    try:
        gz = _is_gzip(file)
        first, last = span if span is not None else (0, file.stat().st_size)
        with open_lines(file) as fh, _gc_paused():
            if span is not None and span[0] > 0:
                fh.seek(span[0] - 1)
                if fh.read(1) != b"\n":
                    fh.readline()  # the line under way belongs to the previous rank
            arrow = span is not None or shard[1] == 1  # gzip under several ranks: per line, below
            for block, pos, (starts, parsed) in _read_ahead(_blocks(fh, span), parser, arrow):
                where = pos + starts if span is not None else np.arange(lineno + 1, lineno + 1 + len(starts), dtype=np.int64)
                mine = slice(None)
                if not arrow:  # every rank decodes, each parses its lines
                    mine = (where - 1) % shard[1] == shard[0]
                lineno += len(starts)  # every line read counts, also those another rank parses
                if parsed is not None:
                    tokens, lengths, labels = parsed
                    raw = _Raw(tokens, lengths, labels, where)
                else:
                    lines = block.split(b"\n")
                    if block.endswith(b"\n"):
                        lines.pop()
                    if not isinstance(mine, slice):
                        lines = [line for line, m in zip(lines, mine, strict=True) if m]
                    raw = parser.block(*_decode_block(lines, where[mine]))
                # share of the input read so far, to size the arrays once (unknown inside a gzip stream)
                done = None if gz else min(max(pos + len(block) - first, 1) / max(last - first, 1), 1.0)
                acc.add(raw, done)
    except OSError as e:
        parser.problems.add(
            f"{file}: cannot be read ({e.strerror or e})"
            if lineno == 0
            else f"{file}:{lineno + 1}: cannot be read ({e}); expected a complete file"
        )
    except (EOFError, zlib.error) as e:
        parser.problems.add(f"{file}:{lineno + 1}: cannot be read ({e}); expected a complete file")
    return acc.finish()


def _decode_block(lines: list[bytes], where: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """JSON-decode a block of lines; blank lines are dropped, a malformed line becomes its error."""
    try:
        return list(map(orjson.loads, lines)), where
    except orjson.JSONDecodeError:  # blank or malformed lines: decode one by one
        recs, keep = [], []
        for i, raw in enumerate(lines):
            if raw.strip():  # a blank line (often the last) carries no record
                recs.append(_decode_or_error(raw))
                keep.append(i)
        return recs, where[keep]


class _LineOf:
    """``file:line`` for a byte offset: counts newlines before it (only when a problem is worded)."""

    def __init__(self, file: Path):
        self.file = file

    def __call__(self, offset: int) -> str:
        with open(self.file, "rb") as fh:
            line = fh.read(offset).count(b"\n") + 1
        return f"{self.file}:{line}"


def _is_gzip(file: Path) -> bool:
    with open(file, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _decode_or_error(raw: bytes) -> Any:
    try:
        return _decode(raw)
    except ValueError as e:
        return e


def cache_dir() -> Path:
    """Where parsed files are cached: ``$OBJECT2VEC_CACHE_DIR``, else ``~/.cache/object2vec``."""
    return Path(os.environ.get("OBJECT2VEC_CACHE_DIR") or Path.home() / ".cache" / "object2vec")


def _cache_key(file: Path, sides: tuple[str, ...], require_label: bool, shard: tuple[int, int]) -> str:
    stat = file.stat()
    ident = f"{CACHE_VERSION}|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{','.join(sides)}|{require_label}|{shard}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _cache_names(sides: tuple[str, ...], require_label: bool) -> list[str]:
    names = [f"{s}.{kind}" for s in sides for kind in ("tokens", "lengths")] + ["where"]
    return names + (["labels"] if require_label else [])


def _load_cached(folder: Path, sides: tuple[str, ...], require_label: bool) -> _Raw | None:
    try:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _cache_names(sides, require_label)}
    except (OSError, ValueError):
        return None
    return _Raw(
        {s: np.asarray(arrays[f"{s}.tokens"]) for s in sides},
        {s: np.asarray(arrays[f"{s}.lengths"]) for s in sides},
        np.asarray(arrays["labels"]) if require_label else None,
        arrays["where"],  # stays memory-mapped: only read to word a problem
    )


def _store_cache(folder: Path, raw: _Raw, sides: tuple[str, ...], require_label: bool) -> None:
    """Write atomically (temporary folder + rename); a read-only or full disk just means no cache."""
    arrays = {f"{s}.tokens": raw.tokens[s] for s in sides} | {f"{s}.lengths": raw.lengths[s] for s in sides}
    arrays["where"] = raw.where
    if require_label:
        arrays["labels"] = raw.labels
    if any(a.dtype == np.int64 for name, a in arrays.items() if name.endswith(".tokens")):
        return  # ids beyond int32 are errors; such a file is not worth caching
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True) if "tmp" in locals() else None


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
        cache: keep a binary copy of each parsed file under :func:`cache_dir`, keyed by path, size
            and modification time, so the next read skips JSON parsing (a changed file is parsed
            again). Schema checks run on every read, so one cache serves every model.
        shard: ``(rank, world_size)``: read only this rank's share: a byte range of each file
            (every ``world_size``-th line of a gzip file, every ``world_size``-th record in memory).

    Tokens are stored as ``uint16`` when every id is below 65,536, else ``int32``.

    Returns:
        The pairs as packed arrays, sequences truncated to ``max_seq_len``.

    Raises:
        DataError: listing the first 20 problems (``file:line: field: ...``) and their count.

    >>> schema = Schema((10, 10), (5, 5), regression=False, num_classes=2)
    >>> data = read_pairs([{"label": 1, "in0": [0, 3], "in1": [9]}], schema)
    >>> len(data), data.in0[0].tolist(), data.labels.tolist()
    (1, [0, 3], [1])
    """
    if isinstance(source, PairData):
        return source
    problems = Problems()
    parts: list[tuple[_Raw, Callable[[int], str]]] = []
    if _is_records(source):
        locate = "records[{}]".format
        parser = _Parser(sides, require_label, problems, locate, schema.expected_label())
        recs = list(source)[shard[0] :: shard[1]]  # type: ignore[arg-type]
        parts.append((parser.block(recs, np.arange(shard[0], shard[0] + shard[1] * len(recs), shard[1], dtype=np.int64)), locate))
    else:
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)  # type: ignore[arg-type]
        for path in paths:
            for file in list_files(path):
                locate = _LineOf(file) if _byte_range(file, shard) else f"{file}:{{}}".format
                parser = _Parser(sides, require_label, problems, locate, schema.expected_label(), from_json=True)
                parts.append((_read_file(file, parser, cache, shard), locate))
    checked = [_check(raw, schema, problems, locate) for raw, locate in parts]
    del parts  # the raw labels and line numbers are not needed any more: free them before assembling
    if problems.count:
        raise DataError(problems.shown, problems.count)
    data = _assemble(checked, sides, require_label, schema)
    if len(data) == 0:
        raise DataError([f"{_describe(source)}: no records; expected at least one JSON object per line"])
    return data


def _read_file(file: Path, parser: _Parser, cache: bool, shard: tuple[int, int]) -> _Raw:
    folder = cache_dir() / _cache_key(file, parser.sides, parser.require_label, shard) if cache else None
    if folder is not None and folder.is_dir():
        raw = _load_cached(folder, parser.sides, parser.require_label)
        if raw is not None:
            return raw
    count_before = parser.problems.count
    raw = _parse_file(file, parser, shard)
    if folder is not None and parser.problems.count == count_before and len(raw.where):
        _store_cache(folder, raw, parser.sides, parser.require_label)
    return raw


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
        built.append(Side(tokens[0] if len(tokens) == 1 else np.concatenate(tokens), offsets))
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
