"""``--memory-10m``: 10 million pairs trained in a few hundred steps, peak RSS of the whole process."""

from __future__ import annotations

import gc
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from harness import AnonSampler, child_setup, current_rss_mb, in_fresh_process, log, peak_rss_mb, proc_status_mb
from object2vec.data.pairs import Schema, read_pairs
from object2vec.nn.model import Object2VecNet
from object2vec.training.loop import fit
from throughput.loading import CACHE_ENV, write_pairs_jsonl
from throughput.models import CONFIGS, object2vec_hyperparameters, random_pairs


@dataclass
class Memory10mResult:
    source: str  # how the data was made: numpy, parse (JSON Lines, read_pairs(cache=True)), cache (reload)
    pairs: int
    tokens_a_side: int
    data_mb: float  # PairData.nbytes
    token_dtype: str
    rss_after_imports_mb: float
    rss_after_data_mb: float
    peak_rss_data_mb: float  # VmHWM when the data is ready: building or parsing it, before any model
    peak_rss_mb: float  # VmHWM of the whole process, imports, data (and parsing) included
    peak_anon_mb: float | None  # highest RssAnon sampled every 10 ms: memory not backed by a file
    data_seconds: float
    steps: int
    pairs_per_s: float
    method: str


MEMORY_10M_SOURCES = {
    "numpy": "built with numpy (no JSON)",
    "parse": "parsed from JSON Lines by read_pairs(cache=True)",
    "cache": "reloaded by read_pairs(cache=True) from that cache",
}


def run_memory_10m(
    pairs: int, steps: int, threads: int | None, source: str = "numpy", path: str | None = None, cache: str | None = None
) -> Memory10mResult:
    """10M pairs (built with numpy, parsed from ``path``, or reloaded from its cache), then ``steps``
    steps of pooled row_sparse through ``training.loop.fit``; meant for a fresh process of its own."""
    child_setup(threads)
    config = CONFIGS["pooled"]
    method = "VmHWM (/proc/self/status)" if proc_status_mb("VmHWM") is not None else "ru_maxrss"
    gc.collect()
    after_imports = current_rss_mb()
    sampler = AnonSampler()
    hp = object2vec_hyperparameters(config, "row_sparse")
    log(f"memory-10m ({source}): {pairs:,} pairs of {config.seq_len} tokens a side {MEMORY_10M_SOURCES[source]}")
    if cache is not None:
        os.environ[CACHE_ENV] = cache  # this process only: keep the benchmark's cache out of ~/.cache
    t0 = time.perf_counter()
    schema = Schema.from_hyperparameters(hp)
    data = random_pairs(config, pairs) if source == "numpy" else read_pairs(path, schema, cache=True)  # type: ignore[arg-type]
    data_seconds = time.perf_counter() - t0
    gc.collect()
    after_data, peak_data = current_rss_mb(), peak_rss_mb()
    torch.manual_seed(0)
    net = Object2VecNet(hp)
    log(f"memory-10m ({source}): training {steps} steps with object2vec.training.loop.fit")
    result = fit(net, data, max_steps=steps)
    return Memory10mResult(
        source,
        pairs,
        config.seq_len,
        data.nbytes / 2**20,
        str(data.in0.tokens.dtype),
        after_imports,
        after_data,
        peak_data,
        peak_rss_mb(),
        sampler.stop(),
        data_seconds,
        steps,
        result.history[-1]["throughput"],
        method,
    )


def run_memory_10m_all(pairs: int, steps: int, threads: int | None) -> list[Memory10mResult]:
    """The three sources, each in a fresh process; the JSON Lines file and its cache live in a temporary folder."""
    results = [in_fresh_process(run_memory_10m, pairs, steps, threads, "numpy")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        log(f"memory-10m: writing {pairs:,} pairs to a temporary JSON Lines file")
        in_fresh_process(write_pairs_jsonl, path, pairs)
        for source in ("parse", "cache"):  # the first parses and writes the cache, the second reloads it
            results.append(in_fresh_process(run_memory_10m, pairs, steps, threads, source, str(path), str(Path(tmp) / "cache")))
    return results
