#include <stdint.h>
#include <stdlib.h>

/* ---- pooled_embedding's backward: each token's row gets its bag's gradient times the token's share ----
   The tokens are first grouped by row (a counting sort that keeps their order), each with its bag and
   share side by side, then each row sums its tokens' terms in token order and is written once:
   threads split the rows, so no two write one float, and no pass zeroes the output or reads it back
   (a column split over all tokens took 4x as long). A token's share is bag_shares[bag] (the mean:
   1 / length) or token_shares[t] (sum: 1; weighted mean: its weight over its bag's total). */
static int bag_backward(const float *grad_bags, const int64_t *local, const int64_t *lengths, const float *bag_shares,
                        const float *token_shares, float *grad_rows, int64_t n_bags, int64_t n_rows, int64_t dim) {
  int64_t n_tokens = 0;
  for (int64_t b = 0; b < n_bags; b++) n_tokens += lengths[b];
  int64_t *starts = calloc(n_rows + 1, sizeof(int64_t)), *cursor = malloc((n_rows + 1) * sizeof(int64_t));
  int64_t *bag_at = malloc((n_tokens + 1) * sizeof(int64_t));
  float *share_at = malloc((n_tokens + 1) * sizeof(float));
  if (!starts || !cursor || !bag_at || !share_at) {
    free(starts), free(cursor), free(bag_at), free(share_at);
    return -1;
  }
  for (int64_t t = 0; t < n_tokens; t++) starts[local[t] + 1]++;
  for (int64_t r = 0; r < n_rows; r++) starts[r + 1] += starts[r];
  for (int64_t r = 0; r <= n_rows; r++) cursor[r] = starts[r];
  for (int64_t b = 0, t = 0; b < n_bags; b++)
    for (int64_t end = t + lengths[b]; t < end; t++) {
      const int64_t i = cursor[local[t]]++;
      bag_at[i] = b;
      share_at[i] = token_shares ? token_shares[t] : bag_shares[b];
    }
  #pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_rows; r++) {
    float *out = grad_rows + r * dim;
    for (int64_t d = 0; d < dim; d++) out[d] = 0.0f;
    for (int64_t i = starts[r]; i < starts[r + 1]; i++) {
      const float *g = grad_bags + bag_at[i] * dim, share = share_at[i];
      for (int64_t d = 0; d < dim; d++) out[d] += g[d] * share;
    }
  }
  free(starts), free(cursor), free(bag_at), free(share_at);
  return 0;
}

/* The mean (SageMaker's pooled_embedding): a bag's gradient / the bag's length. */
int bag_mean_backward(const float *grad_bags, const int64_t *local, const int64_t *lengths, float *grad_rows,
                      int64_t n_bags, int64_t n_rows, int64_t dim) {
  float *shares = malloc((n_bags + 1) * sizeof(float));
  if (!shares) return -1;
  for (int64_t b = 0; b < n_bags; b++) shares[b] = 1.0f / (float)lengths[b];
  const int status = bag_backward(grad_bags, local, lengths, shares, NULL, grad_rows, n_bags, n_rows, dim);
  free(shares);
  return status;
}

/* Sum (token_shares NULL: every share 1) and weighted mean (token_shares: each token's weight over its bag's). */
int bag_weighted_backward(const float *grad_bags, const int64_t *local, const int64_t *lengths, const float *token_shares,
                          float *grad_rows, int64_t n_bags, int64_t n_rows, int64_t dim) {
  float *ones = NULL;
  if (!token_shares) {
    ones = malloc((n_bags + 1) * sizeof(float));
    if (!ones) return -1;
    for (int64_t b = 0; b < n_bags; b++) ones[b] = 1.0f;
  }
  const int status = bag_backward(grad_bags, local, lengths, ones, token_shares, grad_rows, n_bags, n_rows, dim);
  free(ones);
  return status;
}

/* The sorted distinct ids of a batch and each token's place among them (numpy.unique(ids,
   return_inverse=True)), by a bitmap over the table's rows instead of a sort: O(tokens + rows / 64).
   A token's place is the number of set bits before its own: a running count per 64-bit word
   (counts) plus a popcount within the word. bits: (size + 63) / 64 zero words (zero again on
   return); counts: as many int64. Every id must lie in [0, size). Returns the number of distinct ids. */
int64_t distinct_rows(const int64_t *ids, int64_t n, int64_t size, uint64_t *bits, int64_t *counts, int64_t *rows,
                      int64_t *inverse) {
  const int64_t words = (size + 63) / 64;
  for (int64_t i = 0; i < n; i++) bits[ids[i] >> 6] |= 1ull << (ids[i] & 63);
  int64_t k = 0;
  for (int64_t w = 0; w < words; w++) {
    counts[w] = k;
    for (uint64_t x = bits[w]; x; x &= x - 1) rows[k++] = w * 64 + __builtin_ctzll(x);
  }
  for (int64_t i = 0; i < n; i++) {
    const int64_t w = ids[i] >> 6;
    inverse[i] = counts[w] + __builtin_popcountll(bits[w] & ((1ull << (ids[i] & 63)) - 1));
  }
  for (int64_t i = 0; i < n; i++) bits[ids[i] >> 6] = 0;
  return k;
}
