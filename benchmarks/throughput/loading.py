"""JSON Lines loading lines/s: object2vec's reader (and its cached reload) beside orjson and pyarrow."""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from harness import log, timed
from object2vec.data.pairs import Schema, read_pairs
from throughput.models import CONFIGS


@dataclass
class LoadResult:
    reader: str
    lines_per_s: float | None  # None: the reader is not available here; else the best round
    megabytes_per_s: float | None
    note: str = ""
    rounds_lines_per_s: list[float] | None = None  # every round, in order


LOAD = CONFIGS["pooled"]  # the file: pooled's vocabulary, 20 tokens a side


def write_pairs_jsonl(path: Path, n: int, seed: int = 1, chunk: int = 200_000) -> None:
    """``n`` lines ``{"label": 0|1, "in0": [20 ids], "in1": [20 ids]}``, written ``chunk`` lines at a time."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            in0 = rng.integers(0, LOAD.vocab, (m, LOAD.seq_len)).tolist()
            in1 = rng.integers(0, LOAD.vocab, (m, LOAD.seq_len)).tolist()
            labels = rng.integers(0, 2, m).tolist()
            fh.writelines(
                orjson.dumps({"label": y, "in0": a, "in1": b}) + b"\n" for y, a, b in zip(labels, in0, in1, strict=True)
            )


SCHEMA = Schema(vocab_size=(LOAD.vocab, LOAD.vocab), max_seq_len=(LOAD.seq_len, LOAD.seq_len), regression=False, num_classes=2)


def read_with_object2vec(path: Path) -> int:
    return len(read_pairs(path, SCHEMA))


def read_with_orjson(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if orjson.loads(line) is not None)


def pyarrow_reader() -> Callable[[Path], int] | None:
    try:
        import pyarrow.json as pa_json
    except ImportError:
        return None
    return lambda path: pa_json.read_json(path).num_rows


CACHE_ENV = "OBJECT2VEC_CACHE_DIR"  # where read_pairs(cache=True) keeps parsed files


def has_cache() -> bool:
    """Whether this object2vec's ``read_pairs`` takes ``cache=`` (its binary cache of parsed files)."""
    return "cache" in inspect.signature(read_pairs).parameters


def run_loading(n: int, rounds: int = 5) -> list[LoadResult]:
    results = []
    saved = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        log(f"loading: writing {n:,} pairs to a temporary JSON Lines file")
        write_pairs_jsonl(path, n)
        megabytes = path.stat().st_size / 1e6

        def once(name: str, reader: Callable[[], int]) -> float:
            lines, took = timed(reader)
            if lines != n:
                raise RuntimeError(f"{name} read {lines} lines; expected {n}")
            return lines / took

        def record(name: str, reader: Callable[[], int], repeats: int = 1) -> None:
            log(f"loading: {name}")
            # best of ``repeats``: a reload that takes milliseconds is easily disturbed
            rates = [once(name, reader) for _ in range(repeats)]
            results.append(LoadResult(name, max(rates), max(rates) * megabytes / n, rounds_lines_per_s=rates))

        # The parsers that are compared run in interleaved rounds (ours, orjson, pyarrow, ours, ...),
        # so a burst of load from another process hits each alike; the table shows each one's best round.
        arrow = pyarrow_reader()
        compared: list[tuple[str, Callable[[], int]]] = [
            ("object2vec.data.pairs.read_pairs (validating)", lambda: read_with_object2vec(path)),
            ("orjson.loads per line (no validation, no arrays)", lambda: read_with_orjson(path)),
        ]
        if arrow is not None:
            compared.append(("pyarrow.json.read_json", lambda: arrow(path)))
        rates: dict[str, list[float]] = {name: [] for name, _ in compared}
        for k in range(rounds):
            log(f"loading: round {k + 1} of {rounds}: " + ", ".join(name.split(" (")[0] for name, _ in compared))
            for name, reader in compared:
                rates[name].append(once(name, reader))
        read_pairs_rate = rates.pop(compared[0][0])
        results.append(
            LoadResult(
                compared[0][0], max(read_pairs_rate), max(read_pairs_rate) * megabytes / n, rounds_lines_per_s=read_pairs_rate
            )
        )
        if not has_cache():
            results.append(LoadResult("object2vec.data.pairs.read_pairs, cached reload", None, None, "cache not available"))
        else:
            os.environ[CACHE_ENV] = str(Path(tmp) / "cache")  # keep the benchmark's cache out of ~/.cache
            try:

                def cached() -> int:
                    return len(read_pairs(path, SCHEMA, cache=True))

                record("read_pairs(cache=True), first read (parses, writes the cache)", cached)
                record("read_pairs(cache=True), reload of the unchanged file (best of 3)", cached, 3)
            finally:
                if saved is None:
                    os.environ.pop(CACHE_ENV, None)
                else:
                    os.environ[CACHE_ENV] = saved
        for name, rate in rates.items():
            results.append(LoadResult(name, max(rate), max(rate) * megabytes / n, rounds_lines_per_s=rate))
        if arrow is None:
            results.append(LoadResult("pyarrow.json.read_json", None, None, "pyarrow not installed"))
    return results
