"""JSON Lines files (and in-memory records) to type-checked arrays, before any schema check.

What :func:`object2vec.data.pairs.read_pairs` reads goes through here: files are cut into blocks of whole
lines; on a worker thread each block is read by the compiled scanner when it holds only plain
labelled pairs (:func:`object2vec.native.kernels.parse_pairs`), else by pyarrow when it provably holds one
valid record a line (:mod:`object2vec.data.arrow`), else record by record by :class:`Parser`, which
finds every problem with its line. The result, a :class:`Raw`, does not depend on vocabulary sizes,
sequence limits or the label kind, so it is what the binary cache keeps (:mod:`object2vec.data.cache`).
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import math
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from .. import console
from ..errors import DataError, Line, Location, Problem, Problems
from ..native import kernels
from . import arrow as arrow_lines

PathLike = str | os.PathLike
_BLOCK_BYTES = 4 << 20  # lines parsed per block: bounded memory, enough blocks to keep every worker busy
_AHEAD = 2  # blocks parsed at once on worker threads (pyarrow and numpy release the GIL)
_MISSING = object()
_INT32 = np.iinfo(np.int32)
_UINT16 = np.iinfo(np.uint16)
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # a larger weight would be infinite in training


# --------------------------------------------------------------------------------------------------
# Files


def list_files(path: PathLike) -> list[Path]:
    """A file, or every visible file of a directory (a SageMaker channel), sorted by name."""
    p = Path(path)
    if p.is_dir():
        files = sorted(
            f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
        )
        if not files:
            raise DataError(
                [Problem(Line(str(p)), None, "the directory holds no data files", "JSON Lines files (.jsonl or .jsonl.gz)")]
            )
        return files
    if not p.exists():
        raise DataError([Problem(Line(str(p)), None, "no such file or directory")])
    return [p]


def open_lines(path: Path) -> BinaryIO:
    """Open a JSON Lines file for binary line reading; gzip is detected by its magic bytes."""
    fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if fh.peek(2)[:2] == b"\x1f\x8b":
        fh.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return fh


def _is_gzip(file: Path) -> bool:
    with open(file, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def byte_range(file: Path, shard: tuple[int, int]) -> tuple[int, int] | None:
    """The bytes rank ``r`` of ``w`` reads: a line belongs to the rank whose range holds its first byte.
    ``None`` for a whole-file read (one rank, or a gzip file, which cannot be entered mid-way)."""
    rank, world = shard
    if world == 1 or _is_gzip(file):
        return None
    size = file.stat().st_size
    return size * rank // world, size * (rank + 1) // world


class LineOf:
    """The :class:`Line` of a byte offset: counts newlines before it (only when a problem is found)."""

    def __init__(self, file: Path):
        self.file = file

    def __call__(self, offset: int) -> Line:
        with open(self.file, "rb") as fh:
            line = fh.read(offset).count(b"\n") + 1
        return Line(str(self.file), line)


# --------------------------------------------------------------------------------------------------
# Records to arrays: the per-record reader and its accumulation


@dataclass
class Raw:
    """Type-checked records before any schema check: untruncated tokens and raw labels.

    ``where[i]`` locates record ``i`` (a line number, or an index into in-memory records) for
    messages. This is what the binary cache stores: it does not depend on vocabulary sizes,
    sequence limits or the label kind, so one cache serves every model trained on the file.
    """

    tokens: dict[str, np.ndarray]  # side -> flat uint16 or int32 (int64 if some id does not fit; never cached)
    lengths: dict[str, np.ndarray]  # side -> int64
    labels: np.ndarray | None  # float64
    where: np.ndarray  # int64 line numbers (files) or record indices
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # side -> flat float32, beside the tokens (if read)


class Parser:
    """Turns decoded records into :class:`Raw` blocks.

    The fast path handles a block of well-formed records with a few C-level passes (``map``,
    ``chain``, ``np.fromiter``) and no per-token Python; any irregularity sends that block to the
    slow path, which checks record by record and words each problem. ``from_json`` says that the
    records were decoded from JSON text (so they hold only JSON types), which lets the fast path
    check token types by re-serialising instead of calling ``type`` on every token.

    ``weights`` names the sides whose per-token weights are read (``in0_weights`` beside ``in0``: a
    list of as many finite numbers >= 0 as there are tokens, not all 0), for a model that pools that
    side by a weighted mean; other records' weights, like every other key, are ignored.
    """

    def __init__(
        self,
        sides: tuple[str, ...],
        require_label: bool,
        problems: Problems,
        locate: Callable[[int], Location],
        expected_label: str,
        from_json: bool = False,
        weights: tuple[str, ...] = (),
    ):
        self.sides, self.require_label, self.problems, self.locate = sides, require_label, problems, locate
        self.expected_label, self.from_json, self.weights = expected_label, from_json, weights

    def block(self, recs: list[Any], where: np.ndarray) -> Raw:
        return self._fast(recs, where) or self._slow(recs, where)

    def _fast(self, recs: list[Any], where: np.ndarray) -> Raw | None:
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
            tokens[side], lengths[side] = narrow(flat), lens
        label_array = None
        if labels is not None:
            if not set(map(type, labels)) <= {int, float}:
                return None
            try:
                label_array = np.array(labels, dtype=np.float64)
            except OverflowError:
                return None
        weights = {}
        for side in self.weights:
            try:
                lists = list(map(itemgetter(f"{side}_weights"), recs))
            except KeyError:
                return None
            if set(map(type, lists)) != {list} or not np.array_equal(
                np.fromiter(map(len, lists), np.int64, len(lists)), lengths[side]
            ):
                return None
            if not set(map(type, chain.from_iterable(lists))) <= {int, float}:
                return None
            try:
                flat = np.fromiter(chain.from_iterable(lists), dtype=np.float64, count=int(lengths[side].sum()))
            except OverflowError:
                return None
            if not valid_weights(flat, lengths[side]):
                return None
            weights[side] = flat.astype(np.float32)
        return Raw(tokens, lengths, label_array, where, weights)

    def _slow(self, recs: list[Any], where: np.ndarray) -> Raw:
        flat: dict[str, list[int]] = {s: [] for s in self.sides}
        lens: dict[str, list[int]] = {s: [] for s in self.sides}
        weights: dict[str, list[float]] = {s: [] for s in self.weights}
        labels: list[float] = []
        kept: list[int] = []
        for i, rec in enumerate(recs):
            found = self._problems_of(rec)
            if found:
                at = self.locate(int(where[i]))  # only now: a line of a byte range is counted from the file
                for problem in found:
                    self.problems.add(problem.at(at))
                continue
            label = rec["label"] if self.require_label else 0.0
            if abs(label) > 1e300 and math.isfinite(label):
                label = float("inf")
            for side in self.sides:
                flat[side].extend(rec[side])
                lens[side].append(len(rec[side]))
            for side in self.weights:
                weights[side].extend(rec[f"{side}_weights"])
            labels.append(float(label))
            kept.append(i)
        tokens = {}
        for side in self.sides:
            values = flat[side]
            try:
                tokens[side] = narrow(np.asarray(values, dtype=np.int64).reshape(-1))
            except OverflowError:  # an id beyond int64 is out of every vocabulary: name it now
                tokens[side] = np.asarray([v if -(2**63) <= v < 2**63 else -(2**63) for v in values], dtype=np.int64)
        return Raw(
            tokens,
            {side: np.asarray(lens[side], dtype=np.int64) for side in self.sides},
            np.asarray(labels, dtype=np.float64) if self.require_label else None,
            where[np.asarray(kept, dtype=np.int64)] if kept else where[:0],
            {side: np.asarray(weights[side], dtype=np.float32) for side in self.weights},
        )

    def _problems_of(self, rec: Any) -> list[Problem]:
        """What is wrong with one decoded record (unlocated: the caller knows where it is)."""
        if isinstance(rec, ValueError):
            return [Problem(None, None, f"malformed JSON ({rec})", "one JSON object per line")]
        if type(rec) is not dict:
            example = '{"label": 1, "in0": [4, 2], "in1": [7]}'
            return [Problem(None, None, f"record is {jtype(rec)}", f"a JSON object like {example}")]
        found = [problem for side in self.sides if (problem := _sequence_problem(rec.get(side), side))]
        if self.require_label:
            label = rec.get("label", _MISSING)
            if label is _MISSING:
                found.append(Problem(None, "label", "missing", self.expected_label))
            elif type(label) not in (int, float):
                found.append(Problem(None, "label", f"got {show(label)} ({jtype(label)})", self.expected_label))
        found += [problem for side in self.weights if (problem := _weights_problem(rec, side))]
        return found


def _sequence_problem(seq: Any, side: str) -> Problem | None:
    if seq is None:
        return Problem(None, side, "missing", "a non-empty list of integer token ids")
    if type(seq) is not list:
        return Problem(None, side, f"got {show(seq)} ({jtype(seq)})", "a non-empty list of integer token ids")
    if not seq:
        return Problem(None, side, "empty list", "at least one token id")
    if set(map(type, seq)) != {int}:
        k, bad = next((k, t) for k, t in enumerate(seq) if type(t) is not int)
        return Problem(None, side, f"token {k} is {show(bad)} ({jtype(bad)})", "an integer token id")
    return None


def _weights_problem(rec: dict[str, Any], side: str) -> Problem | None:
    """``{side}_weights``: as many finite numbers >= 0 as ``side`` has tokens, not all 0."""
    key, seq, weights = f"{side}_weights", rec.get(side), rec.get(f"{side}_weights")
    expected = f"a list of one weight (a finite number >= 0) per {side} token, not all 0"
    if weights is None:
        return Problem(None, key, "missing", f"{expected} ({side} is pooled by a weighted mean)")
    if type(weights) is not list:
        return Problem(None, key, f"got {show(weights)} ({jtype(weights)})", expected)
    if type(seq) is list and len(weights) != len(seq):
        return Problem(None, key, f"has {len(weights)} weights for {len(seq)} tokens", expected)
    bad = next(((k, w) for k, w in enumerate(weights) if type(w) not in (int, float) or not 0 <= w <= _FLOAT32_MAX), None)
    if bad is not None:
        return Problem(None, key, f"weight {bad[0]} is {show(bad[1])}", expected)
    if not any(weights):
        return Problem(None, key, "every weight is 0", expected)
    return None


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


def valid_weights(flat: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether per-token weights are finite (as float32) and >= 0 and no sequence's weights are all 0."""
    if not len(flat):
        return True
    if not (np.isfinite(flat).all() and flat.min() >= 0 and flat.max() <= _FLOAT32_MAX):
        return False
    return bool((np.add.reduceat(flat, np.cumsum(lengths) - lengths) > 0).all())


def narrow(flat: np.ndarray) -> np.ndarray:
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
    """Collects a file's :class:`Raw` blocks into one :class:`Raw` without a second copy."""

    def __init__(self, sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()):
        self.tokens = {s: _Growing(np.uint16) for s in sides}
        self.lengths = {s: _Growing(np.int64) for s in sides}
        self.weights = {s: _Growing(np.float32) for s in weights}
        self.labels = _Growing(np.float64) if require_label else None
        self.where = _Growing(np.int64)

    def add(self, raw: Raw, done: float | None) -> None:
        for side, grow in self.tokens.items():
            grow.append(raw.tokens[side], done)
            self.lengths[side].append(raw.lengths[side], done)
        for side, grow in self.weights.items():
            grow.append(raw.weights[side], done)
        if self.labels is not None:
            self.labels.append(raw.labels, done)  # type: ignore[arg-type]
        self.where.append(raw.where, done)

    def finish(self) -> Raw:
        return Raw(
            {s: g.finish() for s, g in self.tokens.items()},
            {s: g.finish() for s, g in self.lengths.items()},
            self.labels.finish() if self.labels is not None else None,
            self.where.finish(),
            {s: g.finish() for s, g in self.weights.items()},
        )


def decode_json(raw: bytes) -> Any:
    """orjson for speed; the stdlib parser only to name a problem orjson refuses (NaN, Infinity)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as fast_error:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(str(fast_error)) from None


def decode_or_error(raw: bytes) -> Any:
    try:
        return decode_json(raw)
    except ValueError as e:
        return e


def _decode_block(lines: list[bytes], where: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """JSON-decode a block of lines; blank lines are dropped, a malformed line becomes its error."""
    try:
        return list(map(orjson.loads, lines)), where
    except orjson.JSONDecodeError:  # blank or malformed lines: decode one by one
        recs, keep = [], []
        for i, raw in enumerate(lines):
            if raw.strip():  # a blank line (often the last) carries no record
                recs.append(decode_or_error(raw))
                keep.append(i)
        return recs, where[keep]


def jtype(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a float"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def show(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# A file, block by block


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


def _parse_block(
    block: bytes, sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()
) -> tuple[np.ndarray, Any]:
    """The compiled scanner (:func:`kernels.parse_pairs`) for labelled pairs, else
    :func:`arrow_lines.parse`; tokens narrowed on the same worker thread (both release the GIL).
    Per-token weights (each side's after its ids, as ``prepare`` writes them; else pyarrow reads
    them) are checked here; a block that fails goes to the per-record reader, which names the line."""
    scanned = kernels.parse_pairs(block, weights) if sides == ("in0", "in1") and require_label else None
    if scanned is not None:
        starts, tokens, lengths, labels, read = scanned
        if all(valid_weights(read[side], lengths[side]) for side in weights):
            weighed = {s: w.astype(np.float32) for s, w in read.items()}
            return starts, ({side: narrow(t) for side, t in tokens.items()}, lengths, labels, weighed)
        return starts, None
    starts, parsed = arrow_lines.parse(block, sides, require_label, weights)
    if parsed is not None:
        tokens, lengths, maybe_labels, read = parsed
        if all(valid_weights(read[side], lengths[side]) for side in weights):
            parsed = (
                {side: narrow(t) for side, t in tokens.items()},
                lengths,
                maybe_labels,
                {s: w.astype(np.float32) for s, w in read.items()},
            )
        else:
            parsed = None
    return starts, parsed


def _read_ahead(blocks: Iterator[tuple[bytes, int]], parser: Parser, arrow: bool) -> Iterator[tuple[bytes, int, Any]]:
    """Each block with :func:`_parse_block`'s ``(line starts, arrays or None)``, parsed up to
    ``_AHEAD`` blocks ahead on worker threads: one pyarrow call keeps 2 cores only ~60% busy, and
    the line checks and conversions release the GIL too. ``arrow=False``: no parsing here."""
    if not arrow:
        yield from ((block, pos, (arrow_lines.line_starts(block), None)) for block, pos in blocks)
        return
    with ThreadPoolExecutor(max_workers=_AHEAD, thread_name_prefix="object2vec-read") as pool:
        pending: deque[tuple[bytes, int, Future]] = deque()
        for block, pos in blocks:
            pending.append((block, pos, pool.submit(_parse_block, block, parser.sides, parser.require_label, parser.weights)))
            if len(pending) > _AHEAD:
                block, pos, parsed = pending.popleft()
                yield block, pos, parsed.result()
        while pending:
            block, pos, parsed = pending.popleft()
            yield block, pos, parsed.result()


def parse_file(file: Path, parser: Parser, shard: tuple[int, int] = (0, 1)) -> Raw:
    """Stream a file (or this rank's shard of it) in blocks of lines into one :class:`Raw`.

    Each block is read on a worker thread by :func:`_parse_block` (the compiled scanner, else pyarrow
    when the block provably holds one valid record a line), else by the per-record reader that words
    every problem.
    ``where`` holds line numbers, or byte offsets when reading a byte range (see :class:`LineOf`).
    A damaged file becomes a problem, not an exception.
    """
    acc = _Accumulator(parser.sides, parser.require_label, parser.weights)
    lineno = 0
    span = byte_range(file, shard)
    try:
        gz = _is_gzip(file)
        first, last = span if span is not None else (0, file.stat().st_size)
        with open_lines(file) as fh, _gc_paused(), console.FileProgress(fh, f"reading {file.name}", (first, last)) as bar:
            if span is not None and span[0] > 0:
                fh.seek(span[0] - 1)
                if fh.read(1) != b"\n":
                    fh.readline()  # the line under way belongs to the previous rank
            arrow = span is not None or shard[1] == 1  # gzip under several ranks: per line, below
            for block, pos, (starts, parsed) in _read_ahead(_blocks(fh, span), parser, arrow):
                where = pos + starts if span is not None else np.arange(lineno + 1, lineno + 1 + len(starts), dtype=np.int64)
                lineno += len(starts)  # every line read counts, also those another rank parses
                if parsed is not None:
                    tokens, lengths, labels, weights = parsed
                    raw = Raw(tokens, lengths, labels, where, weights)
                else:
                    lines = block.split(b"\n")
                    if block.endswith(b"\n"):
                        lines.pop()
                    if not arrow:  # gzip under several ranks: every rank decodes, each parses its lines
                        mine = (where - 1) % shard[1] == shard[0]
                        lines, where = [line for line, m in zip(lines, mine, strict=True) if m], where[mine]
                    raw = parser.block(*_decode_block(lines, where))
                # share of the input read so far, to size the arrays once (unknown inside a gzip stream)
                done = None if gz else min(max(pos + len(block) - first, 1) / max(last - first, 1), 1.0)
                acc.add(raw, done)
                bar.update(None if gz else pos + len(block))  # gzip: how far into the compressed file
    except OSError as e:
        parser.problems.add(
            Problem(Line(str(file)), None, f"cannot be read ({e.strerror or e})")
            if lineno == 0
            else Problem(Line(str(file), lineno + 1), None, f"cannot be read ({e})", "a complete file")
        )
    except (EOFError, zlib.error) as e:
        parser.problems.add(Problem(Line(str(file), lineno + 1), None, f"cannot be read ({e})", "a complete file"))
    return acc.finish()
