"""Training arithmetic: fp32, or bf16/fp16 autocast for the forward pass (weights, optimizer state
and the loss stay fp32)."""

from __future__ import annotations

import contextlib

import torch

from ..errors import HyperparameterError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 matrix units exist here (AVX-512 BF16 / AMX on CPU, Ampere or newer on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` picks bf16 where the hardware runs it natively, else fp32; fp16 needs CUDA."""
    if precision not in PRECISIONS:
        raise HyperparameterError([f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}."])
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise HyperparameterError(["precision=fp16 needs a CUDA device; use bf16 (or auto) on a CPU."])
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: weights, optimizer state and the loss stay fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
