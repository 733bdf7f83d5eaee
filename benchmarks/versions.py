"""Two versions of object2vec side by side: AG News ``prepare`` and ``fit`` times, alternating.

The development machine's speed drifts by 20-30% over minutes, so a before/after comparison is only
fair run by run in one window. This script checks out ``--before`` (a commit) in a temporary git
worktree, then times, ``--repeats`` times and alternating, the extensions' ``prepare`` and the seed-0
``fit`` of ``examples/text_classification.py`` (AG News, 2 threads, this checkout's settings, ``fit``
reading the JSON Lines without the binary cache) with that version and with this checkout, each in a
fresh process, and prints the times and the median change.

    python benchmarks/versions.py --data-dir ../shared/data/ag_news --before a9b5896 [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time, shutil
from pathlib import Path
sys.path.insert(0, {examples!r})
import torch
torch.set_num_threads(2)
import text_classification as tc
from object2vec import Object2Vec
split, out = Path(sys.argv[2]), Path(sys.argv[3])
if sys.argv[1] == "prepare":
    shutil.rmtree(out, ignore_errors=True)
    _, seconds = tc.prepared(split, out, "classify", tc.FEATURES)
else:
    hp = {{**json.loads((out / "hyperparameters.json").read_text()), **tc.EXTENDED}}
    start = time.perf_counter()
    Object2Vec(device="cpu", seed=0, cache=False, **hp).fit(out / "train.jsonl", out / "validation.jsonl", auxiliary=out)
    seconds = time.perf_counter() - start
print(seconds)
"""


def timed(step: str, src: Path, split: Path, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = CHILD.format(examples=str(ROOT / "examples"))
    run = subprocess.run([sys.executable, "-c", code, step, str(split), str(out)], env=env, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{step} with {src} failed:\n{run.stderr[-2000:]}")
    return float(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with AG News' test.csv")
    parser.add_argument("--before", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "examples"))
    import text_classification as tc

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        before = tmp_path / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before], check=True)
        try:
            splits, _ = tc.split_rows(args.data_dir)
            tc.write_splits(splits, tmp_path / "split")
            versions = {args.before: before / "src", "this checkout": ROOT / "src"}
            times: dict[str, dict[str, list[float]]] = {step: {v: [] for v in versions} for step in ("prepare", "fit")}
            for _ in range(args.repeats):
                for step in times:
                    for name, src in versions.items():
                        times[step][name].append(timed(step, src, tmp_path / "split", tmp_path / f"out-{src.parent.name}"))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    load = os.getloadavg()[0]
    print(f"\nAG News, extensions' prepare and seed-0 fit, {args.repeats} alternating runs; load average {load:.1f}\n")
    first, second = versions
    print(f"| | {first} (s) | {second} (s) | median change |")
    print("|---|---|---|---:|")
    for step, by in times.items():
        a, b = statistics.median(by[first]), statistics.median(by[second])
        cells = [", ".join(f"{x:.2f}" for x in by[v]) for v in versions]
        print(f"| `{step}` | {cells[0]} | {cells[1]} | {100 * (b - a) / a:+.0f}% |")


if __name__ == "__main__":
    main()
