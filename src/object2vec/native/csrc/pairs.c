#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* A JSON number (strict grammar) as the nearest double: digits and a decimal exponent, exact when
   the digits fit 2^53 and the power of ten is at most 10^22 (Clinger's fast path: one correctly
   rounded multiplication or division, as strtod would give); otherwise strtod on the same text. */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int json_number(const char *b, int64_t n, int64_t *p, double *out) {
  int64_t i = *p;
  const int negative = i < n && b[i] == '-';
  i += negative;
  if (i >= n || b[i] < '0' || b[i] > '9') return -1;
  uint64_t m = 0;
  int digits = 0, exp10 = 0;
  if (b[i] == '0') i++; /* no leading zeros */
  else
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++) {
      if (digits < 19) m = m * 10 + (uint64_t)(b[i] - '0'), digits++;
      else exp10++, digits++; /* past 19 digits: not the fast path */
    }
  if (i < n && b[i] == '.') {
    i++;
    if (i >= n || b[i] < '0' || b[i] > '9') return -1;
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++) {
      if (m == 0 && b[i] == '0') { exp10--; continue; } /* leading zeros of a fraction are not digits */
      if (digits < 19) m = m * 10 + (uint64_t)(b[i] - '0'), exp10--, digits++;
      else digits++;
    }
  }
  if (i < n && (b[i] == 'e' || b[i] == 'E')) {
    i++;
    int sign = 1, e = 0;
    if (i < n && (b[i] == '+' || b[i] == '-')) sign = b[i++] == '-' ? -1 : 1;
    if (i >= n || b[i] < '0' || b[i] > '9') return -1;
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++)
      if (e < 100000) e = e * 10 + (b[i] - '0');
    exp10 += sign * e;
  }
  if (digits <= 15 && m < (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
    const double v = (double)m;
    *out = exp10 < 0 ? v / POW10[-exp10] : v * POW10[exp10];
    if (negative) *out = -*out;
  } else {
    int64_t q = *p;
    if (label_number(b, n, &q, out) < 0 || q != i) return -1;
  }
  *p = i;
  return 0;
}

/* A list of as many JSON numbers as the side has ids, each written to out[*count...]. */
static int weights_list(const char *b, int64_t n, int64_t *p, double *out, int64_t *count, int64_t expected) {
  int64_t i = *p, k = 0;
  if (i >= n || b[i] != '[') return -1;
  for (i++;;) {
    while (i < n && WS(b[i])) i++;
    if (k >= expected) return -1; /* more weights than ids (or an empty list) */
    if (json_number(b, n, &i, &out[*count + k]) < 0) return -1;
    k++;
    while (i < n && WS(b[i])) i++;
    if (i < n && b[i] == ',') { i++; continue; }
    if (i < n && b[i] == ']') { i++; break; }
    return -1;
  }
  if (k != expected) return -1;
  *p = i;
  *count += k;
  return 0;
}

/* Returns the number of lines, or -1. starts[l]: byte offset of line l; counts[s]: ids written.
   weights: bit s set reads "ins_weights" (required, one number per id of ins) into ws; without the
   bit the key refuses the block, as every other key does. */
int64_t parse_pairs(const char *b, int64_t n, int64_t *starts, int32_t *ids0, int64_t *len0, int32_t *ids1,
                    int64_t *len1, double *labels, int64_t cap, int64_t *counts, int64_t weights, double *w0,
                    double *w1) {
  int64_t i = 0, line = 0, weighed[2] = {0, 0};
  const int required = 7 | (int)((weights & 3) << 3);
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
      else if ((weights & 1) && i + 13 <= n && memcmp(b + i, "\"in0_weights\"", 13) == 0) key = 3, i += 13;
      else if ((weights & 2) && i + 13 <= n && memcmp(b + i, "\"in1_weights\"", 13) == 0) key = 4, i += 13;
      else return -1; /* another key, an escape, an empty object */
      if (seen & (1 << key)) return -1;
      seen |= 1 << key;
      while (i < n && WS(b[i])) i++;
      if (i >= n || b[i] != ':') return -1;
      i++;
      while (i < n && WS(b[i])) i++;
      if (key == 2) {
        if (label_number(b, n, &i, &labels[line]) < 0) return -1;
      } else if (key >= 3) { /* the weights follow their ids, so their count is known */
        const int side = key - 3;
        if (!(seen & (1 << side))) return -1;
        if (weights_list(b, n, &i, side == 0 ? w0 : w1, &weighed[side], (side == 0 ? len0 : len1)[line]) < 0) return -1;
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
    if (seen != required) return -1;
    while (i < n && WS(b[i])) i++;
    if (i < n) {
      if (b[i] != '\n') return -1;
      i++;
    }
    line++;
  }
  return line;
}
