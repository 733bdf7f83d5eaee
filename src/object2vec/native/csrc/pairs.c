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
