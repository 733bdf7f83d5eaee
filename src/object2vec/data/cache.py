"""The binary cache of parsed files: a file's :class:`~object2vec.data.jsonl.Raw` arrays, kept so the
next read skips JSON parsing, and never trusted.

An entry is keyed by a hash of the file's *bytes* (:func:`object2vec.files.content_digest`, XXH3),
not by its path, size or time: an edit that keeps the size and the modification time is still a
different file. Each entry holds one ``.npy`` file per array and a ``manifest.json`` with the digest
of each; on load every digest is checked and the arrays are checked against each other (lengths sum
to the tokens, one line number, length and label per record, lines in increasing order), so an
altered, truncated or inconsistent entry is never used: the file is parsed again and the entry
replaced. Checking costs a hash of the file and of the arrays, about 1 ms for 13 MB each, where the
parse it saves takes 50-170 ms (``docs/benchmarks.md``).

Schema checks (vocabulary sizes, labels, truncation) are not cached: they run on every read, so one
entry serves every model trained on the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..files import atomic_folder, cache_dir, content_digest
from . import jsonl
from .jsonl import Parser, Raw

CACHE_VERSION = 3  # 2: tokens stored as uint16 where every id fits; 3: keyed by content, manifest of digests
MANIFEST = "manifest.json"
FORMAT = "object2vec-data-cache"


def read_file(file: Path, parser: Parser, cache: bool, shard: tuple[int, int]) -> Raw:
    """A file's arrays: from its cache entry when a valid one exists, else parsed (and then cached,
    when the file had no problem and did not change while it was read)."""
    if not cache:
        return jsonl.parse_file(file, parser, shard)
    try:
        digest = content_digest(file)
    except (OSError, ValueError):  # unreadable or unmappable: the parse names the problem, if any
        return jsonl.parse_file(file, parser, shard)
    folder = cache_dir() / _key(digest, parser.sides, parser.require_label, shard, parser.weights)
    raw = load(folder, parser.sides, parser.require_label, parser.weights) if folder.is_dir() else None
    if raw is not None:
        return raw
    count_before = parser.problems.count
    raw = jsonl.parse_file(file, parser, shard)
    if parser.problems.count == count_before and len(raw.where) and _unchanged(file, digest):
        store(folder, raw, parser.sides, parser.require_label)
    return raw


def _key(digest: str, sides: tuple[str, ...], require_label: bool, shard: tuple[int, int], weights: tuple[str, ...] = ()) -> str:
    ident = f"{CACHE_VERSION}|{digest}|{','.join(sides)}|{require_label}|{shard}"
    if weights:  # per-token weights read too (a weighted-mean model); a key without them stays what it was
        ident += f"|weights={','.join(weights)}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _unchanged(file: Path, digest: str) -> bool:
    try:
        return content_digest(file) == digest
    except (OSError, ValueError):
        return False


def _names(sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()) -> list[str]:
    names = [f"{s}.{kind}" for s in sides for kind in ("tokens", "lengths")] + ["where"] + [f"{s}.weights" for s in weights]
    return names + (["labels"] if require_label else [])


def load(folder: Path, sides: tuple[str, ...], require_label: bool, weights: tuple[str, ...] = ()) -> Raw | None:
    """The entry's arrays, or ``None`` when it is missing, damaged, altered or inconsistent."""
    names = _names(sides, require_label, weights)
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
        digests = manifest["files"]
        if manifest.get("format") != FORMAT or manifest.get("version") != CACHE_VERSION:
            return None
        if set(digests) != {f"{name}.npy" for name in names}:
            return None
        if any(content_digest(folder / f"{name}.npy") != digests[f"{name}.npy"] for name in names):
            return None
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in names}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    raw = Raw(
        {s: np.asarray(arrays[f"{s}.tokens"]) for s in sides},
        {s: np.asarray(arrays[f"{s}.lengths"]) for s in sides},
        np.asarray(arrays["labels"]) if require_label else None,
        arrays["where"],  # stays memory-mapped: only read to locate a problem
        {s: np.asarray(arrays[f"{s}.weights"]) for s in weights},
    )
    return raw if consistent(raw) else None


def consistent(raw: Raw) -> bool:
    """Whether the arrays fit together as the parser writes them: one line number (increasing), one
    length (at least 1) per side and one label per record; each side's lengths sum to its tokens."""
    n = len(raw.where)
    where = raw.where
    if where.dtype != np.int64 or where.ndim != 1 or (n and (where[0] < 0 or not np.all(where[1:] > where[:-1]))):
        return False
    if raw.labels is not None and (raw.labels.dtype != np.float64 or raw.labels.shape != (n,)):
        return False
    for side, tokens in raw.tokens.items():
        lengths = raw.lengths[side]
        if tokens.dtype not in (np.uint16, np.int32) or tokens.ndim != 1:
            return False
        if lengths.dtype != np.int64 or lengths.shape != (n,) or (n and lengths.min() < 1):
            return False
        if int(lengths.sum()) != len(tokens):
            return False
    for side, weights in raw.weights.items():  # one valid weight per token, as the parser checked them
        if side not in raw.tokens or weights.dtype != np.float32 or weights.shape != raw.tokens[side].shape:
            return False
        if not jsonl.valid_weights(weights, raw.lengths[side]):
            return False
    return True


def store(folder: Path, raw: Raw, sides: tuple[str, ...], require_label: bool) -> None:
    """Write the entry atomically (temporary folder + rename), replacing a damaged one; a read-only
    or full disk just means no cache."""
    arrays = {f"{s}.tokens": raw.tokens[s] for s in sides} | {f"{s}.lengths": raw.lengths[s] for s in sides}
    arrays |= {f"{s}.weights": w for s, w in raw.weights.items()}
    arrays["where"] = raw.where
    if require_label and raw.labels is not None:  # records read with require_label have labels
        arrays["labels"] = raw.labels
    if any(a.dtype == np.int64 for name, a in arrays.items() if name.endswith(".tokens")):
        return  # ids beyond int32 are errors; such a file is not worth caching
    try:
        with atomic_folder(folder, replace=True) as tmp:
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array)
            digests = {f"{name}.npy": content_digest(tmp / f"{name}.npy") for name in arrays}
            manifest = {"format": FORMAT, "version": CACHE_VERSION, "files": digests}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    except OSError:
        pass
