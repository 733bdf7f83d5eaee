"""Dense optimizers with MXNet's definitions, the ones SageMaker's Object2Vec ran.

SageMaker's Object2Vec trains with MXNet 1.x's optimizers, whose constants and formulas differ from
PyTorch's in places that change results (sources: MXNet 1.3.1 ``python/mxnet/optimizer.py`` and
``src/operator/optimizer_op-inl.h``, the same in every 1.x release; see ``docs/architecture.md``):

==========  =====================================================================================
adam        ``g = grad + wd*w``; ``m, v`` as usual; ``w -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps)``,
            eps 1e-8: the bias correction goes into the learning rate, so eps is *not* divided by
            ``sqrt(1-b2^t)`` as in PyTorch. torch's fused Adam with eps set to
            ``1e-8/sqrt(1-b2^t)`` before each step computes exactly that (:func:`adam`).
sgd         ``w = (1 - lr*wd)*w - lr*grad``: torch's SGD with ``weight_decay`` (fused), the same.
adagrad     ``h += grad^2``; ``w -= lr*(grad/sqrt(h + 1e-7) + wd*w)``: eps *inside* the sqrt, and
            weight decay outside the history (torch adds ``wd*w`` to the gradient it accumulates).
rmsprop     ``g = grad + wd*w``; ``n = 0.9*n + 0.1*g^2``; ``w -= lr*g/sqrt(n + 1e-8)``: decay 0.9
            (torch: 0.99) and eps inside the sqrt (torch: outside).
adadelta    rho 0.9, eps 1e-5 in both square roots, ``w -= delta + wd*w``: **no learning rate**
            (torch scales the step by ``lr``, default 1.0, and adds ``wd*w`` to the gradient).
==========  =====================================================================================

MXNet's gradient clipping is off unless ``clip_gradient`` is set, which Object2Vec does not expose,
so there is none here. Gradients arrive as the batch mean (MXNet's ``rescale_grad = 1/batch_size``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, overload

import torch
from torch import nn

ADAM_EPS = 1e-8
ADAGRAD_EPS = 1e-7
RMSPROP_GAMMA1, RMSPROP_EPS = 0.9, 1e-8
ADADELTA_RHO, ADADELTA_EPS = 0.9, 1e-5


def adam_epsilon(step: int, beta2: float = 0.999, eps: float = ADAM_EPS) -> float:
    """The eps that makes PyTorch's Adam step ``step`` (1-based) equal MXNet's.

    PyTorch divides by ``sqrt(v)/sqrt(1-b2^t) + eps'``; MXNet by ``(sqrt(v) + eps)/sqrt(1-b2^t)``,
    so ``eps' = eps/sqrt(1-b2^t)``.
    """
    return eps / math.sqrt(1.0 - beta2**step)


def adam(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """torch's fused Adam (coupled L2 decay, as MXNet) with MXNet's placement of eps, set before each step."""
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, eps=adam_epsilon(1), fused=True)

    def set_epsilon(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in optimizer.param_groups:
            state = next((optimizer.state[p] for p in group["params"] if p in optimizer.state), None)
            step = 1 if not state else int(state["step"]) + 1  # all of a group's parameters step together
            group["eps"] = adam_epsilon(step, group["betas"][1])

    opt.register_step_pre_hook(set_epsilon)
    return opt


class _MXNetOptimizer(torch.optim.Optimizer):
    """Shared plumbing: the parameters that have a gradient, and their state tensors, created as zeros."""

    state_names: tuple[str, ...] = ()

    def _with_grads(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]]]:
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if not self.state[p]:
                self.state[p].update(
                    {name: torch.zeros_like(p, memory_format=torch.preserve_format) for name in self.state_names}
                )
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError(f"{type(self).__name__} takes dense gradients")
        states = [[self.state[p][name] for p in params] for name in self.state_names]
        return params, grads, states

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, states = self._with_grads(group)
            if params:
                self._update(group, params, grads, states)
        return loss

    def _update(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
    ) -> None:
        """One step of the group: ``states`` holds one list of tensors per name in ``state_names``."""
        raise NotImplementedError  # pragma: no cover - interface


class AdaGrad(_MXNetOptimizer):
    """MXNet's AdaGrad: ``h += g^2; w -= lr*(g/sqrt(h + eps) + wd*w)`` (eps 1e-7)."""

    state_names = ("history",)

    def __init__(self, params: Any, lr: float = 0.01, weight_decay: float = 0.0, eps: float = ADAGRAD_EPS):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "eps": eps})

    def _update(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
    ) -> None:
        (history,) = states
        torch._foreach_addcmul_(history, grads, grads)
        denom = torch._foreach_add(history, group["eps"])
        torch._foreach_sqrt_(denom)
        if group["weight_decay"]:  # w - lr*wd*w first: the adaptive term does not read w
            torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
        torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])


class RMSProp(_MXNetOptimizer):
    """MXNet's (non-centred) RMSProp: ``g += wd*w; n = gamma1*n + (1-gamma1)*g^2; w -= lr*g/sqrt(n + eps)``."""

    state_names = ("n",)

    def __init__(
        self, params: Any, lr: float = 0.001, weight_decay: float = 0.0, gamma1: float = RMSPROP_GAMMA1, eps: float = RMSPROP_EPS
    ):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "gamma1": gamma1, "eps": eps})

    def _update(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
    ) -> None:
        (n,) = states
        if group["weight_decay"]:
            grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
        torch._foreach_mul_(n, group["gamma1"])
        torch._foreach_addcmul_(n, grads, grads, value=1.0 - group["gamma1"])
        denom = torch._foreach_add(n, group["eps"])
        torch._foreach_sqrt_(denom)
        torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])


class AdaDelta(_MXNetOptimizer):
    """MXNet 1.x's AdaDelta, which has no learning rate::

    acc_g = rho*acc_g + (1-rho)*g^2
    delta = sqrt(acc_delta + eps) / sqrt(acc_g + eps) * g
    acc_delta = rho*acc_delta + (1-rho)*delta^2
    w -= delta + wd*w
    """

    state_names = ("acc_g", "acc_delta")

    def __init__(self, params: Any, weight_decay: float = 0.0, rho: float = ADADELTA_RHO, eps: float = ADADELTA_EPS):
        super().__init__(params, {"weight_decay": weight_decay, "rho": rho, "eps": eps})

    def _update(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
    ) -> None:
        acc_g, acc_delta = states
        rho, eps = group["rho"], group["eps"]
        torch._foreach_mul_(acc_g, rho)
        torch._foreach_addcmul_(acc_g, grads, grads, value=1.0 - rho)
        delta = torch._foreach_add(acc_delta, eps)
        torch._foreach_sqrt_(delta)
        denom = torch._foreach_add(acc_g, eps)
        torch._foreach_sqrt_(denom)
        torch._foreach_div_(delta, denom)
        torch._foreach_mul_(delta, grads)
        torch._foreach_mul_(acc_delta, rho)
        torch._foreach_addcmul_(acc_delta, delta, delta, value=1.0 - rho)
        if group["weight_decay"]:
            torch._foreach_mul_(params, 1.0 - group["weight_decay"])
        torch._foreach_sub_(params, delta)


def dense_optimizer(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Object2Vec's ``optimizer`` over ``params``, with MXNet's definitions (adadelta ignores ``lr``)."""
    if name == "adam":
        return adam(params, lr, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "adagrad":
        return AdaGrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return RMSProp(params, lr=lr, weight_decay=weight_decay)
    if name == "adadelta":
        return AdaDelta(params, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")
