"""Training pairs/s and peak memory of each row, each configuration in fresh processes."""

from __future__ import annotations

import argparse
import gc
from dataclasses import dataclass

from harness import (
    child_setup,
    cpu_snapshot,
    current_rss_mb,
    in_fresh_process,
    log,
    others_cpu_seconds,
    others_percent,
    peak_rss_mb,
    reset_peak_rss,
)
from object2vec.data.pairs import PairData
from object2vec.data.sampling import Batch, epoch_batches
from throughput.models import (
    BASELINE,
    CONFIGS,
    Config,
    Row,
    Step,
    Trainer,
    object2vec_hyperparameters,
    object2vec_trainer,
    random_pairs,
    rows_here,
)
from throughput.plain import plain_trainer


def make_trainer(config: Config, row: Row, data: PairData) -> Trainer:
    return plain_trainer(config, data) if row.storage is None else object2vec_trainer(config, row, data)


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

        keep_freed_memory()  # what training.loop.fit does first
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
        if args.as_run:  # two processes: plain PyTorch with glibc's defaults, object2vec as training.loop.fit sets it up
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
