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
   (``batch_inputs``, ``label_tensor``, ``Optimizers.zero_grad``, forward under ``training.precision.autocast``,
   ``compute_loss(out.float())``, backward, ``Optimizers.step``, ``Meter.add``): dense fp32, row_sparse
   fp32 and row_sparse bf16 (the last only where ``training.precision.bf16_is_fast`` says the CPU has bf16 units).
   Each configuration runs in two fresh processes: the plain baseline with glibc's allocator defaults
   (as a plain PyTorch user runs it), then object2vec's rows with the allocator thresholds
   ``training.loop.fit`` sets (``--no-as-run``: all rows in one process, in interleaved blocks, steadier
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

The parts live beside this script: ``harness.py`` (shared by every benchmark: CPU load, peak memory,
fresh processes, tables) and the ``throughput`` package: ``models`` (the configurations and
object2vec's step), ``plain`` (the plain PyTorch baselines), ``training``, ``parity``, ``loading`` and
``memory_10m`` (one measurement each) and ``report`` (the tables). This file is the command line.

Usage::

    python benchmarks/train_throughput.py                   # about 5 minutes on a 2-core CPU
    python benchmarks/train_throughput.py --quick           # a few steps of everything: smoke test (< 1 minute)
    python benchmarks/train_throughput.py --only hcnn,bilstm --skip-parity
    python benchmarks/train_throughput.py --steps 400 --json results.json
    python benchmarks/train_throughput.py --memory-10m      # the 10-million-pair memory check only
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from harness import START_ENV, system_info
from object2vec.training.precision import bf16_is_fast
from throughput.loading import LOAD, LoadResult, run_loading
from throughput.memory_10m import Memory10mResult, run_memory_10m_all
from throughput.models import ALIASES, CONFIGS, CPU
from throughput.parity import ParityResult, run_parity
from throughput.report import loading_table, memory_10m_table, parity_table, system_header, targets_table, training_table
from throughput.training import TrainResult, run_training


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
        help="raise glibc's malloc thresholds in every timing process, as training.loop.fit does (object2vec/training/allocator.py); "
        "it applies to the plain baseline too, so ratios understate what fit gains over plain PyTorch",
    )
    parser.add_argument(
        "--as-run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the plain baseline in one process with glibc's defaults (as a plain PyTorch user runs it) and the "
        "object2vec rows in another with the allocator thresholds training.loop.fit sets: each as its users get it, one "
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
        help="only the 10-million-pair memory check: 200 steps of pooled row_sparse via training.loop.fit on data built with numpy, "
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
    info = {**system_info(), "bf16_is_fast": bf16_is_fast(CPU)}
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
    print("\nTargets\n")
    print(targets_table(training, parity, loading, memory_10m))
    if not args.memory_10m:
        print("(the 10-million-pair memory target: run with --memory-10m)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
