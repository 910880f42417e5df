/* eval.c: recall, throughput and latency of an index against exact search, and the search
 * parameter sweep of `clasp index eval --target-recall`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "index/index.h"

static double now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p-th quantile (nearest rank) of v (n, sorted). */
static double quantile_(const double *v, int n, double p) {
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i];
}

/* Hits of one query's results a (k) against the exact ids e and scores es (k_exact each). */
static void hits_(const int64_t *a, const float *as, int k, const int64_t *e, const float *es,
                  int k_exact, int *hit1, int *hitk) {
    const float tol = 1e-5f;
    *hit1 = a[0] >= 0 && (a[0] == e[0] || (es && as[0] >= es[0] - tol));
    *hitk = 0;
    for (int j = 0; j < k; j++) {
        if (a[j] < 0) continue;
        int hit = es && as[j] >= es[k - 1] - tol;
        for (int l = 0; l < k && l < k_exact && !hit; l++) hit = a[j] == e[l];
        *hitk += hit;
    }
}

clasp_status clasp_index_evaluate(const clasp_index *ix, const float *q, int nq,
                                  const clasp_index_truth *truth, int search_param,
                                  clasp_index_eval *out) {
    int k_exact = truth->k;
    if (nq < 1 || k_exact < 1)
        return clasp_set_error(CLASP_ERR_ARG, "index eval: %d queries, k %d", nq, k_exact);
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    /* PQ scores are approximations: only exact ones may count a tie (ivf-pq with refine
     * re-scores exactly) */
    const float *es =
        strcmp(m->type, "ivf-pq") != 0 || strstr(m->params, "refine=") ? truth->scores : NULL;
    int k = k_exact < 10 ? k_exact : 10;
    int64_t *ids = malloc((size_t)nq * (size_t)k * sizeof *ids);
    float *sc = malloc((size_t)nq * (size_t)k * sizeof *sc);
    double *lat = malloc((size_t)nq * sizeof *lat);
    clasp_status s = CLASP_OK;
    if (!ids || !sc || !lat) s = clasp_set_error(CLASP_ERR_NOMEM, "index eval: out of memory");
    double t0 = now_();
    for (int i = 0; s == CLASP_OK && i < nq; i++) {
        double a = now_();
        s = clasp_index_search(ix, q + (size_t)i * (size_t)m->dim, 1, k, search_param,
                               ids + (size_t)i * (size_t)k, sc + (size_t)i * (size_t)k);
        lat[i] = (now_() - a) * 1e3;
    }
    double total = now_() - t0;
    if (s == CLASP_OK) {
        int64_t hit1 = 0, hitk = 0;
        for (int i = 0; i < nq; i++) {
            int h1, hk;
            size_t ea = (size_t)i * (size_t)k_exact;
            hits_(ids + (size_t)i * (size_t)k, sc + (size_t)i * (size_t)k, k, truth->ids + ea,
                  es ? es + ea : NULL, k_exact, &h1, &hk);
            hit1 += h1;
            hitk += hk;
        }
        qsort(lat, (size_t)nq, sizeof *lat, cmp_double_);
        *out = (clasp_index_eval){
            .search_param = !strcmp(m->type, "flat") ? 0
                            : search_param           ? search_param
                                                     : m->search_def,
            .k = k,
            .recall1 = (double)hit1 / nq,
            .recall10 = (double)hitk / ((double)nq * k),
            .qps = total > 0 ? nq / total : 0,
            .p50_ms = quantile_(lat, nq, 0.50),
            .p99_ms = quantile_(lat, nq, 0.99),
        };
    }
    free(ids);
    free(sc);
    free(lat);
    return s;
}

/* The largest useful parameter: efSearch 4096, nprobe = nlist (from meta.json's params). */
static int param_max_(const clasp_index_meta *m) {
    if (!strcmp(m->type, "hnsw")) return 4096;
    const char *p = strstr(m->params, "nlist=");
    int nlist = p ? atoi(p + 6) : 1;
    return nlist > 0 ? nlist : 1;
}

clasp_status clasp_index_tune(const clasp_index *ix, const float *q, int nq,
                              const clasp_index_truth *truth, double target, clasp_index_eval *out,
                              int *found) {
    int k_exact = truth->k;
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    *found = 0;
    if (!strcmp(m->type, "flat")) {
        CLASP_TRY(clasp_index_evaluate(ix, q, nq, truth, 0, out));
        *found = out->recall10 >= target;
        return CLASP_OK;
    }
    int hi_max = param_max_(m);
    /* hnsw searches with efSearch >= k (index/faiss_shim.cpp): below k is the same as k */
    int p = !strcmp(m->type, "hnsw") ? (k_exact < 10 ? k_exact : 10) : 1;
    int lo = p - 1; /* largest parameter known to miss the target (or not worth trying) */
    clasp_index_eval e, best = {0};
    /* Doubling: the first p reaching the target. */
    for (;;) {
        CLASP_TRY(clasp_index_evaluate(ix, q, nq, truth, p, &e));
        if (e.recall10 >= target) {
            best = e;
            *found = 1;
            break;
        }
        if (e.recall10 >= best.recall10) best = e;
        lo = p;
        if (p >= hi_max) break;
        p = p * 2 < hi_max ? p * 2 : hi_max;
    }
    /* Bisection between the last miss and the first hit. */
    int hi = *found ? best.search_param : 0;
    while (*found && hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        CLASP_TRY(clasp_index_evaluate(ix, q, nq, truth, mid, &e));
        if (e.recall10 >= target) {
            hi = mid;
            best = e;
        } else {
            lo = mid;
        }
    }
    *out = best;
    return CLASP_OK;
}

int64_t clasp_index_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long long size, res;
    int ok = fscanf(f, "%lld %lld", &size, &res) == 2;
    fclose(f);
    return ok ? res * (int64_t)sysconf(_SC_PAGESIZE) : 0;
}
