#include <stdint.h>

/* ---- Hashed text features (object2vec.text.features): word n-grams and subwords -> ids ----
   The same ids as Features.expand in Python, for many texts in one call: no per-word cache, no
   Python integers. Texts arrive as code points (UTF-32), each token's end offset in code points,
   each token's vocabulary id and each text's end offset in tokens; the hashes are over UTF-8 bytes,
   read unsigned, as in Python. */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u
#define NGRAM_MULTIPLIER 116049371ull

static inline uint32_t fnv_char(uint32_t h, uint32_t c) { /* c's UTF-8 bytes, one FNV-1a step each */
  uint8_t b[4];
  int n;
  if (c < 0x80) { b[0] = (uint8_t)c; n = 1; }
  else if (c < 0x800) { b[0] = (uint8_t)(0xC0 | (c >> 6)); b[1] = (uint8_t)(0x80 | (c & 0x3F)); n = 2; }
  else if (c < 0x10000) {
    b[0] = (uint8_t)(0xE0 | (c >> 12)); b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); b[2] = (uint8_t)(0x80 | (c & 0x3F)); n = 3;
  } else {
    b[0] = (uint8_t)(0xF0 | (c >> 18)); b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); b[3] = (uint8_t)(0x80 | (c & 0x3F)); n = 4;
  }
  for (int k = 0; k < n; k++) h = (h ^ b[k]) * FNV_PRIME;
  return h;
}

/* Writes each text's ids (word i, its subwords by start then length, then the n-grams of 2..ngrams
   words ending at word i) to out, and each text's end offset in out to out_ends. Subwords: minn ==
   0 for none. A text without tokens gets the one id empty_id (nothing when empty_id < 0).
   word_hashes: scratch of one uint32 per token of the longest text. Returns the number of ids
   written, or -1 when they would pass cap (nothing past cap is written). */
int64_t expand_features(const uint32_t *chars, const int64_t *token_ends, const int64_t *word_ids,
                        const int64_t *text_ends, int64_t texts, int64_t vocab_size, int64_t buckets, int64_t minn,
                        int64_t maxn, int64_t ngrams, int64_t empty_id, uint32_t *word_hashes, int64_t *out,
                        int64_t *out_ends, int64_t cap) {
  int64_t k = 0, token = 0, char_start = 0;
  const uint64_t b = (uint64_t)buckets;
  for (int64_t t = 0; t < texts; t++) {
    const int64_t first = token;
    if (first == text_ends[t] && empty_id >= 0) {
      if (k >= cap) return -1;
      out[k++] = empty_id;
    }
    for (; token < text_ends[t]; token++) {
      const int64_t char_end = token_ends[token], length = char_end - char_start, i = token - first;
      const uint32_t *w = chars + char_start;
      if (k >= cap) return -1;
      out[k++] = word_ids[token];
      if (minn > 0) { /* the grams of "<word>": position p is '<' at 0, w[p - 1], '>' at length + 1 */
        const int64_t size = length + 2;
        for (int64_t start = 0; start < size; start++) {
          uint32_t h = FNV_OFFSET;
          const int64_t longest = maxn < size - start ? maxn : size - start;
          for (int64_t n = 1; n <= longest; n++) {
            const int64_t p = start + n - 1;
            h = fnv_char(h, p == 0 ? '<' : p == size - 1 ? '>' : w[p - 1]);
            if (n >= minn && !(n == 1 && (start == 0 || start + n == size))) {
              if (k >= cap) return -1;
              out[k++] = vocab_size + (int64_t)(h % b);
            }
          }
        }
      }
      if (ngrams > 1) {
        uint32_t h = FNV_OFFSET;
        for (int64_t p = 0; p < length; p++) h = fnv_char(h, w[p]);
        word_hashes[i] = h;
        for (int64_t n = 2; n <= ngrams && n <= i + 1; n++) { /* H = h_s, then H * M + h_j, mod 2^64 */
          uint64_t g = word_hashes[i - n + 1];
          for (int64_t j = i - n + 2; j <= i; j++) g = g * NGRAM_MULTIPLIER + word_hashes[j];
          if (k >= cap) return -1;
          out[k++] = vocab_size + (int64_t)(g % b);
        }
      }
      char_start = char_end;
    }
    out_ends[t] = k;
  }
  return k;
}

/* How many texts hold each id (a text's repeated ids count once): counts[id] += 1 per text. The
   texts are numbered from first; last: one int64 per id, the number of the last text that counted
   it (below first for every id on the first call: -1). */
void document_frequencies(const int64_t *ids, const int64_t *ends, int64_t texts, int64_t first, int64_t *counts,
                          int64_t *last) {
  int64_t k = 0;
  for (int64_t t = 0; t < texts; t++) {
    for (; k < ends[t]; k++) {
      const int64_t id = ids[k];
      if (last[id] != first + t) {
        last[id] = first + t;
        counts[id]++;
      }
    }
  }
}
