"""Compiled kernels for CPU hot loops that PyTorch runs as many small passes or with copies.

* **Touched rows updated in place.** Written with PyTorch operations, a lazy Adam step gathers the
  touched rows of the weights and both moments into new tensors, updates them and scatters all
  three back: about 110 MB of memory traffic a table for 5,000 rows of 256 floats, so the step is
  bound by memory bandwidth (40% of the pooled benchmark's step). Updating each row where it lies
  reads the gradient, weight and moments once and writes them once: about a third of the traffic,
  5x faster per table on a 2-core CPU. The rows of one step are distinct, so no two threads write
  the same memory. :mod:`object2vec.sparse` keeps its PyTorch path for other devices and dtypes,
  with the same arithmetic in the same order (``tests/test_sparse.py`` runs both).
* **A strict scanner for ``{"label", "in0", "in1"}`` lines.** 4-5x faster than
  ``pyarrow.json.read_json`` on one core; it accepts a strict subset of what the per-record reader
  accepts (see the C source) and refuses a whole block otherwise, which then goes to pyarrow and
  the per-record reader as before (``tests/test_data.py`` compares it with JSON on random spacing,
  key orders, number forms and thousands of byte mutations).
* **hcnn's relu and max over time, bf16** (``relu_max_forward``/``backward``): one pass each way
  instead of casts to fp32 and back and ``amax``'s backward, with the same numbers
  (``tests/test_model.py`` checks them bit for bit).
* **pooled_embedding's backward over a row_sparse leaf** (``bag_mean_backward``): the tokens grouped
  by row with a counting sort, then each row's sum written once, instead of ``embedding_bag``'s sort
  of the ids and segment sums.
* **bilstm's time steps under bf16** (``lstm_forward_step``/``lstm_backward_step``, driven by
  :mod:`object2vec.recurrent` between torch's bf16 GEMMs): the gates and an fp32 cell state for all
  rows of both directions in one pass per step, direction 1 reading each sequence backwards in place,
  and the max over time kept as the steps run.

The C source below is compiled on first use with the system C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``; in about 0.1 s) into the cache folder (``$OBJECT2VEC_CACHE_DIR/kernels``),
once per CPU model and source version, and written atomically so concurrent ranks never see half a
file. Without a compiler, or with ``OBJECT2VEC_KERNELS=0``, everything runs as before in PyTorch,
pyarrow and Python. With OpenMP the optimizer's rows are split over torch's own threads: the
library shares the ``libgomp`` torch loaded, whose threads are already awake after torch's
operations (a separate thread pool competed with them and gained nothing).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ..files import cache_dir

logger = logging.getLogger("object2vec")

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Rows are distinct, so threads never write the same memory. With OpenMP the threads are torch's
   own (the process already holds torch's libgomp.so.1, which this library then shares). */
#define PARALLEL_ROWS _Pragma("omp parallel for schedule(static) if (n >= 256)")

#ifdef _OPENMP
#include <omp.h>
#define THREAD_NUMBER omp_get_thread_num()
#else
#define THREAD_NUMBER 0
#endif

/* Denormal floats take microcode assists, ~100x slower: a gradient fading through many steps (the
   cell's, times the forget gate each step) spends most of its time there. The LSTM kernels flush them
   to zero in the threads running them (values below 1.2e-38), and restore the thread's mode after. */
#if defined(__SSE__)
#include <xmmintrin.h>
#define FLUSH_DENORMALS const unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040u);
#define RESTORE_DENORMALS _mm_setcsr(saved_csr);
#else
#define FLUSH_DENORMALS
#define RESTORE_DENORMALS
#endif

/* Bit casts through a union (branch-free: loops using them vectorise). */
typedef union { float f; int32_t i; uint32_t u; } bits32;
static inline float bf16_to_float(uint16_t h) { bits32 v; v.u = (uint32_t)h << 16; return v.f; }
static inline uint16_t float_to_bf16(float f) { /* round to nearest even, as torch; NaN stays NaN */
  bits32 v;
  v.f = f;
  const uint32_t u = (v.u & 0x7fffffffu) > 0x7f800000u ? v.u | 0x400000u : v.u + 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* Adam on rows[0:n] of (w, m, v), in place; grad row i belongs to rows[i]. torch's fused Adam,
   element by element: L2 weight decay into the gradient, m = lerp(m, g, 1 - beta1), bias correction. */
void adam_rows(float *w, float *m, float *v, const float *grad, const int64_t *rows, int64_t n, int64_t dim,
               float lr, float beta1, float beta2, float eps, float weight_decay, float bias_correction1,
               float bias_correction2_sqrt) {
  const float step = lr / bias_correction1;
  PARALLEL_ROWS
  for (int64_t i = 0; i < n; i++) {
    float *wr = w + rows[i] * dim, *mr = m + rows[i] * dim, *vr = v + rows[i] * dim;
    const float *g = grad + i * dim;
    for (int64_t d = 0; d < dim; d++) {
      const float gd = g[d] + weight_decay * wr[d];
      const float md = mr[d] + (1.0f - beta1) * (gd - mr[d]);
      const float vd = beta2 * vr[d] + (1.0f - beta2) * gd * gd;
      mr[d] = md;
      vr[d] = vd;
      wr[d] -= step * md / (sqrtf(vd) / bias_correction2_sqrt + eps);
    }
  }
}

/* Adagrad (no learning-rate decay) on rows[0:n] of (w, sums), in place. */
void adagrad_rows(float *w, float *sums, const float *grad, const int64_t *rows, int64_t n, int64_t dim,
                  float lr, float eps, float weight_decay) {
  PARALLEL_ROWS
  for (int64_t i = 0; i < n; i++) {
    float *wr = w + rows[i] * dim, *sr = sums + rows[i] * dim;
    const float *g = grad + i * dim;
    for (int64_t d = 0; d < dim; d++) {
      const float gd = g[d] + weight_decay * wr[d];
      const float sd = sr[d] + gd * gd;
      sr[d] = sd;
      wr[d] -= lr * gd / (sqrtf(sd) + eps);
    }
  }
}

/* SGD on rows[0:n] of w, in place. */
void sgd_rows(float *w, const float *grad, const int64_t *rows, int64_t n, int64_t dim, float lr,
              float weight_decay) {
  PARALLEL_ROWS
  for (int64_t i = 0; i < n; i++) {
    float *wr = w + rows[i] * dim;
    const float *g = grad + i * dim;
    for (int64_t d = 0; d < dim; d++) wr[d] -= lr * (g[d] + weight_decay * wr[d]);
  }
}

/* ---- JSON Lines of {"label": number, "in0": [ids], "in1": [ids]} -> packed arrays ----
   A strict scanner for exactly this record shape: any other byte, key, duplicate key, empty list,
   negative, fractional or over-large id, blank line or non-finite label returns -1, and the block
   goes to the readers that accept more (pyarrow) or word each problem (the per-record reader). */

#define WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r')

static int64_t ids_list(const char *b, int64_t n, int64_t *p, int32_t *out, int64_t *count, int64_t cap) {
  int64_t i = *p, k = 0;
  if (i >= n || b[i] != '[') return -1;
  for (i++;;) {
    while (i < n && WS(b[i])) i++;
    if (i >= n || b[i] < '0' || b[i] > '9') return -1; /* also an empty list, a sign or a string */
    int64_t v = b[i++] - '0';
    if (v == 0 && i < n && b[i] >= '0' && b[i] <= '9') return -1; /* a leading zero is not JSON */
    while (i < n && b[i] >= '0' && b[i] <= '9') {
      v = v * 10 + (b[i++] - '0');
      if (v > 2147483647) return -1;
    }
    if (*count + k >= cap) return -1;
    out[*count + k++] = (int32_t)v;
    while (i < n && WS(b[i])) i++;
    if (i < n && b[i] == ',') { i++; continue; }
    if (i < n && b[i] == ']') { i++; break; }
    return -1; /* '.', 'e', another value or the end */
  }
  *p = i;
  *count += k;
  return k;
}

static int label_number(const char *b, int64_t n, int64_t *p, double *out) {
  int64_t i = *p, start = i;
  if (i < n && b[i] == '-') i++;
  if (i >= n || b[i] < '0' || b[i] > '9') return -1;
  if (b[i] == '0') i++; else while (i < n && b[i] >= '0' && b[i] <= '9') i++;
  if (i < n && b[i] == '.') {
    i++;
    if (i >= n || b[i] < '0' || b[i] > '9') return -1;
    while (i < n && b[i] >= '0' && b[i] <= '9') i++;
  }
  if (i < n && (b[i] == 'e' || b[i] == 'E')) {
    i++;
    if (i < n && (b[i] == '+' || b[i] == '-')) i++;
    if (i >= n || b[i] < '0' || b[i] > '9') return -1;
    while (i < n && b[i] >= '0' && b[i] <= '9') i++;
  }
  char text[64];
  if (i - start >= (int64_t)sizeof(text)) return -1;
  memcpy(text, b + start, i - start);
  text[i - start] = 0;
  *out = strtod(text, NULL);
  if (!isfinite(*out)) return -1;
  *p = i;
  return 0;
}

/* Returns the number of lines, or -1. starts[l]: byte offset of line l; counts[s]: ids written. */
int64_t parse_pairs(const char *b, int64_t n, int64_t *starts, int32_t *ids0, int64_t *len0, int32_t *ids1,
                    int64_t *len1, double *labels, int64_t cap, int64_t *counts) {
  int64_t i = 0, line = 0;
  counts[0] = counts[1] = 0;
  while (i < n) {
    if (line >= cap) return -1;
    starts[line] = i;
    while (i < n && WS(b[i])) i++;
    if (i >= n || b[i] != '{') return -1;
    i++;
    int seen = 0;
    for (;;) {
      while (i < n && WS(b[i])) i++;
      int key;
      if (i + 5 <= n && memcmp(b + i, "\"in0\"", 5) == 0) key = 0, i += 5;
      else if (i + 5 <= n && memcmp(b + i, "\"in1\"", 5) == 0) key = 1, i += 5;
      else if (i + 7 <= n && memcmp(b + i, "\"label\"", 7) == 0) key = 2, i += 7;
      else return -1; /* another key, an escape, an empty object */
      if (seen & (1 << key)) return -1;
      seen |= 1 << key;
      while (i < n && WS(b[i])) i++;
      if (i >= n || b[i] != ':') return -1;
      i++;
      while (i < n && WS(b[i])) i++;
      if (key == 2) {
        if (label_number(b, n, &i, &labels[line]) < 0) return -1;
      } else {
        int64_t k = ids_list(b, n, &i, key == 0 ? ids0 : ids1, &counts[key], cap);
        if (k < 0) return -1;
        (key == 0 ? len0 : len1)[line] = k;
      }
      while (i < n && WS(b[i])) i++;
      if (i < n && b[i] == ',') { i++; continue; }
      if (i < n && b[i] == '}') { i++; break; }
      return -1;
    }
    if (seen != 7) return -1;
    while (i < n && WS(b[i])) i++;
    if (i < n) {
      if (b[i] != '\n') return -1;
      i++;
    }
    line++;
  }
  return line;
}

/* ---- hcnn: one layer's relu and max over time, bf16 activations, channels last: (B, T, C) ----
   The forward keeps the output in bf16 (the next convolution's input) and returns the max in fp32
   with how many positions tie for it; the backward sums the max's share and the next layer's
   gradient in fp32, rounds once to bf16 and applies relu's gradient: the same numbers as relu, a
   cast to fp32, amax and autograd's fp32 sum, in one pass each way instead of about ten. */
void relu_max_forward(const uint16_t *y, const uint8_t *padding, uint16_t *h, float *top, float *ties,
                      int64_t B, int64_t T, int64_t C) {
  #pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; b++) {
    float *tp = top + b * C, *tc = ties + b * C;
    for (int64_t c = 0; c < C; c++) tp[c] = -1.0f, tc[c] = 0.0f;
    for (int64_t t = 0; t < T; t++) {
      const int64_t row = (b * T + t) * C;
      const int pad = padding != NULL && padding[b * T + t];
      for (int64_t c = 0; c < C; c++) {
        const float v = bf16_to_float(y[row + c]);
        const int keep = !pad && (v > 0.0f || v != v); /* relu; NaN passes, as in torch */
        h[row + c] = keep ? y[row + c] : 0;
        const float hv = keep ? v : 0.0f;
        if (hv > tp[c] || hv != hv) tp[c] = hv, tc[c] = 1.0f;
        else if (hv == tp[c]) tc[c] += 1.0f;
      }
    }
  }
}

void relu_max_backward(const uint16_t *h, const float *top, const float *ties, const float *grad_top,
                       const uint16_t *grad_h, uint16_t *grad_y, int64_t B, int64_t T, int64_t C) {
  #pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t t = 0; t < T; t++) {
      const int64_t row = (b * T + t) * C;
      for (int64_t c = 0; c < C; c++) {
        const float hv = bf16_to_float(h[row + c]);
        float g = 0.0f;
        if (grad_top != NULL && hv == top[b * C + c]) g = grad_top[b * C + c] / ties[b * C + c];
        if (grad_h != NULL) g += bf16_to_float(grad_h[row + c]);
        grad_y[row + c] = hv > 0.0f ? float_to_bf16(g) : 0;
      }
    }
  }
}

/* ---- pooled_embedding's backward: each token's row gets its bag's gradient / the bag's length ----
   The tokens are first grouped by row (a counting sort that keeps their order), then each row sums
   its tokens' shares and is written once: threads split the rows, so no two write one float, and
   no pass zeroes the output or reads it back (a column split over all tokens took 4x as long). */
int bag_mean_backward(const float *grad_bags, const int64_t *local, const int64_t *lengths, float *grad_rows,
                      int64_t n_bags, int64_t n_rows, int64_t dim) {
  int64_t n_tokens = 0;
  for (int64_t b = 0; b < n_bags; b++) n_tokens += lengths[b];
  int64_t *starts = calloc(n_rows + 1, sizeof(int64_t)), *cursor = malloc((n_rows + 1) * sizeof(int64_t));
  int64_t *bag_of = malloc((n_tokens + 1) * sizeof(int64_t)), *order = malloc((n_tokens + 1) * sizeof(int64_t));
  if (!starts || !cursor || !bag_of || !order) {
    free(starts), free(cursor), free(bag_of), free(order);
    return -1;
  }
  for (int64_t b = 0, t = 0; b < n_bags; b++)
    for (int64_t end = t + lengths[b]; t < end; t++) bag_of[t] = b;
  for (int64_t t = 0; t < n_tokens; t++) starts[local[t] + 1]++;
  for (int64_t r = 0; r < n_rows; r++) starts[r + 1] += starts[r];
  for (int64_t r = 0; r <= n_rows; r++) cursor[r] = starts[r];
  for (int64_t t = 0; t < n_tokens; t++) order[cursor[local[t]]++] = t;
  #pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_rows; r++) {
    float *out = grad_rows + r * dim;
    for (int64_t d = 0; d < dim; d++) out[d] = 0.0f;
    for (int64_t i = starts[r]; i < starts[r + 1]; i++) {
      const int64_t b = bag_of[order[i]];
      const float *g = grad_bags + b * dim, scale = 1.0f / (float)lengths[b];
      for (int64_t d = 0; d < dim; d++) out[d] += g[d] * scale;
    }
  }
  free(starts), free(cursor), free(bag_of), free(order);
  return 0;
}

/* ---- bidirectional LSTM time steps: bf16 products (torch's GEMMs), fp32 cell state and gates ---- */
/* exp for the gates: 2^k p(r) with p of degree 6 on [-ln2/2, ln2/2], relative error ~2e-7; branch-free,
   so the loops vectorise (k is rounded by adding and removing 1.5 * 2^23, not floorf, which needs
   -fno-trapping-math to vectorise). x is clamped to [-87, 88]. */
static inline float exp_gate(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* nearest integer */
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  bits32 scale;
  scale.i = ((int32_t)k + 127) << 23;
  return p * scale.f;
}
static inline float sigmoid_gate(float x) { return 1.0f / (1.0f + exp_gate(-x)); }
static inline float tanh_gate(float x) { return 2.0f / (1.0f + exp_gate(-2.0f * x)) - 1.0f; }
/* The position step s reads: direction 0 runs forward; direction 1 runs each sequence backwards from
   its last valid token (packed-sequence semantics), then over its padding, whose outputs nobody reads. */
static inline int64_t lstm_position(int64_t d, int64_t s, int64_t length) { return d == 0 || s >= length ? s : length - 1 - s; }

/* Step s of a bidirectional layer, both directions: row = d * B + b. G (B, T, 2, 4H) bf16: the input's
   products with the input weights, gates i, f, g, o; R (2, B, 4H) bf16: h_prev's with the recurrent
   weights; bias (2, 4H). c_prev, c (2, B, H) and act (2, B, 4H, the gates after their nonlinearity)
   fp32; h_prev, h_next (2, B, H) bf16; HP (B, T, 2, H) bf16 receives h_prev where each position was
   read (for the recurrent weights' gradient). Optional: out (B, T, 2H) fp32, every output; top (B, 2H)
   fp32 and arg (B, 2H) int32, the running max over the valid steps and the position holding it
   (strictly greater replaces, so a tie keeps the position met first). */
void lstm_forward_step(const uint16_t *G, const uint16_t *R, const float *bias, const int64_t *lengths,
                       const float *c_prev, float *c, uint16_t *act, const uint16_t *h_prev, uint16_t *h_next, uint16_t *HP,
                       float *out, float *top, int32_t *arg, int64_t s, int64_t B, int64_t T, int64_t H) {
  #pragma omp parallel
  {
  FLUSH_DENORMALS
  #pragma omp for schedule(static)
  for (int64_t row = 0; row < 2 * B; row++) {
    const int64_t d = row / B, b = row % B, t = lstm_position(d, s, lengths[b]);
    const int valid = s < lengths[b];
    const uint16_t *g = G + ((b * T + t) * 2 + d) * 4 * H, *r = R + row * 4 * H;
    const float *bi = bias + d * 4 * H, *cp = c_prev + row * H;
    float *cn = c + row * H;
    uint16_t *a = act + row * 4 * H;
    uint16_t *hn = h_next + row * H, *hp = HP + ((b * T + t) * 2 + d) * H;
    float *o = out ? out + (b * T + t) * 2 * H + d * H : 0;
    float *tp = top ? top + b * 2 * H + d * H : 0;
    int32_t *ag = arg ? arg + b * 2 * H + d * H : 0;
    const uint16_t *hr = h_prev + row * H;
    float hv[H]; /* this step's h; the optional outputs are written in loops of their own: a condition
                    inside the gates' loop made it 5x slower */
    for (int64_t j = 0; j < H; j++) hp[j] = hr[j];
    #pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      const float ig = sigmoid_gate(bf16_to_float(g[j]) + bf16_to_float(r[j]) + bi[j]);
      const float fg = sigmoid_gate(bf16_to_float(g[H + j]) + bf16_to_float(r[H + j]) + bi[H + j]);
      const float gg = tanh_gate(bf16_to_float(g[2 * H + j]) + bf16_to_float(r[2 * H + j]) + bi[2 * H + j]);
      const float og = sigmoid_gate(bf16_to_float(g[3 * H + j]) + bf16_to_float(r[3 * H + j]) + bi[3 * H + j]);
      const float cc = fg * cp[j] + ig * gg, h = og * tanh_gate(cc);
      a[j] = float_to_bf16(ig), a[H + j] = float_to_bf16(fg), a[2 * H + j] = float_to_bf16(gg), a[3 * H + j] = float_to_bf16(og);
      cn[j] = cc, hn[j] = float_to_bf16(h), hv[j] = h;
    }
    if (o)
      for (int64_t j = 0; j < H; j++) o[j] = hv[j];
    if (tp && valid)
      for (int64_t j = 0; j < H; j++) {
        const int greater = hv[j] > tp[j];
        tp[j] = greater ? hv[j] : tp[j], ag[j] = greater ? (int32_t)t : ag[j];
      }
  }
  RESTORE_DENORMALS
  }
}

/* The backward of step s (taken from T - 1 down to 0). The output gradient comes from dout (B, T, 2H)
   fp32 and/or from dtop (B, 2H) fp32 at arg; dh_rec (2, B, H) bf16 is the gradient reaching h through
   step s + 1 (NULL at the last step); dc (2, B, H) fp32 carries the cell's gradient from step s + 1 in
   and to step s - 1 out. The gate gradients go out bf16 twice: DG (B, T, 2, 4H) by position (the input
   side's products) and DGs (2, B, 4H), this step's (the recurrent product); dbias (threads, 2, 4H) fp32
   sums them over steps, one slice per thread (at most ``threads`` run). */
void lstm_backward_step(const uint16_t *act, const float *c, const float *c_prev, const float *dout, const float *dtop,
                        const int32_t *arg, const uint16_t *dh_rec, float *dc, uint16_t *DG, uint16_t *DGs,
                        float *dbias, int64_t threads, const int64_t *lengths, int64_t s, int64_t B, int64_t T, int64_t H) {
  #pragma omp parallel num_threads(threads)
  {
  FLUSH_DENORMALS
  #pragma omp for schedule(static)
  for (int64_t row = 0; row < 2 * B; row++) {
    const int64_t d = row / B, b = row % B, t = lstm_position(d, s, lengths[b]);
    const uint16_t *a = act + row * 4 * H;
    const float *cc = c + row * H, *cp = c_prev + row * H;
    const float *dy = dout ? dout + (b * T + t) * 2 * H + d * H : 0;
    const float *dtp = dtop ? dtop + b * 2 * H + d * H : 0;
    const int32_t *ag = dtop ? arg + b * 2 * H + d * H : 0;
    const uint16_t *dr = dh_rec ? dh_rec + row * H : 0;
    float *dcr = dc + row * H, *dbr = dbias + (THREAD_NUMBER * 2 + d) * 4 * H;
    uint16_t *dg = DG + ((b * T + t) * 2 + d) * 4 * H, *dgs = DGs + row * 4 * H;
    float dhv[H]; /* the gradient reaching h, summed in loops of its own (see lstm_forward_step) */
    for (int64_t j = 0; j < H; j++) dhv[j] = dr ? bf16_to_float(dr[j]) : 0.0f;
    if (dy)
      for (int64_t j = 0; j < H; j++) dhv[j] += dy[j];
    if (dtp)
      for (int64_t j = 0; j < H; j++) dhv[j] += ag[j] == (int32_t)t ? dtp[j] : 0.0f;
    #pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      const float ig = bf16_to_float(a[j]), fg = bf16_to_float(a[H + j]);
      const float gg = bf16_to_float(a[2 * H + j]), og = bf16_to_float(a[3 * H + j]);
      const float dh = dhv[j], tc = tanh_gate(cc[j]);
      const float dcc = dcr[j] + dh * og * (1.0f - tc * tc);
      const float di = dcc * gg * ig * (1.0f - ig), df = dcc * cp[j] * fg * (1.0f - fg);
      const float dgg = dcc * ig * (1.0f - gg * gg), dog = dh * tc * og * (1.0f - og);
      dcr[j] = dcc * fg;
      dbr[j] += di, dbr[H + j] += df, dbr[2 * H + j] += dgg, dbr[3 * H + j] += dog;
      const uint16_t vi = float_to_bf16(di), vf = float_to_bf16(df), vg = float_to_bf16(dgg), vo = float_to_bf16(dog);
      dg[j] = vi, dg[H + j] = vf, dg[2 * H + j] = vg, dg[3 * H + j] = vo;
      dgs[j] = vi, dgs[H + j] = vf, dgs[2 * H + j] = vg, dgs[3 * H + j] = vo;
    }
  }
  RESTORE_DENORMALS
  }
}
"""
# -fno-math-errno lets sqrtf vectorise; no -ffast-math: the arithmetic stays IEEE, as torch's.
# (-fno-trapping-math, which would let floorf vectorise, made hcnn's relu-max loops 40% slower.)
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC"]
_OPENMP = "-fopenmp"  # dropped if the compiler has no OpenMP (one thread then), then -march=native too
_COMPILE_SECONDS = 120

_P, _I, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
_SIGNATURES = {  # name: (argument types, result type)
    "adam_rows": ([_P] * 5 + [_I] * 2 + [_F] * 7, None),
    "adagrad_rows": ([_P] * 4 + [_I] * 2 + [_F] * 3, None),
    "sgd_rows": ([_P] * 3 + [_I] * 2 + [_F] * 2, None),
    "parse_pairs": ([ctypes.c_char_p, _I] + [_P] * 6 + [_I, _P], _I),
    "relu_max_forward": ([_P] * 5 + [_I] * 3, None),
    "relu_max_backward": ([_P] * 6 + [_I] * 3, None),
    "bag_mean_backward": ([_P] * 4 + [_I] * 3, ctypes.c_int),
    "lstm_forward_step": ([_P] * 13 + [_I] * 4, None),
    "lstm_backward_step": ([_P] * 11 + [_I] + [_P] + [_I] * 4, None),
}


def _cpu_identity() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _compile(target: Path) -> None:
    """Build the shared library at ``target`` (atomically: a temp file renamed into place)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise OSError("no C compiler (cc, gcc or clang) found")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source, built = Path(tmp) / "object2vec_kernels.c", Path(tmp) / target.name
        source.write_text(_SOURCE)
        portable = [flag for flag in _FLAGS if flag != "-march=native"]
        for flags in ([*_FLAGS, _OPENMP], _FLAGS, portable):
            command = [compiler, *flags, str(source), "-o", str(built), "-lm"]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=_COMPILE_SECONDS)
            except subprocess.TimeoutExpired as e:
                raise OSError(f"{compiler} took over {_COMPILE_SECONDS} s") from e
            if result.returncode == 0:
                break
        else:
            raise OSError(f"{compiler} failed: {result.stderr.strip()[:500]}")
        os.replace(built, target)


@cache
def _library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; ``None`` where they cannot be (the PyTorch path runs)."""
    if os.environ.get("OBJECT2VEC_KERNELS", "1") == "0":
        return None

    key = hashlib.sha256("\0".join([_SOURCE, *_FLAGS, _OPENMP, _cpu_identity(), platform.machine()]).encode()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"object2vec-{key}.so"
    try:
        if not target.exists():
            _compile(target)
        library = ctypes.CDLL(str(target))
    except OSError as e:  # no compiler, a read-only cache, a foreign platform: PyTorch does the same work
        logger.info("object2vec: compiled kernels unavailable (%s); PyTorch, pyarrow and Python do their work, slower", e)
        return None
    for name, (argtypes, restype) in _SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes, function.restype = argtypes, restype
    return library


def available() -> bool:
    return _library() is not None


def function(name: str) -> ctypes._CFuncPtr:
    """The compiled function ``name``, for callers that loop over it (call only when :func:`available`)."""
    return getattr(_library(), name)


def applies(tables: list[torch.Tensor], grad: torch.Tensor, rows: torch.Tensor) -> bool:
    """Whether the kernel can update ``rows`` of ``tables`` (same-shaped fp32 CPU tables) in place."""
    if not available() or rows.dtype != torch.int64 or not rows.is_contiguous():
        return False
    shape = tables[0].shape
    if len(shape) != 2 or grad.shape != (len(rows), shape[1]):
        return False
    fp32_cpu = all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in (*tables, grad))
    if not fp32_cpu or any(t.shape != shape for t in tables):
        return False
    return len(rows) == 0 or bool(rows.min() >= 0 and rows.max() < shape[0])  # never write outside a table


def _run(name: str, pointers: list[int], rows: torch.Tensor, dim: int, *scalars: float) -> None:
    """Call kernel ``name`` on every row of ``rows`` (on torch's OpenMP threads where compiled with OpenMP)."""
    function(name)(*pointers, rows.data_ptr(), len(rows), dim, *scalars)


def adam_rows(
    weight: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    grad: torch.Tensor,
    rows: torch.Tensor,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    step: int,
) -> None:
    """Adam on ``rows`` of ``weight`` and its moments, in place (check :func:`applies` first)."""
    beta1, beta2 = betas
    pointers = [weight.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(), grad.data_ptr()]
    corrections = (1 - beta1**step, (1 - beta2**step) ** 0.5)
    _run("adam_rows", pointers, rows, weight.shape[1], lr, beta1, beta2, eps, weight_decay, *corrections)


def adagrad_rows(
    weight: torch.Tensor,
    sums: torch.Tensor,
    grad: torch.Tensor,
    rows: torch.Tensor,
    *,
    lr: float,
    eps: float,
    weight_decay: float,
) -> None:
    """Adagrad on ``rows`` of ``weight`` and its sums of squares, in place."""
    _run("adagrad_rows", [weight.data_ptr(), sums.data_ptr(), grad.data_ptr()], rows, weight.shape[1], lr, eps, weight_decay)


def sgd_rows(weight: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor, *, lr: float, weight_decay: float) -> None:
    """SGD on ``rows`` of ``weight``, in place."""
    _run("sgd_rows", [weight.data_ptr(), grad.data_ptr()], rows, weight.shape[1], lr, weight_decay)


def parse_pairs(block: bytes) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray] | None:
    """``(line starts, ids, lengths, labels)`` of a block of ``{"label", "in0", "in1"}`` lines, or
    ``None`` when the kernel is unavailable or the block holds anything else (see the C source: the
    scanner accepts a strict subset of what the per-record reader accepts, and gives the same arrays).
    The buffers are sized for the worst case but allocated lazily by the OS: only written pages cost."""
    library = _library()
    if library is None:
        return None
    cap = len(block) // 2 + 1  # a line or an id takes at least two bytes
    starts, lengths = np.empty(cap, np.int64), (np.empty(cap, np.int64), np.empty(cap, np.int64))
    ids, labels, counts = (np.empty(cap, np.int32), np.empty(cap, np.int32)), np.empty(cap, np.float64), np.zeros(2, np.int64)
    pointers = [starts, ids[0], lengths[0], ids[1], lengths[1], labels]
    lines = library.parse_pairs(block, len(block), *(a.ctypes.data for a in pointers), cap, counts.ctypes.data)
    if lines < 0:
        return None
    return (
        starts[:lines].copy(),
        {"in0": ids[0][: counts[0]], "in1": ids[1][: counts[1]]},
        {"in0": lengths[0][:lines].copy(), "in1": lengths[1][:lines].copy()},
        labels[:lines].copy(),
    )


def relu_max_applies(y: torch.Tensor) -> bool:
    """Whether :func:`relu_max_forward` takes this convolution output: bf16 ``(B, C, 1, T)`` on CPU, channels last."""
    return (
        available()
        and y.device.type == "cpu"
        and y.dtype == torch.bfloat16
        and y.dim() == 4
        and y.shape[2] == 1
        and y.is_contiguous(memory_format=torch.channels_last)
    )


def relu_max_forward(y: torch.Tensor, padding: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(relu(y) with padded positions zeroed, its max over time in fp32, how many positions tie)``;
    ``padding``: ``(B, T)`` bool or ``None``."""
    batch, channels, _, steps = y.shape
    h = torch.empty_like(y)  # channels last, as y
    top, ties = torch.empty(batch, channels), torch.empty(batch, channels)
    pad = None if padding is None else padding.to(torch.uint8).contiguous()
    pad_pointer = None if pad is None else pad.data_ptr()
    _library().relu_max_forward(y.data_ptr(), pad_pointer, h.data_ptr(), top.data_ptr(), ties.data_ptr(), batch, steps, channels)
    return h, top, ties


def relu_max_backward(
    h: torch.Tensor, top: torch.Tensor, ties: torch.Tensor, grad_top: torch.Tensor | None, grad_h: torch.Tensor | None
) -> torch.Tensor:
    """The gradient of :func:`relu_max_forward`'s input, bf16, channels last."""
    batch, channels, _, steps = h.shape
    grad_y = torch.empty_like(h)
    if grad_top is not None:
        grad_top = grad_top.float().contiguous()
    if grad_h is not None:
        grad_h = grad_h.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    _library().relu_max_backward(
        h.data_ptr(), top.data_ptr(), ties.data_ptr(),
        None if grad_top is None else grad_top.data_ptr(), None if grad_h is None else grad_h.data_ptr(),
        grad_y.data_ptr(), batch, steps, channels,
    )  # fmt: skip
    return grad_y


def bag_mean_backward(grad_bags: torch.Tensor, local: torch.Tensor, lengths: torch.Tensor, rows: int) -> torch.Tensor:
    """The gradient of ``embedding_bag(local, table, mode="mean")`` for the ``rows`` rows of a CPU
    fp32 table: a bag's gradient divided by its length, summed into each of its tokens' rows."""
    grad_bags = grad_bags.float().contiguous()
    local, lengths = local.to(torch.int64).contiguous(), lengths.to(torch.int64).contiguous()
    grad_rows = torch.empty(rows, grad_bags.shape[1])
    status = _library().bag_mean_backward(
        grad_bags.data_ptr(), local.data_ptr(), lengths.data_ptr(), grad_rows.data_ptr(), len(lengths), rows, grad_bags.shape[1]
    )
    if status != 0:
        raise MemoryError("bag_mean_backward could not allocate its index arrays")
    return grad_rows
