"""bilstm's LSTM under ``precision=bf16`` on CPUs: bf16 products, an fp32 cell state, max over time fused in.

Why not ``nn.LSTM``: in fp32 it is oneDNN's LSTM (over 90% of a bilstm training step), and oneDNN's
bf16 LSTM keeps its cell state in bf16, which cost 4.3 accuracy points on average in the benchmark's
parity check (one seed in six fell from 0.93 to 0.70). Here the products run as bf16 GEMMs (4-5x
torch's fp32 GEMMs on AVX-512 BF16 CPUs) and everything that carries over time stays fp32:

* the input's products with both directions' input weights: one GEMM for the whole batch;
* each step: one batched GEMM of the previous ``h`` (bf16) with the recurrent weights, then a
  compiled kernel (:mod:`object2vec.native.kernels`) adds the two products and the bias in fp32, applies the
  gates and updates the fp32 cell state; direction 1 reads each sequence backwards from its last
  valid token, as a packed sequence does, so padded batches need no reversal copies;
* the last layer's max over time is kept as the steps run (value and position), so its ``(B, T, 2H)``
  output is never written; its backward sends the pooled gradient to the position that held the max
  (``amax`` would split a tie evenly; LSTM outputs practically never tie);
* the backward mirrors it: a kernel per step writes the gates' gradients in bf16, by position for
  the input-side GEMMs and by step for the recurrent one, and sums the bias gradient in fp32.

Products round their inputs to bf16, as autocast does for every other layer; the numbers match
``nn.LSTM`` in fp32 to about 1e-2 relative (``tests/test_model.py``), and training accuracy stays
within the parity check's 0.5 points (``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..native import kernels

BF16 = torch.bfloat16


def applies(x: torch.Tensor) -> bool:
    """Whether the bilstm input ``x`` runs here: a CPU tensor under bf16 autocast, with the kernels built."""
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == BF16
        and kernels.available()
    )


def bilstm_max(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``max over valid steps of lstm(packed x)``, ``(B, 2H)`` fp32: ``lstm`` bidirectional and batch first,
    ``x`` ``(B, T, D)`` zero-padded, ``lengths`` ``(B,)``."""
    lengths = lengths.to(device="cpu", dtype=torch.int64).contiguous()
    for layer in range(lstm.num_layers):
        suffix = f"_l{layer}"
        weights = [
            getattr(lstm, f"{name}{suffix}{direction}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            for direction in ("", "_reverse")
        ]
        w_ih, w_ih_r, w_hh, w_hh_r, b_ih, b_ih_r, b_hh, b_hh_r = weights
        x = _BiLSTMLayer.apply(
            x,
            lengths,
            torch.cat([w_ih, w_ih_r]),  # (8H, D): direction 0's gates, then direction 1's
            torch.stack([w_hh, w_hh_r]),  # (2, 4H, H)
            torch.stack([b_ih + b_hh, b_ih_r + b_hh_r]),  # (2, 4H)
            layer == lstm.num_layers - 1,
        )
    return x


class _BiLSTMLayer(torch.autograd.Function):
    """One bidirectional layer; returns its ``(B, T, 2H)`` output, or with ``pool`` its ``(B, 2H)`` max over time."""

    @staticmethod
    def forward(ctx, x, lengths, w_ih, w_hh, bias, pool):
        batch, steps, _ = x.shape
        hidden = w_hh.shape[2]
        xb = x.to(BF16).reshape(batch * steps, -1).contiguous()
        wih = w_ih.to(BF16)
        gates_in = torch.mm(xb, wih.t())  # (B*T, 8H) = (B, T, 2, 4H)
        whh = w_hh.to(BF16)
        whh_t = whh.transpose(1, 2).contiguous()  # (2, H, 4H)
        bias = bias.float().contiguous()
        cells = torch.empty(steps + 1, 2, batch, hidden)
        cells[0].zero_()
        act = torch.empty(steps, 2, batch, 4 * hidden, dtype=BF16)  # the gates, for the backward
        h = torch.zeros(2, 2, batch, hidden, dtype=BF16)  # ping-pong: one step's input, the next one's
        h_read = torch.empty(batch * steps, 2 * hidden, dtype=BF16)  # (B, T, 2, H): the h each position read
        recurrent = torch.zeros(2, batch, 4 * hidden, dtype=BF16)
        if pool:
            out, top = None, torch.full((batch, 2 * hidden), float("-inf"))
            arg = torch.full((batch, 2 * hidden), -1, dtype=torch.int32)
        else:
            out, top, arg = torch.zeros(batch, steps, 2 * hidden), None, None

        step = kernels.function("lstm_forward_step")
        pointers = [gates_in, recurrent, bias, lengths]
        g_in, rec, bi, ln = (t.data_ptr() for t in pointers)
        c0, a0, hr = cells.data_ptr(), act.data_ptr(), h_read.data_ptr()
        o, tp, ag = (None if t is None else t.data_ptr() for t in (out, top, arg))
        h_ptr = (h[0].data_ptr(), h[1].data_ptr())
        c_bytes, act_bytes = cells[0].nbytes, act[0].nbytes
        for s in range(steps):  # the recurrence: one small GEMM and one kernel call a step
            if s:
                torch.bmm(h[s & 1], whh_t, out=recurrent)
            step(g_in, rec, bi, ln, c0 + s * c_bytes, c0 + (s + 1) * c_bytes, a0 + s * act_bytes,
                 h_ptr[s & 1], h_ptr[1 - (s & 1)], hr, o, tp, ag, s, batch, steps, hidden)  # fmt: skip
        ctx.save_for_backward(xb, wih, whh, h_read, cells, act, lengths, arg)
        ctx.pool = pool
        return top if pool else out

    @staticmethod
    def backward(ctx, grad):
        xb, wih, whh, h_read, cells, act, lengths, arg = ctx.saved_tensors
        steps, batch, hidden = act.shape[0], act.shape[2], whh.shape[2]
        grad = grad.float().contiguous()
        grad_gates = torch.empty(batch * steps, 8 * hidden, dtype=BF16)  # (B, T, 2, 4H)
        grad_step = torch.empty(2, batch, 4 * hidden, dtype=BF16)
        grad_h = torch.empty(2, batch, hidden, dtype=BF16)
        grad_c = torch.zeros(2, batch, hidden)
        threads = torch.get_num_threads()
        grad_bias = torch.zeros(threads, 2, 4 * hidden)  # one slice per thread, summed at the end

        step = kernels.function("lstm_backward_step")
        dout, dtop = (None, grad.data_ptr()) if ctx.pool else (grad.data_ptr(), None)
        ag = None if arg is None else arg.data_ptr()
        c0, a0, dh, dc = cells.data_ptr(), act.data_ptr(), grad_h.data_ptr(), grad_c.data_ptr()
        dg, dgs, db, ln = grad_gates.data_ptr(), grad_step.data_ptr(), grad_bias.data_ptr(), lengths.data_ptr()
        c_bytes, act_bytes = cells[0].nbytes, act[0].nbytes
        for s in range(steps - 1, -1, -1):
            step(a0 + s * act_bytes, c0 + (s + 1) * c_bytes, c0 + s * c_bytes, dout, dtop, ag,
                 None if s == steps - 1 else dh, dc, dg, dgs, db, threads, ln, s, batch, steps, hidden)  # fmt: skip
            if s:
                torch.bmm(grad_step, whh, out=grad_h)

        grad_x = torch.mm(grad_gates, wih).float().view(batch, steps, -1) if ctx.needs_input_grad[0] else None
        grad_w_ih = torch.mm(grad_gates.t(), xb).float()
        by_direction, h_by_direction = grad_gates.view(-1, 2, 4 * hidden), h_read.view(-1, 2, hidden)
        grad_w_hh = torch.stack([torch.mm(by_direction[:, d].t(), h_by_direction[:, d]) for d in range(2)]).float()
        return grad_x, None, grad_w_ih, grad_w_hh, grad_bias.sum(0), None
