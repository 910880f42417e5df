/* test_eval.c: retrieval metrics (OpenCLIP definitions, ties, multi-caption best-of) against
 * an independent sort-based implementation and hand-computed cases, exact top-k search, the
 * linear probe, the evaluation pass over shards (first and all captions, labels, keys),
 * zero-shot, and `clasp eval` appending to a run's metrics.jsonl. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/json.h"
#include "core/rng.h"
#include "modalities/image.h"
#include "eval/eval.h"
#include "export/export.h"
#include "eval/retrieval.h"
#include "tests/fixtures.h"

/* ---- an independent reference: rank by sorting (stable by index) ---- */

static const float *g_scores;
static int cmp_desc_(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (g_scores[i] > g_scores[j]) return -1;
    if (g_scores[i] < g_scores[j]) return 1;
    return (i > j) - (i < j);
}

static int64_t rank_by_sort_(const float *s, int64_t n, int64_t truth) {
    int64_t *o = malloc((size_t)n * sizeof *o);
    for (int64_t i = 0; i < n; i++) o[i] = i;
    g_scores = s;
    qsort(o, (size_t)n, sizeof *o, cmp_desc_);
    int64_t r = -1;
    for (int64_t i = 0; i < n; i++)
        if (o[i] == truth) r = i + 1;
    free(o);
    return r;
}

static double dot_(const float *a, const float *b, int D) {
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)a[d] * (double)b[d];
    return s;
}

static void random_unit_(float *x, int64_t n, int D, uint64_t seed) {
    clasp_rng r;
    clasp_rng_init(&r, seed, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < D; d++) {
            x[i * D + d] = clasp_rng_normal(&r);
            s += (double)x[i * D + d] * (double)x[i * D + d];
        }
        for (int d = 0; d < D; d++) x[i * D + d] = (float)((double)x[i * D + d] / sqrt(s));
    }
}

Test(eval, rank_of_ties_by_index) {
    float s[5] = {0.5f, 0.9f, 0.5f, 0.5f, 0.1f};
    cr_assert_eq(clasp_rank_of(s, 5, 1), 1);
    cr_assert_eq(clasp_rank_of(s, 5, 0), 2); /* equal scores: lower index first */
    cr_assert_eq(clasp_rank_of(s, 5, 2), 3);
    cr_assert_eq(clasp_rank_of(s, 5, 3), 4);
    cr_assert_eq(clasp_rank_of(s, 5, 4), 5);
    for (int t = 0; t < 5; t++) cr_assert_eq(clasp_rank_of(s, 5, t), rank_by_sort_(s, 5, t));
}

Test(eval, rank_summary_openclip_median) {
    int64_t r[4] = {10, 1, 3, 2}; /* 0-based 9 0 2 1: median 1.5 -> floor 1 -> +1 = 2 */
    clasp_rank_stats s = clasp_rank_summary(r, 4);
    cr_assert_eq(s.n, 4);
    cr_assert_float_eq(s.r1, 0.25, 1e-12);
    cr_assert_float_eq(s.r5, 0.75, 1e-12);
    cr_assert_float_eq(s.r10, 1.0, 1e-12);
    cr_assert_float_eq(s.mean_rank, 4.0, 1e-12);
    cr_assert_float_eq(s.median_rank, 2.0, 1e-12);
    int64_t q[3] = {7, 2, 4}; /* odd: 0-based median 3 -> 4 */
    s = clasp_rank_summary(q, 3);
    cr_assert_float_eq(s.median_rank, 4.0, 1e-12);
}

Test(eval, retrieval_one_caption_matches_reference) {
    const int64_t N = 300;
    const int D = 16;
    float *img = malloc(N * D * sizeof(float)), *txt = malloc(N * D * sizeof(float));
    random_unit_(img, N, D, 1);
    /* texts: a noisy copy of their image, so ranks spread over 1..N */
    random_unit_(txt, N, D, 2);
    for (int64_t i = 0; i < N * D; i++) txt[i] = img[i] + 0.9f * txt[i];
    int64_t *owner = malloc(N * sizeof(int64_t));
    for (int64_t i = 0; i < N; i++) owner[i] = i;
    /* make exact ties: text 7 equals text 3 */
    memcpy(txt + 7 * D, txt + 3 * D, D * sizeof(float));
    clasp_retrieval_result r;
    cr_assert_eq(clasp_retrieval_metrics(img, N, txt, owner, N, D, &r), CLASP_OK);
    /* reference with plain loops and a sort */
    int64_t *ri = malloc(N * sizeof(int64_t)), *rt = malloc(N * sizeof(int64_t));
    float *row = malloc(N * sizeof(float));
    /* the reference ranks by sorting the float scores (sgemm's, through clasp_search_topk with
     * Q = N queries and k = N): a double dot product could reorder near-ties */
    float *S = malloc(N * N * sizeof(float));
    int64_t *idx = malloc(N * N * sizeof(int64_t));
    cr_assert_eq(clasp_search_topk(txt, N, D, img, (int)N, (int)N, idx, S), CLASP_OK);
    /* S[i] is sorted; recover per-text scores through idx */
    for (int64_t i = 0; i < N; i++) {
        for (int64_t k = 0; k < N; k++) row[idx[i * N + k]] = S[i * N + k];
        ri[i] = rank_by_sort_(row, N, i);
    }
    cr_assert_eq(clasp_search_topk(img, N, D, txt, (int)N, (int)N, idx, S), CLASP_OK);
    for (int64_t j = 0; j < N; j++) {
        for (int64_t k = 0; k < N; k++) row[idx[j * N + k]] = S[j * N + k];
        rt[j] = rank_by_sort_(row, N, j);
    }
    clasp_rank_stats ei = clasp_rank_summary(ri, N), et = clasp_rank_summary(rt, N);
    cr_assert_float_eq(r.i2t.r1, ei.r1, 1e-12);
    cr_assert_float_eq(r.i2t.r5, ei.r5, 1e-12);
    cr_assert_float_eq(r.i2t.r10, ei.r10, 1e-12);
    cr_assert_float_eq(r.i2t.mean_rank, ei.mean_rank, 1e-9);
    cr_assert_float_eq(r.i2t.median_rank, ei.median_rank, 1e-12);
    cr_assert_float_eq(r.t2i.r1, et.r1, 1e-12);
    cr_assert_float_eq(r.t2i.r10, et.r10, 1e-12);
    cr_assert_float_eq(r.t2i.mean_rank, et.mean_rank, 1e-9);
    cr_assert_float_eq(r.t2i.median_rank, et.median_rank, 1e-12);
    cr_assert(r.i2t.r1 > 0.05 && r.i2t.r1 < 0.95, "degenerate fixture: R@1 %g", r.i2t.r1);
    free(img), free(txt), free(owner), free(ri), free(rt), free(row), free(S), free(idx);
}

Test(eval, retrieval_multi_caption_best_of) {
    /* 3 images, D = 2; texts: image 0 has captions 0 and 1, image 1 caption 2, image 2 has
     * captions 3 and 4. Unit vectors at chosen angles make every rank known. */
    const int D = 2;
    float ang_i[3] = {0.0f, 1.5f, 3.0f};
    float ang_t[5] = {1.4f, 0.1f, 2.9f, 0.05f, 3.1f};
    int64_t owner[5] = {0, 0, 1, 2, 2};
    float img[6], txt[10];
    for (int i = 0; i < 3; i++) img[2 * i] = cosf(ang_i[i]), img[2 * i + 1] = sinf(ang_i[i]);
    for (int j = 0; j < 5; j++) txt[2 * j] = cosf(ang_t[j]), txt[2 * j + 1] = sinf(ang_t[j]);
    clasp_retrieval_result r;
    cr_assert_eq(clasp_retrieval_metrics(img, 3, txt, owner, 5, D, &r), CLASP_OK);
    /* image 0 (angle 0) sees texts in the order 3 (0.05) 1 (0.1) 0 (1.4) 2 4: its own captions
     * 0 and 1 give best rank 2. The other ranks are checked against the definition. */
    int64_t best[3];
    for (int i = 0; i < 3; i++) {
        float s[5];
        for (int j = 0; j < 5; j++)
            s[j] = img[2 * i] * txt[2 * j] + img[2 * i + 1] * txt[2 * j + 1];
        best[i] = INT64_MAX;
        for (int j = 0; j < 5; j++)
            if (owner[j] == i) {
                int64_t rk = rank_by_sort_(s, 5, j);
                best[i] = rk < best[i] ? rk : best[i];
            }
    }
    cr_assert_eq(best[0], 2);
    clasp_rank_stats e = clasp_rank_summary(best, 3);
    cr_assert_eq(r.i2t.n, 3);
    cr_assert_eq(r.t2i.n, 5);
    cr_assert_float_eq(r.i2t.r1, e.r1, 1e-12);
    cr_assert_float_eq(r.i2t.mean_rank, e.mean_rank, 1e-12);
    /* text -> image: every caption is a query */
    int64_t tr[5];
    for (int j = 0; j < 5; j++) {
        float s[3];
        for (int i = 0; i < 3; i++)
            s[i] = img[2 * i] * txt[2 * j] + img[2 * i + 1] * txt[2 * j + 1];
        tr[j] = rank_by_sort_(s, 3, owner[j]);
    }
    clasp_rank_stats et = clasp_rank_summary(tr, 5);
    cr_assert_float_eq(r.t2i.r1, et.r1, 1e-12);
    cr_assert_float_eq(r.t2i.mean_rank, et.mean_rank, 1e-12);
    /* an image without captions is left out of image -> text; a bad owner is refused */
    int64_t owner2[5] = {0, 0, 0, 2, 2};
    cr_assert_eq(clasp_retrieval_metrics(img, 3, txt, owner2, 5, D, &r), CLASP_OK);
    cr_assert_eq(r.i2t.n, 2);
    owner2[1] = 3;
    cr_assert_eq(clasp_retrieval_metrics(img, 3, txt, owner2, 5, D, &r), CLASP_ERR_ARG);
}

/* The group metric's best rank equals the best of every relevant row's rank by sorting, with
 * duplicated gallery rows (exact ties) and groups of several rows. */
Test(eval, group_retrieval_best_rank_matches_sort) {
    const int D = 8, Q = 40, N = 60;
    float *q = malloc((size_t)Q * D * sizeof(float)), *g = malloc((size_t)N * D * sizeof(float));
    random_unit_(q, Q, D, 5);
    random_unit_(g, N, D, 6);
    for (int j = 1; j < N; j += 3) memcpy(g + (size_t)j * D, g + (size_t)(j - 1) * D, D * 4);
    uint64_t qg[40], gg[60];
    for (int i = 0; i < Q; i++) qg[i] = (uint64_t)(i % 9);
    for (int j = 0; j < N; j++) gg[j] = (uint64_t)(j % 7);
    clasp_group_retrieval r;
    cr_assert_eq(clasp_retrieval_by_group(q, qg, Q, g, gg, N, D, &r), CLASP_OK);
    int64_t ranks[40], n = 0;
    for (int i = 0; i < Q; i++) {
        float s[60];
        for (int j = 0; j < N; j++) s[j] = (float)dot_(q + (size_t)i * D, g + (size_t)j * D, D);
        int64_t best = INT64_MAX;
        for (int j = 0; j < N; j++)
            if (gg[j] == qg[i]) {
                int64_t rk = rank_by_sort_(s, N, j);
                best = rk < best ? rk : best;
            }
        if (best != INT64_MAX) ranks[n++] = best;
    }
    cr_assert_eq(r.stats.n, n);
    cr_assert_eq(r.unmatched, Q - n); /* groups 7 and 8 have no gallery row */
    clasp_rank_stats e = clasp_rank_summary(ranks, n);
    cr_assert_float_eq(r.stats.r1, e.r1, 1e-12);
    cr_assert_float_eq(r.stats.r5, e.r5, 1e-12);
    cr_assert_float_eq(r.stats.mean_rank, e.mean_rank, 1e-12);
    cr_assert_float_eq(r.stats.median_rank, e.median_rank, 1e-12);
    free(q), free(g);
}

/* A set of n images and n texts (text i is image i's caption) as 2-D unit vectors at the given
 * angles in degrees, written into the caller's im (2n), tx (2n) and ow (n); labels lb and
 * caption ids gr (n each) are the caller's too. */
static clasp_eval_set angle_set_(int n, const float *image_deg, const float *text_deg, float *im,
                                 float *tx, int64_t *ow, int64_t *lb, uint64_t *gr) {
    const float deg = 3.14159265358979f / 180.0f;
    for (int i = 0; i < n; i++) {
        im[2 * i] = cosf(image_deg[i] * deg), im[2 * i + 1] = sinf(image_deg[i] * deg);
        tx[2 * i] = cosf(text_deg[i] * deg), tx[2 * i + 1] = sinf(text_deg[i] * deg);
        ow[i] = i;
    }
    clasp_eval_set s = {.n = n, .D = 2, .img = im, .labels = lb, .n_txt = n, .txt = tx};
    s.txt_owner = ow, s.txt_group = gr;
    return s;
}

/* Checks a class-aware result: n scored queries among N gallery rows, and want = {R@1, R@5,
 * R@10, mean rank, chance R@1, chance R@5, chance mean rank}. */
static void expect_group_(const clasp_group_retrieval *g, int64_t n, int64_t N,
                          const double *want) {
    cr_assert_eq(g->stats.n, n);
    cr_assert_eq(g->n_gallery, N);
    const double got[7] = {g->stats.r1,  g->stats.r5,  g->stats.r10,       g->stats.mean_rank,
                           g->chance_r1, g->chance_r5, g->chance_mean_rank};
    for (int k = 0; k < 7; k++)
        cr_assert_float_eq(got[k], want[k], 1e-12, "figure %d: %.17g, expected %.17g", k, got[k],
                           want[k]);
}

/* Class-aware retrieval on a set whose captions repeat: 4 images (labels 0 0 1 1), one caption
 * each; captions 0 and 1 are the same text ("a cat", identical features), caption 2 "a dog",
 * caption 3 "a puppy". Unit vectors at angles (degrees): images 0 10 100 15, texts 20 20 120
 * 30. By hand (cosine order, ties to the lower index):
 *   own caption (instance, all 4 texts): image->text ranks 1 2 1 3, text->image ranks 3 2 1 1.
 * Class-aware figures are over the 3 distinct captions d0 "a cat" (20), d1 "a dog" (120),
 * d2 "a puppy" (30); class 0 uses {d0}, class 1 {d1, d2}:
 *   image 0: d0 d2 d1   image 1: d0 d2 d1   image 2: d1 d2 d0   image 3: d0 d2 d1
 *   d0: i3 i1 i0 i2     d1: i2 i3 i1 i0     d2: i3 i1 i0 i2
 * by class: image->text 1 1 1 2 (R@1 3/4, mean 5/4; chance R@1 (1/3 1/3 2/3 2/3) -> 1/2),
 *           text->image 2 1 1 (R@1 2/3, mean 4/3; m = 2 of 4 each: chance R@1 1/2, mean 5/3);
 * by caption: image->text 1 1 1 2 (chance R@1 1/3), text->image 2 1 1. */
Test(eval, class_aware_retrieval_by_hand) {
    const float ai[4] = {0, 10, 100, 15}, at[4] = {20, 20, 120, 30};
    float img[8], txt[8];
    int64_t labels[4] = {0, 0, 1, 1}, owner[4];
    uint64_t group[4] = {0xCA7, 0xCA7, 0xD06, 0x9099};
    clasp_eval_set set = angle_set_(4, ai, at, img, txt, owner, labels, group);
    clasp_retrieval_result rr;
    cr_assert_eq(clasp_retrieval_metrics(img, 4, txt, owner, 4, 2, &rr), CLASP_OK);
    cr_assert_float_eq(rr.i2t.r1, 0.5, 1e-12);
    cr_assert_float_eq(rr.i2t.mean_rank, 7.0 / 4, 1e-12);
    cr_assert_float_eq(rr.t2i.r1, 0.5, 1e-12);
    cr_assert_float_eq(rr.t2i.mean_rank, 7.0 / 4, 1e-12);
    clasp_group_retrieval i2t, t2i;
    cr_assert_eq(clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CLASS, &i2t, &t2i), CLASP_OK);
    cr_assert_eq(i2t.stats.n, 4);
    cr_assert_eq(i2t.n_gallery, 3); /* distinct captions */
    cr_assert_float_eq(i2t.stats.r1, 0.75, 1e-12);
    cr_assert_float_eq(i2t.stats.mean_rank, 5.0 / 4, 1e-12);
    cr_assert_float_eq(i2t.chance_r1, 0.5, 1e-12);
    cr_assert_float_eq(i2t.mean_relevant, 1.5, 1e-12);
    cr_assert_eq(t2i.stats.n, 3);
    cr_assert_eq(t2i.n_gallery, 4);
    cr_assert_float_eq(t2i.stats.r1, 2.0 / 3, 1e-12);
    cr_assert_float_eq(t2i.stats.mean_rank, 4.0 / 3, 1e-12);
    cr_assert_float_eq(t2i.chance_r1, 0.5, 1e-12);
    cr_assert_float_eq(t2i.chance_mean_rank, 5.0 / 3, 1e-12);
    cr_assert_eq(clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CAPTION, &i2t, &t2i), CLASP_OK);
    cr_assert_float_eq(i2t.stats.r1, 0.75, 1e-12);
    cr_assert_float_eq(i2t.chance_r1, 1.0 / 3, 1e-12);
    cr_assert_float_eq(t2i.stats.r1, 2.0 / 3, 1e-12);
    cr_assert_float_eq(t2i.stats.mean_rank, 4.0 / 3, 1e-12);
    /* image 3 without a label: it and "a puppy" (only its caption) are left out as queries and
     * answer nobody; image 2 (label 1) is answered by d1 alone: rank 1 */
    labels[3] = -1;
    cr_assert_eq(clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CLASS, &i2t, &t2i), CLASP_OK);
    cr_assert_eq(i2t.stats.n, 3);
    cr_assert_eq(i2t.unmatched, 1);
    cr_assert_float_eq(i2t.stats.r1, 1.0, 1e-12);
    cr_assert_eq(t2i.unmatched, 1);
    cr_assert_float_eq(t2i.stats.r1, 0.5, 1e-12); /* d0: rank 2 (i3 first); d1: 1 */
    /* the instance-level metric ignores labels and groups */
    clasp_retrieval_result rr2;
    cr_assert_eq(clasp_retrieval_metrics(img, 4, txt, owner, 4, 2, &rr2), CLASP_OK);
    cr_assert(!memcmp(&rr, &rr2, sizeof rr));
    /* no label at all: nothing to match by class */
    for (int i = 0; i < 4; i++) labels[i] = -1;
    cr_assert_eq(clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CLASS, &i2t, &t2i),
                 CLASP_ERR_FORMAT);
}

/* Repeated captions, misclassified images and a caption two classes use, over the distinct
 * captions. Classes A=0 B=1 C=2; 10 images, one caption each (angles in degrees):
 *   i0 A 5 "A1"   i1 A 25 "A2"  i2 A 350 "A1"  i3 B 105 "B1"  i4 B 125 "B2"
 *   i5 B 150 "S"  i6 C 205 "C1" i7 C 170 "S"   i8 B 12 "B1"   i9 C 65 "C2"
 * distinct captions (first-occurrence order) d0 A1 0, d1 A2 20, d2 B1 100, d3 B2 120, d4 S 160,
 * d5 C1 200, d6 C2 240. Class A uses {A1 A2}, B {B1 B2 S}, C {C1 S C2}: S answers B and C.
 * By hand (angular distance):
 *   i8 (B, looks like an A): A2 8, A1 12, B1 88: rank 3 by class and by caption;
 *   i9 (C): B1 35, A2 45, B2 55, A1 65, S 95, C1 135, C2 175: rank 5 by class (S), 7 by
 *   caption (C2); every other image has a relevant caption nearest (rank 1).
 *   C2 (240) -> images: i6 35 i7 70 i5 90 i2 110 i4 115 i0 125 i8 132 i3 135 i1 145 i9 175,
 *   so by caption C2 finds i9 at rank 10; every other caption's own image is nearest.
 * by class, image->text (N = 7): ranks 1 x8, 3, 5: R@1 8/10, R@5 1 (i8 and i9 miss at 1, not
 *   at 5: R@5 differs from R@1); m = 2 for A images, 3 for B and C:
 *   chance R@1 (3*2 + 7*3)/10/7 = 27/70, R@5 (3*(1 - 1/21) + 7*1)/10 = 69/70, mean rank
 *   (3*8/3 + 7*8/4)/10 = 11/5.
 * by class, text->image (7 queries, N = 10): all rank 1; m = 3 3 4 4 7 3 3 (S: 4 B + 3 C),
 *   mean relevant 27/7: chance R@1 27/70, R@5 (4*(1 - 21/252) + 2*(1 - 6/252) + 1)/7 =
 *   139/147, mean rank (4*11/4 + 2*11/5 + 11/8)/7 = 671/280.
 * by caption, image->text: ranks 1 x8, 3, 7: R@1 8/10, R@5 9/10, mean 18/10; m = 1 of 7:
 *   chance R@1 1/7, R@5 5/7, mean rank 4.
 * by caption, text->image: ranks 1 x6, 10: R@1 = R@5 = 6/7, R@10 1, mean 16/7; m = 2 1 2 1 2
 *   1 1: chance R@1 10/70, R@5 (4*1/2 + 3*(1 - C(8,5)/C(10,5)))/7 = 13/21, mean
 *   (4*11/2 + 3*11/3)/7 = 33/7. */
Test(eval, class_aware_retrieval_distinct_captions_by_hand) {
    const float ai[10] = {5, 25, 350, 105, 125, 150, 205, 170, 12, 65};
    const float ac[7] = {0, 20, 100, 120, 160, 200, 240}; /* A1 A2 B1 B2 S C1 C2 */
    const int cap[10] = {0, 1, 0, 2, 3, 4, 5, 4, 2, 6};   /* each image's caption */
    int64_t labels[10] = {0, 0, 0, 1, 1, 1, 2, 2, 1, 2}, owner[10];
    float at[10], img[20], txt[20];
    uint64_t group[10];
    for (int i = 0; i < 10; i++) {
        at[i] = ac[cap[i]];
        group[i] = 0x5EED0000u + (uint64_t)cap[i] * 7919u; /* equal texts, equal ids */
    }
    clasp_eval_set set = angle_set_(10, ai, at, img, txt, owner, labels, group);
    clasp_group_retrieval i2t, t2i;
    cr_assert_eq(clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CLASS, &i2t, &t2i), CLASP_OK);
    expect_group_(&i2t, 10, 7, (const double[7]){0.8, 1, 1, 1.6, 27.0 / 70, 69.0 / 70, 11.0 / 5});
    cr_assert_eq(i2t.unmatched, 0);
    expect_group_(&t2i, 7, 10, (const double[7]){1, 1, 1, 1, 27.0 / 70, 139.0 / 147, 671.0 / 280});
    cr_assert_float_eq(t2i.mean_relevant, 27.0 / 7, 1e-12);
    cr_assert_eq(clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CAPTION, &i2t, &t2i), CLASP_OK);
    expect_group_(&i2t, 10, 7, (const double[7]){0.8, 0.9, 1, 1.8, 1.0 / 7, 5.0 / 7, 4});
    expect_group_(&t2i, 7, 10,
                  (const double[7]){6.0 / 7, 6.0 / 7, 1, 16.0 / 7, 1.0 / 7, 13.0 / 21, 33.0 / 7});
    /* i9 without a label: it is left out as a query, and so is C2, which only it uses; class C
     * is now {i6 i7}, using {C1 S}: image->text m = 2 2 2 3 3 3 2 2 3 of 7, chance R@1
     * 22/63 */
    labels[9] = -1;
    cr_assert_eq(clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CLASS, &i2t, &t2i), CLASP_OK);
    cr_assert_eq(i2t.stats.n, 9);
    cr_assert_eq(i2t.unmatched, 1);
    cr_assert_float_eq(i2t.stats.r1, 8.0 / 9, 1e-12);
    cr_assert_float_eq(i2t.chance_r1, 22.0 / 63, 1e-12);
    cr_assert_eq(t2i.stats.n, 6);
    cr_assert_eq(t2i.unmatched, 1);
    cr_assert_float_eq(t2i.mean_relevant, (3 + 3 + 4 + 4 + 6 + 2) / 6.0, 1e-12);
}

Test(eval, search_topk_matches_brute_force) {
    const int64_t N = 1000;
    const int D = 8;
    float *X = malloc(N * D * sizeof(float)), q[3 * 8];
    random_unit_(X, N, D, 5);
    random_unit_(q, 3, D, 6);
    memcpy(X + 500 * D, X + 20 * D, D * sizeof(float)); /* a tie: row 20 must come first */
    memcpy(q + 2 * D, X + 20 * D, D * sizeof(float));
    for (int Q = 1; Q <= 3; Q += 2) {
        int64_t idx[3 * 5];
        float sc[3 * 5];
        cr_assert_eq(clasp_search_topk(X, N, D, q, Q, 5, idx, sc), CLASP_OK);
        for (int qi = 0; qi < Q; qi++) {
            /* brute force in double: scores non-increasing and nothing better left out */
            for (int k = 0; k < 5; k++) {
                cr_assert(fabs((double)sc[qi * 5 + k] -
                               dot_(X + idx[qi * 5 + k] * D, q + qi * D, D)) < 1e-5);
                if (k) cr_assert(sc[qi * 5 + k] <= sc[qi * 5 + k - 1]);
            }
            int better = 0;
            for (int64_t i = 0; i < N; i++)
                better += dot_(X + i * D, q + qi * D, D) > (double)sc[qi * 5 + 4] + 1e-5;
            cr_assert_leq(better, 4);
        }
        if (Q == 3) {
            cr_assert_eq(idx[10], 20);
            cr_assert_eq(idx[11], 500);
        }
    }
    /* k beyond N pads with -1 */
    int64_t idx[4];
    float sc[4];
    cr_assert_eq(clasp_search_topk(X, 2, D, q, 1, 4, idx, sc), CLASP_OK);
    cr_assert(idx[0] >= 0 && idx[1] >= 0 && idx[2] == -1 && idx[3] == -1);
    cr_assert(isinf(sc[3]));
    free(X);
}

Test(eval, linear_probe_separable_and_deterministic) {
    /* 4 classes around 4 random unit centres, noisy; train and test drawn alike */
    const int D = 12, K = 4;
    const int64_t ntr = 400, nte = 200;
    float cent[4 * 12];
    random_unit_(cent, K, D, 9);
    float *xtr = malloc(ntr * D * sizeof(float)), *xte = malloc(nte * D * sizeof(float));
    int64_t *ytr = malloc(ntr * sizeof(int64_t)), *yte = malloc(nte * sizeof(int64_t));
    float *noise = malloc((ntr + nte) * D * sizeof(float));
    random_unit_(noise, ntr + nte, D, 10);
    for (int64_t i = 0; i < ntr + nte; i++) {
        int64_t y = i % K;
        float *x = i < ntr ? xtr + i * D : xte + (i - ntr) * D;
        for (int d = 0; d < D; d++) x[d] = cent[y * D + d] + 0.5f * noise[i * D + d];
        if (i < ntr)
            ytr[i] = y;
        else
            yte[i - ntr] = y;
    }
    ytr[3] = -1; /* an unlabelled row is ignored */
    clasp_probe_options o = clasp_probe_default_options();
    clasp_probe_result a, b;
    cr_assert_eq(clasp_linear_probe(xtr, ytr, ntr, xte, yte, nte, D, &o, &a), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(a.n_classes, K);
    cr_assert_eq(a.n_train, ntr - 1);
    cr_assert_eq(a.n_test, nte);
    cr_assert(a.test_accuracy > 0.9, "test accuracy %g", a.test_accuracy);
    cr_assert(a.train_accuracy > 0.9, "train accuracy %g", a.train_accuracy);
    cr_assert(a.loss < log(4.0) * 0.5, "loss %g did not decrease from ln 4", a.loss);
    cr_assert_eq(clasp_linear_probe(xtr, ytr, ntr, xte, yte, nte, D, &o, &b), CLASP_OK);
    cr_assert(a.loss == b.loss && a.test_accuracy == b.test_accuracy);
    /* more iterations never raise the objective */
    o.max_iter = 50;
    cr_assert_eq(clasp_linear_probe(xtr, ytr, ntr, xte, yte, nte, D, &o, &b), CLASP_OK);
    cr_assert(b.loss >= a.loss - 1e-6, "50 iterations %g vs %d iterations %g", b.loss, a.iterations,
              a.loss);
    /* one class only is refused */
    for (int64_t i = 0; i < ntr; i++) ytr[i] = 0;
    cr_assert_eq(clasp_linear_probe(xtr, ytr, ntr, xte, yte, nte, D, NULL, &b), CLASP_ERR_ARG);
    free(xtr), free(xte), free(ytr), free(yte), free(noise);
}

/* ---- shards ---- */

/* Writes a shard of n samples: random 28x28 gray PNG, label i % 3, and either a txt caption or
 * a json with "captions" (i % 2 == 1: two captions). Sample 4 has a corrupt image. */
static void write_shard_(const char *path, int n) {
    fx_member *m = calloc((size_t)n * 3, sizeof *m);
    char **names = calloc((size_t)n * 3, sizeof *names);
    void **bufs = calloc((size_t)n * 3, sizeof *bufs);
    int k = 0;
    clasp_rng r;
    clasp_rng_init(&r, 77, 0, 0, 0);
    for (int i = 0; i < n; i++) {
        uint8_t px[28 * 28];
        for (int p = 0; p < 28 * 28; p++) px[p] = (uint8_t)(clasp_rng_u32(&r) & 0xff);
        size_t np;
        uint8_t *png = fx_png(px, 28, 28, 1, &np);
        cr_assert_not_null(png);
        if (i == 4) png[np / 2] ^= 0xff, np = 40; /* truncated PNG: skipped */
        names[k] = malloc(64);
        snprintf(names[k], 64, "s%03d.png", i);
        bufs[k] = png;
        m[k] = (fx_member){names[k], png, np, 0};
        k++;
        char *lab = malloc(8);
        snprintf(lab, 8, "%d", i % 3);
        names[k] = malloc(64);
        snprintf(names[k], 64, "s%03d.cls", i);
        bufs[k] = lab;
        m[k] = (fx_member){names[k], lab, strlen(lab), 0};
        k++;
        char *txt = malloc(256);
        names[k] = malloc(64);
        if (i % 2) {
            snprintf(txt, 256, "{\"captions\": [\"first caption %d\", \"second caption %d\"]}", i,
                     i);
            snprintf(names[k], 64, "s%03d.json", i);
        } else {
            snprintf(txt, 256, "caption of sample %d", i);
            snprintf(names[k], 64, "s%03d.txt", i);
        }
        bufs[k] = txt;
        m[k] = (fx_member){names[k], txt, strlen(txt), 0};
        k++;
    }
    cr_assert(fx_write_tar(path, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, (size_t)k));
    for (int i = 0; i < k; i++) free(names[i]), free(bufs[i]);
    free(names), free(bufs), free(m);
}

static void make_model_dir_(const char *dir) {
    char cfgp[1100];
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    cr_assert(fx_export_model(cfgp, NULL, dir, 4), "%s", clasp_last_error());
}

Test(eval, collect_first_and_all_captions) {
    char tmp[1024], shard[1100], dir[1100];
    fx_scratch("eval_collect", tmp, shard, "s.tar", dir, "export", NULL);
    write_shard_(shard, 12);
    make_model_dir_(dir);
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(dir, 2, 4, &em), CLASP_OK, "%s", clasp_last_error());
    clasp_eval_set a, b;
    cr_assert_eq(clasp_eval_collect(&em.engine, &em.pre, shard, CLASP_EVAL_TEXT_FIRST, 2, &a),
                 CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(a.n, 11); /* sample 4 skipped */
    cr_assert_eq(a.skipped, 1);
    cr_assert_eq(a.n_txt, 11);
    cr_assert_str_eq(a.keys[4], "s005");
    cr_assert_eq(a.labels[4], 2);
    cr_assert_eq(clasp_eval_collect(&em.engine, &em.pre, shard, CLASP_EVAL_TEXT_ALL, 1, &b),
                 CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(b.n, 11);
    /* odd samples have two captions: 6 odd of the 11 kept (1 3 5 7 9 11) */
    cr_assert_eq(b.n_txt, 11 + 6);
    /* images agree; each caption's features equal embedding its text directly */
    cr_assert(clasp_test_check_tensor("images", b.img, a.img, (size_t)a.n * a.D, 1e-6, 0));
    char texts[17][64];
    const char *tp[17];
    int t = 0;
    for (int i = 0; i < 12; i++) {
        if (i == 4) continue;
        if (i % 2) {
            snprintf(texts[t], 64, "first caption %d", i);
            tp[t] = texts[t], t++;
            snprintf(texts[t], 64, "second caption %d", i);
        } else {
            snprintf(texts[t], 64, "caption of sample %d", i);
        }
        tp[t] = texts[t], t++;
    }
    cr_assert_eq(t, 17);
    float *z = malloc(17 * (size_t)a.D * sizeof(float));
    cr_assert_eq(clasp_embedder_texts(&em, tp, 17, z), CLASP_OK);
    cr_assert(clasp_test_check_tensor("all captions", b.txt, z, 17 * (size_t)a.D, 1e-6, 0));
    cr_assert_eq(b.txt_owner[0], 0);
    cr_assert_eq(b.txt_owner[1], 1);
    cr_assert_eq(b.txt_owner[2], 1);
    cr_assert_eq(b.txt_owner[16], 10);
    /* first-caption texts are the first of each sample */
    cr_assert(clasp_test_check_tensor("first caption", a.txt + (size_t)1 * a.D, z + (size_t)1 * a.D,
                                      (size_t)a.D, 1e-6, 0));
    /* zero-shot through the set equals clasp_eval_zeroshot on the spec */
    char cls[1100];
    snprintf(cls, sizeof cls, "%s/classes.txt", tmp);
    cr_assert(fx_write_str(cls, "caption of sample\nfirst caption\nsecond caption\n"));
    clasp_zeroshot_result zr, zs;
    cr_assert_eq(clasp_eval_zeroshot(&em.engine, &em.pre, shard, cls, NULL, 1, &zr), CLASP_OK, "%s",
                 clasp_last_error());
    char *names[3] = {"caption of sample", "first caption", "second caption"};
    float cemb[3 * 128];
    cr_assert_eq(clasp_eval_class_embeddings(&em.engine, &em.pre, names, 3, NULL, 0, cemb),
                 CLASP_OK);
    double rec[3];
    int64_t cnt[3];
    cr_assert_eq(clasp_eval_zeroshot_set(&a, cemb, 3, &zs, rec, cnt), CLASP_OK);
    cr_assert_eq(zr.n, 11);
    cr_assert_float_eq(zr.top1, zs.top1, 1e-12);
    cr_assert_float_eq(zr.mean_recall, zs.mean_recall, 1e-12);
    cr_assert_float_eq(zs.top5, 1.0, 1e-12); /* 3 classes */
    cr_assert_eq(cnt[0] + cnt[1] + cnt[2], 11);
    cr_assert_eq(cnt[1], 3); /* labels 1: samples 1 4(skipped) 7 10 */
    double mean = 0;
    for (int c = 0; c < 3; c++) mean += rec[c] / 3;
    cr_assert_float_eq(mean, zs.mean_recall, 1e-12);
    free(z);
    clasp_eval_set_free(&a);
    clasp_eval_set_free(&b);
    clasp_embedder_close(&em);
}

Test(eval, cli_eval_appends_to_run_metrics) {
    char tmp[1024], shard[1100], run[1100], mp[1200];
    clasp_test_tmpdir("eval_cli", tmp, sizeof tmp);
    snprintf(shard, sizeof shard, "%s/s.tar", tmp);
    snprintf(run, sizeof run, "%s/run", tmp);
    write_shard_(shard, 10);
    /* a run folder with one checkpoint */
    char cfgp[1100];
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    /* a checkpoint of the parameters alone (no optimiser state) */
    cr_assert(fx_checkpoint_model(cfgp, 8, 3, run, NULL), "%s", clasp_last_error());
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", run);
    cr_assert(fx_write_str(mp, "{\"step\": 3, \"loss\": 1.0}\n"));
    char cls[1100], *out;
    snprintf(cls, sizeof cls, "%s/classes.txt", tmp);
    cr_assert(fx_write_str(cls, "zero\none\ntwo\n"));
    cr_assert_eq(fx_clasp(&out,
                          "eval --model %s --data %s --zeroshot %s --retrieval --all-captions "
                          "--probe-train %s --threads 1 --batch-size 4 --json",
                          run, shard, cls, shard),
                 0);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    free(out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "eval");
    cr_assert_eq(cJSON_GetObjectItem(j, "step")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(j, "n")->valueint, 9);
    const cJSON *r = cJSON_GetObjectItem(j, "retrieval");
    cr_assert(r);
    cr_assert_eq(cJSON_GetObjectItem(r, "n_texts")->valueint, 9 + 5); /* odd: 1 3 5 7 9 */
    const cJSON *i2t = cJSON_GetObjectItem(r, "image_to_text");
    cr_assert(cJSON_GetObjectItem(i2t, "r10")->valuedouble >=
              cJSON_GetObjectItem(i2t, "r1")->valuedouble);
    /* class-aware figures beside the instance ones: labels 0..2, 9 images, 14 texts */
    const cJSON *bc = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "by_class"), "image_to_text");
    cr_assert(bc);
    cr_assert_eq(cJSON_GetObjectItem(bc, "n_gallery")->valueint, 14); /* 14 distinct texts */
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "by_class"), "n_captions")->valueint,
                 14);
    cr_assert(cJSON_GetObjectItem(bc, "r1")->valuedouble >=
              cJSON_GetObjectItem(i2t, "r1")->valuedouble);
    cr_assert(cJSON_GetObjectItem(bc, "chance_r1")->valuedouble > 0.2);
    cr_assert(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "by_caption"), "text_to_image"));
    const cJSON *z = cJSON_GetObjectItem(j, "zeroshot");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(z, "per_class")), 3);
    const cJSON *p = cJSON_GetObjectItem(j, "probe");
    cr_assert_eq(cJSON_GetObjectItem(p, "n_classes")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(p, "n_train")->valueint, 9);
    cJSON_Delete(j);
    /* the same object was appended to the run's metrics.jsonl as its second line */
    char *text;
    size_t n;
    cr_assert_eq(clasp_read_file(mp, 1 << 20, &text, &n), CLASP_OK);
    char *second = strchr(text, '\n');
    cr_assert(second && second[1]);
    cr_assert(strstr(second + 1, "\"kind\":\"eval\""), "%s", second + 1);
    free(text);
    /* `clasp embed --shards` from the run: one row per usable sample, keys in shard order */
    char npy[1200];
    snprintf(npy, sizeof npy, "%s/shard_images.npy", tmp);
    cr_assert_eq(fx_clasp(NULL, "embed --model %s --shards %s -o %s --batch-size 4 --workers 2",
                          run, shard, npy),
                 0);
    float *x;
    int64_t rows, cols;
    cr_assert_eq(clasp_npy_read_f32(npy, &x, &rows, &cols), CLASP_OK, "%s", clasp_last_error());
    cr_assert(rows == 9 && cols == 128);
    free(x);
    snprintf(npy, sizeof npy, "%s/shard_images.json", tmp);
    cr_assert_eq(clasp_json_load(npy, &j), CLASP_OK);
    const cJSON *keys = cJSON_GetObjectItem(j, "keys");
    cr_assert_eq(cJSON_GetArraySize(keys), 9);
    cr_assert_str_eq(cJSON_GetArrayItem(keys, 4)->valuestring, "s005"); /* s004 is corrupt */
    cr_assert_str_eq(cJSON_GetObjectItem(j, "modality")->valuestring, "image");
    cJSON_Delete(j);
    /* a bad model path fails with a message, exit code 1 */
    cr_assert_eq(fx_clasp(NULL, "eval --model %s/nope --data %s 2>/dev/null", tmp, shard), 1);
}
