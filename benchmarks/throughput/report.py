"""The tables train_throughput.py prints: each measurement, the targets beside this run, the machine."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from harness import markdown_table, percent
from throughput.loading import LoadResult
from throughput.memory_10m import MEMORY_10M_SOURCES, Memory10mResult
from throughput.models import BASELINE, CONFIGS
from throughput.parity import ParityResult
from throughput.training import TrainResult


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
    """The project's speed, accuracy and memory targets beside the numbers of this run."""
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
