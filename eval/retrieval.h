/* retrieval.h: cross-modal retrieval metrics (OpenCLIP's definitions), exact top-k cosine
 * search over stored embeddings, and the .npy files embeddings are stored in.
 *
 * Ranks follow OpenCLIP's get_clip_metrics (open_clip/src/training/train.py): for a query, the
 * rank of its true partner is 1 + the number of candidates scored strictly higher + the number
 * of candidates with an equal score and a lower index (ties broken by index, as a stable sort
 * would). R@k is the fraction of queries with rank <= k; mean rank is the mean of the ranks;
 * median rank is floor(median of the 0-based ranks) + 1, as OpenCLIP computes it.
 *
 * Several captions per image (a sample's json "captions" list): every caption is a text query
 * whose partner is its image (text -> image), and an image's rank (image -> text) is the best
 * rank among its own captions, all other captions (of every image) competing: the image counts
 * as retrieved at k when any one of its captions is in the top k. With one caption per image
 * this is exactly OpenCLIP's metric.
 */
#ifndef CLASP_EVAL_RETRIEVAL_H
#define CLASP_EVAL_RETRIEVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct clasp_rank_stats {
    int64_t n;                     /* queries */
    double r1, r5, r10;            /* recall at 1, 5, 10 (fractions) */
    double mean_rank, median_rank; /* 1-based */
} clasp_rank_stats;

typedef struct clasp_retrieval_result {
    int64_t n_images, n_texts;
    clasp_rank_stats i2t; /* image -> text (best of the image's captions) */
    clasp_rank_stats t2i; /* text -> image */
} clasp_retrieval_result;

/* Retrieval metrics of images img (N, D) and texts txt (M, D), both L2-normalised, where
 * owner[j] in [0, N) is the image text j describes. Images without any text are left out of
 * image -> text. Scores are computed with cblas_sgemm in blocks of rows (memory O(block * max(N,
 * M))). Returns CLASP_ERR_ARG for an owner out of range or N, M < 1, CLASP_ERR_NOMEM. */
clasp_status clasp_retrieval_metrics(const float *img, int64_t N, const float *txt,
                                     const int64_t *owner, int64_t M, int D,
                                     clasp_retrieval_result *out);

/* Retrieval where a query q is answered by the gallery rows relevant(ctx, q, g) says are
 * relevant to it. Its rank is the best (smallest) rank of its relevant rows, each ranked as
 * clasp_rank_of does (all N gallery rows competing, ties to the lower index): R@k = fraction of
 * queries with a relevant row in the top k. Queries without any relevant row are left out and
 * counted in `unmatched`.
 * Chance, for what is measured: a uniformly random ranking of N rows of which m are relevant
 * to the query puts one in the top k with probability 1 - C(N-m, k) / C(N, k) (1 when k >= N),
 * and its expected best rank is (N + 1) / (m + 1); chance_* are these computed with each scored
 * query's own m and averaged over the scored queries (m may vary from query to query). */
typedef struct clasp_group_retrieval {
    clasp_rank_stats stats; /* stats.n: the scored queries */
    int64_t unmatched;      /* queries without a relevant row, left out */
    int64_t n_gallery;      /* N */
    double chance_r1, chance_r5, chance_r10, chance_mean_rank;
    double mean_relevant; /* mean number of relevant gallery rows per scored query */
} clasp_group_retrieval;

/* Whether gallery row g is relevant to query q. */
typedef bool (*clasp_relevant_fn)(const void *ctx, int64_t q, int64_t g);

/* q (Q, D) and gal (N, D) L2-normalised. CLASP_ERR_ARG for Q, N < 1, CLASP_ERR_FORMAT when no
 * query has a relevant row, CLASP_ERR_NOMEM. */
clasp_status clasp_retrieval_by_relevance(const float *q, int64_t Q, const float *gal, int64_t N,
                                          int D, clasp_relevant_fn relevant, const void *ctx,
                                          clasp_group_retrieval *out);

/* clasp_retrieval_by_relevance where relevance is a shared group id (a caption hash, a label, a
 * key mapping): query q (group qg[q]) is answered by every gallery row g with gg[g] == qg[q]. */
clasp_status clasp_retrieval_by_group(const float *q, const uint64_t *qg, int64_t Q,
                                      const float *gal, const uint64_t *gg, int64_t N, int D,
                                      clasp_group_retrieval *out);

/* 1-based rank of candidate `truth` among scores[0..n): 1 + #{scores > scores[truth]} +
 * #{j < truth: scores[j] == scores[truth]}. */
int64_t clasp_rank_of(const float *scores, int64_t n, int64_t truth);

/* Summary of 1-based ranks (reorders `ranks`). */
clasp_rank_stats clasp_rank_summary(int64_t *ranks, int64_t n);

/* Exact top-k by dot product: for each of the Q queries q (Q, D), the k rows of index (N, D)
 * with the highest score, best first, ties to the lower row. idx (Q, k) and score (Q, k);
 * when k > N the tail is idx -1, score -INFINITY. Q = 1 uses cblas_sgemv, otherwise
 * cblas_sgemm, over blocks of index rows. Returns CLASP_ERR_ARG / CLASP_ERR_NOMEM. */
clasp_status clasp_search_topk(const float *index, int64_t N, int D, const float *q, int Q, int k,
                               int64_t *idx, float *score);

/* Writes a float32 (rows, cols) C-order array as NPY version 1.0 (written to path.tmp, then
 * renamed). Errors name the file. */
clasp_status clasp_npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols);
/* Reads a 2-D little-endian float32 C-order NPY file (version 1, 2 or 3) into a malloc'd
 * buffer *data (caller frees). Errors name the file and what is wrong (dtype, order, shape). */
clasp_status clasp_npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols);

#endif
