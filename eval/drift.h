/* drift.h: how far two embedding sets of the same samples have moved apart (model A vs model
 * B, `clasp drift A B`), and how far consecutive windows of one model's embeddings are apart
 * (`clasp drift A --window N`). docs/drift.md says what each number means and when to alert.
 *
 * Per-sample metrics compare row i of A with row i of B (the same sample under two models):
 *   mean_cosine          mean over rows of cos(a_i, b_i); needs the same dimension
 *   knn_overlap@K        mean over rows of |kNN_A(i) n kNN_B(i)| / K, where kNN_X(i) are the K
 *                        rows of highest cosine to row i in X, i itself excluded (exact search,
 *                        eval/retrieval.h's clasp_search_topk; ties to the lower row)
 *   cka                  linear CKA (Kornblith et al. 2019, eq. 5): |Yc^T Xc|_F^2 /
 *                        (|Xc^T Xc|_F |Yc^T Yc|_F) of the column-centred rows; any dimensions
 *   stale_self_r1/_r10   row i of A searches B's rows (cosine); a hit is B's row i: does an
 *                        index built with B still find the item a query under A describes
 * Distribution metrics compare two sets as distributions (rows need not correspond):
 *   centroid_shift       |mean(X) - mean(Y)| (Euclidean), centroid_cosine cos(mean X, mean Y)
 *   std_change_mean/_max mean and max over dimensions of |std_X(d) - std_Y(d)| (population std)
 *   sim_js               Jensen-Shannon divergence (base 2, in [0, 1]) between the histograms of
 *                        pairwise cosines within X and within Y: `bins` equal bins over [-1, 1];
 *                        between two models both histograms use the SAME pairs (i, j); between
 *                        windows each window draws its own pairs; all pairs i < j when there are
 *                        at most `pairs` of them, else `pairs` pairs drawn with CLASP_RNG_DRIFT
 *   mmd                  squared maximum mean discrepancy (the biased V-statistic of Gretton
 *                        et al. 2012: >= 0, 0 for equal sets) with the RBF kernel exp(-|x - y|^2 /
 * (2 s^2)), s the median distance between rows of the pooled sets (median heuristic, over the
 *                        sampled pairs); on at most `mmd_rows` evenly spaced rows of each set
 * Same-dimension metrics (mean_cosine, centroid_*, std_change_*, mmd, stale_self_*) are NaN
 * (n/a) when the dimensions differ. Cross-modal stale retrieval (clasp_drift_cross_retrieval):
 *   r1_fresh, r10_fresh  queries of A (text) search A's gallery (images)
 *   r1_stale, r10_stale  the same queries search B's gallery: the index was built with the other
 *                        model
 *   r1_delta, r10_delta  stale - fresh
 * A query's hit is any gallery row of its group (clasp_retrieval_by_group).
 */
#ifndef CLASP_EVAL_DRIFT_H
#define CLASP_EVAL_DRIFT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

typedef enum clasp_drift_metric {
    CLASP_DRIFT_MEAN_COSINE = 0,
    CLASP_DRIFT_CENTROID_SHIFT,
    CLASP_DRIFT_CENTROID_COSINE,
    CLASP_DRIFT_STD_CHANGE_MEAN,
    CLASP_DRIFT_STD_CHANGE_MAX,
    CLASP_DRIFT_KNN_OVERLAP,
    CLASP_DRIFT_CKA,
    CLASP_DRIFT_SIM_JS,
    CLASP_DRIFT_MMD,
    CLASP_DRIFT_STALE_SELF_R1,
    CLASP_DRIFT_STALE_SELF_R10,
    CLASP_DRIFT_R1_FRESH,
    CLASP_DRIFT_R10_FRESH,
    CLASP_DRIFT_R1_STALE,
    CLASP_DRIFT_R10_STALE,
    CLASP_DRIFT_R1_DELTA,
    CLASP_DRIFT_R10_DELTA,
    CLASP_DRIFT_N_METRICS
} clasp_drift_metric;

/* The metric's name as printed and as --fail-if takes it ("knn_overlap@10": K is
 * CLASP_DRIFT_K). */
#define CLASP_DRIFT_K 10
const char *clasp_drift_metric_name(clasp_drift_metric m);
/* Whether m needs the same samples under two models (not measurable between windows). */
bool clasp_drift_metric_per_sample(clasp_drift_metric m);
/* The metric named `name`, or -1. */
int clasp_drift_metric_find(const char *name);

typedef struct clasp_drift_options {
    int bins;         /* similarity histogram bins over [-1, 1] (default 50) */
    int64_t pairs;    /* pairs per similarity histogram and median heuristic (default 100000) */
    int64_t mmd_rows; /* rows of each set the MMD uses at most (default 4096) */
    uint64_t seed;    /* of the pair draws (default 0) */
} clasp_drift_options;

clasp_drift_options clasp_drift_default_options(void);

/* Every metric of two models on the same n samples: a (n, Da) and b (n, Db), row i the same
 * sample. Fills v[CLASP_DRIFT_N_METRICS]: the per-sample and distribution metrics above, NaN
 * for those that do not apply (different dimensions; the cross-modal r*_fresh/stale/delta are
 * always NaN here). Errors: CLASP_ERR_ARG for n < 2 or a dimension < 1, CLASP_ERR_NUMERIC for a
 * non-finite value or an all-zero row (naming the set and row), CLASP_ERR_NOMEM. */
clasp_status clasp_drift_compare(const float *a, int Da, const float *b, int Db, int64_t n,
                                 const clasp_drift_options *o, double *v);

/* The rows of a (n, Da) and b (n, Db) to compare: the first occurrence of each distinct pair
 * (a row, b row), in order, into keep (n), *n_keep of them. Repeated inputs (fmnist's 80
 * distinct captions among thousands of samples) give identical rows, whose neighbours would be
 * their own copies; the per-sample metrics count each input once. Bitwise equality. */
clasp_status clasp_drift_distinct_rows(const float *a, int Da, const float *b, int Db, int64_t n,
                                       int64_t *keep, int64_t *n_keep);

/* The distribution metrics (centroid_*, std_change_*, sim_js, mmd) of x (nx, D) against
 * y (ny, D), the others NaN. Errors as clasp_drift_compare (nx, ny >= 2). */
clasp_status clasp_drift_distribution(const float *x, int64_t nx, const float *y, int64_t ny, int D,
                                      const clasp_drift_options *o, double *v);

/* Cross-modal stale-index retrieval: queries qa (n, D) of model A search A's gallery ga
 * (n, D) (fresh) and B's gallery gb (n, D) (stale); query q's hits are the gallery rows g with
 * gg[g] == qg[q]. Rows are L2-normalised here (copies). Sets v[CLASP_DRIFT_R*_FRESH/_STALE/
 * _DELTA] and leaves the rest of v alone. Errors: CLASP_ERR_ARG, CLASP_ERR_FORMAT when no query
 * has a hit, CLASP_ERR_NUMERIC, CLASP_ERR_NOMEM. */
clasp_status clasp_drift_cross_retrieval(const float *qa, const uint64_t *qg, const float *ga,
                                         const float *gb, const uint64_t *gg, int64_t n, int D,
                                         double *v);

/* ---- alert conditions: --fail-if 'knn_overlap@10<0.8,image:cka<0.9' ------------------- */

typedef enum clasp_drift_op {
    CLASP_DRIFT_LT,
    CLASP_DRIFT_LE,
    CLASP_DRIFT_GT,
    CLASP_DRIFT_GE
} clasp_drift_op;

typedef struct clasp_drift_condition {
    char scope[32]; /* "" = every entry, else an entry name ("image", "text->image") */
    clasp_drift_metric metric;
    clasp_drift_op op;
    double value;
    char text[128]; /* the condition as written, trimmed */
} clasp_drift_condition;

/* Parses comma-separated conditions [SCOPE:]METRIC OP NUMBER (OP one of < <= > >=; spaces
 * around the parts allowed) into out[0..cap), *n of them. CLASP_ERR_CONFIG naming the
 * condition for an unknown metric, a missing or unknown operator, a number that is not a
 * finite number, an empty condition, or more than cap conditions. */
clasp_status clasp_drift_conditions_parse(const char *s, clasp_drift_condition *out, int cap,
                                          int *n);
/* Whether value v meets c (the alert fires); a NaN never does. */
bool clasp_drift_condition_fires(const clasp_drift_condition *c, double v);

#endif
