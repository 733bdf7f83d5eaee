"""Plain PyTorch baselines: the benchmarked architectures written the obvious way, on padded ``(B, T)`` batches.

Dense ``nn.Embedding`` tables, int64 token tensors, ``torch.optim.Adam`` and fp32: what a PyTorch
user writes without object2vec, and what its speed is measured against.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from object2vec.data.pairs import PairData
from object2vec.data.sampling import Batch
from throughput.models import HCNN_LAYERS, HCNN_WIDTH, LEARNING_RATE, MLP_DIM, Config, Trainer


class PlainPooled(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.embedding = nn.Embedding(c.vocab, c.enc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x).mean(dim=1)  # (B, enc_dim)


class PlainHCNN(nn.Module):
    """object2vec's hcnn: stacked 'same' convolutions with ReLU, each max-pooled over time, concat, Linear."""

    def __init__(self, c: Config):
        super().__init__()
        channels = math.ceil(c.enc_dim / HCNN_LAYERS)
        widths = [c.token_dim] + [channels] * HCNN_LAYERS
        self.embedding = nn.Embedding(c.vocab, c.token_dim)
        self.convs = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], HCNN_WIDTH, padding="same") for i in range(HCNN_LAYERS))
        self.project = nn.Linear(channels * HCNN_LAYERS, c.enc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x).transpose(1, 2)  # (B, D, T)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(h))  # (B, C, T)
            pooled.append(h.amax(dim=2))  # (B, C)
        return self.project(torch.cat(pooled, dim=1))  # (B, enc_dim)


class PlainBiLSTM(nn.Module):
    """object2vec's bilstm: one bidirectional LSTM layer, max-pooled over time, Linear; no packing."""

    def __init__(self, c: Config):
        super().__init__()
        hidden = math.ceil(c.enc_dim / 2)
        self.embedding = nn.Embedding(c.vocab, c.token_dim)
        self.lstm = nn.LSTM(c.token_dim, hidden, bidirectional=True, batch_first=True)
        self.project = nn.Linear(2 * hidden, c.enc_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))  # (B, T, 2H): every sequence here is full length
        return self.project(out.amax(dim=1))  # (B, enc_dim)


PLAIN_ENCODERS: dict[str, type[nn.Module]] = {"pooled_embedding": PlainPooled, "hcnn": PlainHCNN, "bilstm": PlainBiLSTM}


class PlainPairNet(nn.Module):
    """Two encoders, ``cat(u*v, u, v, |u-v|)``, ``Linear, Linear, Linear`` (the default linear MLP)."""

    def __init__(self, c: Config, classes: int = 2):
        super().__init__()
        self.enc0 = PLAIN_ENCODERS[c.network](c)
        self.enc1 = PLAIN_ENCODERS[c.network](c)
        self.mlp = nn.Sequential(nn.Linear(4 * c.enc_dim, MLP_DIM), nn.Linear(MLP_DIM, MLP_DIM), nn.Linear(MLP_DIM, classes))

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        u, v = self.enc0(x0), self.enc1(x1)  # (B, enc_dim) each
        return self.mlp(torch.cat([u * v, u, v, (u - v).abs()], dim=1))  # (B, classes)


def plain_trainer(config: Config, data: PairData, seed: int = 0) -> Trainer:
    """The baseline's step: index padded ``(B, T)`` token tensors, forward, cross-entropy, backward, Adam."""
    torch.manual_seed(seed)
    tokens0 = torch.from_numpy(data.in0.tokens.astype(np.int64).reshape(-1, config.seq_len))
    tokens1 = torch.from_numpy(data.in1.tokens.astype(np.int64).reshape(-1, config.seq_len))
    labels = torch.from_numpy(data.labels.astype(np.int64))
    net = PlainPairNet(config).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)

    def step(batch: Batch) -> None:
        left, right = torch.from_numpy(batch.left), torch.from_numpy(batch.right)
        out = net(tokens0[left], tokens1[right])
        loss = F.cross_entropy(out, labels[left])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return Trainer(step, [net.enc0.embedding.weight, net.enc1.embedding.weight])
