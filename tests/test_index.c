/* test_index.c: ANN index folders (index/index.h): every type built, opened and searched against
 * exact search; meta.json round trip; versions, add and the model-hash refusal; atomic replace;
 * damaged folders refused with errors naming the file and field; and the CLI (`clasp index`,
 * `clasp search --index IDX`), including a fault injected at every write of a rebuild. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "eval/retrieval.h"
#include "export/export.h"
#include "fixtures.h"
#include "index/index.h"

#define DIM 32

/* n clustered unit rows of dimension DIM: centres fixed by `clusters`, noise by seed. */
static float *data_(int64_t n, int clusters, uint64_t seed) {
    float *x = malloc((size_t)n * DIM * sizeof *x);
    cr_assert(x);
    fx_clustered(x, n, DIM, clusters, 0.1f, 1, seed);
    return x;
}

static void build_(const char *dir, const char *type, const float *x, int64_t n, uint64_t hash) {
    clasp_index_spec spec;
    cr_assert_eq(clasp_index_spec_parse(type, &spec), CLASP_OK, "%s", clasp_last_error());
    clasp_index_origin o = {hash, "text", "fp32"};
    cr_assert_eq(clasp_index_build(dir, &spec, &o, x, n, DIM, NULL), CLASP_OK, "%s",
                 clasp_last_error());
}

static clasp_index *open_(const char *dir) {
    clasp_index *ix = NULL;
    cr_assert_eq(clasp_index_open(dir, &ix), CLASP_OK, "%s", clasp_last_error());
    return ix;
}

/* Exact top-k ids of q (nq) over x (n). */
static int64_t *exact_(const float *x, int64_t n, const float *q, int nq, int k) {
    int64_t *ids = malloc((size_t)nq * (size_t)k * sizeof *ids);
    float *sc = malloc((size_t)nq * (size_t)k * sizeof *sc);
    cr_assert_eq(clasp_search_topk(x, n, DIM, q, nq, k, ids, sc), CLASP_OK);
    free(sc);
    return ids;
}

/* Opening dir fails with `code` and a message holding every string that follows (NULL ends). */
static void refused_(const char *dir, clasp_status code, ...) {
    clasp_index *ix = NULL;
    clasp_status s = clasp_index_open(dir, &ix);
    cr_assert_eq(s, code, "status %s, expected %s: %s", clasp_status_name(s),
                 clasp_status_name(code), clasp_last_error());
    cr_assert_null(ix);
    va_list ap;
    va_start(ap, code);
    for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *))
        cr_assert(strstr(clasp_last_error(), w), "'%s' does not say '%s'", clasp_last_error(), w);
    va_end(ap);
}

/* An index of n clustered rows with nq queries from the same clusters and their exact top-10. */
typedef struct indexed {
    char dir[4096];
    float *x, *q;
    int64_t n, *want;
    float *want_sc;
    int nq;
    clasp_index *ix;
    clasp_index_truth truth; /* want, want_sc */
} indexed;

static void indexed_(indexed *t, const char *name, const char *type, int64_t n, int nq,
                     int clusters, uint64_t seed) {
    clasp_test_tmpdir(name, t->dir, sizeof t->dir);
    t->n = n;
    t->nq = nq;
    t->x = data_(n, clusters, seed);
    t->q = data_(nq, clusters, seed + 1);
    build_(t->dir, type, t->x, n, 42);
    t->ix = open_(t->dir);
    t->want = malloc((size_t)nq * 10 * sizeof *t->want);
    t->want_sc = malloc((size_t)nq * 10 * sizeof *t->want_sc);
    cr_assert_eq(clasp_search_topk(t->x, n, DIM, t->q, nq, 10, t->want, t->want_sc), CLASP_OK);
    t->truth = (clasp_index_truth){t->want, t->want_sc, 10};
}

static void indexed_free_(indexed *t) {
    clasp_index_close(t->ix);
    free(t->x), free(t->q), free(t->want), free(t->want_sc);
}

Test(index, type_strings_parse_with_defaults_and_refuse_unknowns) {
    clasp_index_spec s;
    char p[128];
    cr_assert_eq(clasp_index_spec_parse("hnsw", &s), CLASP_OK);
    cr_expect(s.type == CLASP_INDEX_HNSW && s.hnsw_m == 32 && s.hnsw_efc == 200 &&
              s.search_def == 64);
    cr_assert_eq(clasp_index_spec_parse("ivf-pq:nlist=100,m=8,nbits=6,nprobe=7", &s), CLASP_OK);
    cr_expect(s.ivf_nlist == 100 && s.pq_m == 8 && s.pq_nbits == 6 && s.search_def == 7);
    clasp_index_spec_params(&s, p, sizeof p);
    cr_expect_str_eq(p, "nlist=100,m=8,nbits=6");
    cr_expect_eq(clasp_index_spec_parse("flat", &s), CLASP_OK);
    cr_expect_eq(clasp_index_spec_parse("annoy", &s), CLASP_ERR_ARG);
    cr_expect(strstr(clasp_last_error(), "annoy"), "%s", clasp_last_error());
    cr_expect_eq(clasp_index_spec_parse("hnsw:efs=3", &s), CLASP_ERR_ARG);
    cr_expect(strstr(clasp_last_error(), "efs"), "%s", clasp_last_error());
    cr_expect_eq(clasp_index_spec_parse("hnsw:M=0", &s), CLASP_ERR_ARG);
    cr_expect_eq(clasp_index_spec_parse("hnsw:M", &s), CLASP_ERR_ARG);
    cr_expect_eq(clasp_index_spec_parse("flat:M=3", &s), CLASP_ERR_ARG);
    cr_assert_eq(clasp_index_spec_parse("ivf-pq:refine=4", &s), CLASP_OK);
    clasp_index_spec_params(&s, p, sizeof p);
    cr_expect_str_eq(p, "nlist=4096,m=16,nbits=8,refine=4");
    cr_assert_eq(clasp_index_spec_parse("ivf-flat:nlist=10,nprobe=3", &s), CLASP_OK);
    cr_expect(s.type == CLASP_INDEX_IVF_FLAT && s.ivf_nlist == 10 && s.search_def == 3);
    clasp_index_spec_params(&s, p, sizeof p);
    cr_expect_str_eq(p, "nlist=10");
    cr_expect_eq(clasp_index_spec_parse("ivf-flat:refine=2", &s), CLASP_ERR_ARG);
}

Test(index, flat_equals_exact_search) {
    char d[4096];
    clasp_test_tmpdir("index-flat", d, sizeof d);
    const int64_t n = 600;
    const int nq = 20, k = 10;
    float *x = data_(n, 30, 1), *q = data_(nq, 30, 2);
    build_(d, "flat", x, n, 42);
    clasp_index *ix = open_(d);
    int64_t *want = exact_(x, n, q, nq, k), ids[20 * 10];
    float sc[20 * 10], wsc[20 * 10];
    cr_assert_eq(clasp_search_topk(x, n, DIM, q, nq, k, want, wsc), CLASP_OK);
    cr_assert_eq(clasp_index_search(ix, q, nq, k, 0, ids, sc), CLASP_OK, "%s", clasp_last_error());
    for (int i = 0; i < nq * k; i++) {
        cr_expect_eq(ids[i], want[i], "result %d: row %lld, exact %lld", i, (long long)ids[i],
                     (long long)want[i]);
        cr_expect(fabsf(sc[i] - wsc[i]) < 1e-5f, "score %d: %g vs %g", i, (double)sc[i],
                  (double)wsc[i]);
    }
    /* keys default to the row numbers; k above the count pads with -1 */
    cr_expect_str_eq(clasp_index_key(ix, 17), "17");
    cr_expect_null(clasp_index_key(ix, n));
    cr_expect_null(clasp_index_key(ix, -1));
    int64_t many[700];
    float msc[700];
    cr_assert_eq(clasp_index_search(ix, q, 1, 700, 0, many, msc), CLASP_OK);
    cr_expect_eq(many[599] >= 0, 1);
    cr_expect_eq(many[600], -1);
    cr_expect(isinf(msc[650]) && msc[650] < 0);
    clasp_index_close(ix);
    free(x), free(q), free(want);
}

Test(index, hnsw_recall_on_2k_clustered_vectors) {
    indexed t;
    indexed_(&t, "index-hnsw", "hnsw:M=16,efc=100,ef=64", 2000, 100, 50, 3);
    clasp_index *ix = t.ix;
    const float *q = t.q;
    const int nq = t.nq;
    clasp_index_eval e;
    cr_assert_eq(clasp_index_evaluate(ix, q, nq, &t.truth, 0, &e), CLASP_OK, "%s",
                 clasp_last_error());
    cr_expect_geq(e.recall10, 0.9, "recall@10 %.3f", e.recall10);
    cr_expect_eq(e.search_param, 64);
    cr_expect(e.qps > 0 && e.p50_ms > 0 && e.p99_ms >= e.p50_ms);
    /* the sweep finds a parameter reaching the target, and it does reach it */
    int found = 0;
    clasp_index_eval tu;
    cr_assert_eq(clasp_index_tune(ix, q, nq, &t.truth, 0.95, &tu, &found), CLASP_OK);
    cr_expect(found, "no efSearch reaches 0.95 (best %.3f)", tu.recall10);
    cr_expect_geq(tu.recall10, 0.95);
    clasp_index_eval again;
    cr_assert_eq(clasp_index_evaluate(ix, q, nq, &t.truth, tu.search_param, &again), CLASP_OK);
    cr_expect_geq(again.recall10, 0.95, "ef %d: %.3f", tu.search_param, again.recall10);
    indexed_free_(&t);
}

Test(index, ivf_pq_trains_and_more_probes_find_more) {
    indexed t;
    indexed_(&t, "index-ivfpq", "ivf-pq:nlist=64,m=8,nbits=8,nprobe=1", 3000, 100, 40, 5);
    clasp_index *ix = t.ix;
    const float *x = t.x, *q = t.q;
    const int nq = t.nq;
    const int64_t n = t.n;
    const char *d = t.dir;
    /* nlist capped so each cell has 39 training rows: 3000 / 39 = 76 > 64, kept */
    cr_expect_str_eq(clasp_index_get_meta(ix)->params, "nlist=64,m=8,nbits=8");
    clasp_index_eval one, all;
    cr_assert_eq(clasp_index_evaluate(ix, q, nq, &t.truth, 1, &one), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(clasp_index_evaluate(ix, q, nq, &t.truth, 64, &all), CLASP_OK);
    cr_expect_gt(all.recall10, one.recall10, "nprobe 64: %.3f, nprobe 1: %.3f", all.recall10,
                 one.recall10);
    cr_expect_geq(all.recall10, 0.5, "PQ recall@10 %.3f with every cell probed", all.recall10);
    cr_expect_geq(all.recall1, 0.5, "PQ recall@1 %.3f", all.recall1);
    /* too few rows to train 8-bit codes */
    clasp_index_spec spec;
    clasp_index_origin o = {42, "text", "fp32"};
    cr_assert_eq(clasp_index_spec_parse("ivf-pq:m=8", &spec), CLASP_OK);
    cr_expect_eq(clasp_index_build(d, &spec, &o, x, 100, DIM, NULL), CLASP_ERR_ARG);
    cr_expect(strstr(clasp_last_error(), "nbits"), "%s", clasp_last_error());
    cr_assert_eq(clasp_index_spec_parse("ivf-pq:m=5", &spec), CLASP_OK);
    cr_expect_eq(clasp_index_build(d, &spec, &o, x, n, DIM, NULL), CLASP_ERR_ARG);
    cr_expect(strstr(clasp_last_error(), "divide"), "%s", clasp_last_error());
    indexed_free_(&t);
}

/* IVF-Flat keeps the full vectors: its scores are exact cosines, and probing every cell is
 * the exact search. */
Test(index, ivf_flat_scores_are_exact_and_all_cells_give_exact_search) {
    indexed t;
    indexed_(&t, "index-ivfflat", "ivf-flat:nlist=32,nprobe=2", 2000, 60, 40, 7);
    cr_expect_str_eq(clasp_index_get_meta(t.ix)->type, "ivf-flat");
    cr_expect_str_eq(clasp_index_get_meta(t.ix)->params, "nlist=32");
    int64_t ids[60 * 10];
    float sc[60 * 10];
    cr_assert_eq(clasp_index_search(t.ix, t.q, t.nq, 10, 32, ids, sc), CLASP_OK, "%s",
                 clasp_last_error());
    for (int i = 0; i < t.nq * 10; i++) {
        cr_expect_eq(ids[i], t.want[i], "result %d: row %lld, exact %lld", i, (long long)ids[i],
                     (long long)t.want[i]);
        cr_expect(fabsf(sc[i] - t.want_sc[i]) < 1e-5f, "score %d", i);
    }
    clasp_index_eval one, all;
    cr_assert_eq(clasp_index_evaluate(t.ix, t.q, t.nq, &t.truth, 1, &one), CLASP_OK);
    cr_assert_eq(clasp_index_evaluate(t.ix, t.q, t.nq, &t.truth, 32, &all), CLASP_OK);
    cr_expect_eq(all.recall10, 1.0);
    cr_expect_leq(one.recall10, all.recall10);
    /* the vectors come back exactly (normalised) */
    float *v = NULL;
    cr_assert_eq(clasp_index_vectors(t.ix, &v), CLASP_OK, "%s", clasp_last_error());
    for (int64_t i = 0; i < t.n * DIM; i++)
        cr_assert(fabsf(v[i] - t.x[i]) < 1e-6f, "vector element %lld", (long long)i);
    free(v);
    cr_expect_eq(clasp_index_spec_parse("ivf-flat:m=8", &(clasp_index_spec){0}), CLASP_ERR_ARG);
    indexed_free_(&t);
}

/* IVF-PQ with refine re-scores the PQ candidates exactly: its recall at the same nprobe is at
 * least plain IVF-PQ's, every returned score is the exact cosine of the returned row, and the
 * folder records refine (a file without the refinement is refused for such a meta.json). */
Test(index, ivf_pq_refine_rescores_exactly) {
    indexed t, p;
    indexed_(&t, "index-ivfpq-rf", "ivf-pq:nlist=32,m=4,nbits=6,nprobe=32,refine=8", 2000, 60, 40,
             9);
    indexed_(&p, "index-ivfpq-plain", "ivf-pq:nlist=32,m=4,nbits=6,nprobe=32", 2000, 60, 40, 9);
    cr_expect_str_eq(clasp_index_get_meta(t.ix)->params, "nlist=32,m=4,nbits=6,refine=8");
    clasp_index_eval rf, plain;
    cr_assert_eq(clasp_index_evaluate(t.ix, t.q, t.nq, &t.truth, 0, &rf), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(clasp_index_evaluate(p.ix, p.q, p.nq, &p.truth, 0, &plain), CLASP_OK);
    cr_expect_gt(rf.recall10, plain.recall10, "refine %.3f, plain %.3f", rf.recall10,
                 plain.recall10);
    cr_expect_geq(rf.recall10, 0.95, "refine x8 recall@10 %.3f", rf.recall10);
    int64_t ids[60 * 10];
    float sc[60 * 10];
    cr_assert_eq(clasp_index_search(t.ix, t.q, t.nq, 10, 0, ids, sc), CLASP_OK);
    for (int i = 0; i < t.nq; i++)
        for (int j = 0; j < 10; j++) {
            const float *row = t.x + ids[i * 10 + j] * DIM, *qi = t.q + (size_t)i * DIM;
            double dot = 0, qq = 0;
            for (int c = 0; c < DIM; c++)
                dot += (double)row[c] * (double)qi[c], qq += (double)qi[c] * (double)qi[c];
            cr_expect(fabs(dot / sqrt(qq) - (double)sc[i * 10 + j]) < 1e-5, "query %d result %d", i,
                      j);
            if (j) cr_expect_geq(sc[i * 10 + j - 1], sc[i * 10 + j], "query %d: not sorted", i);
        }
    /* a plain IVF-PQ file under a meta.json that says refine: refused */
    char a[4300], b[4300];
    snprintf(a, sizeof a, "%s/index.faiss", clasp_index_path(p.ix));
    snprintf(b, sizeof b, "%s/index.faiss", clasp_index_path(t.ix));
    size_t n;
    uint8_t *bytes = fx_read(a, &n);
    cr_assert(bytes);
    cr_assert(fx_write(b, bytes, n));
    free(bytes);
    clasp_index *ix = NULL;
    cr_expect_eq(clasp_index_open(t.dir, &ix), CLASP_ERR_FORMAT);
    cr_expect(strstr(clasp_last_error(), "IxRF"), "%s", clasp_last_error());
    indexed_free_(&t);
    indexed_free_(&p);
}

/* Equal vectors: any of them is a right answer. With the exact scores, a result tying the exact
 * cut counts (flat: recall exactly 1); by ids alone, ties broken otherwise would count as misses.
 */
Test(index, recall_counts_ties_with_exact_scores) {
    char d[4096];
    clasp_test_tmpdir("index-ties", d, sizeof d);
    float *x = data_(399, 20, 21), *q = data_(30, 20, 22);
    /* rows 133.. and 266.. repeat rows 0..132: the exact top-10 (ties to the lower row) always
     * cuts a triple of equal rows */
    memcpy(x + 133 * DIM, x, 133 * DIM * sizeof *x);
    memcpy(x + 266 * DIM, x, 133 * DIM * sizeof *x);
    build_(d, "hnsw:M=8,efc=40,ef=200", x, 399, 1);
    clasp_index *ix = open_(d);
    int64_t ids[30 * 10];
    float sc[30 * 10];
    cr_assert_eq(clasp_search_topk(x, 399, DIM, q, 30, 10, ids, sc), CLASP_OK);
    clasp_index_truth with = {ids, sc, 10};
    clasp_index_eval e;
    cr_assert_eq(clasp_index_evaluate(ix, q, 30, &with, 0, &e), CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(e.recall10, 1.0, "recall@10 %.4f with ties counted", e.recall10);
    cr_expect_eq(e.recall1, 1.0, "recall@1 %.4f with ties counted", e.recall1);
    clasp_index_close(ix);
    free(x), free(q);
}

Test(index, meta_round_trip) {
    char d[4096], faiss[4200];
    clasp_test_tmpdir("index-meta", d, sizeof d);
    float *x = data_(300, 10, 7);
    const char *keys[300];
    char names[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof names[i], "img-%03d.png", i);
        keys[i] = names[i];
    }
    clasp_index_spec spec;
    cr_assert_eq(clasp_index_spec_parse("hnsw:M=8,efc=40,ef=33", &spec), CLASP_OK);
    clasp_index_origin o = {0x0123456789abcdefULL, "image", "bf16"};
    cr_assert_eq(clasp_index_build(d, &spec, &o, x, 300, DIM, keys), CLASP_OK, "%s",
                 clasp_last_error());
    clasp_index *ix = open_(d);
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    cr_expect_str_eq(m->type, "hnsw");
    cr_expect_str_eq(m->params, "M=8,efc=40");
    cr_expect_eq(m->dim, DIM);
    cr_expect_eq(m->count, 300);
    cr_expect_eq(m->model_hash, 0x0123456789abcdefULL);
    cr_expect_str_eq(m->tower, "image");
    cr_expect_str_eq(m->precision, "bf16");
    cr_expect_eq(m->search_def, 33);
    cr_expect_eq(m->generation, 1);
    cr_expect_eq(strlen(m->created), 20, "%s", m->created);
    cr_expect_eq(m->created[19], 'Z');
    cr_expect(m->clasp_version[0]);
    uint64_t h;
    snprintf(faiss, sizeof faiss, "%s/index.faiss", clasp_index_path(ix));
    cr_assert_eq(clasp_hash_file(faiss, &h), CLASP_OK);
    cr_expect_eq(m->index_version, h);
    cr_expect_str_eq(clasp_index_key(ix, 123), "img-123.png");
    /* the vectors come back (hnsw keeps them), normalised */
    float *v;
    cr_assert_eq(clasp_index_vectors(ix, &v), CLASP_OK, "%s", clasp_last_error());
    cr_expect_lt(fx_max_abs_diff(v, x, 300 * DIM), 1e-6);
    free(v);
    clasp_index_close(ix);
    free(x);
}

Test(index, model_hash_is_checked_by_add_and_search) {
    char d[4096];
    clasp_test_tmpdir("index-hash", d, sizeof d);
    float *x = data_(200, 10, 8);
    build_(d, "flat", x, 150, 0xaaaa);
    clasp_index *ix = open_(d);
    cr_expect_eq(clasp_index_check_model(ix, 0xaaaa), CLASP_OK);
    cr_expect_eq(clasp_index_check_model(ix, 0xbbbb), CLASP_ERR_CONFIG);
    cr_expect(strstr(clasp_last_error(), "000000000000bbbb") &&
                  strstr(clasp_last_error(), "000000000000aaaa"),
              "%s", clasp_last_error());
    clasp_index_close(ix);
    clasp_index_origin other = {0xbbbb, "text", "fp32"}, same = {0xaaaa, "text", "fp32"};
    cr_expect_eq(clasp_index_add(d, &other, x + 150 * DIM, 50, DIM, NULL), CLASP_ERR_CONFIG);
    cr_expect_eq(clasp_index_add(d, &same, x + 150 * DIM, 25, DIM - 1, NULL), CLASP_ERR_FORMAT);
    cr_expect(strstr(clasp_last_error(), "dimension"), "%s", clasp_last_error());
    /* nothing changed */
    ix = open_(d);
    cr_expect_eq(clasp_index_get_meta(ix)->generation, 1);
    cr_expect_eq(clasp_index_get_meta(ix)->count, 150);
    clasp_index_close(ix);
    free(x);
}

Test(index, add_makes_a_new_version_with_continued_keys) {
    char d[4096], v1[4200];
    clasp_test_tmpdir("index-add", d, sizeof d);
    float *x = data_(400, 20, 9);
    build_(d, "hnsw:M=8,efc=40", x, 300, 7);
    clasp_index_origin o = {7, "text", "fp32"};
    cr_assert_eq(clasp_index_add(d, &o, x + 300 * DIM, 100, DIM, NULL), CLASP_OK, "%s",
                 clasp_last_error());
    clasp_index *ix = open_(d);
    const clasp_index_meta *m = clasp_index_get_meta(ix);
    cr_expect_eq(m->count, 400);
    cr_expect_eq(m->generation, 2);
    cr_expect_str_eq(clasp_index_key(ix, 399), "399");
    int64_t id;
    float sc;
    cr_assert_eq(clasp_index_search(ix, x + 350 * DIM, 1, 1, 0, &id, &sc), CLASP_OK);
    cr_expect_eq(id, 350, "an added row finds row %lld", (long long)id);
    cr_expect_gt(sc, 0.999f);
    clasp_index_close(ix);
    /* the previous version is kept (a reader may still be reading it); older ones go */
    snprintf(v1, sizeof v1, "%s/v1", d);
    cr_expect(clasp_is_dir(v1));
    const char *keys[1] = {"bad\nkey"};
    cr_expect_eq(clasp_index_add(d, &o, x, 1, DIM, keys), CLASP_ERR_ARG);
    cr_assert_eq(clasp_index_set_default(d, 99), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_index_add(d, &o, x, 1, DIM, NULL), CLASP_OK);
    cr_expect(!clasp_is_dir(v1), "v1 should be pruned at generation 4");
    ix = open_(d);
    cr_expect_eq(clasp_index_get_meta(ix)->search_def, 99);
    cr_expect_eq(clasp_index_get_meta(ix)->generation, 4);
    clasp_index_close(ix);
    free(x);
}

Test(index, failed_build_leaves_the_old_index_current) {
    char d[4096];
    clasp_test_tmpdir("index-atomic", d, sizeof d);
    float *x = data_(300, 10, 10);
    build_(d, "flat", x, 200, 5);
    x[250 * DIM + 3] = NAN;
    clasp_index_spec spec;
    clasp_index_origin o = {5, "text", "fp32"};
    cr_assert_eq(clasp_index_spec_parse("flat", &spec), CLASP_OK);
    cr_expect_eq(clasp_index_build(d, &spec, &o, x, 300, DIM, NULL), CLASP_ERR_NUMERIC);
    cr_expect(strstr(clasp_last_error(), "row 250"), "%s", clasp_last_error());
    cr_expect_eq(clasp_index_build(d, &spec, &o, x, 0, DIM, NULL), CLASP_ERR_ARG);
    cr_expect(strstr(clasp_last_error(), "empty"), "%s", clasp_last_error());
    clasp_index *ix = open_(d);
    cr_expect_eq(clasp_index_get_meta(ix)->count, 200);
    cr_expect_eq(clasp_index_get_meta(ix)->generation, 1);
    clasp_index_close(ix);
    /* a zero query is refused, naming it */
    float zero[DIM] = {0};
    int64_t id;
    float sc;
    ix = open_(d);
    cr_expect_eq(clasp_index_search(ix, zero, 1, 1, 0, &id, &sc), CLASP_ERR_NUMERIC);
    cr_expect(strstr(clasp_last_error(), "query row 0"), "%s", clasp_last_error());
    clasp_index_close(ix);
    free(x);
}

/* Searches from 4 threads at once with different efSearch equal the same searches alone. */
typedef struct search_job {
    const clasp_index *ix;
    const float *q;
    int ef;
    int64_t ids[50 * 10];
} search_job;

static void *search_thread_(void *p) {
    search_job *j = p;
    float sc[50 * 10];
    clasp_index_set_threads(1); /* as a server's workers do */
    for (int rep = 0; rep < 5; rep++)
        if (clasp_index_search(j->ix, j->q, 50, 10, j->ef, j->ids, sc) != CLASP_OK) return p;
    return NULL;
}

Test(index, concurrent_searches_match_serial_ones) {
    char d[4096];
    clasp_test_tmpdir("index-threads", d, sizeof d);
    float *x = data_(1500, 30, 11), *q = data_(50, 30, 12);
    build_(d, "hnsw:M=8,efc=40", x, 1500, 1);
    clasp_index *ix = open_(d);
    search_job jobs[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (search_job){ix, q, 10 + 30 * t, {0}};
        cr_assert_eq(pthread_create(&th[t], NULL, search_thread_, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        void *r;
        pthread_join(th[t], &r);
        cr_expect_null(r, "thread %d: %s", t, clasp_last_error());
    }
    for (int t = 0; t < 4; t++) {
        int64_t ids[50 * 10];
        float sc[50 * 10];
        cr_assert_eq(clasp_index_search(ix, q, 50, 10, jobs[t].ef, ids, sc), CLASP_OK);
        cr_expect_arr_eq(ids, jobs[t].ids, sizeof ids, "ef %d differs under threads", jobs[t].ef);
    }
    clasp_index_close(ix);
    free(x), free(q);
}

/* ---- damaged folders ---- */

/* A fresh flat index of 100 rows in d; its version folder into v. */
static void fresh_(const char *name, char *d, char *v) {
    clasp_test_tmpdir(name, d, 4096);
    float *x = data_(100, 10, 13);
    build_(d, "flat", x, 100, 3);
    free(x);
    snprintf(v, 4200, "%s/v1", d);
}

/* Edits meta.json of version v: sets field to a number (or, with str, a string). */
static void set_meta_(const char *v, const char *field, double num, const char *str) {
    char path[4300];
    snprintf(path, sizeof path, "%s/meta.json", v);
    cJSON *j;
    cr_assert_eq(clasp_json_load(path, &j), CLASP_OK);
    cJSON_DeleteItemFromObject(j, field);
    if (str)
        cJSON_AddStringToObject(j, field, str);
    else
        cJSON_AddNumberToObject(j, field, num);
    cr_assert_eq(clasp_json_save(path, j), CLASP_OK);
    cJSON_Delete(j);
}

static void truncate_file_(const char *v, const char *leaf, long keep) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", v, leaf);
    size_t n;
    uint8_t *b = fx_read(path, &n);
    cr_assert(b && (size_t)keep < n);
    cr_assert(fx_write(path, b, (size_t)keep));
    free(b);
}

Test(index, truncated_or_corrupt_meta_json_is_refused) {
    char d[4096], v[4200];
    fresh_("index-bad-meta", d, v);
    truncate_file_(v, "meta.json", 40);
    refused_(d, CLASP_ERR_FORMAT, "meta.json", "invalid JSON", NULL);
    fresh_("index-bad-meta2", d, v);
    set_meta_(v, "dim", 0, "thirty-two");
    refused_(d, CLASP_ERR_FORMAT, "meta.json", "dim", NULL);
    fresh_("index-bad-meta3", d, v);
    set_meta_(v, "type", 0, "annoy");
    refused_(d, CLASP_ERR_FORMAT, "meta.json", "annoy", NULL);
    fresh_("index-bad-meta4", d, v);
    set_meta_(v, "model_hash", 0, "xyz");
    refused_(d, CLASP_ERR_FORMAT, "model_hash", NULL);
    fresh_("index-bad-meta5", d, v);
    set_meta_(v, "format_version", 9, NULL);
    refused_(d, CLASP_ERR_UNSUPPORTED, "meta.json", NULL);
}

Test(index, truncated_or_altered_faiss_file_is_refused) {
    char d[4096], v[4200], path[4300];
    fresh_("index-bad-faiss", d, v);
    truncate_file_(v, "index.faiss", 1000);
    refused_(d, CLASP_ERR_FORMAT, "index.faiss", "index_version", NULL);
    /* a damaged header whose hash was recorded: the header check names the field */
    fresh_("index-bad-faiss2", d, v);
    snprintf(path, sizeof path, "%s/index.faiss", v);
    size_t n;
    uint8_t *b = fx_read(path, &n);
    cr_assert(b);
    memcpy(b, "IxF2", 4); /* an L2 flat index */
    cr_assert(fx_write(path, b, n));
    free(b);
    uint64_t h;
    char hex[17];
    cr_assert_eq(clasp_hash_file(path, &h), CLASP_OK);
    clasp_hash_hex(h, hex);
    set_meta_(v, "index_version", 0, hex);
    refused_(d, CLASP_ERR_FORMAT, "index.faiss", "IxF2", NULL);
    /* FAISS itself refusing a body truncated after a valid header (hash recorded) */
    fresh_("index-bad-faiss3", d, v);
    truncate_file_(v, "index.faiss", 200);
    cr_assert_eq(clasp_hash_file(path, &h), CLASP_OK);
    clasp_hash_hex(h, hex);
    set_meta_(v, "index_version", 0, hex);
    refused_(d, CLASP_ERR_FORMAT, "index.faiss", NULL);
}

Test(index, keys_count_and_dimension_mismatches_are_refused) {
    char d[4096], v[4200], path[4300], hex[17];
    fresh_("index-bad-keys", d, v);
    truncate_file_(v, "keys.txt", 20);
    refused_(d, CLASP_ERR_FORMAT, "keys.txt", "keys_hash", NULL);
    /* one key fewer, its hash recorded: the count check names both */
    fresh_("index-bad-keys2", d, v);
    snprintf(path, sizeof path, "%s/keys.txt", v);
    char *t = fx_read_text(path);
    cr_assert(t);
    *strrchr(t, '\n') = '\0';
    *(strrchr(t, '\n') + 1) = '\0';
    cr_assert(fx_write_str(path, t));
    clasp_hash_hex(clasp_hash64(t, strlen(t), 0), hex);
    free(t);
    set_meta_(v, "keys_hash", 0, hex);
    refused_(d, CLASP_ERR_FORMAT, "keys.txt", "99 keys", "'count' is 100", NULL);
    fresh_("index-bad-dim", d, v);
    set_meta_(v, "dim", 16, NULL);
    refused_(d, CLASP_ERR_FORMAT, "index.faiss", "dimension 32", "'dim' is 16", NULL);
    fresh_("index-bad-count", d, v);
    set_meta_(v, "count", 101, NULL);
    refused_(d, CLASP_ERR_FORMAT, "keys.txt", NULL);
    /* not an index folder; a current link to nowhere */
    refused_(v, CLASP_ERR_NOT_FOUND, "not an index folder", NULL);
    fresh_("index-bad-link", d, v);
    snprintf(path, sizeof path, "%s/current", d);
    unlink(path);
    cr_assert_eq(symlink("elsewhere", path), 0);
    refused_(d, CLASP_ERR_FORMAT, "elsewhere", NULL);
}

/* ---- the CLI ---- */

static void export_(const char *dir, uint64_t seed) {
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    cr_assert(fx_export_model(cfg, NULL, dir, seed), "%s", clasp_last_error());
}

Test(index_cli, build_search_refuses_another_model_add_eval) {
    char d[FX_PATH], e1[FX_PATH], e2[FX_PATH], texts[FX_PATH], npy[FX_PATH], idx[FX_PATH];
    fx_scratch("index-cli", d, e1, "e1", e2, "e2", texts, "t.txt", npy, "t.npy", idx, "idx", NULL);
    export_(e1, 1);
    export_(e2, 2);
    cr_assert(fx_write_str(texts, "a red shirt\na blue bag\na red bag\nan ankle boot\nsandals\n"
                                  "a grey pullover\na dress\na coat\nsneakers\ntrousers\n"));
    char *out = NULL;
    int rc = fx_clasp(&out, "embed --model %s --text %s -o %s 2>&1", e1, texts, npy);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = fx_clasp(&out, "index build --model %s --embeddings %s -o %s --type flat 2>&1", e1, npy,
                  idx);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = fx_clasp(&out, "index info %s --json", idx);
    cr_assert_eq(rc, 0);
    cr_expect(strstr(out, "\"tower\":\t\"text\"") && strstr(out, "\"count\":\t10"), "%s", out);
    free(out);
    rc = fx_clasp(&out, "search --model %s --index %s --text 'a blue bag' -k 3", e1, idx);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "  2\n"), "the line-2 key first expected: %s", out);
    free(out);
    /* another model: refused naming both hashes, unless --allow-model-mismatch */
    rc = fx_clasp(&out, "search --model %s --index %s --text 'a blue bag' 2>&1", e2, idx);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "differs from the index's model hash") &&
                  strstr(out, "--allow-model-mismatch"),
              "%s", out);
    free(out);
    rc = fx_clasp(&out,
                  "search --model %s --index %s --text 'a blue bag' --allow-model-mismatch "
                  "2>&1",
                  e2, idx);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "warning"), "%s", out);
    free(out);
    rc = fx_clasp(&out, "index add %s --model %s --embeddings %s 2>&1", idx, e2, npy);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "model"), "%s", out);
    free(out);
    rc = fx_clasp(&out, "index add %s --model %s --embeddings %s 2>&1", idx, e1, npy);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "20 vectors") && strstr(out, "generation 2"), "%s", out);
    free(out);
    /* eval of a flat index against exact: recall 1 */
    rc = fx_clasp(&out, "index build --model %s --embeddings %s -o %s --type flat 2>&1", e1, npy,
                  idx);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = fx_clasp(&out, "index eval %s --exact %s --queries %s -k 5 --json", idx, npy, npy);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "\"recall1\":\t1,") && strstr(out, "\"recall10\":\t1,"), "%s", out);
    free(out);
}

/* A fault at each write, fsync and rename of a rebuild (tests/fault/fault_shim.c): the build
 * fails or succeeds, and the index opens as the old or the new one, never anything else. */
Test(index_cli, a_fault_at_any_write_of_a_rebuild_leaves_old_or_new) {
    char d[FX_PATH], e1[FX_PATH], x1[FX_PATH], x2[FX_PATH], idx[FX_PATH], cnt[FX_PATH];
    fx_scratch("index-fault", d, e1, "e1", x1, "x1.npy", x2, "x2.npy", idx, "idx", cnt, "count",
               NULL);
    export_(e1, 1);
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(e1, 1, 8, &em), CLASP_OK, "%s", clasp_last_error());
    int D = em.D;
    clasp_embedder_close(&em);
    float *x = malloc((size_t)120 * (size_t)D * sizeof *x);
    for (int64_t i = 0; i < 120 * D; i++) x[i] = (float)((i * 7919) % 101) - 50.0f;
    cr_assert_eq(clasp_npy_write_f32(x1, x, 80, D), CLASP_OK);
    cr_assert_eq(clasp_npy_write_f32(x2, x, 120, D), CLASP_OK);
    free(x);
    char shim[FX_PATH];
    snprintf(shim, sizeof shim, "%s/tests/libclasp_fault_shim.so", CLASP_BINARY_DIR);
    cr_assert(access(shim, R_OK) == 0, "no %s", shim);
    const char *build = "index build --model %s --embeddings %s -o %s --type hnsw:M=8 2>/dev/null";
    cr_assert_eq(fx_clasp(NULL, build, e1, x1, idx), 0);
    char cmd[4 * FX_PATH + 256];
    /* a sanitized clasp accepts the shim ahead of its runtime (no effect otherwise) */
    const char *env = "ASAN_OPTIONS=$ASAN_OPTIONS:verify_asan_link_order=0";
    snprintf(cmd, sizeof cmd, "%s CLASP_FAULT_COUNT=%s LD_PRELOAD=%s %s ", env, cnt, shim,
             clasp_test_bin());
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), build, e1, x2, idx);
    cr_assert_eq(fx_system(cmd), 0);
    char *c = fx_read_text(cnt);
    cr_assert(c);
    int total = atoi(c);
    free(c);
    cr_assert_gt(total, 5, "only %d counted calls", total);
    int failed = 0;
    for (int at = 1; at <= total; at++) {
        snprintf(cmd, sizeof cmd, "%s CLASP_FAULT_AT=%d LD_PRELOAD=%s %s ", env, at, shim,
                 clasp_test_bin());
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), build, e1, at % 2 ? x1 : x2, idx);
        int rc = fx_system(cmd);
        failed += rc != 0;
        clasp_index *ix = NULL;
        cr_assert_eq(clasp_index_open(idx, &ix), CLASP_OK, "fault at call %d: %s", at,
                     clasp_last_error());
        int64_t n = clasp_index_get_meta(ix)->count;
        cr_expect(n == 80 || n == 120, "fault at call %d: %lld vectors", at, (long long)n);
        clasp_index_close(ix);
    }
    cr_expect_gt(failed, 0, "no injected fault made the build fail");
}

/* --shards embeds as `clasp embed --shards` does: a flat index of the shards' images holds the
 * vectors (and keys) of the .npy `clasp embed` writes, so exact search over that .npy finds each
 * row first (recall@1 1). */
Test(index_cli, shards_are_embedded_like_clasp_embed) {
    char d[FX_PATH], e1[FX_PATH], fm[FX_PATH], npy[FX_PATH], idx[FX_PATH];
    fx_scratch("index-shards", d, e1, "e1", fm, "fm", npy, "x.npy", idx, "idx", NULL);
    export_(e1, 1);
    cr_assert_eq(fx_fmnist_shards(fm), 0);
    char *out = NULL;
    int rc = fx_clasp(&out,
                      "index build --model %s --shards '%s/test-{000000..000004}.tar' -o %s "
                      "--type flat --json",
                      e1, fm, idx);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "\"tower\":\t\"image\""), "%s", out);
    free(out);
    rc = fx_clasp(&out, "embed --model %s --shards '%s/test-{000000..000004}.tar' -o %s 2>&1", e1,
                  fm, npy);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = fx_clasp(&out, "index eval %s --exact %s --queries %s --json", idx, npy, npy);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "\"recall1\":\t1,"), "%s", out);
    free(out);
    clasp_index *ix = open_(idx);
    cJSON *side;
    char sp[FX_PATH + 8];
    snprintf(sp, sizeof sp, "%s/x.json", d);
    cr_assert_eq(clasp_json_load(sp, &side), CLASP_OK, "%s", clasp_last_error());
    const cJSON *keys = cJSON_GetObjectItem(side, "keys");
    cr_assert_eq(cJSON_GetArraySize(keys), clasp_index_get_meta(ix)->count);
    for (int i = 0; i < cJSON_GetArraySize(keys); i++)
        cr_expect_str_eq(clasp_index_key(ix, i), cJSON_GetArrayItem(keys, i)->valuestring);
    cJSON_Delete(side);
    clasp_index_close(ix);
}
