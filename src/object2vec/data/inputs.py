"""What the Python API accepts as pairs, turned into plain records at the boundary.

The readers (:func:`object2vec.data.pairs.read_pairs`) take paths, :class:`PairData` and lists of
JSON-like records. Users of scikit-learn, pandas and NumPy hold their pairs otherwise; each form is
converted here, once, so everything past this point sees plain ``int``/``float``/``str``/``list``:

* a pandas DataFrame with columns ``in0``, ``in1`` (and ``label``);
* a dict of columns ``{"in0": [...], "in1": [...], "label": [...]}``;
* a NumPy structured array with fields ``in0``, ``in1`` (and ``label``);
* a 2-D integer array ``(n, 2)``: one id a side (user, item), the common case for ids-only pairs;
* any iterable of records, where a record is a mapping or a tuple ``(in0, in1[, label])``;

and inside records, token sequences may be lists, tuples or NumPy arrays (a single id may be a
scalar: ``5`` is ``[5]``), and ids and labels NumPy scalars. ``y`` (scikit-learn's labels) sets each
record's label.

>>> import numpy as np
>>> as_records(np.array([[3, 7], [4, 8]]), y=np.array([1, 0]))
[{'in0': [3], 'in1': [7], 'label': 1}, {'in0': [4], 'in1': [8], 'label': 0}]
>>> as_records([((1, 2), np.array([5]), np.int64(1))])
[{'in0': [1, 2], 'in1': [5], 'label': 1}]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import DataError

FIELDS = ("in0", "in1", "label")


def is_passthrough(source: Any) -> bool:
    """Paths (one or a list of them) and packed data go to the readers as they are."""
    from .pairs import PairData

    if isinstance(source, str | os.PathLike | PairData):
        return True
    return isinstance(source, list | tuple) and bool(source) and all(isinstance(s, str | os.PathLike) for s in source)


def is_labels(value: Any) -> bool:
    """A 1-D array or list of scalars: scikit-learn's ``y`` (not records, not paths)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind in "biuf"
    if hasattr(value, "to_numpy") and getattr(value, "ndim", 0) == 1:  # a pandas Series
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, int | float | np.number) for v in value)


def as_source(source: Any, y: Any = None) -> Any:
    """``source`` as the readers take it: paths and :class:`PairData` unchanged, the rest as records."""
    if source is None or (y is None and is_passthrough(source)):
        return source
    if is_passthrough(source):
        raise DataError(["y= labels go with in-memory pairs; a file's labels are its records' 'label' fields"])
    return as_records(source, y)


def as_records(source: Any, y: Any = None) -> list[dict[str, Any]]:
    """Every accepted form of pairs (see the module docstring) as a list of plain records."""
    records = _records(source)
    if y is not None:
        labels = _plain(np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y))
        if not isinstance(labels, list) or len(labels) != len(records):
            got = len(labels) if isinstance(labels, list) else "a scalar"
            raise DataError([f"y: has {got} labels for {len(records)} pairs; expected one label per pair"])
        for record, label in zip(records, labels, strict=True):
            record["label"] = label
    return records


def _records(source: Any) -> list[dict[str, Any]]:
    if hasattr(source, "columns") and hasattr(source, "to_dict"):  # a pandas DataFrame
        return _columns({name: source[name].to_numpy() for name in FIELDS if name in source.columns}, "DataFrame")
    columns = isinstance(source, Mapping) and any(isinstance(v, list | tuple | np.ndarray) for v in source.values())
    if columns and all(name in FIELDS for name in source) and not isinstance(source.get("in0"), str):
        return _columns(dict(source), "dict of columns")
    if isinstance(source, np.ndarray):
        if source.dtype.names:
            return _columns({name: source[name] for name in FIELDS if name in source.dtype.names}, "structured array")
        if source.ndim == 2 and source.shape[1] == 2 and source.dtype.kind in "iu":
            return [{"in0": [int(a)], "in1": [int(b)]} for a, b in source.tolist()]
        shape = f"a NumPy array of shape {source.shape} and dtype {source.dtype}"
        raise DataError(
            [f"{shape}: expected an integer (n, 2) array (one id a side) or a structured array with fields in0, in1 and label"]
        )
    if isinstance(source, Mapping | str | bytes) or not isinstance(source, Iterable):
        raise DataError([f"pairs: got {type(source).__name__}; expected a path, records, a DataFrame or an (n, 2) id array"])
    return [_record(item) for item in source]


def _columns(columns: dict[str, Any], what: str) -> list[dict[str, Any]]:
    if "in0" not in columns and "in1" not in columns:
        raise DataError([f"{what}: has no in0 or in1; expected columns in0, in1 (and label)"])
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) > 1:
        raise DataError([f"{what}: columns of different lengths {sizes}; expected one value a pair in each"])
    names = list(columns)
    return [_sides(dict(zip(names, (_plain(v) for v in row), strict=True))) for row in zip(*columns.values(), strict=True)]


def _record(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return _sides({str(k): _plain(v) for k, v in item.items()})
    if isinstance(item, tuple | list) and 2 <= len(item) <= 3:
        return _sides(dict(zip(FIELDS, (_plain(v) for v in item), strict=False)))
    return item  # the reader words what is wrong with it, with its place


def _sides(record: dict[str, Any]) -> dict[str, Any]:
    """A single id given as a scalar is a sequence of one."""
    for side in ("in0", "in1"):
        if type(record.get(side)) is int:
            record[side] = [record[side]]
    return record


def _plain(value: Any) -> Any:
    """NumPy arrays and scalars, tuples: as the JSON-like values the readers check."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
