"""Run by tests/test_objectives.py in a subprocess: alone on a global batch, or under torchrun with 2
ranks, each on its half of that batch.

usage: contrastive_worker.py OUT_DIR
For each case (objective x token table storage) takes one SGD step of the training step
(:class:`object2vec.training.epoch.EpochRunner`, DDP-wrapped as ``fit`` does) and saves the weights to
OUT_DIR/<case>.rank<R>.pt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from object2vec.cli.base import leave
from object2vec.data.pairs import PairData, Side
from object2vec.data.sampling import Batch
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training import distributed
from object2vec.training.epoch import EpochRunner
from object2vec.training.metrics import Meter
from object2vec.training.optimizers import Optimizers

CASES = {
    "contrastive-dense": {"objective": "contrastive"},
    "contrastive-row_sparse": {"objective": "contrastive", "token_embedding_storage_type": "row_sparse"},
    "joint-hcnn": {"objective": "sagemaker+contrastive", "enc0_network": "hcnn", "objective_weight": 0.5},
}


def global_batch() -> tuple[PairData, Batch]:
    """16 pairs: 12 positives (users 0-9, a repeated item and a repeated user across the ranks' halves)
    and 4 label-0 pairs; rank 0 gets rows 0-7 (5 positives), rank 1 rows 8-15 (7 positives)."""
    in0 = [[u, 20 + u % 3] for u in (0, 1, 2, 3, 4, 0, 1, 2, 5, 6, 7, 8, 9, 3, 5, 4)]
    in1 = [[30 + i, 45] if i % 4 else [31] for i in range(16)]
    labels = np.array([1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1], dtype=np.int8)
    data = PairData(Side.from_lists(in0), Side.from_lists(in1), labels)
    rows = np.arange(16)
    return data, Batch(rows, rows, labels)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    device = distributed.setup(torch.device("cpu"))
    ctx = distributed.context()
    data, batch = global_batch()
    if ctx.is_distributed:  # each rank trains on its half of the global batch
        half = slice(8 * ctx.rank, 8 * ctx.rank + 8)
        batch = Batch(batch.left[half], batch.right[half], batch.labels[half])
    for name, case in CASES.items():
        settings = dict(
            enc0_max_seq_len=4, enc0_vocab_size=64, enc0_network="pooled_embedding", enc_dim=8, mlp_dim=8, mlp_layers=1,
            optimizer="sgd", learning_rate=0.5, contrastive_temperature=0.1, contrastive_symmetric=True,
            contrastive_hard_negatives=True, contrastive_logq_correction=True,
        )  # fmt: skip
        hp = Hyperparameters(**{**settings, **case}).resolve()
        torch.manual_seed(0)
        net = Object2VecNet(hp).train()
        if ctx.rank == 0:
            torch.save(net.state_dict(), args.out / f"{name}.start.pt")
        model: nn.Module = net
        if ctx.is_distributed and any(p.requires_grad for p in net.parameters()):
            model = nn.parallel.DistributedDataParallel(net)
        runner = EpochRunner(model, Optimizers(net, hp), data, hp, device, "fp32")
        runner.step(batch, Meter(hp))
        torch.save(net.state_dict(), args.out / f"{name}.rank{ctx.rank}.pt")
    if ctx.is_distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
    leave(0)  # as the command line's workers do: a Gloo worker's Python shutdown can abort (cli/base.py)
