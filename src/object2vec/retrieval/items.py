"""Items: the things one side of a model embeds, with the ids people know them by.

Indexes, recommendations, clusters and maps all start from a list of items of one side (``in0`` or
``in1``). An item file is JSON Lines like the training data, one item per line::

    {"id": "tt0114709", "in1": [50], "label": "Animation", "name": "Toy Story (1995)"}
    {"in1": [51]}

* the side's sequence (``in0`` or ``in1``) is required and is checked exactly as in training
  (token ids below the vocabulary size, or text for a model trained with a vocabulary);
* ``id`` (a string or an integer) defaults to the token itself when the sequence is one token id,
  so ``{"in1": [50]}`` is item ``50``, the same id the default catalogue gives it, and to the text
  itself for a text item; a sequence of several ids needs an ``id``;
* ``label`` (optional, any string or number) is the item's category, used to colour maps and to
  score clusters; either every item has one or none does;
* ``name`` (optional) is what maps print beside a point.

An item listed twice with the same sequence and label is kept once (a file of training pairs lists
each item many times); the same id with a different sequence or label is a problem. Without a file,
the catalogue is the vocabulary: every token id ``0..enc*_vocab_size-1`` as a one-token item whose id
is the token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .. import console
from ..data.pairs import Schema, list_files, open_lines
from ..errors import DataError, Line, Location, Problem, Problems, UnknownIdError, location_text, relocate
from ..text.tokenize import read_text_pairs

SIDES = ("in0", "in1")
EMBED_CHUNK = 16384  # items embedded per call, for the progress bar: a multiple of the model's batch (4096)
ItemId = str | int


@dataclass
class Items:
    """Items of one side: ``ids[i]`` has token sequence ``sequences[i]`` (and ``labels[i]``, ``names[i]``)."""

    side: str
    ids: list[ItemId]
    sequences: list[list[int]]
    labels: list[Any] | None = None
    names: list[str | None] | None = None
    _positions: dict[Any, int] | None = field(default=None, repr=False)
    _vectors: tuple[Any, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, item_id: Any) -> int:
        """Row of ``item_id``; ``"5"`` also finds the integer id ``5`` (ids typed on a command line are strings)."""
        if self._positions is None:
            self._positions = {i: n for n, i in enumerate(self.ids)}
        found = lookup(self._positions, item_id)
        if found is None:
            raise UnknownIdError(f"{self.side} item id {item_id!r} is not in the catalogue of {describe_ids(self.ids)}")
        return found

    def vectors(self, model: Any) -> np.ndarray:
        """The side's encoder vectors ``(n, enc_dim)``, computed once per model."""
        if self._vectors is None or self._vectors[0] is not model:
            parts = []
            with console.progress(len(self), desc=f"embedding {self.side}", unit=" items", unit_scale=True) as bar:
                for start in range(0, max(len(self), 1), EMBED_CHUNK):
                    parts.append(model.embed(**{self.side: self.sequences[start : start + EMBED_CHUNK]}))
                    bar.update(len(parts[-1]))
            self._vectors = (model, np.concatenate(parts))
        return self._vectors[1]

    def subset(self, rows: Sequence[int]) -> Items:
        """The items at ``rows``, in that order."""
        pick = list(rows)
        return Items(
            self.side,
            [self.ids[r] for r in pick],
            [self.sequences[r] for r in pick],
            None if self.labels is None else [self.labels[r] for r in pick],
            None if self.names is None else [self.names[r] for r in pick],
        )


def lookup(positions: Mapping[Any, int], item_id: Any) -> int | None:
    """``positions[item_id]``, also matching a string to an integer id (``"5"`` -> ``5``)."""
    found = positions.get(item_id)
    if found is None and isinstance(item_id, str) and re.fullmatch(r"-?\d+", item_id.strip()):
        found = positions.get(int(item_id))
    return found


def describe_ids(ids: Sequence[Any]) -> str:
    shown = ", ".join(repr(i) for i in ids[:3])
    return f"{len(ids)} ids, e.g. {shown}" if ids else "0 ids"


def embed_one(model: Any, side: str, seq: Any, what: str) -> np.ndarray:
    """The ``side`` vector ``(enc_dim,)`` of one sequence (a token id, ids, or text); problems name ``what``."""
    seq = [int(seq)] if isinstance(seq, (int, np.integer)) and not isinstance(seq, bool) else seq
    try:
        return model.embed(**{side: [seq]})[0]
    except DataError as e:
        raise DataError(relocate(e.found, [what]), e.count) from None


def vocabulary_items(model: Any, side: str) -> Items:
    """Every token id of ``side``'s vocabulary as a one-token item whose id is the token."""
    check_side(side)
    hp = model._fitted().hp
    size = hp.enc0_vocab_size if side == "in0" else hp.enc1_vocab_size
    return Items(side, list(range(size)), [[t] for t in range(size)])


def check_side(side: str) -> str:
    if side not in SIDES:
        raise DataError([f"side: {side!r} is not a side; expected in0 or in1"])
    return side


def read_items(source: Any, model: Any, side: str | None = None) -> Items:
    """Items from a JSON Lines file (or folder, ``.gz``) or a list of records, checked against ``model``.

    ``side=None`` takes the side the records carry; records carrying both need an explicit side.
    Every problem is reported together, each with its ``file:line``.

    Raises:
        DataError: bad JSON, a missing/invalid sequence, id, label or name, or a conflicting duplicate.
    """
    problems = Problems()
    located = list(_located(source, problems))
    problems.raise_if_any()
    if not located:
        raise DataError([Problem(_describe(source), None, "no items", "one JSON object per line")])
    side = _infer_side(side, [rec for _, rec in located], source)
    ids: list[ItemId] = []
    sequences: list[Any] = []
    labels: list[Any] = []
    names: list[str | None] = []
    places: list[Location] = []
    for place, rec in located:
        seq, item_id = _plain(rec.get(side)), _plain(rec.get("id"))
        if item_id is None:
            if isinstance(seq, list) and len(seq) == 1 and isinstance(seq[0], int) and not isinstance(seq[0], bool):
                item_id = seq[0]
            elif isinstance(seq, str):
                item_id = seq
            elif seq is not None:
                problems.add(Problem(place, "id", f'missing; an item whose {side} is not one token id or a text needs an "id"'))
                continue
        elif isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
            problems.add(Problem(place, "id", f"{item_id!r} is a {type(item_id).__name__}", "a string or an integer"))
            continue
        label = rec.get("label")
        if label is not None and (isinstance(label, (list, dict)) or (isinstance(label, float) and not np.isfinite(label))):
            problems.add(Problem(place, "label", f"{label!r} is not a category", "a string or a number"))
            continue
        name = rec.get("name")
        if name is not None and not isinstance(name, str):
            problems.add(Problem(place, "name", f"{name!r} is a {type(name).__name__}", "a string"))
            continue
        ids.append(item_id)
        sequences.append(seq)
        labels.append(label)
        names.append(name)
        places.append(place)
    problems.raise_if_any()
    data = _checked_side(sequences, side, model, places)
    seqs = [data[i].tolist() for i in range(len(data))]
    return _deduplicated(Items(side, ids, seqs, labels, names), places)


def as_items(candidates: Any, model: Any, side: str) -> Items:
    """Items from whatever a caller passes as a catalogue.

    ``None``: the vocabulary (:func:`vocabulary_items`); :class:`Items`: itself; a path: an item file;
    a list of records: read like a file; a mapping ``id -> sequence``; a list of ids: one-token items
    (ints are token ids). An empty list is refused: there is nothing to rank.
    """
    if candidates is None:
        return vocabulary_items(model, side)
    if isinstance(candidates, Items):
        return candidates
    if isinstance(candidates, (str, os.PathLike)):
        return read_items(candidates, model, side)
    if isinstance(candidates, Mapping):
        records: list[Any] = [{"id": k, side: v} for k, v in candidates.items()]
    else:
        records = [
            r if isinstance(r, Mapping) else {side: [int(r)] if isinstance(r, (int, np.integer)) else r} for r in candidates
        ]
    if not records:
        raise DataError([Problem("candidates", None, "empty", f"at least one {side} item to rank")])
    return read_items(records, model, side)


# --------------------------------------------------------------------------------------------------


def _located(source: Any, problems: Problems) -> Iterable[tuple[Location, dict[str, Any]]]:
    """``(place, record)`` for each record: its index in a list, or its :class:`Line` in a file."""
    if isinstance(source, (list, tuple)):
        for i, rec in enumerate(source):
            if isinstance(rec, Mapping):
                yield i, dict(rec)
            else:
                problems.add(Problem(i, None, f"is a {type(rec).__name__}", f"an object with {SIDES[0]} or {SIDES[1]}"))
        return
    for file in list_files(source):
        problems.expect(file)
        with open_lines(file) as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                at = Line(str(file), lineno)
                try:
                    rec = orjson.loads(raw)
                except orjson.JSONDecodeError as e:
                    problems.add(Problem(at, None, f"not valid JSON ({e})", "one JSON object per line"))
                    continue
                if not isinstance(rec, dict):
                    problems.add(Problem(at, None, f"is a {type(rec).__name__}", "a JSON object"))
                    continue
                yield at, rec


def _plain(value: Any) -> Any:
    """NumPy integers (in records built in Python) as Python ints, so they validate and serialise like JSON's."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [int(v) if isinstance(v, np.integer) else v for v in value]
    return value


def _describe(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "records"


def _infer_side(side: str | None, records: list[dict[str, Any]], source: Any) -> str:
    if side is not None:
        return check_side(side)
    carried = [s for s in SIDES if any(s in r for r in records)]
    if len(carried) == 1:
        return carried[0]
    what = "both in0 and in1" if carried else "neither in0 nor in1"
    raise DataError([Problem(_describe(source), None, f"the records carry {what}; choose a side (--side in0 or --side in1)")])


def _checked_side(sequences: list[Any], side: str, model: Any, places: list[Location]) -> Any:
    """The sequences validated (and text encoded) exactly as training validates them."""
    net = model._fitted()
    records = [{side: s} for s in sequences] if sequences else [{side: None}]
    try:
        data = read_text_pairs(records, Schema.from_hyperparameters(net.hp), model._text, require_label=False, sides=(side,))
    except DataError as e:
        raise DataError(relocate(e.found, places), e.count) from None
    return data.in0 if side == "in0" else data.in1


def _deduplicated(items: Items, places: list[Location]) -> Items:
    problems = Problems()
    first: dict[Any, int] = {}
    keep: list[int] = []
    for row, item_id in enumerate(items.ids):
        seen = first.get(item_id)
        if seen is None:
            first[item_id] = row
            keep.append(row)
            continue
        assert items.labels is not None
        if items.sequences[row] != items.sequences[seen]:
            earlier = location_text(places[seen])
            problems.add(Problem(places[row], "id", f"{item_id!r} was already given to a different {items.side} at {earlier}"))
        elif items.labels[row] != items.labels[seen]:
            earlier = location_text(places[seen])
            differs = f"{items.labels[row]!r} differs from {items.labels[seen]!r} given to id {item_id!r} at {earlier}"
            problems.add(Problem(places[row], "label", differs, "one label per item"))
    labelled = [places[r] for r in keep if items.labels[r] is not None]  # type: ignore[index]
    if labelled and len(labelled) < len(keep):
        missing = [places[r] for r in keep if items.labels[r] is None]  # type: ignore[index]
        problems.add(
            Problem(
                missing[0],
                "label",
                f"missing, while {len(labelled)} other items have one",
                f"a label on every item or on none ({len(missing)} without)",
            )
        )
    problems.raise_if_any()
    out = items.subset(keep)
    if not labelled:
        out.labels = None
    if out.names is not None and all(n is None for n in out.names):
        out.names = None
    return out
