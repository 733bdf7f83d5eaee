/* What several kernels share: bf16 <-> fp32 conversions as torch does them. Each kernel file is its
   own translation unit; the helpers here are static inline, so nothing but the kernels is exported. */
#ifndef OBJECT2VEC_COMMON_H
#define OBJECT2VEC_COMMON_H

#include <stdint.h>

/* Bit casts through a union (branch-free: loops using them vectorise). */
typedef union { float f; int32_t i; uint32_t u; } bits32;
static inline float bf16_to_float(uint16_t h) { bits32 v; v.u = (uint32_t)h << 16; return v.f; }
static inline uint16_t float_to_bf16(float f) { /* round to nearest even, as torch; NaN stays NaN */
  bits32 v;
  v.f = f;
  const uint32_t u = (v.u & 0x7fffffffu) > 0x7f800000u ? v.u | 0x400000u : v.u + 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

#endif
