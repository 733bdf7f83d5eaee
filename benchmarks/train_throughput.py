"""Training throughput, peak memory, bf16 accuracy parity and JSON Lines loading of object2vec, beside plain PyTorch.

Why: object2vec should train much faster than the obvious hand-written PyTorch model of the same
architecture, in little memory, without losing accuracy to bf16, and load JSON Lines at least as fast
as pyarrow. This script gives the numbers that claims and targets about speed are checked against, on
whatever CPU runs it. ``docs/benchmarks.md`` explains every number and records a run.

What it measures (one command):

1. Training pairs/s for three configurations, each beside a plain PyTorch model of the same
   architecture written the obvious way in this script (dense ``nn.Embedding`` tables, padded
   ``(B, T)`` int64 batches, ``torch.optim.Adam``, fp32):

   * ``pooled``: pooled_embedding, 50,000-token vocabularies a side, enc_dim 256, 20 tokens a side,
     batch 256, default comparators, MLP 2 x 512 linear;
   * ``hcnn``: hcnn, 20,000-token vocabularies a side, token dim 300, enc_dim 512, 50 tokens a side,
     batch 128 (4 layers, filter width 3);
   * ``bilstm``: bilstm with the sizes of ``hcnn`` (1 layer, 256 units per direction).

   object2vec's rows run object2vec's own step, exactly what ``object2vec.training.loop.fit`` does per batch
   (``batch_inputs``, ``label_tensor``, ``Optimizers.zero_grad``, forward under ``train.autocast``,
   ``compute_loss(out.float())``, backward, ``Optimizers.step``, ``Meter.add``): dense fp32, row_sparse
   fp32 and row_sparse bf16 (the last only where ``train.bf16_is_fast`` says the CPU has bf16 units).
   Each configuration runs in two fresh processes: the plain baseline with glibc's allocator defaults
   (as a plain PyTorch user runs it), then object2vec's rows with the allocator thresholds
   ``train.fit`` sets (``--no-as-run``: all rows in one process, in interleaved blocks, steadier
   under load but without fit's thresholds). Random token ids and 0/1 labels: speed only.
   After warm-up every row must have changed its token tables; a row that did not is flagged in its
   table and left out of the targets (a step that skips the embedding update is not the step claimed).
2. Peak memory of each row: a fresh process per row builds the data, resets the kernel's peak-RSS
   counter (``/proc/self/clear_refs``), builds the model and optimizer and trains a few steps; the
   row's figure is the peak RSS (``VmHWM``) minus the RSS at the reset.
3. bf16 accuracy parity for hcnn and bilstm: small models trained on ``object2vec.data.synthetic.make_pairs``
   through ``object2vec.Object2Vec(precision="fp32")`` and ``precision="bf16"``, same seeds (3 by
   default), same validation split (best-epoch restore), test accuracy of both and their difference.
4. JSON Lines loading lines/s: ``object2vec.data.pairs.read_pairs`` (and its cached reload where
   ``read_pairs`` takes ``cache=``), a bare ``orjson.loads`` loop and ``pyarrow.json.read_json``
   (a dependency of object2vec since its reader uses it) on the same generated file, in
   interleaved rounds (``--loading-rounds``, default 5), best round of each reader.
5. ``--memory-10m`` (a separate mode): 10 million pairs of 20 tokens a side, 200 steps of the pooled
   row_sparse model through ``object2vec.training.loop.fit``, peak RSS of the whole process, in three fresh
   processes: data built with numpy; parsed from a JSON Lines file by ``read_pairs(cache=True)``
   (parsing counts); reloaded from that cache (memory-mapped tokens).

Usage::

    python benchmarks/train_throughput.py                   # about 5 minutes on a 2-core CPU
    python benchmarks/train_throughput.py --quick           # a few steps of everything: smoke test (< 1 minute)
    python benchmarks/train_throughput.py --only hcnn,bilstm --skip-parity
    python benchmarks/train_throughput.py --steps 400 --json results.json
    python benchmarks/train_throughput.py --memory-10m      # the 10-million-pair memory check only
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import logging
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
import torch.nn.functional as F
from torch import nn

import object2vec.estimator
from object2vec import Object2Vec
from object2vec.data.pairs import PairData, Schema, Side, read_pairs
from object2vec.data.sampling import Batch, epoch_batches
from object2vec.data.synthetic import make_pairs
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training.batches import batch_inputs, label_tensor
from object2vec.training.loop import fit
from object2vec.training.metrics import Meter, compute_loss
from object2vec.training.optimizers import Optimizers
from object2vec.training.precision import autocast, bf16_is_fast

LEARNING_RATE = 0.0004  # object2vec's default, used by the plain baselines too
MLP_DIM = 512  # object2vec's default MLP: 2 linear layers of 512
CPU = torch.device("cpu")

Step = Callable[[Batch], None]


@dataclass
class Trainer:
    """A row's training step, and the token tables that step must train (checked after warm-up)."""

    step: Step
    tables: list[torch.Tensor]

    def checksums(self) -> list[float]:
        return [float(t.detach().double().sum()) for t in self.tables]


@dataclass(frozen=True)
class Config:
    """One benchmarked model; ``step_share`` scales ``--steps`` (its steps are slower than pooled's)."""

    name: str
    network: str
    vocab: int
    seq_len: int
    token_dim: int
    enc_dim: int
    batch: int
    step_share: float

    def describe(self) -> str:
        arch = {
            "pooled_embedding": "mean of token vectors (token dim = enc_dim)",
            "hcnn": f"hcnn {HCNN_LAYERS} layers x {math.ceil(self.enc_dim / HCNN_LAYERS)} channels, width {HCNN_WIDTH}",
            "bilstm": f"bilstm 1 layer, {math.ceil(self.enc_dim / 2)} units a direction",
        }[self.network]
        return (
            f"{self.name}: {arch}, vocab {self.vocab:,} a side, token dim {self.token_dim}, enc_dim {self.enc_dim}, "
            f"{self.seq_len} tokens a side, batch {self.batch}, comparators hadamard/concat/abs_diff, MLP 2 x {MLP_DIM} linear"
        )


HCNN_LAYERS, HCNN_WIDTH = 4, 3  # hcnn's layers=auto and default cnn_filter_width
CONFIGS = {
    "pooled": Config("pooled", "pooled_embedding", 50_000, 20, 256, 256, 256, 1.0),
    "hcnn": Config("hcnn", "hcnn", 20_000, 50, 300, 512, 128, 0.3),
    "bilstm": Config("bilstm", "bilstm", 20_000, 50, 300, 512, 128, 0.12),
}
ALIASES = {"a": "pooled", "b": "hcnn", "c": "bilstm"}


@dataclass(frozen=True)
class Row:
    """One trained model of a configuration: the plain baseline or an object2vec setting."""

    label: str
    storage: str | None  # None: the plain PyTorch baseline
    precision: str = "fp32"


BASELINE = Row("plain PyTorch (dense Adam, fp32)", None)
OBJECT2VEC_ROWS = [
    Row("object2vec dense, fp32", "dense"),
    Row("object2vec row_sparse, fp32", "row_sparse"),
    Row("object2vec row_sparse, bf16", "row_sparse", "bf16"),
]


def rows_here() -> list[Row]:
    """The baseline and object2vec's rows; bf16 only where this CPU has bf16 units."""
    return [BASELINE] + [r for r in OBJECT2VEC_ROWS if r.precision != "bf16" or bf16_is_fast(CPU)]


# --------------------------------------------------------------------------------------------------
# Machine


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float  # perf_counter seconds
    all_busy: float | None  # CPU-seconds every process has used so far (/proc/stat); None off Linux
    own: float  # CPU-seconds this process has used so far (user + kernel)
    own_kernel: float  # of which in the kernel (page faults of big allocations show up here)


def cpu_snapshot() -> CpuSnapshot:
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        all_busy: float | None = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    except (OSError, ValueError, IndexError):
        all_busy = None
    times = os.times()
    return CpuSnapshot(time.perf_counter(), all_busy, times.user + times.system, times.system)


def others_cpu_seconds(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
    """CPU-seconds that *other* processes used between two snapshots: the noise in our timings."""
    if before.all_busy is None or after.all_busy is None:
        return None
    return max(0.0, (after.all_busy - before.all_busy) - (after.own - before.own))


def others_percent(cpu_seconds: float | None, wall_seconds: float) -> float | None:
    """Other processes' share of the whole machine's CPU capacity over ``wall_seconds``."""
    capacity = wall_seconds * (os.cpu_count() or 1)
    return None if cpu_seconds is None or capacity <= 0 else 100.0 * cpu_seconds / capacity


def idle_check(seconds: float = 1.0) -> float | None:
    """Other processes' CPU share over the next ``seconds``, before any work starts."""
    before = cpu_snapshot()
    time.sleep(seconds)
    after = cpu_snapshot()
    return others_percent(others_cpu_seconds(before, after), after.wall - before.wall)


def system_info() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "bf16_is_fast": bf16_is_fast(CPU),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1min": load_average(),
        "others_cpu_percent_before_start": idle_check(),
    }


# Memory: Linux counts a process's peak resident set (VmHWM) and lets the process reset it to the
# current RSS by writing "5" to /proc/self/clear_refs; elsewhere only ru_maxrss (never reset) exists.


def proc_status_mb(key: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of this process in MiB, from /proc/self/status (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    hwm = proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float:
    rss = proc_status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


# Modules a fork server imports once, so that a child forked from it starts without importing torch
# (Python 3.11's fork server does not preload the main script's imports by itself).
PRELOAD = [
    "numpy",
    "orjson",
    "torch",
    "object2vec",
    "object2vec.estimator",
    "object2vec.data.synthetic",
    "object2vec.training.loop",
]


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new process: no allocator state, thread pool or memory peak carries over.

    Linux and macOS use a fork server that has imported torch and object2vec but never computed
    anything, so a child starts in a fraction of a second; elsewhere a plain spawn.
    """
    if "forkserver" in get_all_start_methods():
        context = get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # takes effect when the server starts (first call)
    else:
        context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


START_ENV = "OBJECT2VEC_BENCH_START"  # wall-clock start of the run, inherited by every child process


def log(message: str) -> None:
    """Progress on stderr, stamped with the seconds since the run started."""
    elapsed = time.time() - float(os.environ.get(START_ENV, time.time()))
    print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)


def child_setup(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    if os.environ.get("OBJECT2VEC_BENCH_MALLOPT") == "1":  # --mallopt: every row, the plain baseline included
        from object2vec.training.allocator import keep_freed_memory

        keep_freed_memory()
    logging.getLogger("object2vec").setLevel(logging.WARNING)  # no metric lines, no progress bars


# --------------------------------------------------------------------------------------------------
# Data


def random_side(n: int, vocab: int, seq_len: int, rng: np.random.Generator) -> Side:
    """``n`` sequences of exactly ``seq_len`` random token ids, packed as object2vec stores them
    (uint16 ids when the vocabulary has at most 65,536 tokens, else int32)."""
    tokens = np.empty(n * seq_len, dtype=np.uint16 if vocab <= 2**16 else np.int32)
    chunk = 1 << 24
    for start in range(0, len(tokens), chunk):  # chunk by chunk: no int64 temporary of the whole side
        stop = min(start + chunk, len(tokens))
        tokens[start:stop] = rng.integers(0, vocab, stop - start, dtype=np.int32)
    return Side(tokens, np.arange(n + 1, dtype=np.int64) * seq_len)


def random_pairs(config: Config, n: int, seed: int = 0) -> PairData:
    rng = np.random.default_rng(seed)
    sides = [random_side(n, config.vocab, config.seq_len, rng) for _ in range(2)]
    return PairData(sides[0], sides[1], rng.integers(0, 2, n).astype(np.int8))  # int8 classes, as read_pairs stores them


# --------------------------------------------------------------------------------------------------
# object2vec


def object2vec_hyperparameters(config: Config, storage: str) -> Hyperparameters:
    """The benchmarked model: the configuration's encoder on both sides, everything else at its default."""
    sides: dict[str, Any] = {}
    for side in (0, 1):
        sides |= {
            f"enc{side}_network": config.network,
            f"enc{side}_vocab_size": config.vocab,
            f"enc{side}_max_seq_len": config.seq_len,
        }
        if config.network != "pooled_embedding":  # pooled_embedding's token dim is enc_dim
            sides[f"enc{side}_token_embedding_dim"] = config.token_dim
    return Hyperparameters(
        **sides, enc_dim=config.enc_dim, mini_batch_size=config.batch, optimizer="adam", token_embedding_storage_type=storage
    ).resolve()


def object2vec_trainer(config: Config, row: Row, data: PairData, seed: int = 0) -> Trainer:
    """One training step exactly as ``object2vec.training.loop.fit`` takes it (minus the disabled progress bar)."""
    assert row.storage is not None
    hp = object2vec_hyperparameters(config, row.storage)
    torch.manual_seed(seed)
    net = Object2VecNet(hp).to(CPU).train()
    optimizers = Optimizers(net, hp)
    meter = Meter(hp)

    def step(batch: Batch) -> None:
        inputs = batch_inputs(data, batch, CPU)
        labels = label_tensor(batch.labels, hp, CPU)
        optimizers.zero_grad()
        with autocast(row.precision, CPU):
            out = net(*inputs)
        loss = compute_loss(out.float(), labels, hp)
        loss.backward()
        optimizers.step()
        meter.add(out.detach(), labels, loss.detach())

    return Trainer(step, [e.weight for e in net.embeddings()])


# --------------------------------------------------------------------------------------------------
# Plain PyTorch baselines: the same architectures written the obvious way, on padded (B, T) batches


class PlainPooled(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.embedding = nn.Embedding(c.vocab, c.enc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x).mean(dim=1)  # (B, enc_dim)


class PlainHCNN(nn.Module):
    """object2vec's hcnn: stacked 'same' convolutions with ReLU, each max-pooled over time, concat, Linear."""

    def __init__(self, c: Config):
        super().__init__()
        channels = math.ceil(c.enc_dim / HCNN_LAYERS)
        widths = [c.token_dim] + [channels] * HCNN_LAYERS
        self.embedding = nn.Embedding(c.vocab, c.token_dim)
        self.convs = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], HCNN_WIDTH, padding="same") for i in range(HCNN_LAYERS))
        self.project = nn.Linear(channels * HCNN_LAYERS, c.enc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x).transpose(1, 2)  # (B, D, T)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(h))  # (B, C, T)
            pooled.append(h.amax(dim=2))  # (B, C)
        return self.project(torch.cat(pooled, dim=1))  # (B, enc_dim)


class PlainBiLSTM(nn.Module):
    """object2vec's bilstm: one bidirectional LSTM layer, max-pooled over time, Linear; no packing."""

    def __init__(self, c: Config):
        super().__init__()
        hidden = math.ceil(c.enc_dim / 2)
        self.embedding = nn.Embedding(c.vocab, c.token_dim)
        self.lstm = nn.LSTM(c.token_dim, hidden, bidirectional=True, batch_first=True)
        self.project = nn.Linear(2 * hidden, c.enc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))  # (B, T, 2H): every sequence here is full length
        return self.project(out.amax(dim=1))  # (B, enc_dim)


PLAIN_ENCODERS: dict[str, type[nn.Module]] = {"pooled_embedding": PlainPooled, "hcnn": PlainHCNN, "bilstm": PlainBiLSTM}


class PlainPairNet(nn.Module):
    """Two encoders, ``cat(u*v, u, v, |u-v|)``, ``Linear, Linear, Linear`` (the default linear MLP)."""

    def __init__(self, c: Config, classes: int = 2):
        super().__init__()
        self.enc0 = PLAIN_ENCODERS[c.network](c)
        self.enc1 = PLAIN_ENCODERS[c.network](c)
        self.mlp = nn.Sequential(nn.Linear(4 * c.enc_dim, MLP_DIM), nn.Linear(MLP_DIM, MLP_DIM), nn.Linear(MLP_DIM, classes))

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        u, v = self.enc0(x0), self.enc1(x1)  # (B, enc_dim) each
        return self.mlp(torch.cat([u * v, u, v, (u - v).abs()], dim=1))  # (B, classes)


def plain_trainer(config: Config, data: PairData, seed: int = 0) -> Trainer:
    """The baseline's step: index padded ``(B, T)`` token tensors, forward, cross-entropy, backward, Adam."""
    torch.manual_seed(seed)
    tokens0 = torch.from_numpy(data.in0.tokens.astype(np.int64).reshape(-1, config.seq_len))
    tokens1 = torch.from_numpy(data.in1.tokens.astype(np.int64).reshape(-1, config.seq_len))
    labels = torch.from_numpy(data.labels.astype(np.int64))
    net = PlainPairNet(config).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)

    def step(batch: Batch) -> None:
        left, right = torch.from_numpy(batch.left), torch.from_numpy(batch.right)
        out = net(tokens0[left], tokens1[right])
        loss = F.cross_entropy(out, labels[left])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return Trainer(step, [net.enc0.embedding.weight, net.enc1.embedding.weight])


def make_trainer(config: Config, row: Row, data: PairData) -> Trainer:
    return plain_trainer(config, data) if row.storage is None else object2vec_trainer(config, row, data)


# --------------------------------------------------------------------------------------------------
# Timing


@dataclass
class TrainResult:
    configuration: str
    row: str
    pairs_per_s: float  # timed pairs / timed seconds, over all blocks
    block_pairs_per_s: list[float]
    steps: int
    kernel_percent: float  # share of our own CPU time spent in the kernel while timed
    others_cpu_percent: float | None  # CPU share other processes took while this row was timed
    tables_trained: bool | None  # every token table changed during warm-up (None: no warm-up to tell)
    ratio: float | None = None  # pairs_per_s / the plain baseline's
    peak_rss_growth_mb: float | None = None  # filled in from a separate fresh process (see measure_memory)


@dataclass
class BlockTimes:
    seconds: list[float]
    own_cpu: float = 0.0
    own_kernel: float = 0.0
    others: float | None = 0.0  # None once any block could not tell


def time_block(step: Step, batches: list[Batch], times: BlockTimes) -> None:
    """Train on ``batches``; add the wall time, our CPU time and other processes' CPU time to ``times``."""
    before = cpu_snapshot()
    for batch in batches:
        step(batch)
    after = cpu_snapshot()
    times.seconds.append(after.wall - before.wall)
    times.own_cpu += after.own - before.own
    times.own_kernel += after.own_kernel - before.own_kernel
    others = others_cpu_seconds(before, after)
    times.others = None if times.others is None or others is None else times.others + others


def time_configuration(
    name: str, warmup: int, steps: int, blocks: int, threads: int | None, which: str = "all"
) -> list[TrainResult]:
    """In a fresh process: warm every row up, then time ``steps`` steps each as ``blocks`` interleaved blocks.

    ``which``: ``all`` rows, or only the ``plain`` baseline, or only the ``object2vec`` rows with the
    allocator thresholds ``object2vec.training.loop.fit`` sets (``--as-run``: each side as its users run it).
    """
    child_setup(threads)
    if which == "object2vec":
        from object2vec.training.allocator import keep_freed_memory

        keep_freed_memory()  # what train.fit does first
    config = CONFIGS[name]
    data = random_pairs(config, (warmup + steps) * config.batch)
    batches = epoch_batches(data, object2vec_hyperparameters(config, "dense"), epoch=1, seed=0)
    rows = [r for r in rows_here() if which == "all" or (r.storage is None) == (which == "plain")]
    trainers = {row.label: make_trainer(config, row, data) for row in rows}
    trained: dict[str, bool | None] = {}
    for label, trainer in trainers.items():
        log(f"  {name}: warming up {label} ({warmup} steps)")
        before = trainer.checksums()
        for batch in batches[:warmup]:
            trainer.step(batch)
        # a step that leaves its token tables untouched is not the step being claimed: say so in the table
        trained[label] = all(a != b for a, b in zip(before, trainer.checksums(), strict=True)) if warmup else None
    sizes = [steps // blocks + (1 if i < steps % blocks else 0) for i in range(blocks)]
    times = {label: BlockTimes([]) for label in trainers}
    start = warmup
    for i, size in enumerate(sizes, 1):
        log(f"  {name}: timing block {i}/{blocks} ({size} steps a row)")
        for label, trainer in trainers.items():
            time_block(trainer.step, batches[start : start + size], times[label])
        start += size
    results = []
    for label, t in times.items():
        rates = [size * config.batch / s for size, s in zip(sizes, t.seconds, strict=True)]
        kernel = 100.0 * t.own_kernel / t.own_cpu if t.own_cpu else 0.0
        total = sum(t.seconds)
        results.append(
            TrainResult(
                name, label, steps * config.batch / total, rates, steps, kernel, others_percent(t.others, total), trained[label]
            )
        )
    base = next((r.pairs_per_s for r in results if r.row == BASELINE.label), None)
    for r in results:
        r.ratio = r.pairs_per_s / base if base else None
    return results


@dataclass
class MemoryResult:
    configuration: str
    row: str
    rss_at_reset_mb: float  # the process after imports and data, before the model exists
    peak_rss_mb: float  # VmHWM after the steps
    growth_mb: float  # peak_rss_mb - rss_at_reset_mb: model, optimizer state, activations, allocator
    method: str


def measure_memory(name: str, row: Row, steps: int, threads: int | None) -> MemoryResult:
    """In a fresh process: peak RSS growth from building ``row``'s model to the end of ``steps`` steps."""
    child_setup(threads)
    config = CONFIGS[name]
    data = random_pairs(config, steps * config.batch)
    batches = epoch_batches(data, object2vec_hyperparameters(config, "dense"), epoch=1, seed=0)
    gc.collect()
    method = "VmHWM after reset via /proc/self/clear_refs" if reset_peak_rss() else "ru_maxrss (not reset: an upper bound)"
    start = current_rss_mb()
    trainer = make_trainer(config, row, data)
    for batch in batches[:steps]:
        trainer.step(batch)
    peak = peak_rss_mb()
    return MemoryResult(name, row.label, start, peak, peak - start, method)


def run_training(args: argparse.Namespace) -> tuple[list[TrainResult], list[MemoryResult]]:
    training: list[TrainResult] = []
    memory: list[MemoryResult] = []
    for name in args.only:
        share = CONFIGS[name].step_share
        steps = max(args.blocks, round(args.steps * share))
        warmup = max(1, round(args.warmup * share)) if args.warmup else 0
        log(f"timing {name}: {warmup} warm-up and {steps} timed steps a row")
        if args.as_run:  # two processes: plain PyTorch with glibc's defaults, object2vec as train.fit sets it up
            results = [
                r
                for which in ("plain", "object2vec")
                for r in in_fresh_process(time_configuration, name, warmup, steps, min(args.blocks, steps), args.threads, which)
            ]
            base = next(r.pairs_per_s for r in results if r.row == BASELINE.label)
            for r in results:
                r.ratio = r.pairs_per_s / base
            training += results
        else:
            training += in_fresh_process(time_configuration, name, warmup, steps, min(args.blocks, steps), args.threads)
        if not args.skip_memory:
            for row in rows_here():
                log(f"  {name}: peak memory of {row.label}")
                memory.append(in_fresh_process(measure_memory, name, row, args.memory_steps, args.threads))
    for r in training:
        r.peak_rss_growth_mb = next((m.growth_mb for m in memory if (m.configuration, m.row) == (r.configuration, r.row)), None)
    return training, memory


# --------------------------------------------------------------------------------------------------
# bf16 accuracy parity


@dataclass
class ParityResult:
    network: str
    train_pairs: int
    epochs: int
    seeds: list[int]
    fp32_accuracy: list[float]  # test accuracy, one per seed
    bf16_accuracy: list[float]
    difference_points: float  # 100 * (mean bf16 - mean fp32)
    fp32_seconds: float  # mean over seeds
    bf16_seconds: float
    precision_reaching_fit: str  # what Object2Vec.fit passed to train.fit with precision="bf16" (see parity_run)


def parity_settings(network: str, quick: bool) -> tuple[dict[str, Any], int, int]:
    """Hyperparameters, training pairs and epochs of a small model that learns the synthetic task."""
    hp: dict[str, Any] = {
        "enc0_network": network,
        "enc0_vocab_size": 200,
        "enc0_max_seq_len": 10,
        "enc0_token_embedding_dim": 32,
        "enc_dim": 32,
        "mlp_dim": 64,
        "mlp_activation": "relu",
        "learning_rate": 0.005,
        "mini_batch_size": 64,
        # stop only after 5 epochs without any gain: bilstm can sit at chance for 3-5 epochs before it
        # learns, and the default (3 epochs, tolerance 0.01) then stops it at chance (seen with seed 1)
        "early_stopping_patience": 5,
        "early_stopping_tolerance": 1e-6,
    }
    if network == "hcnn":
        hp["enc0_layers"] = 2
        pairs, epochs = 20_000, 10
    else:
        pairs, epochs = 6_000, 30  # at most: early stopping ends most runs after 15 to 25
    if quick:
        pairs, epochs = 1_000, 2
    return hp, pairs, epochs


PARITY_TEST_PAIRS = 5_000  # test split: 0.2 points of accuracy is 10 pairs
PARITY_VALIDATION_PAIRS = 2_000


def parity_run(network: str, precision: str, seed: int, quick: bool, threads: int) -> tuple[float, float, str]:
    """In a fresh process: test accuracy of ``Object2Vec(precision=...)``, seconds, and the precision ``fit`` got.

    ``Object2Vec.fit`` must hand its ``precision`` to ``object2vec.training.loop.fit``. A thin wrapper around
    that call records what arrives; when it is not the requested precision (a bug in object2vec), the
    wrapper passes the requested one on, so the comparison still measures bf16, and the report says so.
    """
    child_setup(threads)
    hp, pairs, epochs = parity_settings(network, quick)
    data = {"vocab_size": (200, 200), "max_len": (10, 10)}
    splits = ((pairs, 1), (PARITY_VALIDATION_PAIRS, 3), (PARITY_TEST_PAIRS, 2))  # (pairs, data seed): the same task
    train, validation, test = (make_pairs(n, seed=s, **data) for n, s in splits)
    reached: list[str] = []
    real_fit = object2vec.estimator.fit

    def checked_fit(*args: Any, **kwargs: Any) -> Any:
        got = kwargs.get("precision")
        reached.append(str(got))
        if got != precision:
            kwargs["precision"] = precision
        return real_fit(*args, **kwargs)

    object2vec.estimator.fit = checked_fit
    t0 = time.perf_counter()
    model = Object2Vec(seed=seed, device="cpu", precision=precision, epochs=epochs, **hp).fit(train, validation, test)
    seconds = time.perf_counter() - t0
    return float(model.metrics_["test"]["accuracy"]), seconds, reached[0] if reached else "fit not called"


def run_parity(args: argparse.Namespace) -> list[ParityResult]:
    results = []
    for network in [CONFIGS[n].network for n in args.only if CONFIGS[n].network != "pooled_embedding"]:
        _, pairs, epochs = parity_settings(network, args.quick)
        seeds = list(range(args.parity_seeds))
        runs: dict[str, list[tuple[float, float, str]]] = {"fp32": [], "bf16": []}
        for seed in seeds:
            for precision in runs:
                log(f"parity: {network} {precision}, seed {seed} ({pairs:,} pairs, {epochs} epochs)")
                runs[precision].append(in_fresh_process(parity_run, network, precision, seed, args.quick, args.parity_threads))
        acc32, acc16 = [r[0] for r in runs["fp32"]], [r[0] for r in runs["bf16"]]
        results.append(
            ParityResult(
                network,
                pairs,
                epochs,
                seeds,
                acc32,
                acc16,
                100 * (float(np.mean(acc16)) - float(np.mean(acc32))),
                float(np.mean([r[1] for r in runs["fp32"]])),
                float(np.mean([r[1] for r in runs["bf16"]])),
                ", ".join(sorted({r[2] for r in runs["bf16"]})),
            )
        )
    return results


# --------------------------------------------------------------------------------------------------
# JSON Lines loading


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


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    """``fn``'s returned line count and the seconds it took."""
    t0 = time.perf_counter()
    lines = fn()
    return lines, time.perf_counter() - t0


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


# --------------------------------------------------------------------------------------------------
# 10 million pairs


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


class AnonSampler:
    """Samples ``RssAnon`` (anonymous resident memory) every 10 ms in a thread; keeps the highest.

    VmHWM counts pages of memory-mapped files too (a cached reload maps its token arrays), which the
    kernel can drop and re-read at will; RssAnon is the part that must stay in RAM."""

    def __init__(self) -> None:
        import threading

        self.peak: float | None = proc_status_mb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            value = proc_status_mb("RssAnon")
            if value is not None:
                self.peak = max(self.peak or 0.0, value)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_memory_10m(
    pairs: int, steps: int, threads: int | None, source: str = "numpy", path: str | None = None, cache: str | None = None
) -> Memory10mResult:
    """10M pairs (built with numpy, parsed from ``path``, or reloaded from its cache), then ``steps``
    steps of pooled row_sparse through ``train.fit``; meant for a fresh process of its own."""
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


# --------------------------------------------------------------------------------------------------
# Output


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def percent(value: float | None) -> str:
    return f"{value:.0f}%" if value is not None else "n/a"


def training_table(results: list[TrainResult]) -> str:
    rows = [
        [
            r.row + (" (WARNING: its token tables did not change in warm-up)" if r.tables_trained is False else ""),
            f"{r.pairs_per_s:,.0f}",
            f"{r.ratio:.2f}x" if r.ratio is not None else "n/a",
            f"{min(r.block_pairs_per_s):,.0f} - {max(r.block_pairs_per_s):,.0f}",
            f"{r.peak_rss_growth_mb:,.0f}" if r.peak_rss_growth_mb is not None else "not measured",
            percent(r.kernel_percent),
            percent(r.others_cpu_percent),
        ]
        for r in results
    ]
    return markdown_table(
        [
            "row",
            "pairs/s",
            "ratio vs plain",
            "per-block pairs/s (min - max)",
            "peak RSS growth (MiB)",
            "kernel share of our CPU",
            "other processes' CPU",
        ],
        rows,
    )


def accuracies(values: list[float]) -> str:
    """One accuracy, or the mean and the per-seed values."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ({', '.join(f'{v:.4f}' for v in values)})"


def parity_table(results: list[ParityResult]) -> str:
    rows = [
        [
            r.network,
            f"{r.train_pairs:,} pairs, {r.epochs} epochs",
            accuracies(r.fp32_accuracy),
            accuracies(r.bf16_accuracy),
            f"{r.difference_points:+.2f}",
            f"{r.fp32_seconds:.0f} s / {r.bf16_seconds:.0f} s",
            r.precision_reaching_fit,
        ]
        for r in results
    ]
    header = [
        "network",
        "training",
        "fp32 test accuracy",
        "bf16 test accuracy",
        "bf16 - fp32 (points)",
        "time a run, fp32 / bf16",
        "precision Object2Vec.fit passed on",
    ]
    return markdown_table(header, rows)


def loading_table(results: list[LoadResult]) -> str:
    arrow = next((r.lines_per_s for r in results if r.reader.startswith("pyarrow")), None)
    rows = []
    for r in results:
        if r.lines_per_s is None or r.megabytes_per_s is None:
            rows.append([r.reader, r.note, "", "", ""])
            continue
        ratio = f"{r.lines_per_s / arrow:.2f}x" if arrow else "n/a"
        spread = r.rounds_lines_per_s or [r.lines_per_s]
        shown = f"{min(spread):,.0f} - {max(spread):,.0f}" if len(spread) > 1 else ""
        rows.append([r.reader, f"{r.lines_per_s:,.0f}", f"{r.megabytes_per_s:,.1f}", ratio, shown])
    return markdown_table(["reader", "lines/s (best)", "MB/s", "ratio vs pyarrow", "every round/repeat (min - max)"], rows)


def memory_10m_table(results: list[Memory10mResult]) -> str:
    def gb(mb: float) -> str:
        return f"{mb:,.0f} MiB = {mb * 2**20 / 1e9:.2f} GB"

    first = results[0]
    rows = [
        ["data", *[MEMORY_10M_SOURCES[r.source] for r in results]],
        ["packed data (PairData.nbytes), token type", *[f"{r.data_mb:,.0f} MiB, {r.token_dtype}" for r in results]],
        ["seconds to build/read the data", *[f"{r.data_seconds:,.1f}" for r in results]],
        ["RSS after imports", *[f"{r.rss_after_imports_mb:,.0f} MiB" for r in results]],
        ["RSS after the data", *[f"{r.rss_after_data_mb:,.0f} MiB" for r in results]],
        ["peak RSS up to then (building or parsing the data)", *[gb(r.peak_rss_data_mb) for r in results]],
        [f"peak RSS of the process, data and {first.steps} steps ({first.method})", *[gb(r.peak_rss_mb) for r in results]],
        [
            "peak anonymous RSS (RssAnon, sampled every 10 ms)",
            *[gb(r.peak_anon_mb) if r.peak_anon_mb is not None else "n/a" for r in results],
        ],
        ["training pairs/s during those steps", *[f"{r.pairs_per_s:,.0f}" for r in results]],
    ]
    return markdown_table(["what", *[r.source for r in results]], rows)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def targets_table(
    training: list[TrainResult], parity: list[ParityResult], loading: list[LoadResult], memory_10m: list[Memory10mResult]
) -> str:
    """The issue's targets beside the numbers of this run."""
    rows: list[list[str]] = []

    def best(configuration: str, storage: str | None = None) -> TrainResult | None:
        mine = [
            r for r in training if r.configuration == configuration and r.row != BASELINE.label and r.tables_trained is not False
        ]
        if storage:
            mine = [r for r in mine if storage in r.row]
        return max(mine, key=lambda r: r.pairs_per_s, default=None)

    pooled = best("pooled", "row_sparse")
    if pooled is not None:
        rows.append(
            [
                "(a) pooled row_sparse >= 20,000 pairs/s",
                f"{pooled.pairs_per_s:,.0f} ({pooled.row})",
                verdict(pooled.pairs_per_s >= 20_000),
            ]
        )
        ratio = pooled.ratio or 0.0
        rows.append(["(a) pooled row_sparse >= 15x plain", f"{ratio:.2f}x ({pooled.row})", verdict(ratio >= 15)])
    for name in ("hcnn", "bilstm"):
        top = best(name)
        if top is not None:
            ratio = top.ratio or 0.0
            rows.append(
                [f"({'b' if name == 'hcnn' else 'c'}) {name} >= 2.5x plain", f"{ratio:.2f}x ({top.row})", verdict(ratio >= 2.5)]
            )
    for p in parity:
        ok = p.difference_points >= -0.5
        rows.append(
            [
                f"{p.network} bf16 test accuracy within 0.5 points of fp32 (not below fp32 - 0.5)",
                f"{p.difference_points:+.2f} points ({f'mean of {len(p.seeds)} seeds' if len(p.seeds) > 1 else '1 seed'})",
                verdict(ok),
            ]
        )
    ours = next((r for r in loading if r.reader.startswith("object2vec.data.pairs.read_pairs (validating")), None)
    arrow = next((r for r in loading if r.reader.startswith("pyarrow")), None)
    if ours is not None and ours.lines_per_s is not None:
        if arrow is not None and arrow.lines_per_s is not None:
            ratio = ours.lines_per_s / arrow.lines_per_s
            rows.append(["loading >= 1.0x pyarrow", f"{ratio:.2f}x", verdict(ratio >= 1.0)])
        else:
            rows.append(["loading >= 1.0x pyarrow", "pyarrow not installed", "n/a"])
    reload = next((r for r in loading if "reload" in r.reader), None)
    if reload is not None:
        if reload.lines_per_s is None:
            rows.append(["cached reload >= 10 million lines/s", reload.note, "NOT met"])
        else:
            rows.append(
                ["cached reload >= 10 million lines/s", f"{reload.lines_per_s:,.0f} lines/s", verdict(reload.lines_per_s >= 1e7)]
            )
    for r in memory_10m:
        gb = r.peak_rss_mb * 2**20 / 1e9
        rows.append(
            [
                f"{r.pairs:,} pairs trained in <= 2 GB RAM (process peak; the target: 10,000,000), data {MEMORY_10M_SOURCES[r.source]}",
                f"{gb:.2f} GB",
                verdict(gb <= 2.0),
            ]
        )
    return markdown_table(["target", "this run", "verdict"], rows)


def system_header(info: dict[str, Any], args: argparse.Namespace) -> str:
    load, busy = info["load_average_1min"], info["others_cpu_percent_before_start"]
    lines = [
        f"torch {info['torch']}, torch.get_num_threads() = {info['torch_threads']}, os.cpu_count() = {info['cpu_count']}, "
        f"bf16_is_fast(cpu) = {info['bf16_is_fast']}",
        f"CPU: {info['cpu']}",
        f"python {info['python']}, numpy {info['numpy']}, 1-minute load average {f'{load:.2f}' if load is not None else 'n/a'}, "
        f"other processes' CPU share before start {percent(busy)}",
    ]
    if not args.memory_10m:
        lines += [CONFIGS[name].describe() for name in args.only]
        lines.append(
            f"timing: pooled {args.warmup} warm-up + {args.steps} timed steps a row in {args.blocks} blocks, "
            + (
                "plain PyTorch and object2vec in separate processes (object2vec with fit's allocator thresholds); "
                if args.as_run
                else "every row in one process, blocks interleaved; "
            )
            + "hcnn and bilstm take "
            + ", ".join(f"{CONFIGS[n].step_share:g}x" for n in ("hcnn", "bilstm"))
            + f" of those; peak memory from {args.memory_steps} steps in a fresh process per row"
        )
        if not info["bf16_is_fast"]:
            lines.append("bf16 rows are skipped: object2vec.training.precision.bf16_is_fast(cpu) is False on this CPU")
    if busy is not None and busy > 10:
        lines.append(
            f"WARNING: other processes used {percent(busy)} of the CPUs just before the start; timings will be low and noisy"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Main


def parse_only(text: str) -> list[str]:
    names = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        name = ALIASES.get(part, part)
        if name not in CONFIGS:
            raise argparse.ArgumentTypeError(f"unknown configuration {part!r}; choose from pooled (a), hcnn (b), bilstm (c)")
        if name not in names:
            names.append(name)
    if not names:
        raise argparse.ArgumentTypeError("name at least one configuration")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps a row for pooled (default 200; 4 with --quick); hcnn takes 0.3x and bilstm 0.12x of them",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps before timing, pooled (default 20; 1 with --quick)"
    )
    parser.add_argument("--blocks", type=int, default=None, help="interleaved timing blocks a row (default 4; 1 with --quick)")
    parser.add_argument(
        "--pairs", type=int, default=None, help="lines of the JSON Lines loading test (default 200,000; 5,000 with --quick)"
    )
    parser.add_argument(
        "--memory-steps", type=int, default=None, help="steps of each peak-memory process (default 4; 1 with --quick)"
    )
    parser.add_argument(
        "--mallopt",
        action="store_true",
        help="raise glibc's malloc thresholds in every timing process, as train.fit does (object2vec/allocator.py); "
        "it applies to the plain baseline too, so ratios understate what fit gains over plain PyTorch",
    )
    parser.add_argument(
        "--as-run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the plain baseline in one process with glibc's defaults (as a plain PyTorch user runs it) and the "
        "object2vec rows in another with the allocator thresholds train.fit sets: each as its users get it, one "
        "after the other (default). --no-as-run: every row in one process, in interleaved blocks (steadier under "
        "load from other processes, but the object2vec rows then run without fit's thresholds)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads in every timing process (default: torch's choice; 1 with --quick)",
    )
    parser.add_argument(
        "--parity-seeds",
        type=int,
        default=None,
        help="seeds of each parity comparison (default 3; 1 with --quick); the difference compares the means",
    )
    parser.add_argument(
        "--parity-threads",
        type=int,
        default=1,
        help="torch threads of the small parity models (default 1: they are too small for 2)",
    )
    parser.add_argument(
        "--only", type=parse_only, default=list(CONFIGS), help="configurations to run: pooled,hcnn,bilstm or a,b,c (default all)"
    )
    parser.add_argument("--skip-training", action="store_true", help="skip the training timing (and its memory processes)")
    parser.add_argument("--skip-parity", action="store_true", help="skip the bf16 vs fp32 accuracy check")
    parser.add_argument("--skip-memory", action="store_true", help="skip the per-row peak-memory processes")
    parser.add_argument("--skip-loading", action="store_true", help="skip the JSON Lines loading test")
    parser.add_argument(
        "--memory-10m",
        action="store_true",
        help="only the 10-million-pair memory check: 200 steps of pooled row_sparse via train.fit on data built with numpy, "
        "parsed from JSON Lines, and reloaded from the cache (three fresh processes; about 2.6 GB of temporary disk)",
    )
    parser.add_argument(
        "--loading-rounds",
        type=int,
        default=None,
        help="interleaved rounds of read_pairs, orjson and pyarrow in the loading test; best of each (default 5; 1 with --quick)",
    )
    parser.add_argument("--memory-10m-pairs", type=int, default=10_000_000, help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick", action="store_true", help="a few steps and tiny runs of everything: a smoke test of this script"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.mallopt:
        os.environ["OBJECT2VEC_BENCH_MALLOPT"] = "1"  # read by child_setup in each fresh process
    defaults = {
        "steps": (200, 4),
        "warmup": (20, 1),
        "blocks": (4, 1),
        "pairs": (200_000, 5_000),
        "memory_steps": (4, 1),
        "parity_seeds": (3, 1),
        "loading_rounds": (5, 1),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
        least = 0 if name == "warmup" else 1
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}; got {getattr(args, name)}")
    for name in ("threads", "parity_threads", "parity_seeds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; got {value}")
    if args.quick and args.threads is None:
        args.threads = 1  # a smoke test: one thread finishes soonest on a busy machine
    args.blocks = min(args.blocks, args.steps)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault(START_ENV, str(time.time()))
    if args.threads:
        torch.set_num_threads(args.threads)
    info = system_info()
    print(system_header(info, args), flush=True)
    report: dict[str, Any] = {"system": info, "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    training: list[TrainResult] = []
    parity: list[ParityResult] = []
    loading: list[LoadResult] = []
    memory_10m: list[Memory10mResult] = []
    if args.memory_10m:
        memory_10m = run_memory_10m_all(args.memory_10m_pairs, 200, args.threads)
        print(f"\n{args.memory_10m_pairs:,} pairs, pooled row_sparse, object2vec.training.loop.fit, each in a fresh process\n")
        print(memory_10m_table(memory_10m), flush=True)
        report["memory_10m"] = [asdict(r) for r in memory_10m]
    else:
        training, memory = ([], []) if args.skip_training else run_training(args)
        for name in [] if args.skip_training else args.only:
            print(f"\nTraining {name} (pairs/s: higher is better; peak RSS growth: lower is better)\n")
            print(training_table([r for r in training if r.configuration == name]), flush=True)
        report["training"] = [asdict(r) for r in training]
        report["memory"] = [asdict(m) for m in memory]
        if memory:
            print(
                f"\nPeak RSS growth: {memory[0].method}, from just before the model is built to the end of {args.memory_steps} steps"
            )
        if args.skip_parity:
            print("\nbf16 accuracy parity: skipped (--skip-parity)")
        elif not bf16_is_fast(CPU):
            print("\nbf16 accuracy parity: skipped (object2vec.training.precision.bf16_is_fast(cpu) is False)")
        else:
            parity = run_parity(args)
            if parity:
                print(
                    f"\nbf16 vs fp32 test accuracy (object2vec.Object2Vec, synthetic pairs, {args.parity_threads} torch thread(s))\n"
                )
                print(parity_table(parity), flush=True)
                if any(p.precision_reaching_fit != "bf16" for p in parity):  # see parity_run
                    print(
                        "NOTE: Object2Vec.fit did not pass precision='bf16' on to object2vec.training.loop.fit; the benchmark passed it itself"
                    )
        report["parity"] = [asdict(p) for p in parity]
        if not args.skip_loading:
            loading = run_loading(args.pairs, args.loading_rounds)
            print(f"\nJSON Lines loading ({args.pairs:,} pairs, {LOAD.seq_len} tokens a side)\n")
            print(loading_table(loading), flush=True)
        report["loading"] = [asdict(r) for r in loading]
    print("\nTargets (issue 5)\n")
    print(targets_table(training, parity, loading, memory_10m))
    if not args.memory_10m:
        print("(the 10-million-pair memory target: run with --memory-10m)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
