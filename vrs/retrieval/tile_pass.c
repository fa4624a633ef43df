#include <stdint.h>

/* One pass over a (rows, chunk) score tile while it is still in L2 after the matmul. Per row:
   - counts[r] = columns scoring >= target_score[r], the target's own column (targets[r] - col0,
     when it lies in this chunk) excluded exactly by its position;
   - a running top-k kept as a min-heap in top_val/top_idx (k per row, root = smallest): a block of
     BLOCK columns is scanned element by element only when one of them beats the root, which after
     the first chunks is rare, so the cost is one vectorised max per block.
   Excluded columns hold -inf and never enter either result (nor does NaN). */

#define BLOCK 64

static void sift_down(float *val, int64_t *idx, int64_t k) {
    int64_t i = 0;
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < k && val[l] < val[s]) s = l;
        if (r < k && val[r] < val[s]) s = r;
        if (s == i) return;
        float tv = val[i]; val[i] = val[s]; val[s] = tv;
        int64_t ti = idx[i]; idx[i] = idx[s]; idx[s] = ti;
        i = s;
    }
}

void vrs_tile_pass(const float *scores, int64_t rows, int64_t chunk, int64_t col0,
                   const float *target_score, const int64_t *targets, float *counts,
                   float *top_val, int64_t *top_idx, int64_t k) {
    for (int64_t r = 0; r < rows; r++) {
        const float *s = scores + r * chunk;
        if (counts) {
            const float ts = target_score[r];
            int32_t c = 0;
            for (int64_t j = 0; j < chunk; j++) c += s[j] >= ts;
            int64_t tc = targets[r] - col0;
            if (tc >= 0 && tc < chunk) c -= s[tc] >= ts;
            counts[r] = (float)c;
        }
        if (k > 0) {
            float *hv = top_val + r * k;
            int64_t *hi = top_idx + r * k;
            for (int64_t j0 = 0; j0 < chunk; j0 += BLOCK) {
                int64_t j1 = j0 + BLOCK < chunk ? j0 + BLOCK : chunk;
                /* An OR of comparisons vectorises without -ffast-math (a float max would not). */
                const float th = hv[0];
                int32_t hit = 0;
                for (int64_t j = j0; j < j1; j++) hit |= s[j] > th;
                if (!hit) continue;
                for (int64_t j = j0; j < j1; j++) {
                    if (s[j] > hv[0]) {
                        hv[0] = s[j];
                        hi[0] = col0 + j;
                        sift_down(hv, hi, k);
                    }
                }
            }
        }
    }
}
