"""The lazy (``row_sparse``) optimizer: updates only the token-table rows a batch touched.

A :class:`~object2vec.nn.embedding.RowSparseEmbedding` leaves its batch's gradient on a small leaf
of the distinct rows it used; :class:`LazyOptimizer` updates just those rows and their optimizer
state: in place by :mod:`object2vec.native.kernels` on CPU, else gathered, updated by torch's fused
kernels and written back (:func:`copy_rows`). Nothing proportional to the vocabulary happens per step.

Lazy semantics (the MXNet ``lazy_update`` that SageMaker's row_sparse used), with MXNet's formulas
(:mod:`object2vec.training.dense_optim`):

* adam: moments of a row are updated only on steps that touch the row; bias correction uses the
  table's global step count (as ``torch.optim.SparseAdam`` and MXNet's per-parameter count), and eps
  is MXNet's (passed to the kernels as ``eps/sqrt(1-b2^t)``); ``wd * w`` is added to the gradient of
  touched rows only;
* adagrad: a row's squared-gradient history grows only when touched; eps (1e-7) sits inside the
  square root, which the kernels compute by starting the history at 1e-7 with their eps at 0; weight
  decay ``lr * wd * w`` is applied to touched rows, outside the history;
* sgd: ``w -= lr * (g + wd * w)`` on touched rows.

On the first step every touched row gets exactly the dense optimizer's update; untouched rows never
change (``tests/test_sparse.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..native import kernels
from ..nn.embedding import RowSparseEmbedding
from . import distributed
from .dense_optim import ADAGRAD_EPS, adam_epsilon

_WIDE_ELEMENTS = (torch.complex128, torch.float64)  # 16 and 8 bytes
_STATE_TABLES = {"adam": ("exp_avg", "exp_avg_sq"), "adagrad": ("sum",), "sgd": ()}


def copy_rows(table: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``table[rows] = values`` for a 2-D table. On CPU ``index_copy_`` costs per element, not per
    row, so rows are moved as 16-byte (or 8-byte) elements when their bytes allow it: a plain
    byte copy, bit-exact, about 3x faster than copying 4-byte floats one by one."""
    if table.device.type == "cpu" and table.dtype == values.dtype and table.is_contiguous() and values.is_contiguous():
        row_bytes = table.shape[1] * table.element_size()
        for wide in _WIDE_ELEMENTS:
            if row_bytes % wide.itemsize == 0 and table.storage_offset() * table.element_size() % wide.itemsize == 0:
                table.view(wide).index_copy_(0, rows, values.view(wide))
                return
    table.index_copy_(0, rows, values)


class LazyOptimizer:
    """Adam, Adagrad or SGD applied to the touched rows of row_sparse tables only."""

    def __init__(self, tables: list[RowSparseEmbedding], name: str, lr: float, weight_decay: float):
        if name not in ("adam", "adagrad", "sgd"):
            raise ValueError(f"row_sparse supports adam, adagrad and sgd; got {name}")
        self.tables, self.name, self.lr, self.weight_decay = tables, name, lr, weight_decay
        self.betas = (0.9, 0.999)
        self.state: list[dict[str, Any]] = [{} for _ in tables]

    def zero_grad(self) -> None:
        """Clear the gradients of rows gathered so far; the gathered rows themselves stay recorded,
        so ``forward, zero_grad, backward, step`` works as it does for a torch optimizer."""
        for table in self.tables:
            for _, leaf, _, _ in table.touched:
                leaf.grad = None

    @torch.no_grad()
    def step(self, scale: float = 1.0) -> None:
        """Update touched rows; ``scale`` undoes fp16 loss scaling (a non-finite gradient skips the table)."""
        for table, state in zip(self.tables, self.state, strict=True):
            taken = table.take_gradient()
            if taken is None:  # still join the other ranks' exchange below
                taken = (
                    torch.zeros(0, dtype=torch.long, device=table.weight.device),
                    table.weight.new_zeros(0, table.embedding_dim),
                    None,
                )
            rows, grad, values = taken
            if distributed.context().is_distributed:  # rows become the union over ranks: gather again
                rows, grad = distributed.sync_rows(rows, grad, table.embedding_dim)
                values = None
            if len(rows) == 0:
                continue
            if scale != 1.0:
                grad = grad.float() / scale
                if not torch.isfinite(grad).all():
                    continue
            frozen = getattr(table, "frozen_rows", None)
            if frozen is not None:  # pretrained rows that must not move
                keep = ~frozen[rows]
                rows, grad = rows[keep], grad[keep]
                values = None if values is None else values[keep]
            weight = table.weight
            if self.name == "adagrad" and self.weight_decay:  # MXNet: outside the history, not read by the rest
                w = weight.index_select(0, rows) if values is None else values
                copy_rows(weight, rows, w.mul_(1.0 - self.lr * self.weight_decay))
                values = None
            if self._update_in_place(state, weight, rows, grad):
                continue
            w = weight.index_select(0, rows) if values is None else values  # (U, D), ours to update in place
            if self.name == "sgd":
                w.add_(grad if not self.weight_decay else grad + self.weight_decay * w, alpha=-self.lr)
            elif self.name == "adagrad":
                w = self._adagrad(state, weight, rows, grad, w)
            else:
                w = self._adam(state, weight, rows, grad, w)
            copy_rows(weight, rows, w)

    def _state_tables(self, state: dict[str, Any], weight: torch.Tensor) -> list[torch.Tensor]:
        """The optimizer's per-row tables for ``weight`` (moments or sums), created as zeros on first use."""
        names = _STATE_TABLES[self.name]
        if names and names[0] not in state:  # (not setdefault: its default would be built on every step)
            state.update({name: torch.zeros_like(weight) for name in names})
            if self.name == "adagrad":  # sqrt(history + eps) with eps inside, as MXNet: the history starts at eps
                state["sum"].fill_(ADAGRAD_EPS)
        return [state[name] for name in names]

    def _rows_of(self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor) -> list[torch.Tensor]:
        """The touched rows of each state table, gathered contiguously."""
        return [table.index_select(0, rows) for table in self._state_tables(state, weight)]

    @staticmethod
    def _count(state: dict[str, Any]) -> int:
        """Count the step: the table's global count (an int in the checkpoint) behind bias correction."""
        state["step"] = state.get("step", 0) + 1
        return state["step"]

    def _step_tensor(self, state: dict[str, Any]) -> list[torch.Tensor]:
        return [torch.tensor(float(self._count(state)))]

    def _update_in_place(self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor) -> bool:
        """Update the rows where they lie with :mod:`object2vec.native.kernels`, where it applies (fp32 CPU
        tables and a C compiler): a third of the memory traffic of gathering, updating and
        scattering them. ``False``: nothing was done, the PyTorch path below runs."""
        tables = [weight, *self._state_tables(state, weight)]
        rows, grad = rows.to(torch.int64).contiguous(), grad.contiguous()
        if not kernels.applies(tables, grad, rows):
            return False
        if self.name == "adam":
            step = self._count(state)
            eps = adam_epsilon(step, self.betas[1])
            kernels.adam_rows(
                weight,
                tables[1],
                tables[2],
                grad,
                rows,
                lr=self.lr,
                betas=self.betas,
                eps=eps,
                weight_decay=self.weight_decay,
                step=step,
            )
        elif self.name == "adagrad":
            self._count(state)
            kernels.adagrad_rows(weight, tables[1], grad, rows, lr=self.lr, eps=0.0, weight_decay=0.0)  # decay applied in step
        else:
            kernels.sgd_rows(weight, grad, rows, lr=self.lr, weight_decay=self.weight_decay)
        return True

    def _adagrad(
        self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        """torch's fused Adagrad kernel (one pass: decay, sum, update) on the gathered rows."""
        (s,) = self._rows_of(state, weight, rows)
        torch._fused_adagrad_(
            [w],
            [grad.contiguous()],
            [s],
            self._step_tensor(state),
            lr=self.lr,
            lr_decay=0.0,
            weight_decay=0.0,
            eps=0.0,
            maximize=False,
        )  # fmt: skip  (the history started at eps; weight decay was applied in step)
        copy_rows(state["sum"], rows, s)
        return w

    def _adam(
        self, state: dict[str, Any], weight: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        """torch's fused Adam kernel (one pass instead of eight: decay, moments, bias correction,
        update) on the gathered rows and moments; the moments are then written back."""
        beta1, beta2 = self.betas
        m, v = self._rows_of(state, weight, rows)
        step = self._step_tensor(state)
        torch._fused_adam_(
            [w], [grad.contiguous()], [m], [v], [], step,
            lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=self.weight_decay, eps=adam_epsilon(int(step[0]), beta2),
            amsgrad=False, maximize=False,
        )  # fmt: skip
        copy_rows(state["exp_avg"], rows, m)
        copy_rows(state["exp_avg_sq"], rows, v)
        return w

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["state"]
