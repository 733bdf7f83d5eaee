#include <stddef.h>

#include "common.h"

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
