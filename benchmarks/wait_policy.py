"""OpenMP wait policies: training time with GNU OpenMP's default spinning waits, sleeping ones, and short spins.

object2vec sets ``GOMP_SPINCOUNT=10000`` when it is imported before torch (``object2vec/_threads.py``).
This script trains the same models in fresh processes under each policy, on an idle machine and
with one core kept busy by another process (``--busy``: a pure-Python loop, what a browser or a
second job does to a laptop), and prints the seconds of ``fit`` and the ratio to the first policy.

    .venv/bin/python benchmarks/wait_policy.py [--threads 2] [--busy [--no-default]] [--repeats 2] [--spin N ...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = {
    "pooled_embedding, 50-token texts, row_sparse": {
        "enc0_network": "pooled_embedding", "enc0_max_seq_len": 50, "enc0_vocab_size": 50_000, "enc_dim": 100,
        "token_embedding_storage_type": "row_sparse", "mlp_layers": 0, "mini_batch_size": 32, "learning_rate": 0.005,
    },
    "hcnn, 20 tokens, enc_dim 256": {
        "enc0_network": "hcnn", "enc0_max_seq_len": 20, "enc0_vocab_size": 5_000, "enc_dim": 256,
        "mlp_dim": 256, "mini_batch_size": 64,
    },
}  # fmt: skip
SPIN = "spin "  # a policy named "spin N": GNU OpenMP's GOMP_SPINCOUNT=N, then sleep
POLICIES = {"default (spin 300,000, then sleep)": None, "PASSIVE": "PASSIVE", "spin 10,000 (object2vec's)": f"{SPIN}10000"}
CHILD = """
import json, sys, time
import object2vec  # sets nothing when OMP_WAIT_POLICY is in the environment
import torch
from object2vec import Object2Vec
torch.set_num_threads({threads})
hp = json.loads(sys.argv[1])
start = time.perf_counter()
Object2Vec(seed=0, device="cpu", epochs=2, **hp).fit(sys.argv[2])
print(time.perf_counter() - start)
"""


def _busy() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


def fit_seconds(hp: dict, train: Path, threads: int, policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy is not None and policy.startswith(SPIN):
        env["GOMP_SPINCOUNT"] = policy[len(SPIN) :]
    elif policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    else:
        env["OMP_WAIT_POLICY"] = ""  # present, so object2vec leaves it; empty: libgomp's default
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(threads=threads), json.dumps(hp), str(train)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"the training process failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process meanwhile")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--spin", type=int, action="append", default=[], help="also time GOMP_SPINCOUNT=N (repeatable)")
    parser.add_argument("--no-default", action="store_true", help="skip libgomp's default (slow with --busy)")
    args = parser.parse_args()
    policies = {**POLICIES, **{f"{SPIN}{n:,}": f"{SPIN}{n}" for n in args.spin}}
    if args.no_default:
        del policies[next(iter(POLICIES))]
    from object2vec.data.synthetic import make_pairs, write_jsonl

    busy = multiprocessing.Process(target=_busy, daemon=True) if args.busy else None
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, hp in MODELS.items():
            train = Path(tmp) / f"{hp['enc0_network']}.jsonl"
            sizes = (hp["enc0_vocab_size"],) * 2
            write_jsonl(make_pairs(args.pairs, vocab_size=sizes, max_len=(hp["enc0_max_seq_len"],) * 2, seed=1), train)
            if busy is not None and not busy.is_alive():
                busy.start()
            times = {
                p: statistics.median(fit_seconds(hp, train, args.threads, v) for _ in range(args.repeats))
                for p, v in policies.items()
            }
            rows.append((name, times))
        if busy is not None:
            busy.terminate()
    load = "one core busy with another process" if args.busy else "no other job started by this script"
    print(f"\n{args.threads} torch threads, {args.pairs:,} pairs, 2 epochs, median of {args.repeats}; {load}\n")
    first, *others = policies
    print(f"| model | {first} s | " + " | ".join(f"{p} s (ratio to the first)" for p in others) + " |")
    print("|---|---:|" + "---:|" * len(others))
    for name, times in rows:
        cells = " | ".join(f"{times[p]:.2f} ({times[p] / times[first]:.2f}x)" for p in others)
        print(f"| {name} | {times[first]:.2f} | {cells} |")


if __name__ == "__main__":
    main()
