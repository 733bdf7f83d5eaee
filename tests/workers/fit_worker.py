"""Run by tests/test_distributed.py in a subprocess (alone, or under torchrun).

usage: fit_worker.py DATA_DIR OUT_DIR [--resume] [--trace FILE] [--sleep S] [--row-sparse] [--epochs N] [--batch B]
Trains the TINY synthetic task, records every trained pair index to --trace (one line per step; rank R
of a distributed run writes FILE.R, its indices local to its shard),
writes rank<R>.sha (a hash of this rank's final weights) and, on rank 0, the model folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import torch

from object2vec import Object2Vec
from object2vec.cli.base import leave


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--trace", type=Path)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--row-sparse", action="store_true")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    if args.trace is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        args.trace = args.trace.with_name(f"{args.trace.name}.{rank}")

    def trace(batch) -> None:
        if args.trace is not None:
            with open(args.trace, "a") as fh:
                fh.write(" ".join(map(str, batch.left.tolist())) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        time.sleep(args.sleep)

    model = Object2Vec(
        enc0_max_seq_len=10, enc0_vocab_size=200, enc0_network="pooled_embedding", enc_dim=16, mlp_dim=32,
        mlp_activation="relu", epochs=args.epochs, mini_batch_size=args.batch, learning_rate=0.01, device="cpu", seed=args.seed,
        tied_token_embedding_weight=True,
        token_embedding_storage_type="row_sparse" if args.row_sparse else "dense",
    )  # fmt: skip
    model.fit(
        args.data / "train.jsonl", args.data / "validation.jsonl",
        checkpoint_dir=args.out / "checkpoints", checkpoint_every=7, resume=args.resume, on_step=trace,
    )  # fmt: skip
    digest = hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() for t in model.model_.state_dict().values()))
    (args.out / f"rank{rank}.sha").write_text(digest.hexdigest())
    if rank == 0:
        model.save(args.out / "model")
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
    leave(0)  # as the command line's workers do: a Gloo worker's Python shutdown can abort (cli/base.py)
