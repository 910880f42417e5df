/* bench/index.c: the ANN indexes of index/index.h (FAISS flat, HNSW, IVF) against the exact
 * scan of `clasp search` (eval/retrieval.h clasp_search_topk, one query per call): build time,
 * on-disk size, memory (resident set growth when the index is opened), recall@1/@10 against
 * the exact top-10, queries per second and p50/p99 latency (one query per call, one thread).
 * For HNSW and IVF the search parameter (efSearch / nprobe) is swept to the smallest that
 * reaches recall@10 >= 0.95 (clasp_index_tune), and the figures are those of that parameter.
 *
 * Types: flat, hnsw, ivf-flat, ivf-pq (with refine=R: PQ candidates re-scored exactly).
 * Data: N x 128 synthetic clustered unit vectors (tests/fixtures.c fx_clustered, seeded: N/1000
 * clusters, noise 0.1 per component), the queries drawn around the same centres with other
 * noise; or,
 * with a path, real embeddings (a .npy of `clasp embed`): its last Q rows are the queries, the
 * rest the index.
 *
 *     ./build/bench/bench_index [EMB.npy]
 *     env: CLASP_BENCH_INDEX_N (default 1000000), CLASP_BENCH_INDEX_Q (queries, default 1000),
 *          CLASP_BENCH_INDEX_TYPES (default "flat hnsw ivf-flat ivf-pq": type strings,
 * space-separated), CLASP_BENCH_INDEX_DIR (scratch folder, default /tmp/clasp-bench-index-PID) The
 * issue's target: an ANN index at recall@10 >= 0.95 with >= 20x the exact scan's QPS. Run it on a
 * quiet machine: the figures are timings.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "core/compute.h"
#include "core/json.h"
#include "eval/retrieval.h"
#include "index/index.h"
#include "tests/fixtures.h"

#define DIM    128
#define TARGET 0.95

static long env_long_(const char *name, long def) {
    const char *v = getenv(name);
    return v && *v ? atol(v) : def;
}

/* Exact top-10 of every query (one sgemm pass) and the QPS of the exact scan one query per call
 * (timed on up to 50 queries). */
static clasp_index_truth exact_(const float *x, int64_t n, int dim, const float *q, int nq,
                                double *qps) {
    int64_t *ids = malloc((size_t)nq * 10 * sizeof *ids);
    float *sc = malloc((size_t)nq * 10 * sizeof *sc), one_sc[10];
    if (!ids || !sc || clasp_search_topk(x, n, dim, q, nq, 10, ids, sc) != CLASP_OK) {
        fprintf(stderr, "exact search: %s\n", clasp_last_error());
        exit(1);
    }
    int timed = nq < 50 ? nq : 50;
    int64_t one[10];
    double t0 = bench_now(CLOCK_MONOTONIC);
    for (int i = 0; i < timed; i++)
        clasp_search_topk(x, n, dim, q + (size_t)i * (size_t)dim, 1, 10, one, one_sc);
    *qps = timed / (bench_now(CLOCK_MONOTONIC) - t0);
    return (clasp_index_truth){ids, sc, 10};
}

static long long file_size_(const char *dir) {
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/current/index.faiss", dir);
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static void run_type_(const char *type, const char *dir, const float *x, int64_t n, int dim,
                      const float *q, int nq, const clasp_index_truth *truth, double exact_qps) {
    clasp_index_spec spec;
    if (clasp_index_spec_parse(type, &spec) != CLASP_OK) {
        fprintf(stderr, "%s\n", clasp_last_error());
        return;
    }
    clasp_index_origin o = {0, "", "fp32"};
    double t0 = bench_now(CLOCK_MONOTONIC);
    if (clasp_index_build(dir, &spec, &o, x, n, dim, NULL) != CLASP_OK) {
        fprintf(stderr, "%s: build: %s\n", type, clasp_last_error());
        return;
    }
    double build_s = bench_now(CLOCK_MONOTONIC) - t0;
    malloc_trim(0); /* the build's freed memory back to the system, so the open's growth shows */
    int64_t rss0 = clasp_index_rss_bytes();
    clasp_index *ix;
    if (clasp_index_open(dir, &ix) != CLASP_OK) {
        fprintf(stderr, "%s: open: %s\n", type, clasp_last_error());
        return;
    }
    double mem_mb = (double)(clasp_index_rss_bytes() - rss0) / 1048576.0;
    clasp_index_eval e;
    int found = 1;
    clasp_status s = spec.type == CLASP_INDEX_FLAT
                         ? clasp_index_evaluate(ix, q, nq, truth, 0, &e)
                         : clasp_index_tune(ix, q, nq, truth, TARGET, &e, &found);
    if (s != CLASP_OK) {
        fprintf(stderr, "%s: eval: %s\n", type, clasp_last_error());
    } else {
        const clasp_index_meta *m = clasp_index_get_meta(ix);
        char tp[160];
        snprintf(tp, sizeof tp, "%s%s%s", m->type, m->params[0] ? ":" : "", m->params);
        printf("%-44s %8.1f %8.1f %8.1f %6d%s %7.4f %7.4f %9.0f %6.1fx %8.3f %8.3f\n", tp, build_s,
               (double)file_size_(dir) / 1048576.0, mem_mb, e.search_param, found ? " " : "!",
               e.recall1, e.recall10, e.qps, e.qps / exact_qps, e.p50_ms, e.p99_ms);
    }
    fflush(stdout);
    clasp_index_close(ix);
}

int main(int argc, char **argv) {
    int64_t n = env_long_("CLASP_BENCH_INDEX_N", 1000000);
    int nq = (int)env_long_("CLASP_BENCH_INDEX_Q", 1000);
    const char *types = getenv("CLASP_BENCH_INDEX_TYPES");
    if (!types || !*types) types = "flat hnsw ivf-flat ivf-pq";
    if (n < 1000 || nq < 1) {
        fprintf(stderr, "CLASP_BENCH_INDEX_N >= 1000 and CLASP_BENCH_INDEX_Q >= 1\n");
        return 2;
    }
    clasp_compute_set_threads(1);
    float *x, *q;
    int dim = DIM;
    const char *what = "synthetic clustered";
    if (argc > 1) {
        int64_t rows, cols;
        if (clasp_npy_read_f32(argv[1], &x, &rows, &cols) != CLASP_OK || rows <= nq) {
            fprintf(stderr, "%s: %s\n", argv[1], rows <= nq ? "too few rows" : clasp_last_error());
            return 1;
        }
        n = rows - nq;
        dim = (int)cols;
        q = x + (size_t)n * (size_t)dim;
        what = argv[1];
    } else {
        x = malloc((size_t)n * DIM * sizeof *x);
        q = malloc((size_t)nq * DIM * sizeof *q);
        if (!x || !q) return 1;
        int clusters = (int)(n / 1000 > 10 ? n / 1000 : 10);
        fx_clustered(x, n, DIM, clusters, 0.1f, 1, 1);
        fx_clustered(q, nq, DIM, clusters, 0.1f, 1, 2); /* same centres, other noise */
    }
    char dir[4096];
    const char *d = getenv("CLASP_BENCH_INDEX_DIR");
    snprintf(dir, sizeof dir, "%s", d && *d ? d : "");
    if (!dir[0]) snprintf(dir, sizeof dir, "/tmp/clasp-bench-index-%ld", (long)getpid());
    double exact_qps;
    clasp_index_truth truth = exact_(x, n, dim, q, nq, &exact_qps);
    printf("bench_index: %s, %lld x %d, %d queries, k=10, target recall@10 %.2f, one thread\n",
           what, (long long)n, dim, nq, TARGET);
    bench_print_load("at start");
    printf("exact scan (clasp search): %.1f QPS\n", exact_qps);
    printf("%-44s %8s %8s %8s %7s %7s %7s %9s %7s %8s %8s\n", "type", "build_s", "disk_MB",
           "mem_MB", "param", "R@1", "R@10", "QPS", "vs_exact", "p50_ms", "p99_ms");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", types);
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        run_type_(t, dir, x, n, dim, q, nq, &truth, exact_qps);
    printf("('!' after param: the target recall was not reached; the best measured is shown)\n");
    bench_print_load("at end");
    free((void *)truth.ids);
    free((void *)truth.scores);
    if (argc > 1) {
        free(x);
    } else {
        free(x);
        free(q);
    }
    return 0;
}
