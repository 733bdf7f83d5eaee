"""What ``bucket_width`` buys on length-skewed data: padding and training pairs/s, with and without.

Sequence lengths follow a long-tailed (log-normal) distribution capped at ``--max-len``, the shape of
real sentences and documents. Without buckets a batch pads every sequence to its longest member;
with ``bucket_width`` batches hold pairs of similar length. The script trains hcnn and bilstm models
for a fixed number of steps with object2vec's own ``fit`` and prints a table with the ratio.

Run: ``python benchmarks/bucketing.py`` (about a minute on 2 cores; ``--quick`` for a smoke test).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness import log, markdown_table, percent, system_info
from object2vec.data.pairs import PairData, Side
from object2vec.data.sampling import epoch_batches
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training.loop import fit


def skewed_side(n: int, vocab: int, max_len: int, rng: np.random.Generator) -> Side:
    lengths = np.clip(rng.lognormal(mean=2.5, sigma=0.8, size=n).astype(np.int64), 1, max_len)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return Side(rng.integers(0, vocab, offsets[-1]).astype(np.int32), offsets)


def padding_share(data: PairData, hp: Hyperparameters) -> float:
    """Share of the padded (B, T) cells that hold no token, over one epoch's batches."""
    real = padded = 0
    for batch in epoch_batches(data, hp, 1, seed=0):
        for side, idx in ((data.in0, batch.left), (data.in1, batch.right)):
            lengths = side.lengths[idx]
            real += int(lengths.sum())
            padded += int(lengths.max()) * len(lengths)
    return 1 - real / padded


def pairs_per_second(data: PairData, hp: Hyperparameters, steps: int) -> float:
    torch.manual_seed(0)
    net = Object2VecNet(hp)
    fit(net, data, seed=0, device="cpu", max_steps=5)  # warm-up
    start = time.perf_counter()
    fit(net, data, seed=1, device="cpu", max_steps=steps)
    return steps * hp.mini_batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--bucket-width", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny run for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.steps = 2000, 4
    rng = np.random.default_rng(0)
    vocab = 20000
    data = PairData(
        skewed_side(args.pairs, vocab, args.max_len, rng),
        skewed_side(args.pairs, vocab, args.max_len, rng),
        rng.integers(0, 2, args.pairs),
    )
    lengths = data.in0.lengths
    print(
        f"{args.pairs:,} pairs; lengths: median {int(np.median(lengths))}, p90 {int(np.percentile(lengths, 90))}, max {lengths.max()}"
    )
    info = system_info()
    print(
        f"torch {info['torch']}, {info['torch_threads']} threads, CPU: {info['cpu']}, "
        f"other processes' CPU share before start {percent(info['others_cpu_percent_before_start'])}\n"
    )
    rows = []
    for network in ("hcnn", "bilstm"):
        base = None
        for width in (0, args.bucket_width):
            hp = Hyperparameters(
                enc0_network=network, enc0_max_seq_len=args.max_len, enc0_vocab_size=vocab, enc0_token_embedding_dim=128,
                enc_dim=256, mini_batch_size=64, bucket_width=width, token_embedding_storage_type="row_sparse",
            )  # fmt: skip
            log(f"{network}, bucket_width {width}: {args.steps} steps")
            rate = pairs_per_second(data, hp, args.steps)
            base = base or rate
            rows.append([network, str(width), f"{padding_share(data, hp):.0%}", f"{rate:,.0f}", f"{rate / base:.2f}x"])
    print(markdown_table(["encoder", "bucket_width", "padding share", "pairs/s", "speed-up"], rows))


if __name__ == "__main__":
    main()
