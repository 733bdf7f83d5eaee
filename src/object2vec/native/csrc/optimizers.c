/* Touched rows of a token table updated where they lie: Adam, Adagrad and SGD on rows[0:n]. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Rows are distinct, so threads never write the same memory. With OpenMP the threads are torch's
   own (the process already holds torch's libgomp.so.1, which this library then shares). */
#define PARALLEL_ROWS _Pragma("omp parallel for schedule(static) if (n >= 256)")

/* The rows lie scattered over tables far larger than the caches, so each row's first cache lines
   are a wait for memory: asking for the start of a row a few iterations ahead overlaps those waits
   (the hardware prefetcher follows a row once it is being read; the numbers do not change). */
#define PREFETCH_AHEAD 4
static inline void prefetch_row(const float *w, const float *m, const float *v, int64_t row, int64_t dim) {
  const int64_t lines = dim < 32 ? dim : 32;  /* the first two 64-byte lines */
  for (int64_t d = 0; d < lines; d += 16) {
    __builtin_prefetch(w + row * dim + d, 1);
    if (m) __builtin_prefetch(m + row * dim + d, 1);
    if (v) __builtin_prefetch(v + row * dim + d, 1);
  }
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
    if (i + PREFETCH_AHEAD < n) prefetch_row(w, m, v, rows[i + PREFETCH_AHEAD], dim);
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
    if (i + PREFETCH_AHEAD < n) prefetch_row(w, sums, NULL, rows[i + PREFETCH_AHEAD], dim);
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
    if (i + PREFETCH_AHEAD < n) prefetch_row(w, NULL, NULL, rows[i + PREFETCH_AHEAD], dim);
    for (int64_t d = 0; d < dim; d++) wr[d] -= lr * (g[d] + weight_decay * wr[d]);
  }
}
