"""The second path of :mod:`object2vec.data.jsonl` (after the compiled scanner): blocks of JSON Lines parsed by pyarrow.

``pyarrow.json.read_json`` turns bytes into packed arrays in C++, several times faster than decoding
records one by one in Python, but it reads more leniently than the contract of
:func:`object2vec.data.pairs.read_pairs`: it takes ``null`` for a missing field, an empty list, several
objects on one line or one object over several lines, and invalid UTF-8 inside an ignored string.
So a block is taken from pyarrow only when it provably holds exactly what the per-record reader
would accept, and otherwise ``None`` sends it to that reader, which words every problem with its
line. The proof that line ``i`` holds record ``i`` and nothing else:

* the block is ASCII, no line is empty, every line starts with ``{`` and ends with ``}`` (before an
  optional ``\r``), and pyarrow read as many objects as there are lines.

No object can run from one line into the next: the newline would sit between a ``}`` and a ``{``,
and inside one JSON value a ``}`` is only ever followed by ``,``, ``]``, ``}`` or whitespace. So
each line starts a new object at its first byte and holds it entirely; with as many objects as
lines, each line holds exactly one. Blank lines, lines with leading spaces and non-ASCII bytes fail
the checks, which costs only speed. Then nulls and empty sequences are rejected from the arrays
(pyarrow already refuses floats, strings, booleans and 65-bit integers in an ``int64`` list, and a
string or boolean label).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

_OPEN, _CLOSE, _NEWLINE, _RETURN = ord("{"), ord("}"), ord("\n"), ord("\r")


@cache
def _pyarrow() -> tuple[Any, Any] | None:
    try:
        import pyarrow as pa
        import pyarrow.json as pa_json
    except ImportError:  # a dependency, but the per-record reader does the same work without it
        return None
    return pa, pa_json


@cache
def _parse_options(sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()) -> Any | None:
    arrow = _pyarrow()
    if arrow is None:
        return None
    pa, pa_json = arrow
    fields = [(side, pa.list_(pa.int64())) for side in sides]
    fields += [(f"{side}_weights", pa.list_(pa.float64())) for side in weights]  # ints and floats alike
    if require_label:
        fields.append(("label", pa.float64()))  # ints and floats alike; the raw labels are float64 anyway
    return pa_json.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore")


def line_starts(block: bytes) -> np.ndarray:
    """Byte offset of each line of ``block`` (lines end with ``\\n``; the last one may not)."""
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == _NEWLINE)
    starts = np.empty(len(ends) + 1, np.int64)
    starts[0] = 0
    starts[1:] = ends + 1
    return starts if len(block) > starts[-1] else starts[:-1]


def one_object_a_line(block: bytes, starts: np.ndarray) -> bool:
    """The structural half of the proof in the module docstring (needs no parsing)."""
    if not len(starts) or not block.isascii():
        return False
    buf = np.frombuffer(block, np.uint8)
    ends = np.empty_like(starts)  # index of each line's last byte, its newline excluded
    ends[:-1] = starts[1:] - 2
    ends[-1] = len(block) - 1 - (block[-1] == _NEWLINE)
    if (ends < starts).any():  # an empty line
        return False
    last = buf[ends]
    crlf = last == _RETURN
    if crlf.any():
        ends = ends - crlf
        if (ends < starts).any():
            return False
        last = buf[ends]
    return bool((buf[starts] == _OPEN).all() and (last == _CLOSE).all())


def parse(
    block: bytes, sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()
) -> tuple[np.ndarray, tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None, dict[str, np.ndarray]] | None]:
    """``(line starts, (tokens, lengths, labels, weights))`` of a block of whole lines: int64 tokens and
    lengths, float64 labels, float64 per-token weights of the sides ``weights`` (``in0_weights``: as
    many as the side's tokens, checked here; their values are the caller's to check); ``None``
    instead of the arrays unless the block provably holds one valid object a line (see the module).
    pyarrow and numpy release the GIL, so blocks are parsed on several threads at once (each call
    single-threaded: less overhead)."""
    starts = line_starts(block)
    if not one_object_a_line(block, starts):
        return starts, None
    table = read_table(block, sides, require_label, weights)
    return starts, (None if table is None else arrays(table, starts, sides, require_label, weights))


def read_table(block: bytes, sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()) -> Any | None:
    """pyarrow's table of ``block`` (its fields ``sides``, ``label`` and the ``weights`` sides' weights),
    or ``None`` if pyarrow is missing or refuses the block. Releases the GIL: blocks can be read on
    several threads at once."""
    options = _parse_options(sides, require_label, weights)
    if options is None:
        return None
    pa, pa_json = _pyarrow()  # type: ignore[misc]
    read = pa_json.ReadOptions(use_threads=False, block_size=max(len(block), 1 << 16))  # one chunk
    try:
        return pa_json.read_json(pa.BufferReader(block), read_options=read, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def arrays(
    table: Any, starts: np.ndarray, sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None, dict[str, np.ndarray]] | None:
    """The arrays of ``table``, read from a block with these line ``starts`` that passed
    :func:`one_object_a_line`; ``None`` if it does not hold one valid object a line after all."""
    if table.num_rows != len(starts):
        return None
    tokens, lengths = {}, {}
    for side in sides:
        column = table.column(side).combine_chunks()
        values = column.flatten()
        if column.null_count or values.null_count:  # a missing side, or a null token
            return None
        lens = column.value_lengths().to_numpy().astype(np.int64, copy=False)
        if len(lens) and lens.min() == 0:
            return None
        tokens[side], lengths[side] = values.to_numpy(), lens
    labels = None
    if require_label:
        column = table.column("label")
        if column.null_count:  # missing or null
            return None
        labels = column.to_numpy().astype(np.float64, copy=False)
    read = {}
    for side in weights:
        column = table.column(f"{side}_weights").combine_chunks()
        values = column.flatten()
        if column.null_count or values.null_count:  # missing weights, or a null weight
            return None
        if not np.array_equal(column.value_lengths().to_numpy(), lengths[side]):  # a weight per token
            return None
        read[side] = values.to_numpy().astype(np.float64, copy=False)
    return tokens, lengths, labels, read
