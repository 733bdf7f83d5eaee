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
from collections import defaultdict
from collections.abc import Callable
from typing import Any, overload

import torch
import torch.optim.optimizer as torch_optimizer
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


class DenseOptimizer:
    """What a training loop needs of a ``torch.optim.Optimizer``, without being one.

    ``param_groups``, ``state``, ``step``, ``zero_grad`` and ``state_dict``/``load_state_dict`` (in
    ``torch.optim``'s format), and the global step hooks of
    ``torch.optim.optimizer.register_optimizer_step_post_hook`` run after each step. Why not a
    subclass: PyTorch's ``Optimizer`` imports ``torch._dynamo`` the first time one is made and the
    first time its step runs (``_disable_dynamo``, ``_use_grad_for_differentiable``), 1.5-2 s of every
    training run on a CPU (a third of fitting AG News), for a compiler object2vec does not use. The
    updates are PyTorch's kernels all the same (``torch._fused_adam_``, ``torch._fused_sgd_``,
    ``torch._foreach_*``), so results are identical.
    """

    state_names: tuple[str, ...] = ()

    def __init__(self, params: Any, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = [{**self.defaults, "params": list(params)}]
        self.state: defaultdict[torch.Tensor, dict[str, Any]] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def _with_grads(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]]]:
        """The group's parameters that have a gradient, their gradients, and their state tensors
        (one list per name in ``state_names``), created as zeros on first use."""
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if not self.state[p]:
                self.state[p].update(self._initial_state(p))
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError(f"{type(self).__name__} takes dense gradients")
        states = [[self.state[p][name] for p in params] for name in self.state_names]
        return params, grads, states

    def _initial_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: torch.zeros_like(p, memory_format=torch.preserve_format) for name in self.state_names}

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
                for indices in _by_device_and_dtype(params):
                    self._update(
                        group,
                        [params[i] for i in indices],
                        [grads[i] for i in indices],
                        [[s[i] for i in indices] for s in states],
                    )
        for hook in list(_GLOBAL_STEP_HOOKS.values()):  # e.g. restoring frozen pretrained rows
            hook(self, (), {})
        return loss

    def _update(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
    ) -> None:
        """One step of the group's parameters of one device and dtype: ``states`` holds one list of
        tensors per name in ``state_names``."""
        raise NotImplementedError  # pragma: no cover - interface

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim``'s format: parameters by their index over all groups."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        return {
            "state": {index[id(p)]: dict(s) for p, s in self.state.items() if s},
            "param_groups": [
                {**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                for g in self.param_groups
            ],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The counterpart of :meth:`state_dict` (also reads a ``torch.optim`` optimizer's): state
        tensors go to their parameter's device, floating ones to its dtype (a step count stays float32)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, groups, strict=True)
        ):
            raise ValueError("the optimizer state does not fit these parameters (a different number of them)")
        params = {
            i: p for g, s in zip(self.param_groups, groups, strict=True) for i, p in zip(s["params"], g["params"], strict=True)
        }
        for g, s in zip(self.param_groups, groups, strict=True):
            g.update({k: v for k, v in s.items() if k != "params" and k in g})
        self.state = defaultdict(dict)
        for i, saved in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {
                k: v.to(p.device, None if k == "step" or not v.is_floating_point() else p.dtype) if torch.is_tensor(v) else v
                for k, v in saved.items()
            }


# torch's global step hooks (register_optimizer_step_post_hook), which a torch.optim optimizer runs
# after every step; a DenseOptimizer runs them too. A private name of torch.optim, so read defensively.
_GLOBAL_STEP_HOOKS: dict[int, Callable[..., Any]] = getattr(torch_optimizer, "_global_optimizer_post_hooks", {})


def _by_device_and_dtype(params: list[torch.Tensor]) -> list[list[int]]:
    """Indices of ``params`` grouped by device and dtype (each fused or foreach call takes one kind)."""
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault((p.device, p.dtype), []).append(i)
    return list(groups.values())


class Adam(DenseOptimizer):
    """Adam with MXNet's placement of eps (module docstring), by torch's fused Adam kernel with
    ``eps/sqrt(1-b2^t)`` as its eps; L2 weight decay added to the gradient (coupled), as MXNet."""

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Any,
        lr: float = 0.001,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = ADAM_EPS,
    ):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps})

    def _initial_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        # torch's fused Adam counts steps in a float32 tensor on the parameter's device
        return {**super()._initial_state(p), "step": torch.zeros((), dtype=torch.float32, device=p.device)}

    def _update(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
    ) -> None:
        exp_avgs, exp_avg_sqs = states
        steps = [self.state[p]["step"] for p in params]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
            eps=adam_epsilon(int(steps[0].item()), beta2, group["eps"]), maximize=False,
        )  # fmt: skip


class SGD(DenseOptimizer):
    """MXNet's SGD without momentum (Object2Vec has none): ``w = (1 - lr*wd)*w - lr*grad``, by torch's fused kernel."""

    def __init__(self, params: Any, lr: float = 0.01, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    def _update(
        self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor], states: list[list[torch.Tensor]]
    ) -> None:
        torch._fused_sgd_(
            params, grads, [], weight_decay=group["weight_decay"], momentum=0.0, lr=group["lr"], dampening=0.0,
            nesterov=False, maximize=False, is_first_step=False,
        )  # fmt: skip


class AdaGrad(DenseOptimizer):
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


class RMSProp(DenseOptimizer):
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


class AdaDelta(DenseOptimizer):
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


def dense_optimizer(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> DenseOptimizer:
    """Object2Vec's ``optimizer`` over ``params``, with MXNet's definitions (adadelta ignores ``lr``)."""
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return AdaGrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return RMSProp(params, lr=lr, weight_decay=weight_decay)
    if name == "adadelta":
        return AdaDelta(params, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")
