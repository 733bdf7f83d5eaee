#include <stdint.h>
#include <stdlib.h>

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
