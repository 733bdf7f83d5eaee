"""The Object2Vec network: two encoders, a comparator, an MLP and an output layer.

::

    in0 ─ enc0 ─ u ┐                                         ┌ softmax over num_classes (cross-entropy)
                   ├ comparator [u*v ; u ; v ; |u-v|] ─ MLP ─┤
    in1 ─ enc1 ─ v ┘                                         └ one value (mean squared error)

With ``objective=cosine`` or ``contrastive`` (extensions, :mod:`object2vec.training.objectives`) there
is no comparator, MLP or output layer: the pair score is the cosine of ``u`` and ``v``.

Only the token embedding table can be shared (``tied_token_embedding_weight``); ``enc1_network=enc0``
copies settings, never weights, as SageMaker's documentation says and a SageMaker maintainer
confirmed (aws/sagemaker-python-sdk issue 813: in0 and in1 embeddings of the same input still differ).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
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


def cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine ``(B,)`` of ``(B, d)`` encodings; a zero vector has cosine 0 with everything.

    >>> cosine(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0]])).tolist()
    [0.7071067690849304, 0.0]
    """
    return (F.normalize(u, dim=1) * F.normalize(v, dim=1)).sum(dim=1)


def comparator_width(comparators: tuple[str, ...], enc_dim: int) -> int:
    return enc_dim * sum(2 if name == "concat" else 1 for name in comparators)


class Object2VecNet(nn.Module):
    """The network for one resolved :class:`Hyperparameters`; rebuildable from ``config.json`` alone."""

    def __init__(self, hp: Hyperparameters, initialise: bool = True):
        """``initialise=False`` leaves the token tables undrawn (zeros), for weights about to be loaded."""
        super().__init__()
        hp = hp.resolve()
        self.hp = hp
        sparse = hp.token_embedding_storage_type == "row_sparse"
        cfg0, cfg1 = hp.encoder(0), hp.encoder(1)
        emb0 = make_embedding(cfg0.vocab_size, cfg0.token_embedding_dim, sparse, drawn=initialise)
        emb1 = (
            emb0
            if hp.tied_token_embedding_weight
            else make_embedding(cfg1.vocab_size, cfg1.token_embedding_dim, sparse, drawn=initialise)
        )
        # a list, not a set: the order of the draws must not depend on ids
        tables = [(emb0, (cfg0.network, cfg1.network))] if emb1 is emb0 else [(emb0, (cfg0.network,)), (emb1, (cfg1.network,))]
        if initialise:
            init.initialise_tables(tables)
        self.encoders = nn.ModuleList([build_encoder(cfg0, hp.enc_dim, emb0), build_encoder(cfg1, hp.enc_dim, emb1)])
        self.dropout = nn.Dropout(hp.dropout)
        # the head: built only when the objective trains it (SageMaker's always does)
        self.mlp: nn.Sequential | None = None
        self.output: nn.Linear | None = None
        if hp.has_head:
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
        tables = [cast(TokenEmbedding, enc.embedding) for enc in self.encoders]  # build_encoder's table
        return tables[:1] if tables[0] is tables[1] else tables

    def encode(self, side: int, tokens: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder ``side``'s vectors for flat ``tokens`` and ``lengths`` (and per-token ``weights``
        for a weighted-mean pooling): ``(B, enc_dim)``."""
        if weights is None:
            return self.encoders[side](tokens, lengths)
        return self.encoders[side](tokens, lengths, weights)

    def head(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Comparator, MLP and output layer on encodings ``(B, enc_dim)``: logits ``(B, num_classes)``
        for softmax, or predictions ``(B,)`` for regression."""
        if self.mlp is None or self.output is None:
            raise ValueError(f"objective={self.hp.objective} trains no output layer; the pair score is the cosine")
        out = self.output(self.mlp(compare(u, v, self.hp.comparator_list)))  # (B, output_dim)
        return out[:, 0] if self.hp.is_regression else out

    def forward(
        self,
        tokens0: torch.Tensor,
        lengths0: torch.Tensor,
        tokens1: torch.Tensor,
        lengths1: torch.Tensor,
        weights0: torch.Tensor | None = None,
        weights1: torch.Tensor | None = None,
        index0: torch.Tensor | None = None,
        encodings: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pair scores: logits ``(B, num_classes)`` for softmax, predictions ``(B,)`` for regression, or
        the cosine ``(B,)`` of the two encodings for a model without a head. With ``encodings`` also
        the encodings ``u`` and ``v`` ``(B, enc_dim)`` (after dropout) that objectives train.

        ``weights0``/``weights1``: per-token weights of a weighted-mean pooling. ``index0`` ``(B,)``: the
        in0 sequences are distinct records and pair ``i`` reads row ``index0[i]`` of their encodings
        (negative_sampling_grouped: each record is encoded once for all its pairs).
        """
        u = self.encode(0, tokens0, lengths0, weights0)
        u = self.dropout(u if index0 is None else u.index_select(0, index0))  # (B, enc_dim)
        v = self.dropout(self.encode(1, tokens1, lengths1, weights1))  # (B, enc_dim)
        out = self.head(u, v) if self.output is not None else cosine(u, v)
        return (out, u, v) if encodings else out


def pair_scores(out: torch.Tensor, hp: Hyperparameters) -> torch.Tensor:
    """What ``predict`` returns for the network's output: softmax probabilities ``(n, num_classes)``,
    or ``(n, 1)``: the regression value, or the cosine for a model without a head."""
    return torch.softmax(out, dim=1) if hp.has_head and not hp.is_regression else out[:, None]
