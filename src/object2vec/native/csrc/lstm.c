#include "common.h"

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
