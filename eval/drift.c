/* drift.c: drift metrics between two embedding sets (drift.h). Products go through
 * core/compute.h (clasp_gemm) and eval/retrieval.h (exact top-k, ranks); sums are in double in
 * a fixed order, and the sampled pairs come from a counter RNG, so results are deterministic. */
#include "eval/drift.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/compute.h"
#include "core/hash.h"
#include "core/rng.h"
#include "eval/retrieval.h"

#define NOMEM_() clasp_set_error(CLASP_ERR_NOMEM, "drift: out of memory")

static const char *const metric_names_[CLASP_DRIFT_N_METRICS] = {"mean_cosine",
                                                                 "centroid_shift",
                                                                 "centroid_cosine",
                                                                 "std_change_mean",
                                                                 "std_change_max",
                                                                 "knn_overlap@10",
                                                                 "cka",
                                                                 "sim_js",
                                                                 "mmd",
                                                                 "stale_self_r1",
                                                                 "stale_self_r10",
                                                                 "r1_fresh",
                                                                 "r10_fresh",
                                                                 "r1_stale",
                                                                 "r10_stale",
                                                                 "r1_delta",
                                                                 "r10_delta"};

const char *clasp_drift_metric_name(clasp_drift_metric m) {
    return m >= 0 && m < CLASP_DRIFT_N_METRICS ? metric_names_[m] : "?";
}

bool clasp_drift_metric_per_sample(clasp_drift_metric m) {
    return m == CLASP_DRIFT_MEAN_COSINE || m == CLASP_DRIFT_KNN_OVERLAP || m == CLASP_DRIFT_CKA ||
           m >= CLASP_DRIFT_STALE_SELF_R1;
}

int clasp_drift_metric_find(const char *name) {
    for (int m = 0; m < CLASP_DRIFT_N_METRICS; m++)
        if (!strcmp(name, metric_names_[m])) return m;
    return -1;
}

clasp_drift_options clasp_drift_default_options(void) {
    return (clasp_drift_options){.bins = 50, .pairs = 100000, .mmd_rows = 4096, .seed = 0};
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* Refuses non-finite values and all-zero rows (no direction: cosines are undefined). */
static clasp_status check_rows_(const char *name, const float *x, int64_t n, int D) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < D; d++) {
            float v = x[i * D + d];
            if (!isfinite(v))
                return clasp_set_error(CLASP_ERR_NUMERIC, "drift: %s row %lld: value %d is %g",
                                       name, (long long)i, d, (double)v);
            s += (double)v * (double)v;
        }
        if (s == 0)
            return clasp_set_error(CLASP_ERR_NUMERIC, "drift: %s row %lld is all zeros", name,
                                   (long long)i);
    }
    return CLASP_OK;
}

/* A malloc'd copy of x (n, D) with unit rows; NULL when out of memory. */
static float *unit_rows_(const float *x, int64_t n, int D) {
    float *u = malloc((size_t)n * (size_t)D * sizeof(float));
    for (int64_t i = 0; u && i < n; i++) {
        const float *r = x + i * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)r[d] * (double)r[d];
        double inv = 1.0 / sqrt(s);
        for (int d = 0; d < D; d++) u[i * D + d] = (float)((double)r[d] * inv);
    }
    return u;
}

static double dot_(const float *a, const float *b, int D) {
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)a[d] * (double)b[d];
    return s;
}

/* Column means and population standard deviations of x (n, D) into mean, sd (D). */
static void moments_(const float *x, int64_t n, int D, double *mean, double *sd) {
    for (int d = 0; d < D; d++) mean[d] = sd[d] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < D; d++) mean[d] += (double)x[i * D + d];
    for (int d = 0; d < D; d++) mean[d] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < D; d++) {
            double c = (double)x[i * D + d] - mean[d];
            sd[d] += c * c;
        }
    for (int d = 0; d < D; d++) sd[d] = sqrt(sd[d] / (double)n);
}

/* centroid_shift, centroid_cosine, std_change_mean, std_change_max of x against y. */
static clasp_status moment_metrics_(const float *x, int64_t nx, const float *y, int64_t ny, int D,
                                    double *v) {
    double *m = malloc((size_t)D * 4 * sizeof(double));
    if (!m) return NOMEM_();
    double *mx = m, *sx = m + D, *my = m + 2 * D, *sy = m + 3 * D;
    moments_(x, nx, D, mx, sx);
    moments_(y, ny, D, my, sy);
    double dist = 0, xy = 0, xx = 0, yy = 0, sum = 0, mx_ = 0;
    for (int d = 0; d < D; d++) {
        dist += (mx[d] - my[d]) * (mx[d] - my[d]);
        xy += mx[d] * my[d], xx += mx[d] * mx[d], yy += my[d] * my[d];
        double c = fabs(sx[d] - sy[d]);
        sum += c;
        if (c > mx_) mx_ = c;
    }
    v[CLASP_DRIFT_CENTROID_SHIFT] = sqrt(dist);
    v[CLASP_DRIFT_CENTROID_COSINE] = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : (double)NAN;
    v[CLASP_DRIFT_STD_CHANGE_MEAN] = sum / D;
    v[CLASP_DRIFT_STD_CHANGE_MAX] = mx_;
    free(m);
    return CLASP_OK;
}

/* The pairs (pi[p], pj[p]), pi != pj, of n rows: all i < j when n(n-1)/2 <= max, else `max`
 * pairs drawn from (seed, CLASP_RNG_DRIFT, stream). *np pairs, arrays malloc'd. */
static clasp_status pairs_(int64_t n, int64_t max, uint64_t seed, uint64_t stream, int64_t **pi,
                           int64_t **pj, int64_t *np) {
    double all = (double)n * (double)(n - 1) / 2;
    int64_t P = all <= (double)max ? (int64_t)all : max;
    *pi = malloc((size_t)(P ? P : 1) * sizeof(int64_t));
    *pj = malloc((size_t)(P ? P : 1) * sizeof(int64_t));
    if (!*pi || !*pj) {
        free(*pi), free(*pj);
        *pi = *pj = NULL;
        return NOMEM_();
    }
    int64_t p = 0;
    if (all <= (double)max) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i + 1; j < n; j++) (*pi)[p] = i, (*pj)[p++] = j;
    } else {
        clasp_rng r;
        clasp_rng_init(&r, seed, CLASP_RNG_DRIFT, stream, (uint64_t)n);
        for (; p < P; p++) {
            int64_t i = (int64_t)clasp_rng_below(&r, (uint64_t)n);
            int64_t j = (int64_t)clasp_rng_below(&r, (uint64_t)(n - 1));
            (*pi)[p] = i, (*pj)[p] = j >= i ? j + 1 : j;
        }
    }
    *np = P;
    return CLASP_OK;
}

/* Normalised histogram (bins over [-1, 1]) of the cosines of unit rows u over the pairs. */
static void sim_hist_(const float *u, int D, const int64_t *pi, const int64_t *pj, int64_t np,
                      int bins, double *h) {
    for (int b = 0; b < bins; b++) h[b] = 0;
    for (int64_t p = 0; p < np; p++) {
        double c = dot_(u + pi[p] * D, u + pj[p] * D, D);
        int b = (int)floor((c + 1) / 2 * bins);
        h[b < 0 ? 0 : b >= bins ? bins - 1 : b] += 1;
    }
    for (int b = 0; b < bins; b++) h[b] /= (double)np;
}

/* Jensen-Shannon divergence in bits of two distributions over `bins` cells. */
static double js_(const double *p, const double *q, int bins) {
    double js = 0;
    for (int b = 0; b < bins; b++) {
        double m = (p[b] + q[b]) / 2;
        if (p[b] > 0) js += 0.5 * p[b] * log2(p[b] / m);
        if (q[b] > 0) js += 0.5 * q[b] * log2(q[b] / m);
    }
    return js < 0 ? 0 : js;
}

static int cmp_double_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sum of exp(-|x_i - y_j|^2 * g) over i < nx, j < ny. */
static clasp_status kernel_sum_(const float *x, const double *x2, int64_t nx, const float *y,
                                const double *y2, int64_t ny, int D, double g, double *out) {
    enum { BLK = 256 };
    float *S = malloc((size_t)BLK * (size_t)ny * sizeof(float));
    if (!S) return NOMEM_();
    double sum = 0;
    for (int64_t i0 = 0; i0 < nx; i0 += BLK) {
        int b = (int)(nx - i0 < BLK ? nx - i0 : BLK);
        clasp_gemm(0, 1, b, (int)ny, D, 1.0f, x + i0 * D, D, y, D, 0.0f, S, (int)ny);
        for (int r = 0; r < b; r++)
            for (int64_t j = 0; j < ny; j++) {
                double d2 = x2[i0 + r] + y2[j] - 2 * (double)S[(size_t)r * ny + j];
                sum += exp(-(d2 > 0 ? d2 : 0) * g);
            }
    }
    free(S);
    *out = sum;
    return CLASP_OK;
}

/* Evenly spaced rows of x (n, D), at most max of them: a malloc'd copy, *m rows. */
static float *spaced_rows_(const float *x, int64_t n, int D, int64_t max, int64_t *m) {
    *m = n < max ? n : max;
    float *s = malloc((size_t)*m * (size_t)D * sizeof(float));
    for (int64_t r = 0; s && r < *m; r++)
        memcpy(s + r * D, x + (r * n / *m) * D, (size_t)D * sizeof(float));
    return s;
}

/* MMD^2 (the biased V-statistic: 0 for equal sets, never negative) of x (nx, D) and y (ny, D), RBF
 * kernel at the median heuristic bandwidth. */
static clasp_status mmd_(const float *x0, int64_t nx0, const float *y0, int64_t ny0, int D,
                         const clasp_drift_options *o, double *out) {
    int64_t nx, ny, np = 0, *pi = NULL, *pj = NULL;
    float *x = spaced_rows_(x0, nx0, D, o->mmd_rows, &nx);
    float *y = spaced_rows_(y0, ny0, D, o->mmd_rows, &ny);
    double *n2 = malloc((size_t)(nx + ny) * sizeof(double)), *d2 = NULL;
    clasp_status s = x && y && n2 ? pairs_(nx + ny, o->pairs, o->seed, 2, &pi, &pj, &np) : NOMEM_();
    if (s == CLASP_OK && !(d2 = malloc((size_t)np * sizeof(double)))) s = NOMEM_();
    if (s == CLASP_OK) {
        /* the pooled rows: x then y */
        for (int64_t i = 0; i < nx + ny; i++) {
            const float *r = i < nx ? x + i * D : y + (i - nx) * D;
            n2[i] = dot_(r, r, D);
        }
        for (int64_t p = 0; p < np; p++) {
            const float *a = pi[p] < nx ? x + pi[p] * D : y + (pi[p] - nx) * D;
            const float *b = pj[p] < nx ? x + pj[p] * D : y + (pj[p] - nx) * D;
            double e = 0;
            for (int d = 0; d < D; d++)
                e += ((double)a[d] - (double)b[d]) * ((double)a[d] - (double)b[d]);
            d2[p] = e;
        }
        qsort(d2, (size_t)np, sizeof(double), cmp_double_);
        double med = np % 2 ? d2[np / 2] : (d2[np / 2 - 1] + d2[np / 2]) / 2; /* median of d^2 */
        double g = 1.0 / (2 * (med > 0 ? med : 1.0)); /* exp(-d^2 / (2 s^2)), s^2 = median d^2 */
        double kxx = 0, kyy = 0, kxy = 0;
        s = kernel_sum_(x, n2, nx, x, n2, nx, D, g, &kxx);
        if (s == CLASP_OK) s = kernel_sum_(y, n2 + nx, ny, y, n2 + nx, ny, D, g, &kyy);
        if (s == CLASP_OK) s = kernel_sum_(x, n2, nx, y, n2 + nx, ny, D, g, &kxy);
        *out = kxx / ((double)nx * (double)nx) + kyy / ((double)ny * (double)ny) -
               2 * kxy / ((double)nx * (double)ny);
    }
    free(x), free(y), free(n2), free(d2), free(pi), free(pj);
    return s;
}

/* The K nearest rows (cosine, self excluded) of each unit row of u (n, D) into nb (n, k). */
static clasp_status knn_(const float *u, int64_t n, int D, int k, int64_t *nb) {
    enum { QB = 256 };
    int64_t *idx = malloc((size_t)QB * (size_t)(k + 1) * sizeof(int64_t));
    float *sc = malloc((size_t)QB * (size_t)(k + 1) * sizeof(float));
    clasp_status s = idx && sc ? CLASP_OK : NOMEM_();
    for (int64_t q0 = 0; s == CLASP_OK && q0 < n; q0 += QB) {
        int b = (int)(n - q0 < QB ? n - q0 : QB);
        s = clasp_search_topk(u, n, D, u + q0 * D, b, k + 1, idx, sc);
        for (int r = 0; s == CLASP_OK && r < b; r++) {
            const int64_t *l = idx + (size_t)r * (k + 1);
            int64_t *o = nb + (q0 + r) * k;
            int w = 0;
            for (int j = 0; j <= k && w < k; j++) /* self dropped (or the last, if beyond) */
                if (l[j] != q0 + r) o[w++] = l[j];
        }
    }
    free(idx), free(sc);
    return s;
}

static clasp_status knn_overlap_(const float *ua, int Da, const float *ub, int Db, int64_t n,
                                 double *out) {
    int k = n - 1 < CLASP_DRIFT_K ? (int)(n - 1) : CLASP_DRIFT_K;
    int64_t *na = malloc((size_t)n * (size_t)k * sizeof(int64_t));
    int64_t *nb = malloc((size_t)n * (size_t)k * sizeof(int64_t));
    clasp_status s = na && nb ? knn_(ua, n, Da, k, na) : NOMEM_();
    if (s == CLASP_OK) s = knn_(ub, n, Db, k, nb);
    double sum = 0;
    for (int64_t i = 0; s == CLASP_OK && i < n; i++) {
        int common = 0;
        for (int p = 0; p < k; p++)
            for (int q = 0; q < k; q++) common += na[i * k + p] == nb[i * k + q];
        sum += (double)common / k;
    }
    *out = sum / (double)n;
    free(na), free(nb);
    return s;
}

/* Column-centred copy of x (n, D). */
static float *centred_(const float *x, int64_t n, int D) {
    double *m = malloc((size_t)D * sizeof(double)), *sd = malloc((size_t)D * sizeof(double));
    float *c = m && sd ? malloc((size_t)n * (size_t)D * sizeof(float)) : NULL;
    if (c) moments_(x, n, D, m, sd);
    for (int64_t i = 0; c && i < n; i++)
        for (int d = 0; d < D; d++) c[i * D + d] = (float)((double)x[i * D + d] - m[d]);
    free(m), free(sd);
    return c;
}

static double frob2_(const float *m, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)m[i] * (double)m[i];
    return s;
}

/* Linear CKA of x (n, Da) and y (n, Db). */
static clasp_status cka_(const float *x, int Da, const float *y, int Db, int64_t n, double *out) {
    float *xc = centred_(x, n, Da), *yc = centred_(y, n, Db);
    int M = Da > Db ? Da : Db;
    float *G = malloc((size_t)M * (size_t)M * sizeof(float));
    if (!xc || !yc || !G) {
        free(xc), free(yc), free(G);
        return NOMEM_();
    }
    clasp_gemm(1, 0, Db, Da, (int)n, 1.0f, yc, Db, xc, Da, 0.0f, G, Da);
    double num = frob2_(G, (size_t)Db * Da);
    clasp_gemm(1, 0, Da, Da, (int)n, 1.0f, xc, Da, xc, Da, 0.0f, G, Da);
    double dx = sqrt(frob2_(G, (size_t)Da * Da));
    clasp_gemm(1, 0, Db, Db, (int)n, 1.0f, yc, Db, yc, Db, 0.0f, G, Db);
    double dy = sqrt(frob2_(G, (size_t)Db * Db));
    *out = dx > 0 && dy > 0 ? num / (dx * dy) : (double)NAN;
    free(xc), free(yc), free(G);
    return CLASP_OK;
}

static bool same_row_(const void *ctx, int64_t q, int64_t g) {
    (void)ctx;
    return q == g;
}

static void all_nan_(double *v) {
    for (int m = 0; m < CLASP_DRIFT_N_METRICS; m++) v[m] = (double)NAN;
}

static clasp_status check_args_(const float *a, int Da, int64_t na, const float *b, int Db,
                                int64_t nb, const clasp_drift_options *o) {
    if (!a || !b || !o || Da < 1 || Db < 1 || o->bins < 1 || o->pairs < 1 || o->mmd_rows < 2)
        return clasp_set_error(CLASP_ERR_ARG, "drift: bad arguments");
    if (na < 2 || nb < 2)
        return clasp_set_error(CLASP_ERR_ARG,
                               "drift: need at least 2 rows per set (have %lld, %lld)",
                               (long long)na, (long long)nb);
    if (na > INT_MAX || nb > INT_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "drift: more than %d rows", INT_MAX);
    CLASP_TRY(check_rows_("A", a, na, Da));
    return check_rows_("B", b, nb, Db);
}

/* sim_js of unit rows ua (na, D) and ub (nb, D): the same pairs when `shared`. */
static clasp_status sim_js_(const float *ua, int Da, int64_t na, const float *ub, int Db,
                            int64_t nb, bool shared, const clasp_drift_options *o, double *out) {
    int64_t *pi = NULL, *pj = NULL, *qi = NULL, *qj = NULL, np = 0, nq = 0;
    double *h = malloc((size_t)o->bins * 2 * sizeof(double));
    clasp_status s = h ? pairs_(na, o->pairs, o->seed, 1, &pi, &pj, &np) : NOMEM_();
    if (s == CLASP_OK && !shared) s = pairs_(nb, o->pairs, o->seed, 3, &qi, &qj, &nq);
    if (s == CLASP_OK) {
        sim_hist_(ua, Da, pi, pj, np, o->bins, h);
        sim_hist_(ub, Db, shared ? pi : qi, shared ? pj : qj, shared ? np : nq, o->bins,
                  h + o->bins);
        *out = js_(h, h + o->bins, o->bins);
    }
    free(h), free(pi), free(pj), free(qi), free(qj);
    return s;
}

clasp_status clasp_drift_distribution(const float *x, int64_t nx, const float *y, int64_t ny, int D,
                                      const clasp_drift_options *o, double *v) {
    all_nan_(v);
    CLASP_TRY(check_args_(x, D, nx, y, D, ny, o));
    float *ux = unit_rows_(x, nx, D), *uy = unit_rows_(y, ny, D);
    clasp_status s = ux && uy ? moment_metrics_(x, nx, y, ny, D, v) : NOMEM_();
    if (s == CLASP_OK) s = sim_js_(ux, D, nx, uy, D, ny, false, o, &v[CLASP_DRIFT_SIM_JS]);
    if (s == CLASP_OK) s = mmd_(x, nx, y, ny, D, o, &v[CLASP_DRIFT_MMD]);
    free(ux), free(uy);
    return s;
}

/* The metrics of clasp_drift_compare that need the same dimension. */
static clasp_status same_dim_(const float *a, const float *ua, const float *b, const float *ub,
                              int64_t n, int D, const clasp_drift_options *o, double *v) {
    double c = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = dot_(ua + i * D, ub + i * D, D);
        c += d > 1 ? 1 : d < -1 ? -1 : d;
    }
    v[CLASP_DRIFT_MEAN_COSINE] = c / (double)n;
    CLASP_TRY(moment_metrics_(a, n, b, n, D, v));
    CLASP_TRY(mmd_(a, n, b, n, D, o, &v[CLASP_DRIFT_MMD]));
    clasp_group_retrieval g;
    CLASP_TRY(clasp_retrieval_by_relevance(ua, n, ub, n, D, same_row_, NULL, &g));
    v[CLASP_DRIFT_STALE_SELF_R1] = g.stats.r1;
    v[CLASP_DRIFT_STALE_SELF_R10] = g.stats.r10;
    return CLASP_OK;
}

clasp_status clasp_drift_compare(const float *a, int Da, const float *b, int Db, int64_t n,
                                 const clasp_drift_options *o, double *v) {
    all_nan_(v);
    CLASP_TRY(check_args_(a, Da, n, b, Db, n, o));
    float *ua = unit_rows_(a, n, Da), *ub = unit_rows_(b, n, Db);
    clasp_status s = ua && ub ? CLASP_OK : NOMEM_();
    if (s == CLASP_OK && Da == Db) s = same_dim_(a, ua, b, ub, n, Da, o, v);
    if (s == CLASP_OK) s = sim_js_(ua, Da, n, ub, Db, n, true, o, &v[CLASP_DRIFT_SIM_JS]);
    if (s == CLASP_OK) s = knn_overlap_(ua, Da, ub, Db, n, &v[CLASP_DRIFT_KNN_OVERLAP]);
    if (s == CLASP_OK) s = cka_(a, Da, b, Db, n, &v[CLASP_DRIFT_CKA]);
    free(ua), free(ub);
    return s;
}

clasp_status clasp_drift_cross_retrieval(const float *qa, const uint64_t *qg, const float *ga,
                                         const float *gb, const uint64_t *gg, int64_t n, int D,
                                         double *v) {
    if (!qa || !qg || !ga || !gb || !gg || n < 1 || D < 1)
        return clasp_set_error(CLASP_ERR_ARG, "drift: bad arguments");
    CLASP_TRY(check_rows_("A queries", qa, n, D));
    CLASP_TRY(check_rows_("A gallery", ga, n, D));
    CLASP_TRY(check_rows_("B gallery", gb, n, D));
    float *uq = unit_rows_(qa, n, D), *ua = unit_rows_(ga, n, D), *ub = unit_rows_(gb, n, D);
    clasp_group_retrieval fresh, stale;
    clasp_status s = uq && ua && ub ? CLASP_OK : NOMEM_();
    if (s == CLASP_OK) s = clasp_retrieval_by_group(uq, qg, n, ua, gg, n, D, &fresh);
    if (s == CLASP_OK) s = clasp_retrieval_by_group(uq, qg, n, ub, gg, n, D, &stale);
    if (s == CLASP_OK) {
        v[CLASP_DRIFT_R1_FRESH] = fresh.stats.r1;
        v[CLASP_DRIFT_R10_FRESH] = fresh.stats.r10;
        v[CLASP_DRIFT_R1_STALE] = stale.stats.r1;
        v[CLASP_DRIFT_R10_STALE] = stale.stats.r10;
        v[CLASP_DRIFT_R1_DELTA] = stale.stats.r1 - fresh.stats.r1;
        v[CLASP_DRIFT_R10_DELTA] = stale.stats.r10 - fresh.stats.r10;
    }
    free(uq), free(ua), free(ub);
    return s;
}

/* ---- conditions ------------------------------------------------------------------------- */

/* s[0..n) without the spaces around it, into out[cap] (false when it does not fit). */
static bool trimmed_(const char *s, size_t n, char *out, size_t cap) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n >= cap) return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static bool modality_name_(const char *s, size_t n) {
    static const char *const m[] = {"image", "text", "audio"};
    for (int i = 0; i < 3; i++)
        if (strlen(m[i]) == n && !strncmp(s, m[i], n)) return true;
    return false;
}

/* A scope: a modality, or MODALITY->MODALITY. */
static bool scope_ok_(const char *s) {
    const char *arrow = strstr(s, "->");
    if (!arrow) return modality_name_(s, strlen(s));
    return modality_name_(s, (size_t)(arrow - s)) && modality_name_(arrow + 2, strlen(arrow + 2));
}

static clasp_status condition_parse_(const char *text, clasp_drift_condition *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->text, sizeof c->text, "%s", text);
    const char *rest = text, *colon = strchr(text, ':');
    if (colon) {
        if (!trimmed_(text, (size_t)(colon - text), c->scope, sizeof c->scope) ||
            !scope_ok_(c->scope))
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "--fail-if '%s': unknown scope (image, text, audio or "
                                   "text->image, ...)",
                                   text);
        rest = colon + 1;
    }
    const char *op = strpbrk(rest, "<>=!");
    if (!op)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "--fail-if '%s': no operator (METRIC<V, <=, >, >=)", text);
    char name[64];
    if (!trimmed_(rest, (size_t)(op - rest), name, sizeof name) ||
        clasp_drift_metric_find(name) < 0)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "--fail-if '%s': unknown metric '%.*s' (clasp drift --help lists "
                               "them)",
                               text, (int)(op - rest), rest);
    c->metric = (clasp_drift_metric)clasp_drift_metric_find(name);
    const char *num = op + 1;
    if (op[0] == '<' || op[0] == '>') {
        bool eq = op[1] == '=';
        c->op = op[0] == '<' ? (eq ? CLASP_DRIFT_LE : CLASP_DRIFT_LT)
                             : (eq ? CLASP_DRIFT_GE : CLASP_DRIFT_GT);
        num += eq;
    } else {
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "--fail-if '%s': unknown operator (use <, <=, > or >=)", text);
    }
    char *end;
    c->value = strtod(num, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == num || *end || !isfinite(c->value))
        return clasp_set_error(CLASP_ERR_CONFIG, "--fail-if '%s': '%s' is not a number", text, num);
    return CLASP_OK;
}

clasp_status clasp_drift_conditions_parse(const char *s, clasp_drift_condition *out, int cap,
                                          int *n) {
    *n = 0;
    if (!s) return clasp_set_error(CLASP_ERR_ARG, "--fail-if: no conditions");
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char text[128];
        if (!trimmed_(p, len, text, sizeof text))
            return clasp_set_error(CLASP_ERR_CONFIG, "--fail-if: condition '%.*s' is too long",
                                   (int)len, p);
        if (!text[0])
            return clasp_set_error(CLASP_ERR_CONFIG, "--fail-if '%s': empty condition", s);
        if (*n == cap)
            return clasp_set_error(CLASP_ERR_CONFIG, "--fail-if: more than %d conditions", cap);
        CLASP_TRY(condition_parse_(text, &out[*n]));
        (*n)++;
        if (!comma) break;
        p = comma + 1;
    }
    return CLASP_OK;
}

bool clasp_drift_condition_fires(const clasp_drift_condition *c, double v) {
    if (isnan(v)) return false;
    switch (c->op) {
    case CLASP_DRIFT_LT:
        return v < c->value;
    case CLASP_DRIFT_LE:
        return v <= c->value;
    case CLASP_DRIFT_GT:
        return v > c->value;
    case CLASP_DRIFT_GE:
        return v >= c->value;
    }
    return false;
}

/* ---- repeated inputs ------------------------------------------------------------------------ */

typedef struct row_hash_ {
    uint64_t h;
    int64_t i;
} row_hash_;

static int cmp_row_hash_(const void *x, const void *y) {
    const row_hash_ *a = x, *b = y;
    if (a->h != b->h) return a->h < b->h ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static bool same_rows_(const float *a, int Da, const float *b, int Db, int64_t i, int64_t j) {
    return !memcmp(a + i * Da, a + j * Da, (size_t)Da * sizeof(float)) &&
           !memcmp(b + i * Db, b + j * Db, (size_t)Db * sizeof(float));
}

clasp_status clasp_drift_distinct_rows(const float *a, int Da, const float *b, int Db, int64_t n,
                                       int64_t *keep, int64_t *n_keep) {
    if (!a || !b || !keep || !n_keep || Da < 1 || Db < 1 || n < 0)
        return clasp_set_error(CLASP_ERR_ARG, "drift: bad arguments");
    row_hash_ *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    bool *dup = calloc((size_t)(n ? n : 1), sizeof *dup);
    if (!r || !dup) {
        free(r), free(dup);
        return NOMEM_();
    }
    for (int64_t i = 0; i < n; i++) {
        r[i].h = clasp_hash64(a + i * Da, (size_t)Da * sizeof(float), 0) ^
                 clasp_splitmix64(clasp_hash64(b + i * Db, (size_t)Db * sizeof(float), 1));
        r[i].i = i;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_row_hash_);
    /* within a run of equal hashes (sorted by row), a row equal to an earlier first occurrence
     * of the run is a repeat */
    for (int64_t s = 0, e; s < n; s = e) {
        for (e = s + 1; e < n && r[e].h == r[s].h;) e++;
        for (int64_t p = s + 1; p < e; p++)
            for (int64_t q = s; q < p && !dup[r[p].i]; q++)
                if (!dup[r[q].i] && same_rows_(a, Da, b, Db, r[p].i, r[q].i)) dup[r[p].i] = true;
    }
    *n_keep = 0;
    for (int64_t i = 0; i < n; i++)
        if (!dup[i]) keep[(*n_keep)++] = i;
    free(r), free(dup);
    return CLASP_OK;
}
