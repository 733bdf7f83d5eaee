"""Neighbour indexes over embeddings: exact or approximate (faiss), with the item ids kept beside.

Metrics and what a score means:

* ``cosine``: cosine similarity in ``[-1, 1]``, higher is nearer (vectors are L2-normalised on the
  way in, queries too, and searched by inner product);
* ``ip``: the inner product, higher is nearer;
* ``l2``: the Euclidean distance (not faiss's squared distance), **lower** is nearer.

Results are always sorted nearest first. Kinds: ``exact`` (a flat index: every vector is compared),
``hnsw`` (a graph; the usual choice for large catalogues) and ``ivf`` (inverted lists: k-means
cells, ``nprobe`` of them searched). An index is saved as a folder, each file written atomically
and ``meta.json`` last, so a folder without it is not an index::

    index/
      index.faiss   the faiss index (faiss.serialize_index)
      ids.json      ids[i] is the id of vector i (strings or integers, as given)
      meta.json     format and version, metric, kind, dim, count, search parameters, model info
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import console
from .._optional import require
from ..errors import IndexFormatError, UnknownIdError
from ..files import atomic_write_bytes, atomic_write_json
from .items import describe_ids, lookup

FORMAT = "object2vec-index"
FORMAT_VERSION = 1
INDEX_FILE, IDS_FILE, META_FILE = "index.faiss", "ids.json", "meta.json"
METRICS = ("cosine", "ip", "l2")
KINDS = ("exact", "hnsw", "ivf")
ADD_CHUNK = 65536  # vectors added per faiss call, so a long HNSW build can show its progress


def _faiss() -> Any:
    return require("faiss", "a neighbour index")


class NeighborIndex:
    """A faiss index plus the ids of its vectors. Build with :meth:`build`, reopen with :meth:`load`.

    >>> vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
    >>> index = NeighborIndex.build(vectors, ["x", "y", "xy"], metric="cosine")
    >>> ids, scores = index.search(np.array([[1.0, 0.1]]), k=2)
    >>> ids, [round(float(s), 3) for s in scores[0]]
    ([['x', 'xy']], [0.995, 0.774])
    """

    def __init__(self, index: Any, ids: Sequence[Any], meta: dict[str, Any]):
        self.index = index
        self.ids = list(ids)
        self.meta = meta
        self._positions = {i: n for n, i in enumerate(self.ids)}

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def __len__(self) -> int:
        return len(self.ids)

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids: Sequence[Any],
        metric: str = "cosine",
        kind: str = "exact",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int | None = None,
        seed: int = 0,
        info: Mapping[str, Any] | None = None,
    ) -> NeighborIndex:
        """Index ``vectors`` ``(n, dim)``; ``ids[i]`` names row ``i``.

        Args:
            metric: ``cosine`` (default), ``ip`` or ``l2`` (see the module docstring for scores).
            kind: ``exact`` (default), ``hnsw`` or ``ivf``.
            hnsw_m, ef_construction, ef_search: HNSW graph degree, build and search beam widths.
            nlist, nprobe: IVF cells and cells searched [about 4·sqrt(n) cells, a quarter searched].
            info: stored in ``meta.json`` (which model and side made the vectors).

        Raises:
            ValueError: bad shapes, non-finite vectors, duplicate or unsupported ids, unknown options.
        """
        faiss = _faiss()
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        x = _as_matrix(vectors, "vectors")
        if len(x) == 0:
            raise ValueError("vectors: no rows; expected at least one vector to index")
        ids = [_plain_id(i) for i in ids]
        if len(ids) != len(x):
            raise ValueError(f"ids: {len(ids)} ids for {len(x)} vectors; expected one id per row")
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"ids: {dup!r} appears more than once; expected unique ids")
        n, dim = x.shape
        if metric == "cosine":
            x = _normalised(x)
        faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        params: dict[str, Any] = {}
        if kind == "exact":
            index = faiss.IndexFlat(dim, faiss_metric)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss_metric)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            params = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search}
        else:
            # faiss wants ~39 training points per cell; fewer cells than that would be badly placed
            nlist = nlist or max(1, min(round(4 * math.sqrt(n)), n // 39))
            nprobe = min(nprobe or max(1, math.ceil(nlist / 4)), nlist)
            quantizer = faiss.IndexFlat(dim, faiss_metric)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
            index.cp.seed = seed
            with console.working(f"training {nlist} IVF cells"):
                index.train(x)
            index.nprobe = nprobe
            params = {"nlist": nlist, "nprobe": nprobe}
        with console.progress(n, desc=f"indexing ({kind})", unit=" vectors", unit_scale=True) as bar:
            for start in range(0, n, ADD_CHUNK):
                index.add(x[start : start + ADD_CHUNK])
                bar.update(min(ADD_CHUNK, n - start))
        if kind == "ivf":
            index.make_direct_map()  # so vector_of can read a row back
        meta = {"metric": metric, "kind": kind, "dim": dim, "count": n, "params": params, "info": dict(info or {})}
        return cls(index, ids, meta)

    # ---------------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10) -> tuple[list[list[Any]], np.ndarray]:
        """The ``k`` nearest items of each query: ``(ids, scores)``, nearest first.

        ``ids`` is one list per query; ``scores`` is ``(n_queries, k)`` float32 (see the module
        docstring; ``l2`` scores are distances). ``k`` above the catalogue size is clipped to it with
        a warning. An approximate index may return fewer than ``k`` items for a query; the rest of
        that row of ``scores`` is NaN.
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an integer >= 1; got {k!r}")
        if k > len(self):
            warnings.warn(f"k={k} is more than the {len(self)} items in the index; returning all {len(self)}", stacklevel=2)
            k = len(self)
        q = _as_matrix(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries: {q.shape[1]} dimensions; the index holds {self.dim}-dimensional vectors")
        if self.metric == "cosine":
            q = _normalised(q)
        scores, rows = self.index.search(q, int(k))  # (nq, k) each; rows are -1 where nothing was found
        if self.metric == "l2":
            scores = np.sqrt(np.maximum(scores, 0))  # faiss reports squared distances
        scores = np.where(rows < 0, np.nan, scores).astype(np.float32)
        ids = [[self.ids[r] for r in row if r >= 0] for row in rows]
        return ids, scores

    def neighbors(self, item_id: Any, k: int = 10) -> tuple[list[Any], np.ndarray]:
        """The ``k`` nearest items of an indexed item, itself left out: ``(ids, scores)``."""
        wanted = min(k, len(self) - 1)
        if k > wanted:
            warnings.warn(f"k={k} is more than the {len(self) - 1} other items in the index; returning all of them", stacklevel=2)
        if wanted < 1:
            return [], np.zeros(0, np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids, scores = self.search(self.vector_of(item_id)[None], wanted + 1)
        own = self._position(item_id)
        keep = [j for j, i in enumerate(ids[0]) if self._positions[i] != own][:wanted]
        return [ids[0][j] for j in keep], scores[0][keep]

    def vector_of(self, item_id: Any) -> np.ndarray:
        """The stored vector of ``item_id`` (L2-normalised for a cosine index)."""
        return self.index.reconstruct(self._position(item_id))

    def _position(self, item_id: Any) -> int:
        found = lookup(self._positions, item_id)
        if found is None:
            raise UnknownIdError(f"id {item_id!r} is not in the index ({describe_ids(self.ids)})")
        return found

    # ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index folder (atomic files, ``meta.json`` last); returns the folder."""
        faiss = _faiss()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / INDEX_FILE, faiss.serialize_index(self.index).tobytes())
        atomic_write_bytes(folder / IDS_FILE, json.dumps(self.ids).encode())
        from .. import __version__

        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "object2vec_version": __version__, **self.meta}
        atomic_write_json(folder / META_FILE, meta)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> NeighborIndex:
        """Reopen a saved index folder.

        Raises:
            IndexFormatError: the folder or a file is missing, damaged, or does not match the others.
        """
        faiss = _faiss()
        folder = Path(path)
        hint = "expected a folder written by 'object2vec index build' or NeighborIndex.save"
        if not folder.is_dir():
            raise IndexFormatError(f"{folder}: no such index folder; {hint}")
        for name in (META_FILE, INDEX_FILE, IDS_FILE):
            if not (folder / name).is_file():
                raise IndexFormatError(f"{folder}: has no {name}; {hint}")
        meta = _read_json(folder / META_FILE)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise IndexFormatError(f'{folder / META_FILE}: has wrong file format; expected "format": "{FORMAT}"')
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise IndexFormatError(
                f"{folder / META_FILE}: format_version {version!r} is not supported (reads up to {FORMAT_VERSION}); upgrade object2vec"
            )
        if meta.get("metric") not in METRICS or meta.get("kind") not in KINDS or not isinstance(meta.get("dim"), int):
            raise IndexFormatError(f"{folder / META_FILE}: metric, kind or dim is missing or unknown")
        ids = _read_json(folder / IDS_FILE)
        if not isinstance(ids, list):
            raise IndexFormatError(f"{folder / IDS_FILE}: holds {type(ids).__name__}; expected a JSON list of ids")
        raw = np.frombuffer((folder / INDEX_FILE).read_bytes(), dtype=np.uint8)
        try:
            index = faiss.deserialize_index(raw)
        except Exception as e:  # faiss raises RuntimeError with its C++ message for a damaged file
            first = re.sub(r"^Error in .*? at \S+:\d+: ", "", str(e).strip().split("\n")[0]) or type(e).__name__
            raise IndexFormatError(
                f"{folder / INDEX_FILE}: cannot be read ({first}); rebuild it with 'object2vec index build'"
            ) from None
        if index.ntotal != len(ids) or index.d != meta["dim"]:
            raise IndexFormatError(
                f"{folder}: {INDEX_FILE} holds {index.ntotal} vectors of {index.d} dimensions, but {IDS_FILE} has "
                f"{len(ids)} ids and {META_FILE} says dim={meta['dim']}; rebuild the index"
            )
        params = meta.get("params") or {}
        if meta["kind"] == "hnsw" and "ef_search" in params:
            index.hnsw.efSearch = int(params["ef_search"])
        if meta["kind"] == "ivf" and "nprobe" in params:
            index.nprobe = int(params["nprobe"])
        body = {k: v for k, v in meta.items() if k not in ("format", "format_version", "object2vec_version")}
        return cls(index, ids, body)


def recall_at_k(approx: NeighborIndex, exact: NeighborIndex, queries: np.ndarray, k: int = 10) -> float:
    """Mean share of each query's exact top ``k`` that the approximate index also returns in its top ``k``.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 8)).astype(np.float32)
    >>> recall_at_k(NeighborIndex.build(x, range(200)), NeighborIndex.build(x, range(200)), x[:20])
    1.0
    """
    k = min(k, len(exact))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found, _ = approx.search(queries, k)
        truth, _ = exact.search(queries, k)
    if not truth:
        return float("nan")
    return float(np.mean([len(set(a) & set(t)) / len(t) for a, t in zip(found, truth, strict=True)]))


# --------------------------------------------------------------------------------------------------


def _as_matrix(x: Any, name: str) -> np.ndarray:
    m = np.asarray(x, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"{name}: shape {m.shape}; expected a 2-D array (rows, dim)")
    if not np.isfinite(m).all():
        raise ValueError(f"{name}: row {int(np.argwhere(~np.isfinite(m))[0, 0])} is not finite; expected finite numbers")
    return np.ascontiguousarray(m)


def _normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)  # a zero vector stays zero (similarity 0 to everything)


def _plain_id(i: Any) -> Any:
    """Ids as JSON keeps them: strings and Python ints (numpy integers converted)."""
    if isinstance(i, np.integer):
        return int(i)
    if isinstance(i, bool) or not isinstance(i, (str, int)):
        raise ValueError(f"ids: {i!r} is a {type(i).__name__}; expected strings or integers")
    return i


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{path}: is not valid JSON ({e}); rebuild the index") from None
