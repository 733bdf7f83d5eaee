"""The optimizers of a network: one dense optimizer (:mod:`object2vec.training.dense_optim`, MXNet's
definitions) for the parameters autograd updates, and a lazy one
(:mod:`object2vec.training.lazy_optim`) for ``row_sparse`` token tables."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..hyperparameters import Hyperparameters
from ..nn.embedding import RowSparseEmbedding
from ..nn.model import Object2VecNet
from .dense_optim import dense_optimizer
from .lazy_optim import LazyOptimizer

logger = logging.getLogger(__name__)


class Optimizers:
    """The dense optimizer, plus a lazy one (:mod:`object2vec.training.lazy_optim`) for ``row_sparse`` token tables."""

    def __init__(self, net: Object2VecNet, hp: Hyperparameters):
        tables = [e for e in net.embeddings() if isinstance(e, RowSparseEmbedding)]
        dense = [p for p in net.parameters() if p.requires_grad]  # row_sparse tables are not autograd parameters
        self.optimizers: list[Any] = []
        if hp.optimizer == "adadelta":
            logger.info(
                f"optimizer=adadelta has no learning rate (MXNet's AdaDelta); learning_rate={hp.learning_rate:g} is not used."
            )
        if dense:
            self.optimizers.append(dense_optimizer(hp.optimizer, dense, hp.learning_rate, hp.weight_decay))
        if tables:
            self.optimizers.append(LazyOptimizer(tables, hp.optimizer, hp.learning_rate, hp.weight_decay))

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad()

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def step_scaled(self, scaler: torch.amp.GradScaler) -> None:
        """fp16: unscale, skip the step on inf/nan gradients, adapt the scale."""
        dense = self.optimizers[0] if self.optimizers and not isinstance(self.optimizers[0], LazyOptimizer) else None
        if dense is not None:
            scaler.step(dense)
        for opt in self.optimizers:
            if isinstance(opt, LazyOptimizer):
                opt.step(scale=scaler.get_scale())
        scaler.update()

    def state_dict(self) -> list[dict[str, Any]]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        for opt, state in zip(self.optimizers, states, strict=True):
            opt.load_state_dict(state)
