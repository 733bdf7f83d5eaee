"""Training throughput and JSON Lines loading speed of object2vec on CPU, beside plain PyTorch.

Why: object2vec should train a ``pooled_embedding`` model with large vocabularies at least as fast as
the obvious hand-written PyTorch model, and much faster with ``token_embedding_storage_type=row_sparse``
(lazy updates of only the embedding rows a batch touched). This script gives the numbers that claims
and targets about speed are checked against, on whatever CPU runs it.

What it measures:

1. Training pairs/s of object2vec's own per-step work (exactly what ``object2vec.train.fit`` does for
   each batch: ``batch_inputs``, ``label_tensor``, forward, ``compute_loss``, ``Optimizers.zero_grad``,
   backward, ``Optimizers.step``, ``Meter.add``) for a pooled_embedding model, 50,000-token vocabularies
   on both sides, enc_dim 256, 20 tokens a side, 256 pairs a batch, default comparators and MLP, Adam;
   once with dense and once with row_sparse token embeddings.
2. The same architecture written the obvious way in plain PyTorch (two ``nn.Embedding``, padded
   ``(B, 20)`` inputs, mean, ``cat(u*v, u, v, |u-v|)``, three ``nn.Linear``, cross-entropy, dense Adam).
3. JSON Lines loading: ``object2vec.data.read_pairs`` lines/s on a generated file, beside a bare
   ``orjson.loads`` loop over the same lines (the floor of any line-by-line Python reader) and
   ``pyarrow.json.read_json`` when pyarrow happens to be importable (it is not a dependency).

Each configuration runs its warm-up steps first (excluded), then exactly ``--steps`` timed steps, split
into ``--blocks`` blocks that are interleaved across configurations, so that a burst of load from
another process hits every configuration alike; the spread of the per-block rates shows how steady
the machine was. Random token ids and random 0/1 labels: this measures speed, not learning.

Usage::

    python benchmarks/train_throughput.py                 # about 1-2 minutes on a 2-core CPU
    python benchmarks/train_throughput.py --quick         # a few steps: smoke test
    python benchmarks/train_throughput.py --steps 400 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
import torch.nn.functional as F
from torch import nn

from object2vec.config import Hyperparameters
from object2vec.data import PairData, Schema, Side, read_pairs
from object2vec.model import Object2VecNet
from object2vec.sampling import Batch, epoch_batches
from object2vec.train import Meter, Optimizers, batch_inputs, compute_loss, label_tensor

VOCAB = 50_000
SEQ_LEN = 20
ENC_DIM = 256
BATCH = 256
LEARNING_RATE = 0.0004  # object2vec's default, used by the plain baseline too
BASELINE = "plain PyTorch (dense Adam)"

Step = Callable[[Batch], None]


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
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1min": load_average(),
        "others_cpu_percent_before_start": idle_check(),
    }


# --------------------------------------------------------------------------------------------------
# Data


def random_side(n: int, rng: np.random.Generator) -> Side:
    """``n`` sequences of exactly ``SEQ_LEN`` random token ids, packed as object2vec stores them."""
    tokens = rng.integers(0, VOCAB, n * SEQ_LEN).astype(np.int32)
    offsets = np.arange(n + 1, dtype=np.int64) * SEQ_LEN
    return Side(tokens, offsets)


def random_pairs(n: int, seed: int = 0) -> PairData:
    rng = np.random.default_rng(seed)
    return PairData(random_side(n, rng), random_side(n, rng), rng.integers(0, 2, n).astype(np.int64))


# --------------------------------------------------------------------------------------------------
# object2vec


def object2vec_hyperparameters(storage: str) -> Hyperparameters:
    """The benchmarked model: pooled_embedding on both sides, everything else at its default."""
    return Hyperparameters(
        enc0_network="pooled_embedding",
        enc0_vocab_size=VOCAB,
        enc0_max_seq_len=SEQ_LEN,
        enc1_network="pooled_embedding",
        enc1_vocab_size=VOCAB,
        enc1_max_seq_len=SEQ_LEN,
        enc_dim=ENC_DIM,
        mini_batch_size=BATCH,
        optimizer="adam",
        token_embedding_storage_type=storage,
    ).resolve()


def object2vec_trainer(storage: str, data: PairData, seed: int = 0) -> Step:
    """One training step exactly as ``object2vec.train.fit`` takes it (minus the disabled progress bar)."""
    hp = object2vec_hyperparameters(storage)
    torch.manual_seed(seed)
    device = torch.device("cpu")
    net = Object2VecNet(hp).to(device).train()
    optimizers = Optimizers(net, hp)
    meter = Meter(hp)

    def step(batch: Batch) -> None:
        inputs = batch_inputs(data, batch, device)
        labels = label_tensor(batch.labels, hp, device)
        out = net(*inputs)
        loss = compute_loss(out, labels, hp)
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()
        meter.add(out.detach(), labels, loss.detach())

    return step


# --------------------------------------------------------------------------------------------------
# Plain PyTorch baseline


class PlainPooledNet(nn.Module):
    """The same architecture as the obvious first PyTorch version: padded inputs, mean, concat, MLP."""

    def __init__(self, vocab: int = VOCAB, dim: int = ENC_DIM, hidden: int = 512, classes: int = 2):
        super().__init__()
        self.emb0 = nn.Embedding(vocab, dim)
        self.emb1 = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(4 * dim, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, classes))

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        u = self.emb0(x0).mean(dim=1)  # (B, dim)
        v = self.emb1(x1).mean(dim=1)  # (B, dim)
        return self.mlp(torch.cat([u * v, u, v, (u - v).abs()], dim=1))  # (B, classes)


def plain_trainer(data: PairData, seed: int = 0) -> Step:
    """The baseline's step: index padded ``(B, SEQ_LEN)`` token tensors, forward, backward, Adam."""
    torch.manual_seed(seed)
    tokens0 = torch.from_numpy(data.in0.tokens.astype(np.int64).reshape(-1, SEQ_LEN))
    tokens1 = torch.from_numpy(data.in1.tokens.astype(np.int64).reshape(-1, SEQ_LEN))
    labels = torch.from_numpy(data.labels)
    net = PlainPooledNet().train()
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)

    def step(batch: Batch) -> None:
        left, right = torch.from_numpy(batch.left), torch.from_numpy(batch.right)
        out = net(tokens0[left], tokens1[right])
        loss = F.cross_entropy(out, labels[left])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


# --------------------------------------------------------------------------------------------------
# Timing


@dataclass
class TrainResult:
    configuration: str
    pairs_per_s: float  # timed pairs / timed seconds, over all blocks
    block_pairs_per_s: list[float]
    steps: int
    kernel_percent: float  # share of our own CPU time spent in the kernel while timed
    others_cpu_percent: float | None  # CPU share other processes took while this configuration was timed
    ratio: float | None = None  # pairs_per_s / the plain baseline's


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


def time_training(trainers: dict[str, Step], batches: list[Batch], warmup: int, steps: int, blocks: int) -> list[TrainResult]:
    """Warm each trainer up, then time ``steps`` steps each as ``blocks`` interleaved blocks."""
    for name, step in trainers.items():
        print(f"  warming up {name} ({warmup} steps)", file=sys.stderr)
        for batch in batches[:warmup]:
            step(batch)
    sizes = [steps // blocks + (1 if i < steps % blocks else 0) for i in range(blocks)]
    times = {name: BlockTimes([]) for name in trainers}
    start = warmup
    for size in sizes:
        for name, step in trainers.items():
            time_block(step, batches[start : start + size], times[name])
        start += size
    results = []
    for name, t in times.items():
        rates = [size * BATCH / s for size, s in zip(sizes, t.seconds, strict=True)]
        kernel = 100.0 * t.own_kernel / t.own_cpu if t.own_cpu else 0.0
        results.append(
            TrainResult(name, steps * BATCH / sum(t.seconds), rates, steps, kernel, others_percent(t.others, sum(t.seconds)))
        )
    base = next((r.pairs_per_s for r in results if r.configuration == BASELINE), None)
    for r in results:
        r.ratio = r.pairs_per_s / base if base else None
    return results


def run_training(warmup: int, steps: int, blocks: int) -> list[TrainResult]:
    data = random_pairs((warmup + steps) * BATCH)
    batches = epoch_batches(data, object2vec_hyperparameters("dense"), epoch=1, seed=0)
    trainers = {
        BASELINE: plain_trainer(data),
        "object2vec pooled, dense": object2vec_trainer("dense", data),
        "object2vec pooled, row_sparse": object2vec_trainer("row_sparse", data),
    }
    return time_training(trainers, batches, warmup, steps, blocks)


# --------------------------------------------------------------------------------------------------
# JSON Lines loading


@dataclass
class LoadResult:
    reader: str
    lines_per_s: float | None  # None: the reader is not available here
    megabytes_per_s: float | None
    note: str = ""


def write_pairs_jsonl(path: Path, n: int, seed: int = 1) -> None:
    """``n`` lines ``{"label": 0|1, "in0": [20 ids], "in1": [20 ids]}``."""
    rng = np.random.default_rng(seed)
    in0 = rng.integers(0, VOCAB, (n, SEQ_LEN)).tolist()
    in1 = rng.integers(0, VOCAB, (n, SEQ_LEN)).tolist()
    labels = rng.integers(0, 2, n).tolist()
    with open(path, "wb") as fh:
        fh.writelines(orjson.dumps({"label": y, "in0": a, "in1": b}) + b"\n" for y, a, b in zip(labels, in0, in1, strict=True))


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    """``fn``'s returned line count and the seconds it took."""
    t0 = time.perf_counter()
    lines = fn()
    return lines, time.perf_counter() - t0


def read_with_object2vec(path: Path) -> int:
    schema = Schema(vocab_size=(VOCAB, VOCAB), max_seq_len=(SEQ_LEN, SEQ_LEN), regression=False, num_classes=2)
    return len(read_pairs(path, schema))


def read_with_orjson(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if orjson.loads(line) is not None)


def pyarrow_reader() -> Callable[[Path], int] | None:
    try:
        import pyarrow.json as pa_json  # optional: never a dependency
    except ImportError:
        return None
    return lambda path: pa_json.read_json(path).num_rows


def run_loading(n: int) -> list[LoadResult]:
    readers: dict[str, Callable[[Path], int] | None] = {
        "object2vec.data.read_pairs (validating)": read_with_object2vec,
        "orjson.loads per line (no validation, no arrays)": read_with_orjson,
        "pyarrow.json.read_json": pyarrow_reader(),
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        print(f"  writing {n:,} pairs to a temporary JSON Lines file", file=sys.stderr)
        write_pairs_jsonl(path, n)
        megabytes = path.stat().st_size / 1e6
        for name, reader in readers.items():
            if reader is None:
                results.append(LoadResult(name, None, None, "pyarrow not installed"))
                continue
            print(f"  reading with {name}", file=sys.stderr)
            lines, seconds = timed(lambda reader=reader: reader(path))
            if lines != n:
                raise RuntimeError(f"{name} read {lines} lines; expected {n}")
            results.append(LoadResult(name, lines / seconds, megabytes / seconds))
    return results


# --------------------------------------------------------------------------------------------------
# Output


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def training_table(results: list[TrainResult]) -> str:
    rows = [
        [
            r.configuration,
            f"{r.pairs_per_s:,.0f}",
            f"{r.ratio:.2f}x" if r.ratio is not None else "n/a",
            f"{min(r.block_pairs_per_s):,.0f} - {max(r.block_pairs_per_s):,.0f}",
            f"{r.kernel_percent:.0f}%",
            f"{r.others_cpu_percent:.0f}%" if r.others_cpu_percent is not None else "n/a",
        ]
        for r in results
    ]
    return markdown_table(
        [
            "configuration",
            "pairs/s",
            "ratio vs plain baseline",
            "per-block pairs/s (min - max)",
            "kernel share of our CPU",
            "other processes' CPU",
        ],
        rows,
    )


def loading_table(results: list[LoadResult]) -> str:
    arrow = next((r.lines_per_s for r in results if r.reader.startswith("pyarrow")), None)
    rows = []
    for r in results:
        if r.lines_per_s is None:
            rows.append([r.reader, r.note, "", ""])
            continue
        ratio = f"{r.lines_per_s / arrow:.2f}x" if arrow else "n/a"
        rows.append([r.reader, f"{r.lines_per_s:,.0f}", f"{r.megabytes_per_s:,.1f}", ratio])
    return markdown_table(["reader", "lines/s", "MB/s", "ratio vs pyarrow"], rows)


def system_header(info: dict[str, Any], args: argparse.Namespace) -> str:
    load, busy = info["load_average_1min"], info["others_cpu_percent_before_start"]
    busy_text = f"{busy:.0f}%" if busy is not None else "n/a"
    lines = [
        f"torch {info['torch']}, torch.get_num_threads() = {info['torch_threads']}, os.cpu_count() = {info['cpu_count']}",
        f"CPU: {info['cpu']}",
        f"python {info['python']}, numpy {info['numpy']}, 1-minute load average {f'{load:.2f}' if load is not None else 'n/a'}, "
        f"other processes' CPU share before start {busy_text}",
        f"model: pooled_embedding, vocab {VOCAB:,} a side, enc_dim {ENC_DIM}, {SEQ_LEN} tokens a side, batch {BATCH}, "
        "comparators hadamard/concat/abs_diff, MLP 2 x 512 linear, Adam",
        f"timing: {args.warmup} warm-up steps excluded, {args.steps} timed steps in {args.blocks} interleaved blocks",
    ]
    if busy is not None and busy > 10:
        lines.append(
            f"WARNING: other processes used {busy_text} of the CPUs just before the start; timings will be low and noisy"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--steps", type=int, default=None, help="timed training steps per configuration (default 200; 8 with --quick)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps before timing (default 20; 2 with --quick)")
    parser.add_argument(
        "--blocks", type=int, default=None, help="interleaved timing blocks per configuration (default 4; 2 with --quick)"
    )
    parser.add_argument(
        "--pairs", type=int, default=None, help="lines of the JSON Lines loading test (default 200,000; 5,000 with --quick)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads before anything runs (default: torch's choice)"
    )
    parser.add_argument("--quick", action="store_true", help="a few steps and a small file: a smoke test of this script")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    defaults = {"steps": (200, 8), "warmup": (20, 2), "blocks": (4, 2), "pairs": (200_000, 5_000)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
        least = 0 if name == "warmup" else 1
        if getattr(args, name) < least:
            parser.error(f"--{name} must be at least {least}; got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1; got {args.threads}")
    args.blocks = min(args.blocks, args.steps)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = system_info()
    print(system_header(info, args), flush=True)
    training = run_training(args.warmup, args.steps, args.blocks)
    print("\nTraining throughput (pairs/s; higher is better)\n")
    print(training_table(training), flush=True)
    loading = run_loading(args.pairs)
    print(f"\nJSON Lines loading ({args.pairs:,} pairs, {SEQ_LEN} tokens a side)\n")
    print(loading_table(loading))
    if args.json:
        report = {
            "system": info,
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "model": {"vocab_size": VOCAB, "tokens_a_side": SEQ_LEN, "enc_dim": ENC_DIM, "mini_batch_size": BATCH},
            "training": [asdict(r) for r in training],
            "loading": [asdict(r) for r in loading],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
