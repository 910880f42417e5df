/* bench/layers.c: forward and backward time of every layer of encoders/layers.h at the
 * 'fmnist-small' shapes, batch 256 (../shared/bench/README.md sections 3-4), in fp32 and in
 * bf16 (when this build computes bf16: clasp_compute_check), with achieved GFLOP/s, the ratio
 * to a matmul peak of the same precision measured in the same run (clasp_gemm square NN 1024
 * and 512, best of several timings, as ../shared/bench/sgemm_peak.c), each row's share of one
 * training step, and the Amdahl split of the step (matmul/conv against everything else) per
 * precision.
 *
 *     CLASP_THREADS=1 ./bench_layers [--quick] [--cpu-time] [--precision fp32|bf16]
 *     CLASP_THREADS=2 ./bench_layers
 *
 * Times are medians over repetitions of single calls (after one warm-up call). FLOPs count
 * only the matrix products (2 per multiply-add); element-wise layers print time only.
 * Backward FLOPs: linear/conv 2x forward (dinp + dw), 1x when dinp is not needed (conv1);
 * attention 2x forward. The precision is the calling thread's (clasp_compute_set_precision):
 * in bf16 every product inside the layers rounds its inputs to bf16, the rest stays fp32.
 * Besides the tables, one line per precision for scripts:
 *
 *     amdahl bf16 gemm_ms .. other_ms .. other_pct .. other_ms_per_sample .. step_ms .. peak_gflops
 * ..
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "core/compute.h"
#include "encoders/layers.h"
#include "loss/infonce.h"
#include "train/optim.h"

static int g_reps = 9;

/* --cpu-time: process CPU time instead of wall time (a shared machine time-slices this
 * process; valid for CLASP_THREADS=1, where all work runs on the calling thread) */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now_sec(void) {
    return bench_now(g_clock);
}

static float *buf(size_t n, unsigned seed, float scale) {
    return bench_buf(n, seed, scale);
}

/* ---- sgemm peak ------------------------------------------------------------------------- */

static double sgemm_peak(int n, int ntimings, double min_sec) {
    float *A = buf((size_t)n * n, 1, 1.0f), *B = buf((size_t)n * n, 2, 1.0f);
    float *C = buf((size_t)n * n, 3, 1.0f);
    double flops = 2.0 * n * n * (double)n, best = 1e30;
    long reps = 1;
    for (;;) { /* calibrate: reps calls take >= min_sec */
        double t0 = now_sec();
        for (long i = 0; i < reps; i++) clasp_gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        if (now_sec() - t0 >= min_sec * 0.5) break;
        reps *= 2;
    }
    for (int t = 0; t < ntimings; t++) {
        double t0 = now_sec();
        for (long i = 0; i < reps; i++) clasp_gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double dt = (now_sec() - t0) / (double)reps;
        if (dt < best) best = dt;
    }
    free(A), free(B), free(C);
    return flops / best * 1e-9;
}

/* ---- timing harness ---------------------------------------------------------------------- */

typedef void (*bench_fn)(void *ctx);

static double median_time(bench_fn f, void *ctx) {
    double t[64];
    int reps = g_reps < 64 ? g_reps : 64;
    f(ctx); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_sec();
        f(ctx);
        t[r] = now_sec() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), bench_cmp_double);
    return t[reps / 2];
}

static double g_total_fwd, g_total_bwd;

/* ---- GEMM-alone timing (Amdahl split) ----------------------------------------------------
 * A layer call holds its sgemm calls and its element-wise work together; the bench times the
 * same sgemm calls (same shapes, transposes and repeat counts) alone, and the rest of the
 * layer's time is counted as non-GEMM. g_gemm accumulates the GEMM-alone time (fwd + bwd) of
 * the rows timed since it was last reset. */
typedef struct gemm_call {
    int ta, tb, M, N, K, reps;
} gemm_call;

typedef struct gemm_set {
    const gemm_call *c;
    int n;
    float *A, *B, *C;
} gemm_set;

static void gemm_run(void *q) {
    gemm_set *g = q;
    for (int i = 0; i < g->n; i++) {
        const gemm_call *k = &g->c[i];
        int lda = k->ta ? k->M : k->K, ldb = k->tb ? k->K : k->N;
        for (int r = 0; r < k->reps; r++)
            clasp_gemm(k->ta, k->tb, k->M, k->N, k->K, 1.0f, g->A, lda, g->B, ldb, 0.0f, g->C,
                       k->N);
    }
}

static double g_gemm;

static double gemm_time(const gemm_call *c, int n) {
    size_t ma = 1, mb = 1, mc = 1;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)c[i].M * c[i].K, b = (size_t)c[i].K * c[i].N,
               o = (size_t)c[i].M * c[i].N;
        ma = a > ma ? a : ma, mb = b > mb ? b : mb, mc = o > mc ? o : mc;
    }
    gemm_set g = {.c = c, .n = n, .A = buf(ma, 71, 1), .B = buf(mb, 72, 1), .C = buf(mc, 73, 0)};
    double t = median_time(gemm_run, &g);
    free(g.A), free(g.B), free(g.C);
    g_gemm += t;
    return t;
}

/* ---- results: one row per timed call, filled once per precision ------------------------- */

/* A row of the tables. `mult` is how often the row's time counts in one training step (0: not
 * in the model, e.g. unfused variants; 2: the text tower's two blocks); `part` rows are the
 * pieces of the whole-block row, already counted there; `total` rows are sums of rows above. */
typedef struct row {
    const char *name;
    char shape[40];
    double ff, fb; /* matmul FLOPs of one fwd / bwd call (0: element-wise) */
    int has_bwd, mult, part, total;
    double tf[2], tb[2]; /* seconds per call, [precision] */
} row;

enum { MAX_ROWS = 64 };
static row g_rows[MAX_ROWS];
static int g_nrows, g_pi;  /* rows filled in this pass; this pass's precision */
static int g_mult, g_part; /* attributes of the rows timed next */
static double g_peak[2];

static row *next_row(const char *name, const char *shape) {
    if (g_nrows >= MAX_ROWS) {
        fprintf(stderr, "bench_layers: more than %d rows\n", MAX_ROWS);
        exit(1);
    }
    row *r = &g_rows[g_nrows++];
    r->name = name;
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->mult = g_mult, r->part = g_part;
    return r;
}

static void report(const char *name, const char *shape, bench_fn fwd, bench_fn bwd, void *ctx,
                   double fwd_flops, double bwd_flops) {
    double tf = median_time(fwd, ctx);
    double tb = bwd ? median_time(bwd, ctx) : 0.0;
    g_total_fwd += tf;
    g_total_bwd += tb;
    row *r = next_row(name, shape);
    r->ff = fwd_flops, r->fb = bwd_flops, r->has_bwd = bwd != NULL;
    r->tf[g_pi] = tf, r->tb[g_pi] = tb;
}

/* a row that sums rows above (printed, never counted in the step again) */
static void total_row(const char *name, const char *shape, double tf, double tb) {
    row *r = next_row(name, shape);
    r->total = 1, r->mult = 0, r->has_bwd = 1;
    r->tf[g_pi] = tf, r->tb[g_pi] = tb;
}

/* ---- layer contexts ---------------------------------------------------------------------- */

typedef struct lin_b {
    float *out, *inp, *w, *b, *dout, *dinp, *dw, *db;
    int N, C, OC;
} lin_b;

static void lin_f(void *p) {
    lin_b *c = p;
    clasp_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
}

static void lin_bw(void *p) {
    lin_b *c = p;
    clasp_linear_backward(c->dinp, c->dw, c->db, c->dout, c->inp, c->w, c->N, c->C, c->OC);
}

static void bench_linear(const char *name, int N, int C, int OC) {
    lin_b c = {.N = N, .C = C, .OC = OC};
    size_t ni = (size_t)N * C, no = (size_t)N * OC, nw = (size_t)OC * C;
    c.out = buf(no, 1, 1), c.inp = buf(ni, 2, 1), c.w = buf(nw, 3, 0.1f), c.b = buf(OC, 4, 1);
    c.dout = buf(no, 5, 1), c.dinp = buf(ni, 6, 0), c.dw = buf(nw, 7, 0), c.db = buf(OC, 8, 0);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d -> %d", N, C, OC);
    double f = 2.0 * N * C * (double)OC;
    report(name, shape, lin_f, lin_bw, &c, f, 2 * f);
    gemm_call g[3] = {{0, 1, N, OC, C, 1}, {0, 0, N, C, OC, 1}, {1, 0, OC, C, N, 1}};
    gemm_time(g, 3);
    free(c.out), free(c.inp), free(c.w), free(c.b), free(c.dout), free(c.dinp), free(c.dw),
        free(c.db);
}

typedef struct conv_b {
    float *out, *work, *inp, *w, *b, *dout, *dinp, *dw, *db;
    int B, C, H, W, OC, K, s, p;
} conv_b;

static void conv_f(void *q) {
    conv_b *c = q;
    clasp_conv2d_forward(c->out, c->work, c->inp, c->w, c->b, c->B, c->C, c->H, c->W, c->OC, c->K,
                         c->K, c->s, c->p);
}

static void conv_bw(void *q) {
    conv_b *c = q;
    clasp_conv2d_backward(c->dinp, c->dw, c->db, c->work, c->dout, c->inp, c->w, c->B, c->C, c->H,
                          c->W, c->OC, c->K, c->K, c->s, c->p);
}

static void bench_conv(const char *name, int B, int C, int H, int W, int OC, int need_dinp) {
    conv_b c = {.B = B, .C = C, .H = H, .W = W, .OC = OC, .K = 3, .s = 1, .p = 1};
    size_t ni = (size_t)B * C * H * W, no = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
    c.out = buf(no, 1, 1), c.inp = buf(ni, 2, 1), c.w = buf(nw, 3, 0.1f), c.b = buf(OC, 4, 1);
    c.work = buf(clasp_conv2d_work_floats(B, C, H, W, 3, 3, 1, 1), 9, 0);
    c.dout = buf(no, 5, 1), c.dinp = need_dinp ? buf(ni, 6, 0) : NULL, c.dw = buf(nw, 7, 0);
    c.db = buf(OC, 8, 0);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%dx%d -> %d%s", B, C, H, W, OC,
             need_dinp ? "" : " (no dX)");
    double f = 2.0 * B * OC * (double)H * W * C * 9;
    report(name, shape, conv_f, conv_bw, &c, f, need_dinp ? 2 * f : f);
    int P = H * W, CK = C * 9; /* K 3, stride 1, pad 1: same size; one sgemm per image */
    gemm_call g[3] = {{0, 0, OC, P, CK, B}, {0, 1, OC, CK, P, B}, {1, 0, CK, P, OC, B}};
    gemm_time(g, need_dinp ? 3 : 2);
    free(c.out), free(c.work), free(c.inp), free(c.w), free(c.b), free(c.dout), free(c.dinp),
        free(c.dw), free(c.db);
}

typedef struct elem_b {
    float *out, *inp, *dout, *dinp, *w, *b, *mean, *rstd, *dw, *db;
    int32_t *idx, *tok;
    size_t n;
    int B, C, H, W, T, kind;
} elem_b;

enum { K_RELU, K_GELU, K_GELU_TANH, K_MAXPOOL, K_RELUPOOL, K_LN, K_EMB, K_L2, K_GATHER, K_DROPOUT };

static void elem_f(void *q) {
    elem_b *c = q;
    switch (c->kind) {
    case K_RELU:
        clasp_relu_forward(c->out, c->inp, c->n);
        break;
    case K_GELU:
        clasp_gelu_forward(c->out, c->inp, c->n);
        break;
    case K_GELU_TANH:
        clasp_gelu_tanh_forward(c->out, c->inp, c->n);
        break;
    case K_MAXPOOL:
        clasp_maxpool2d_forward(c->out, c->idx, c->inp, c->B, c->C, c->H, c->W, 2, 2);
        break;
    case K_RELUPOOL:
        clasp_relu_maxpool2d_forward(c->out, c->idx, c->inp, c->B, c->C, c->H, c->W, 2, 2);
        break;
    case K_LN:
        clasp_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->B * c->T, c->C,
                                1e-5f);
        break;
    case K_EMB:
        clasp_embedding_forward(c->out, c->tok, c->w, c->b, c->B, c->T, c->C);
        break;
    case K_L2:
        clasp_l2norm_forward(c->out, c->mean, c->inp, c->B, c->C, 1e-12f);
        break;
    case K_GATHER:
        clasp_gather_tokens_forward(c->out, c->inp, c->tok, c->B, c->T, c->C);
        break;
    case K_DROPOUT:
        clasp_dropout_forward(c->out, c->inp, c->n, 0.1f, 1, 2, 3);
        break;
    }
}

static void elem_bw(void *q) {
    elem_b *c = q;
    switch (c->kind) {
    case K_RELU:
        clasp_relu_backward(c->dinp, c->dout, c->out, c->n);
        break;
    case K_GELU:
        clasp_gelu_backward(c->dinp, c->dout, c->inp, c->n);
        break;
    case K_GELU_TANH:
        clasp_gelu_tanh_backward(c->dinp, c->dout, c->inp, c->n);
        break;
    case K_MAXPOOL:
        clasp_maxpool2d_backward(c->dinp, c->dout, c->idx, c->B, c->C, c->H, c->W, 2, 2);
        break;
    case K_RELUPOOL:
        clasp_relu_maxpool2d_backward(c->dinp, c->dout, c->idx, c->out, c->B, c->C, c->H, c->W, 2,
                                      2);
        break;
    case K_LN:
        clasp_layernorm_backward(c->dinp, c->dw, c->db, c->dout, c->inp, c->w, c->mean, c->rstd,
                                 c->B * c->T, c->C);
        break;
    case K_EMB:
        clasp_embedding_backward(c->dw, c->db, c->dout, c->tok, c->B, c->T, c->C);
        break;
    case K_L2:
        clasp_l2norm_backward(c->dinp, c->dout, c->out, c->mean, c->B, c->C);
        break;
    case K_GATHER:
        clasp_gather_tokens_backward(c->dinp, c->dout, c->tok, c->B, c->T, c->C);
        break;
    case K_DROPOUT:
        clasp_dropout_backward(c->dinp, c->dout, c->n, 0.1f, 1, 2, 3);
        break;
    }
}

/* n = input elements; nout = output elements */
static void bench_elem(const char *name, const char *shape, elem_b *c, size_t nin, size_t nout) {
    c->inp = buf(nin, 1, 4), c->out = buf(nout, 2, 1), c->dout = buf(nout, 3, 1);
    c->dinp = buf(nin, 4, 0);
    c->mean = buf(nin, 5, 0), c->rstd = buf(nin, 6, 0);
    c->idx = calloc(nout, sizeof(int32_t));
    report(name, shape, elem_f, elem_bw, c, 0, 0);
    free(c->inp), free(c->out), free(c->dout), free(c->dinp), free(c->mean), free(c->rstd),
        free(c->idx);
}

typedef struct att_b {
    float *out, *att, *work, *qkv, *dout, *dqkv;
    int B, T, C, NH;
} att_b;

static void att_f(void *q) {
    att_b *c = q;
    clasp_attention_forward(c->out, c->att, c->work, c->qkv, NULL, 1, c->B, c->T, c->C, c->NH);
}

static void att_bw(void *q) {
    att_b *c = q;
    clasp_attention_backward(c->dqkv, c->work, c->dout, c->qkv, c->att, c->B, c->T, c->C, c->NH);
}

typedef struct blk_b {
    clasp_block_dims d;
    clasp_block_params p, g;
    clasp_block_acts a;
    float *acts, *work, *inp, *out, *dout, *dinp;
} blk_b;

static void blk_f(void *q) {
    blk_b *c = q;
    clasp_block_forward(c->out, &c->a, c->work, c->inp, &c->p, NULL, &c->d);
}

static void blk_bw(void *q) {
    blk_b *c = q;
    clasp_block_backward(c->dinp, &c->g, c->work, c->dout, c->inp, &c->a, &c->p, &c->d);
}

typedef struct loss_b {
    float *A, *B, *dA, *dB, *work;
    int N, D;
} loss_b;

static void loss_f(void *q) {
    loss_b *c = q;
    float loss = 0, dls = 0;
    (void)clasp_infonce(&loss, c->dA, c->dB, &dls, c->A, c->B, 2.659f, NULL, (size_t)c->N,
                        (size_t)c->D, c->work);
}

typedef struct opt_b {
    clasp_adamw o;
    clasp_param_seg seg;
    float *p, *g;
    size_t n;
} opt_b;

static void opt_f(void *q) {
    opt_b *c = q;
    clasp_adamw_step(&c->o, c->p, c->g, &c->seg, 1, 1e-4);
}

/* The Amdahl split of one training step in one precision (seconds). */
typedef struct split {
    double gemm, other, step;
} split;

/* Times every layer, the loss and the optimizer in the calling thread's precision (pass pi),
 * filling g_rows[] (the same rows in the same order on every pass) and *sp. */
static void run_pass(int pi, split *sp) {
    g_pi = pi, g_nrows = 0, g_mult = 0, g_part = 0;
    g_total_fwd = g_total_bwd = 0, g_gemm = 0;
    const int B = 256, T = 32, C = 128, NH = 4, F = 512, V = 259;
    /* ---- image tower ---- */
    g_mult = 1, g_part = 0;
    bench_conv("conv1", B, 1, 28, 28, 32, 0);
    /* the CNN tower runs ReLU + max pool fused (clasp_relu_maxpool2d_*) */
    elem_b e = {.B = B, .C = 32, .H = 28, .W = 28, .kind = K_RELUPOOL};
    bench_elem("relu+maxpool1", "256x32x28x28 k2s2", &e, (size_t)B * 32 * 28 * 28,
               (size_t)B * 32 * 14 * 14);
    bench_conv("conv2", B, 32, 14, 14, 64, 1);
    e = (elem_b){.B = B, .C = 64, .H = 14, .W = 14, .kind = K_RELUPOOL};
    bench_elem("relu+maxpool2", "256x64x14x14 k2s2", &e, (size_t)B * 64 * 14 * 14,
               (size_t)B * 64 * 7 * 7);
    bench_linear("fc1", B, 3136, 256);
    bench_linear("fc2", B, 256, 128);
    double img_f = g_total_fwd, img_b = g_total_bwd, img_g = g_gemm;
    total_row("image total", "", img_f, img_b);
    g_mult = 0; /* unfused variants, not in the model */
    e = (elem_b){.n = (size_t)B * 32 * 28 * 28, .kind = K_RELU};
    bench_elem("relu1", "256x32x28x28 (unfused)", &e, e.n, e.n);
    e = (elem_b){.B = B, .C = 32, .H = 28, .W = 28, .kind = K_MAXPOOL};
    bench_elem("maxpool1", "256x32x28x28 (unfused)", &e, (size_t)B * 32 * 28 * 28,
               (size_t)B * 32 * 14 * 14);
    g_total_fwd = img_f, g_total_bwd = img_b;

    /* ---- text tower ---- */
    g_mult = 1;
    g_total_fwd = g_total_bwd = 0, g_gemm = 0;
    e = (elem_b){.B = B, .T = T, .C = C, .kind = K_EMB};
    e.w = buf((size_t)V * C, 11, 0.02f), e.b = buf((size_t)T * C, 12, 0.01f);
    e.tok = malloc((size_t)B * T * sizeof(int32_t));
    for (int i = 0; i < B * T; i++) e.tok[i] = (i * 131) % V;
    float *ew = e.w, *eb = e.b;
    int32_t *etok = e.tok;
    e.dw = buf((size_t)V * C, 13, 0), e.db = buf((size_t)T * C, 14, 0);
    float *edw = e.dw, *edb = e.db;
    bench_elem("embedding", "256x32 -> 128 (+pos)", &e, (size_t)B * T * C, (size_t)B * T * C);
    free(ew), free(eb), free(etok), free(edw), free(edb);
    double emb_f = g_total_fwd, emb_b = g_total_bwd;

    g_total_fwd = g_total_bwd = 0;
    g_mult = 2, g_part = 1; /* the pieces of one block; the text tower has two */
    e = (elem_b){.B = B, .T = T, .C = C, .kind = K_LN};
    e.w = buf(C, 15, 1), e.b = buf(C, 16, 1), e.dw = buf(C, 17, 0), e.db = buf(C, 18, 0);
    float *lw = e.w, *lb = e.b, *ldw = e.dw, *ldb = e.db;
    bench_elem("layernorm", "8192x128", &e, (size_t)B * T * C, (size_t)B * T * C);
    free(lw), free(lb), free(ldw), free(ldb);
    bench_linear("qkv", B * T, C, 3 * C);
    att_b a = {.B = B, .T = T, .C = C, .NH = NH};
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    a.qkv = buf(nq, 1, 1), a.dqkv = buf(nq, 2, 0), a.out = buf(no, 3, 0), a.dout = buf(no, 4, 1);
    a.att = buf((size_t)B * NH * T * T, 5, 0),
    a.work = buf(clasp_attention_work_floats(B, T, C, NH), 6, 0);
    double af = 4.0 * B * NH * (double)T * T * (C / NH);
    report("attention", "causal 256x4x32x32, hs 32", att_f, att_bw, &a, af, 2 * af);
    const int BH = B * NH, hs = C / NH;
    gemm_call ag[6] = {{0, 1, T, T, hs, BH}, {0, 0, T, hs, T, BH}, {0, 1, T, T, hs, BH},
                       {1, 0, T, hs, T, BH}, {0, 0, T, hs, T, BH}, {1, 0, T, hs, T, BH}};
    gemm_time(ag, 6);
    free(a.qkv), free(a.dqkv), free(a.out), free(a.dout), free(a.att), free(a.work);
    bench_linear("attn proj", B * T, C, C);
    e = (elem_b){.B = B, .T = T, .C = C, .kind = K_LN};
    e.w = buf(C, 15, 1), e.b = buf(C, 16, 1), e.dw = buf(C, 17, 0), e.db = buf(C, 18, 0);
    lw = e.w, lb = e.b, ldw = e.dw, ldb = e.db;
    bench_elem("layernorm2", "8192x128", &e, (size_t)B * T * C, (size_t)B * T * C);
    free(lw), free(lb), free(ldw), free(ldb);
    bench_linear("mlp fc1", B * T, C, F);
    e = (elem_b){.n = (size_t)B * T * F, .kind = K_GELU};
    bench_elem("gelu (erf)", "8192x512", &e, e.n, e.n);
    bench_linear("mlp fc2", B * T, F, C);
    double parts_f = g_total_fwd, parts_b = g_total_bwd, blk_g = g_gemm;
    total_row("sum of parts", "one block", parts_f, parts_b);
    g_mult = 0, g_part = 0;
    e = (elem_b){.n = (size_t)B * T * F, .kind = K_GELU_TANH};
    g_total_fwd = g_total_bwd = 0;
    bench_elem("gelu (tanh)", "8192x512 (not in block)", &e, e.n, e.n);

    g_total_fwd = g_total_bwd = 0;
    g_mult = 2;
    blk_b k = {.d = {.B = B, .T = T, .C = C, .NH = NH, .F = F, .causal = 1, .ln_eps = 1e-5f}};
    size_t sz[12] = {C, C, 3 * C * C, 3 * C, C * C, C, C, C, (size_t)F * C, F, (size_t)C * F, C};
    for (int i = 0; i < 12; i++) {
        ((float **)&k.p)[i] = buf(sz[i], 20 + i, 0.1f);
        ((float **)&k.g)[i] = buf(sz[i], 40 + i, 0);
    }
    k.acts = buf(clasp_block_acts_floats(&k.d), 60, 0);
    clasp_block_acts_point(&k.a, k.acts, &k.d);
    k.work = buf(clasp_block_work_floats(&k.d), 61, 0);
    k.inp = buf(no, 62, 1), k.out = buf(no, 63, 0), k.dout = buf(no, 64, 1),
    k.dinp = buf(no, 65, 0);
    double bf = 2.0 * B * T * (double)C * (3 * C + C + 2 * F) + af;
    report("block", "whole pre-LN block", blk_f, blk_bw, &k, bf, 2 * bf);
    double blk_f_t = g_total_fwd, blk_b_t = g_total_bwd;
    for (int i = 0; i < 12; i++) free(((float **)&k.p)[i]), free(((float **)&k.g)[i]);
    free(k.acts), free(k.work), free(k.inp), free(k.out), free(k.dout), free(k.dinp);

    g_total_fwd = g_total_bwd = 0, g_gemm = 0;
    g_mult = 1;
    e = (elem_b){.B = B, .T = T, .C = C, .kind = K_LN};
    e.w = buf(C, 15, 1), e.b = buf(C, 16, 1), e.dw = buf(C, 17, 0), e.db = buf(C, 18, 0);
    lw = e.w, lb = e.b, ldw = e.dw, ldb = e.db;
    bench_elem("ln_f", "8192x128", &e, (size_t)B * T * C, (size_t)B * T * C);
    free(lw), free(lb), free(ldw), free(ldb);
    e = (elem_b){.B = B, .T = T, .C = C, .kind = K_GATHER};
    e.tok = malloc(B * sizeof(int32_t));
    for (int i = 0; i < B; i++) e.tok[i] = i % T;
    etok = e.tok;
    bench_elem("gather EOS", "256x32x128 -> 256x128", &e, (size_t)B * T * C, (size_t)B * C);
    free(etok);
    bench_linear("text proj", B, C, C);
    e = (elem_b){.B = B, .C = C, .kind = K_L2};
    bench_elem("l2norm", "256x128", &e, (size_t)B * C, (size_t)B * C);
    double head_f = g_total_fwd, head_b = g_total_bwd, head_g = g_gemm;
    g_mult = 0;
    e = (elem_b){.n = (size_t)B * T * C, .kind = K_DROPOUT};
    bench_elem("dropout p=0.1", "8192x128 (not in model)", &e, e.n, e.n);

    double txt_f = emb_f + 2 * blk_f_t + head_f, txt_b = emb_b + 2 * blk_b_t + head_b;
    total_row("text total", "emb + 2 blocks + head", txt_f, txt_b);
    double step = img_f + img_b + txt_f + txt_b;
    total_row("layers of a step", "image + text, fwd + bwd", img_f + txt_f, img_b + txt_b);

    /* ---- loss and optimizer (not layers, but in every step) ---- */
    g_mult = 1;
    g_total_fwd = g_total_bwd = 0, g_gemm = 0;
    loss_b l = {.N = B, .D = 128};
    l.A = buf((size_t)B * 128, 81, 0.1f), l.B = buf((size_t)B * 128, 82, 0.1f);
    l.dA = buf((size_t)B * 128, 83, 0), l.dB = buf((size_t)B * 128, 84, 0);
    l.work = buf(clasp_infonce_work_floats((size_t)B), 85, 0);
    double lfl = 2.0 * B * B * 128.0;
    report("infonce", "256x128 fwd+bwd (one call)", loss_f, NULL, &l, 3 * lfl, 0);
    free(l.A), free(l.B), free(l.dA), free(l.dB), free(l.work);
    gemm_call lg[3] = {{0, 1, B, B, 128, 1}, {0, 0, B, 128, B, 1}, {1, 0, B, 128, B, 1}};
    gemm_time(lg, 3);
    double loss_t = g_total_fwd, loss_g = g_gemm;
    g_total_fwd = 0;
    opt_b o = {.n = 1305345}; /* fmnist-small's parameter floats (tests/test_model.c) */
    if (clasp_adamw_init(&o.o, o.n, clasp_adamw_default_config()) != CLASP_OK) {
        fprintf(stderr, "bench_layers: %s\n", clasp_last_error());
        exit(1);
    }
    o.p = buf(o.n, 86, 0.1f), o.g = buf(o.n, 87, 0.01f);
    o.seg = (clasp_param_seg){.offset = 0, .numel = o.n, .decay = true};
    report("adamw", "1305345 floats", opt_f, NULL, &o, 0, 0);
    free(o.p), free(o.g), clasp_adamw_free(&o.o);
    double opt_t = g_total_fwd;

    /* ---- Amdahl split: (a) GEMM-alone time, (b) the rest ---- */
    double full = step + loss_t + opt_t;
    double ga = img_g + 2 * blk_g + head_g + loss_g, gb = full - ga;
    *sp = (split){.gemm = ga, .other = gb, .step = full};
}

static double pct(double x, double of) {
    return of > 0 ? 100.0 * x / of : 0.0;
}

/* the per-precision table: the old columns plus the row's share of the step */
static void print_table(int pi, const split *sp) {
    printf("\n# %s: %%pk against the %s square peak of this run (%.1f GFLOP/s)\n",
           clasp_precision_name((clasp_precision)pi), clasp_precision_name((clasp_precision)pi),
           g_peak[pi]);
    printf("%-16s %-26s %9s %9s %8s %8s %7s %7s %7s\n", "layer", "shape", "fwd ms", "bwd ms",
           "fwd GF/s", "bwd GF/s", "fwd%pk", "bwd%pk", "%step");
    for (int i = 0; i < g_nrows; i++) {
        const row *r = &g_rows[i];
        double tf = r->tf[pi], tb = r->tb[pi];
        printf("%-16s %-26s %9.3f %9.3f", r->name, r->shape, tf * 1e3, tb * 1e3);
        if (r->ff > 0) {
            double gf = r->ff / tf * 1e-9, gb = r->has_bwd ? r->fb / tb * 1e-9 : 0.0;
            if (r->has_bwd)
                printf(" %8.1f %8.1f %6.0f%% %6.0f%%", gf, gb, pct(gf, g_peak[pi]),
                       pct(gb, g_peak[pi]));
            else
                printf(" %8.1f %8s %6.0f%% %7s", gf, "-", pct(gf, g_peak[pi]), "-");
        } else {
            printf(" %8s %8s %7s %7s", "-", "-", "-", "-");
        }
        double share = pct((r->total ? 1 : r->mult) * (tf + tb), sp->step);
        if (r->total && strcmp(r->name, "sum of parts") == 0) share *= 2; /* two blocks */
        if (!r->total && r->mult == 0)
            printf(" %7s\n", "-");
        else if (r->part || r->total)
            printf(" (%4.1f%%)\n", share);
        else
            printf(" %6.1f%%\n", share);
    }
}

int main(int argc, char **argv) {
    bench_args args;
    if (!bench_parse_args(&args, "bench_layers", 1, argc, argv)) return 2;
    const int quick = args.quick, only = args.only;
    if (args.cpu_time) g_clock = CLOCK_PROCESS_CPUTIME_ID;
    if (quick) g_reps = 3;
    const char *nt = getenv("CLASP_THREADS");
    int threads = nt ? atoi(nt) : 1;
    clasp_compute_set_threads(threads);
    printf("# bench_layers: fmnist-small shapes, batch 256; backend %s, %d thread(s) per product "
           "(CLASP_THREADS)\n",
           clasp_compute_backend(), threads);
    bench_print_load("before");
    printf("# median of %d single calls after a warm-up (%s time); GFLOP/s counts matmul FLOPs "
           "only\n",
           g_reps, g_clock == CLOCK_MONOTONIC ? "wall" : "process CPU");
    split sp[2];
    int ran[2] = {0, 0}, nrows[2] = {0, 0};
    for (int pi = CLASP_FP32; pi <= CLASP_BF16; pi++) {
        const char *pn = clasp_precision_name((clasp_precision)pi);
        if (only >= 0 && only != pi) continue;
        int native = 0;
        if (clasp_compute_check((clasp_precision)pi, &native) != CLASP_OK) {
            printf("# %s: not available: %s\n", pn, clasp_last_error());
            continue;
        }
        clasp_compute_set_precision((clasp_precision)pi);
        double p1024 = sgemm_peak(1024, quick ? 3 : 5, quick ? 0.1 : 0.25);
        double p512 = sgemm_peak(512, quick ? 3 : 5, quick ? 0.1 : 0.25);
        g_peak[pi] = p1024 > p512 ? p1024 : p512;
        printf("# %s%s: matmul peak (clasp_gemm, square NN, best of timings): 1024: %.1f GFLOP/s, "
               "512: %.1f GFLOP/s\n",
               pn, pi == CLASP_BF16 && !native ? " (EMULATED: no native bf16 kernel)" : "", p1024,
               p512);
        fflush(stdout);
        run_pass(pi, &sp[pi]);
        nrows[pi] = g_nrows;
        ran[pi] = 1;
    }
    clasp_compute_set_precision(CLASP_FP32);
    for (int pi = CLASP_FP32; pi <= CLASP_BF16; pi++) {
        g_nrows = nrows[pi];
        if (ran[pi]) print_table(pi, &sp[pi]);
    }

    if (ran[CLASP_FP32] && ran[CLASP_BF16]) {
        printf("\n# fp32 vs bf16: fwd + bwd ms per call and share of the step (rows in brackets "
               "are inside another row)\n");
        printf("%-16s %-26s %9s %9s %7s %7s %7s\n", "layer", "shape", "fp32 ms", "bf16 ms",
               "speedup", "%fp32", "%bf16");
        for (int i = 0; i < g_nrows; i++) {
            const row *r = &g_rows[i];
            double t32 = r->tf[0] + r->tb[0], t16 = r->tf[1] + r->tb[1];
            printf("%-16s %-26s %9.3f %9.3f %6.2fx", r->name, r->shape, t32 * 1e3, t16 * 1e3,
                   t32 / t16);
            int k = r->total ? (strcmp(r->name, "sum of parts") == 0 ? 2 : 1) : r->mult;
            if (!r->total && r->mult == 0)
                printf(" %7s %7s\n", "-", "-");
            else if (r->part || r->total)
                printf(" (%4.1f%%) (%4.1f%%)\n", pct(k * t32, sp[0].step),
                       pct(k * t16, sp[1].step));
            else
                printf(" %6.1f%% %6.1f%%\n", pct(k * t32, sp[0].step), pct(k * t16, sp[1].step));
        }
    }

    const int B = 256;
    const char *clk = g_clock == CLOCK_MONOTONIC ? "wall" : "process CPU";
    printf(
        "\n# Amdahl split of one training step (image + text fwd+bwd + infonce + adamw), %s time:\n"
        "#   (a) matmul/conv = the layers' products timed alone (clasp_gemm, same shapes, same\n"
        "#       precision): linear, conv per image, attention q.K^T/p.V and their grads, the\n"
        "#       loss's 3 logit products; (b) everything else = step - (a) (im2col/col2im, bias,\n"
        "#       relu+pool, layernorm, gelu, softmax/attention glue, embedding, l2norm, loss\n"
        "#       element-wise, bf16 conversions outside clasp_gemm, adamw). In bf16, clasp_gemm's\n"
        "#       own rounding of its inputs counts in (a). Text blocks counted twice, from the "
        "sum\n"
        "#       of the block's parts for GEMM and the whole-block rows for the step.\n",
        clk);
    printf("%-9s %-16s %9s %7s %12s\n", "precision", "share", "ms/step", "%step", "us/sample");
    for (int pi = CLASP_FP32; pi <= CLASP_BF16; pi++) {
        if (!ran[pi]) continue;
        const char *pn = clasp_precision_name((clasp_precision)pi);
        const split *s = &sp[pi];
        printf("%-9s %-16s %9.3f %6.1f%% %12.3f\n", pn, "(a) matmul/conv", s->gemm * 1e3,
               pct(s->gemm, s->step), s->gemm * 1e6 / B);
        printf("%-9s %-16s %9.3f %6.1f%% %12.3f\n", pn, "(b) other", s->other * 1e3,
               pct(s->other, s->step), s->other * 1e6 / B);
        printf("%-9s %-16s %9.3f %6.1f%% %12.3f  -> %.0f samples/s\n", pn, "step", s->step * 1e3,
               100.0, s->step * 1e6 / B, B / s->step);
    }
    bench_print_load("after");
    /* one line per precision for scripts */
    for (int pi = CLASP_FP32; pi <= CLASP_BF16; pi++) {
        if (!ran[pi]) continue;
        const split *s = &sp[pi];
        printf("amdahl %s gemm_ms %.3f other_ms %.3f other_pct %.1f other_ms_per_sample %.5f "
               "step_ms %.3f peak_gflops %.1f\n",
               clasp_precision_name((clasp_precision)pi), s->gemm * 1e3, s->other * 1e3,
               pct(s->other, s->step), s->other * 1e3 / B, s->step * 1e3, g_peak[pi]);
    }
    return 0;
}
