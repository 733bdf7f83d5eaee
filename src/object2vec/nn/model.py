"""The Object2Vec network: two encoders, a comparator, an MLP and an output layer.

::

    in0 ─ enc0 ─ u ┐                                         ┌ softmax over num_classes (cross-entropy)
                   ├ comparator [u*v ; u ; v ; |u-v|] ─ MLP ─┤
    in1 ─ enc1 ─ v ┘                                         └ one value (mean squared error)

Only the token embedding table can be shared (``tied_token_embedding_weight``); ``enc1_network=enc0``
copies settings, never weights (spec §6.1, I-813).
"""

from __future__ import annotations

import torch
from torch import nn

from ..hyperparameters import Hyperparameters
from . import init
from .embedding import TokenEmbedding, make_embedding
from .encoders import build_encoder

ACTIVATIONS = {"linear": nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU}


def compare(u: torch.Tensor, v: torch.Tensor, comparators: tuple[str, ...]) -> torch.Tensor:
    """Join two encodings ``(B, d)`` into ``(B, k*d)``, sub-vectors in the listed order (concat counts twice).

    >>> u, v = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 1.0]])
    >>> compare(u, v, ("hadamard", "abs_diff")).tolist()
    [[3.0, -2.0, 2.0, 3.0]]
    """
    parts = []
    for name in comparators:
        if name == "hadamard":
            parts.append(u * v)
        elif name == "concat":
            parts.extend((u, v))
        elif name == "abs_diff":
            parts.append((u - v).abs())
        else:  # the config validator makes this unreachable for users
            raise ValueError(f"unknown comparator {name!r}")
    return torch.cat(parts, dim=1)


def comparator_width(comparators: tuple[str, ...], enc_dim: int) -> int:
    return enc_dim * sum(2 if name == "concat" else 1 for name in comparators)


class Object2VecNet(nn.Module):
    """The network for one resolved :class:`Hyperparameters`; rebuildable from ``config.json`` alone."""

    def __init__(self, hp: Hyperparameters):
        super().__init__()
        hp = hp.resolve()
        self.hp = hp
        sparse = hp.token_embedding_storage_type == "row_sparse"
        cfg0, cfg1 = hp.encoder(0), hp.encoder(1)
        emb0 = make_embedding(cfg0.vocab_size, cfg0.token_embedding_dim, sparse)
        emb1 = emb0 if hp.tied_token_embedding_weight else make_embedding(cfg1.vocab_size, cfg1.token_embedding_dim, sparse)
        init.initialise_tables([emb0] if emb1 is emb0 else [emb0, emb1])  # a list, not a set: the order must not depend on ids
        self.encoders = nn.ModuleList([build_encoder(cfg0, hp.enc_dim, emb0), build_encoder(cfg1, hp.enc_dim, emb1)])
        self.dropout = nn.Dropout(hp.dropout)
        layers: list[nn.Module] = []
        width = comparator_width(hp.comparator_list, hp.enc_dim)
        for _ in range(hp.mlp_layers):
            layers += [nn.Linear(width, hp.mlp_dim), ACTIVATIONS[hp.mlp_activation](), nn.Dropout(hp.dropout)]
            width = hp.mlp_dim
        self.mlp = nn.Sequential(*layers)
        self.output = nn.Linear(width, hp.output_dim)
        init.initialise_dense([m for m in self.mlp if isinstance(m, nn.Linear)] + [self.output])

    def embeddings(self) -> list[TokenEmbedding]:
        """The distinct token tables (one when tied)."""
        tables = [enc.embedding for enc in self.encoders]
        return tables[:1] if tables[0] is tables[1] else tables

    def encode(self, side: int, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder ``side``'s vectors for flat ``tokens`` and ``lengths``: ``(B, enc_dim)``."""
        return self.encoders[side](tokens, lengths)

    def forward(
        self, tokens0: torch.Tensor, lengths0: torch.Tensor, tokens1: torch.Tensor, lengths1: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for softmax, or predictions ``(B,)`` for regression."""
        u = self.dropout(self.encode(0, tokens0, lengths0))  # (B, enc_dim)
        v = self.dropout(self.encode(1, tokens1, lengths1))  # (B, enc_dim)
        out = self.output(self.mlp(compare(u, v, self.hp.comparator_list)))  # (B, output_dim)
        return out[:, 0] if self.hp.is_regression else out
