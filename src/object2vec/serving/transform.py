"""Batch transform: JSON Lines in, one result per line out, in input order, in bounded memory.

``object2vec predict`` scores pairs (``{"scores": [...]}``) and ``object2vec embed`` encodes one side
(``{"embeddings": [...]}``, or a float32 ``.npy`` matrix). ``object2vec predict --labels`` scores
each line's ``in0`` against every candidate label and writes the best (``{"labels": [...],
"scores": [...]}``, :mod:`object2vec.retrieval.labels`). The input is read ``chunk`` lines at a
time, so a 10-million-line file never sits in memory. Keys named by ``keep`` (default ``id``) are
copied from each input line to its output line.

``on_error="fail"`` (default) stops at the first chunk with a bad line, naming every problem in it
(``file:line: field: ...``), and leaves no partial output file behind. ``on_error="skip"`` writes an
error record in that line's place (``{"id": ..., "error": "..."}``; a NaN row in ``.npy`` output)
and counts it, so nothing is dropped silently and line ``i`` of the input is always line ``i`` of
the output. Blank input lines are not records and produce no output.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import numpy as np
import orjson

from .. import console
from ..data.jsonl import decode_or_error, open_lines
from ..errors import DataError
from .predictor import InstanceError, Predictor

if TYPE_CHECKING:
    from ..retrieval.items import Items

CHUNK_LINES = 4096
_DUMP = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


@dataclass
class TransformReport:
    lines: int = 0  # records read (blank lines excluded)
    written: int = 0  # results
    errors: int = 0  # error records written in place of results (on_error="skip")

    def __str__(self) -> str:
        return f"{self.lines} lines, {self.written} results, {self.errors} errors"


def transform(
    predictor: Predictor,
    source: str | Path,
    output: str | Path | None,
    *,
    mode: str = "scores",
    fmt: str = "jsonl",
    keep: tuple[str, ...] = ("id",),
    on_error: str = "fail",
    max_seqlens: tuple[int, int] | None = None,
    chunk: int = CHUNK_LINES,
    labels: Items | None = None,
    top_k: int = 1,
) -> TransformReport:
    """Stream ``source`` (a path or ``-`` for stdin) through the model into ``output`` (path, ``-`` or None: stdout).

    ``mode`` is ``scores`` (pairs), ``in0`` or ``in1`` (embeddings of that side), or ``labels``: the
    ``top_k`` best of the candidate ``labels`` (``in1`` items) for each line's ``in0``.
    """
    if mode not in ("scores", "in0", "in1", "labels"):
        raise ValueError(f"mode={mode!r}; expected scores, in0, in1 or labels")
    if mode == "labels" and labels is None:
        raise ValueError("mode=labels needs the candidate labels")
    if fmt == "npy" and (mode in ("scores", "labels") or output in (None, "-")):
        raise DataError(["--format npy writes embeddings to a file: use embed with -o FILE.npy"])
    name = "<stdin>" if str(source) == "-" else str(source)
    report = TransformReport()
    key, width = ("scores", predictor.output_width["scores"]) if mode == "scores" else ("embeddings", predictor.hp.enc_dim)
    with _Sink(output, fmt, key, width) as sink:
        doing = {"scores": "scoring", "labels": "labelling"}.get(mode, "embedding")
        for lines in _chunks(source, chunk, f"{doing} {Path(name).name}"):
            report.lines += len(lines)
            records, problems = _instances(lines, "in0" if mode == "labels" else mode, name)
            where = [f"{name}:{lineno}" for lineno, _ in lines]
            results = _run(predictor, records, max_seqlens, where, problems, on_error)
            if mode == "labels":
                results = _best_labels(predictor, results, labels, top_k)  # type: ignore[arg-type]
            for (_, rec), result in zip(lines, results, strict=True):
                kept = {k: rec[k] for k in keep if type(rec) is dict and k in rec}
                if isinstance(result, str):
                    report.errors += 1
                    sink.error(kept, result)
                else:
                    report.written += 1
                    sink.result(kept, result)
    return report


def _best_labels(predictor: Predictor, rows: list[Any], labels: Items, k: int) -> list[Any]:
    """Each document vector of ``rows`` replaced by its ``k`` best labels; error messages stay."""
    from ..retrieval.labels import top_labels

    done = [i for i, row in enumerate(rows) if not isinstance(row, str)]
    vectors = np.stack([rows[i] for i in done]) if done else np.zeros((0, predictor.hp.enc_dim), np.float32)
    out = list(rows)
    for i, (ids, scores) in zip(done, top_labels(predictor.model, vectors, labels, k), strict=True):
        out[i] = {"labels": ids, "scores": scores}
    return out


def _chunks(source: str | Path, size: int, desc: str = "") -> Iterator[list[tuple[int, Any]]]:
    """``(line number, decoded JSON or the decoding error)`` for every non-blank line, ``size`` at a time
    (with a bar over the file's bytes at a terminal; stdin has no size, so no bar)."""
    stdin = str(source) == "-"
    fh: BinaryIO = sys.stdin.buffer if stdin else open_lines(Path(source))
    bar = None if stdin else console.FileProgress(fh, desc)
    try:
        batch: list[tuple[int, Any]] = []
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            batch.append((lineno, decode_or_error(raw)))  # the data reader's decoder: NaN etc. get named later
            if len(batch) == size:
                yield batch
                batch = []
                if bar is not None:
                    bar.update()
        if batch:
            yield batch
    finally:
        if bar is not None:
            bar.close()
        if not stdin:
            fh.close()


def _instances(lines: list[tuple[int, Any]], mode: str, name: str) -> tuple[list[Any], dict[int, str]]:
    """The instance each line asks for, and the lines that cannot be one (by position in ``lines``)."""
    need = ("in0", "in1") if mode == "scores" else (mode,)
    records: list[Any] = []
    problems: dict[int, str] = {}
    for k, (lineno, rec) in enumerate(lines):
        at = f"{name}:{lineno}"
        if isinstance(rec, ValueError):
            problems[k] = f"{at}: malformed JSON ({rec}); expected one JSON object per line"
        elif type(rec) is not dict:
            shape = ", ".join(f'"{side}": [...]' for side in need)
            problems[k] = f"{at}: record is not a JSON object; expected {{{shape}}}"
        elif missing := [s for s in need if s not in rec]:
            hint = " (predict scores pairs; embed encodes one side)" if mode == "scores" else ""
            problems[k] = f"{at}: {missing[0]}: missing; expected a list of token ids{hint}"
        else:  # a pair passes as is (other keys are ignored); an embedding request keeps only its side (and weights)
            weights = f"{mode}_weights"
            records.append(rec if mode == "scores" else {mode: rec[mode], **({weights: rec[weights]} if weights in rec else {})})
            continue
        records.append(None)
    return records, problems


def _run(
    predictor: Predictor,
    records: list[Any],
    max_seqlens: tuple[int, int] | None,
    where: list[str],
    problems: dict[int, str],
    on_error: str,
) -> list[np.ndarray | str]:
    """One result row or error message per record (``where[k]`` names record ``k``).

    With ``on_error="fail"`` any problem raises. With ``skip``, bad records are set aside (the data
    reader names at most 20 problems per call, so this repeats until the rest runs clean) and their
    messages take their places.
    """
    todo = [k for k in range(len(records)) if k not in problems]
    while True:
        try:
            batch = [records[k] for k in todo]
            results = predictor.run(batch, max_seqlens, _locate_in(where, todo)) if batch else []
            break
        except InstanceError as e:
            found = {todo[p.location]: line for p, line in zip(e.found, e.problems, strict=True) if isinstance(p.location, int)}
            if not found:  # the reader could not place a problem: find the bad records one by one
                for k in todo:
                    try:
                        predictor.run([records[k]], max_seqlens, _locate_in(where, [k]))
                    except InstanceError as one:
                        found[k] = "; ".join(one.problems)
            for k, message in found.items():
                problems[k] = f"{problems[k]}; {message}" if k in problems else message
            todo = [k for k in todo if k not in found]
            if on_error == "fail":
                break
    if problems and on_error == "fail":
        raise DataError([problems[k] for k in sorted(problems)])
    out: list[np.ndarray | str] = [""] * len(records)
    for k, message in problems.items():
        out[k] = message
    for k, result in zip(todo, results, strict=True):
        out[k] = next(iter(result.values()))
    return out


def _locate_in(where: list[str], records: list[int]) -> Callable[[int], str]:
    """Where the ``j``-th instance of a call is: ``where`` of record ``records[j]``."""
    return lambda j: where[records[j]]


class _Sink:
    """Where results go: JSON Lines (a file written atomically, or stdout), or a streamed ``.npy``.

    An ``.npy`` output gets a sidecar ``<name>.rows.jsonl`` (kept keys and error messages, one line
    per row) when any row has something to say; both files appear only when the whole run succeeds.
    """

    def __init__(self, output: str | Path | None, fmt: str, key: str, width: int):
        self.output = None if output is None or str(output) == "-" else Path(output)
        self.fmt, self.key, self.width, self.rows = fmt, key, width, 0
        self.temps: list[str] = []
        self.sidecar_needed = False

    def _temp(self, path: Path) -> IO[bytes]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        self.temps.append(name)
        return os.fdopen(fd, "wb")

    def __enter__(self) -> _Sink:
        if self.output is None:
            self.fh = sys.stdout.buffer
        else:
            self.fh = self._temp(self.output)
            if self.fmt == "npy":
                self.fh.write(_npy_header(0, self.width))
                self.side = self._temp(self.output.with_suffix(".rows.jsonl"))
        return self

    def result(self, kept: dict[str, Any], row: np.ndarray | dict[str, Any]) -> None:
        if self.fmt == "npy":
            self._row(row, kept)  # type: ignore[arg-type]
        elif isinstance(row, dict):  # several keys (labels and their scores)
            self.fh.write(orjson.dumps({**kept, **row}, option=_DUMP))
        else:
            self.fh.write(orjson.dumps({**kept, self.key: row}, option=_DUMP))

    def error(self, kept: dict[str, Any], message: str) -> None:
        if self.fmt == "npy":
            self._row(np.full(self.width, np.nan, dtype=np.float32), {**kept, "error": message})
        else:
            self.fh.write(orjson.dumps({**kept, "error": message}, option=_DUMP))

    def _row(self, row: np.ndarray, extra: dict[str, Any]) -> None:
        self.fh.write(np.ascontiguousarray(row, dtype="<f4").tobytes())
        self.rows += 1
        self.sidecar_needed |= bool(extra)
        self.side.write(orjson.dumps(extra, option=orjson.OPT_APPEND_NEWLINE))

    def __exit__(self, kind: Any, *_: Any) -> None:
        if self.output is None:
            self.fh.flush()
            return
        try:
            if self.fmt == "npy":
                if kind is None:
                    self.fh.seek(0)
                    self.fh.write(_npy_header(self.rows, self.width))
                self.side.close()
            self.fh.close()
            if kind is None:
                if self.fmt == "npy" and self.sidecar_needed:
                    os.replace(self.temps[1], self.output.with_suffix(".rows.jsonl"))
                os.replace(self.temps[0], self.output)
        finally:
            for name in self.temps:
                if os.path.exists(name):
                    os.unlink(name)


def _npy_header(rows: int, width: int) -> bytes:
    """A version-1.0 ``.npy`` header of fixed size (128 bytes), so it can be rewritten once ``rows`` is known."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {width}), }}"
    return b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little") + text.ljust(117).encode() + b"\n"
