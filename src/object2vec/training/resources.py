"""What a configuration will need before anything is allocated: memory and disk.

A 3,000,000-token vocabulary with a large ``enc_dim`` does not fit most machines; allocated
blindly, the kernel kills the process minutes later without a word. :func:`estimate` counts the
network's parameters on PyTorch's ``meta`` device (shapes only, no memory, no initialisation) and
adds what training keeps beside them: dense gradients, the optimizer's state, and the best epoch's
copy of the weights. :func:`check_memory` refuses a run that cannot fit, naming the estimate and
the machine's memory; :func:`available_memory` reads what this process may still use (the
container's cgroup limit included).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ..errors import Object2VecError
from ..files import format_bytes
from ..hyperparameters import Hyperparameters
from ..nn.model import Object2VecNet

# Optimizer state per trained value: Adam keeps two moments, Adagrad and RMSprop one sum, Adadelta two
# averages, SGD (no momentum) none. The lazy row_sparse optimizer keeps the same tables.
STATE_SLOTS = {"adam": 2, "adagrad": 1, "rmsprop": 1, "sgd": 0, "adadelta": 2}
_FACTORIES = frozenset({"empty", "zeros", "ones", "full", "rand", "randn", "tensor", "as_tensor"})


class _ShapesOnly(TorchFunctionMode):
    """Builds modules on the ``meta`` device and skips in-place initialisation (``normal_`` on meta
    tensors would import torch's compiler: seconds, for nothing)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name in _FACTORIES:
            kwargs["device"] = "meta"
        elif name.endswith("_") and not name.endswith("__") and name != "requires_grad_":  # in place: values only
            target = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            if target is not None and target.is_meta:
                return target
        return func(*args, **kwargs)


@dataclass
class Estimate:
    """Bytes a run holds in memory, by part (``weights``, ``gradients``, ``optimizer state``, ...)."""

    parts: dict[str, int] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)  # the token tables, described for messages

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def weights(self) -> int:
        return self.parts.get("weights", 0)

    def describe(self) -> str:
        parts = ", ".join(f"{name} {format_bytes(n)}" for name, n in self.parts.items() if n)
        tables = f"; token tables: {', '.join(self.tables)}" if self.tables else ""
        return f"{parts}{tables}"


def estimate(hp: Hyperparameters, *, validation: bool = True) -> Estimate | None:
    """The memory that training ``hp`` holds besides the data and the activations (None if the
    network cannot be built here: the run itself will then say why)."""
    with warnings.catch_warnings():  # fit() reports what resolving says
        warnings.simplefilter("ignore")
        hp = hp.resolve()
    try:
        with _ShapesOnly():
            net = Object2VecNet(hp)
    except Exception:
        return None
    size = 4  # float32 weights, gradients and state
    weights = trained = sparse = 0
    for p in net.parameters():
        weights += p.numel() * size
        trained += p.numel() * size if p.requires_grad else 0
    for table in net.embeddings():
        sparse += table.weight.numel() * size if table.row_sparse else 0
    slots = STATE_SLOTS.get(hp.optimizer, 2)
    out = Estimate()
    out.parts["weights"] = weights
    out.parts["gradients"] = trained  # row_sparse tables get gradients for the touched rows only
    out.parts[f"{hp.optimizer} state"] = slots * (trained + sparse)
    if validation:
        out.parts["best-epoch copy"] = weights
    tables = {id(t): t for t in net.embeddings()}.values()
    out.tables = [f"{t.weight.shape[0]:,} x {t.weight.shape[1]:,} ({format_bytes(t.weight.numel() * size)})" for t in tables]
    return out


def available_memory(device: torch.device) -> tuple[int, int] | None:
    """``(available, total)`` bytes of the memory the model will live in: the GPU's for CUDA, else
    the machine's (MemAvailable), narrowed by this container's cgroup limit. None where unknown."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total)
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        available, total = int(info["MemAvailable"].split()[0]) * 1024, int(info["MemTotal"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    limit = _cgroup_limit()
    if limit is not None:
        used = _cgroup_usage() or 0
        available, total = min(available, max(limit - used, 0)), min(total, limit)
    return available, total


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_limit() -> int | None:
    limit = _read_int("/sys/fs/cgroup/memory.max") or _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    return limit if limit is not None and limit < 1 << 60 else None  # v1 writes "no limit" as a huge number


def _cgroup_usage() -> int | None:
    return _read_int("/sys/fs/cgroup/memory.current") or _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")


def local_processes() -> int:
    """Training processes on this machine: each holds a full copy of the model (DDP)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))))


def check_memory(hp: Hyperparameters, device: torch.device, *, validation: bool = True, data_bytes: int = 0) -> None:
    """Refuse, before allocating, a configuration whose model and optimizer cannot fit the memory
    available now (``data_bytes``: data read already, only named in the message)."""
    need = estimate(hp, validation=validation)
    have = available_memory(device)
    if need is None or have is None:
        return
    copies = local_processes() if device.type != "cuda" else 1  # one GPU per process
    total_need = need.total * copies
    if total_need <= have[0]:
        return
    where = f"GPU {device}" if device.type == "cuda" else "this machine"
    ranks = f" x {copies} processes" if copies > 1 else ""
    data = f"; the data read already holds {format_bytes(data_bytes)}" if data_bytes else ""
    raise Object2VecError(
        f"this configuration needs about {format_bytes(total_need)} of memory before the first step "
        f"({need.describe()}{ranks}), but {where} has {format_bytes(have[0])} available of {format_bytes(have[1])}{data}; "
        "lower the vocabulary sizes, enc_dim, token_embedding_dim or mlp_dim, or use a machine with more memory"
    )
