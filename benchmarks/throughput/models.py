"""The benchmarked configurations and object2vec's training step, exactly as ``object2vec.training.loop.fit`` takes it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from object2vec.data.pairs import PairData, Side
from object2vec.data.sampling import Batch
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training.batches import batch_inputs, label_tensor
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
