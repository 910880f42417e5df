/* test_layers.c: every layer of encoders/layers.h checked three ways:
 * (1) central finite differences of L = sum(out * R) on tiny shapes (the analytic gradient
 *     is computed into buffers pre-filled with non-zero values, so accumulation is tested too);
 * (2) parity with PyTorch: tests/reference/layers/<layer>.safetensors written by
 *     tests/reference/make_layers.py (float64 torch reference from float32 inputs);
 * (3) closed-form cases where natural, and dropout statistics / determinism.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "encoders/layers.h"
#include "fixtures.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static float *zeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    cr_assert_not_null(p);
    return p;
}

static float *randf(size_t n, uint64_t seed, float scale) {
    float *p = zeros(n);
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_RNG_TEST, n, 0);
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)clasp_rng_normal(&r);
    return p;
}

/* ---- finite-difference gradient check ---------------------------------------------------- */

typedef struct fd_param {
    const char *name;
    float *x; /* the input or weight that gets perturbed */
    float *g; /* its analytic gradient buffer (accumulated into by bwd) */
    size_t n;
} fd_param;

typedef struct fd_case {
    void (*fwd)(void *ctx); /* writes out from the current inputs */
    void (*bwd)(void *ctx, const float *dout);
    void *ctx;
    float *out;
    size_t nout;
} fd_case;

static double fd_loss(const fd_case *c, const float *R) {
    c->fwd(c->ctx);
    double L = 0.0;
    for (size_t i = 0; i < c->nout; i++) L += (double)c->out[i] * (double)R[i];
    return L;
}

/* Checks every gradient of ps against central differences with step h. The gradient buffers
 * are pre-filled with 0.5 - (i % 3) / 4 before backward, which must add to them. */
static bool fd_check(const char *layer, const fd_case *c, fd_param *ps, int np, float h,
                     double atol, double rtol) {
    float *R = randf(c->nout, 777, 1.0f);
    fd_loss(c, R);
    for (int k = 0; k < np; k++)
        for (size_t i = 0; i < ps[k].n; i++) ps[k].g[i] = 0.5f - (float)(i % 3) * 0.25f;
    c->bwd(c->ctx, R);
    bool ok = true;
    for (int k = 0; k < np; k++) {
        fd_param *p = &ps[k];
        double *ana = calloc(p->n, sizeof(double)), *num = calloc(p->n, sizeof(double));
        for (size_t i = 0; i < p->n; i++) {
            ana[i] = (double)p->g[i] - (double)(0.5f - (float)(i % 3) * 0.25f);
            float x0 = p->x[i];
            float xp = x0 + h, xm = x0 - h;
            p->x[i] = xp;
            double Lp = fd_loss(c, R);
            p->x[i] = xm;
            double Lm = fd_loss(c, R);
            p->x[i] = x0;
            num[i] = (Lp - Lm) / ((double)xp - (double)xm);
        }
        char name[128];
        snprintf(name, sizeof name, "fd %s d%s", layer, p->name);
        if (!clasp_test_check_tensor_f64(name, ana, num, p->n, atol, rtol)) ok = false;
        free(ana);
        free(num);
    }
    fd_loss(c, R); /* leave the caches of the unperturbed inputs */
    free(R);
    return ok;
}

/* ---- PyTorch reference files ---------------------------------------------------------------- */

static clasp_safetensors *ref_open(const char *name) {
    clasp_safetensors *st = fx_ref_open("layers/%s.safetensors", name);
    cr_assert(st, "%s", clasp_last_error());
    return st;
}

static const float *ref_f32(clasp_safetensors *st, const char *name, size_t n) {
    const clasp_st_tensor *t = clasp_st_find(st, name);
    cr_assert_not_null(t, "%s: no tensor %s", st->path, name);
    cr_assert_eq(t->numel, n, "%s: %s has %zu elements, expected %zu", st->path, name, t->numel, n);
    const float *p = clasp_st_f32(st, t);
    cr_assert_not_null(p, "%s", clasp_last_error());
    return p;
}

/* Copy of an F32 reference tensor the layer may modify. */
static float *ref_copy(clasp_safetensors *st, const char *name, size_t n) {
    float *p = zeros(n);
    memcpy(p, ref_f32(st, name, n), n * sizeof(float));
    return p;
}

/* int32 or uint8 tensors, returned as a malloc'ed int32 copy */
static int32_t *ref_i32(clasp_safetensors *st, const char *name, size_t *n) {
    const clasp_st_tensor *t = clasp_st_find(st, name);
    cr_assert_not_null(t, "%s: no tensor %s", st->path, name);
    int32_t *p = calloc(t->numel ? t->numel : 1, sizeof(int32_t));
    for (size_t i = 0; i < t->numel; i++) {
        if (t->dtype == CLASP_DTYPE_I32)
            memcpy(&p[i], t->data + 4 * i, 4);
        else if (t->dtype == CLASP_DTYPE_U8)
            p[i] = t->data[i];
        else
            cr_assert_fail("%s: %s has dtype %s", st->path, name, clasp_dtype_name(t->dtype));
    }
    if (n) *n = t->numel;
    return p;
}

static uint8_t *ref_u8(clasp_safetensors *st, const char *name, size_t n) {
    size_t m = 0;
    int32_t *v = ref_i32(st, name, &m);
    cr_assert_eq(m, n);
    uint8_t *p = calloc(n, 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)v[i];
    free(v);
    return p;
}

#define PAR_ATOL 2e-5
#define PAR_RTOL 1e-4

/* Compares got with reference tensor `name` of file `st`. */
static bool ref_check(clasp_safetensors *st, const char *file, const char *name, const float *got,
                      size_t n) {
    char label[160];
    snprintf(label, sizeof label, "torch %s %s", file, name);
    return clasp_test_check_tensor(label, got, ref_f32(st, name, n), n, PAR_ATOL, PAR_RTOL);
}

/* ================================ linear ================================================== */

typedef struct lin_ctx {
    float *out, *inp, *w, *b, *dinp, *dw, *db;
    int N, C, OC;
} lin_ctx;

static void lin_fwd(void *p) {
    lin_ctx *c = p;
    clasp_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
}

static void lin_bwd(void *p, const float *dout) {
    lin_ctx *c = p;
    clasp_linear_backward(c->dinp, c->dw, c->db, dout, c->inp, c->w, c->N, c->C, c->OC);
}

Test(layers, linear_fd) {
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        lin_ctx c = {.N = 3, .C = 5, .OC = 4};
        c.out = zeros(12), c.inp = randf(15, 1, 1.0f), c.w = randf(20, 2, 0.5f);
        c.b = with_bias ? randf(4, 3, 1.0f) : NULL;
        c.dinp = zeros(15), c.dw = zeros(20), c.db = with_bias ? zeros(4) : NULL;
        fd_case fc = {lin_fwd, lin_bwd, &c, c.out, 12};
        fd_param ps[] = {{"inp", c.inp, c.dinp, 15}, {"w", c.w, c.dw, 20}, {"b", c.b, c.db, 4}};
        cr_expect(fd_check("linear", &fc, ps, with_bias ? 3 : 2, 1e-2f, 1e-3, 1e-3));
        free(c.out), free(c.inp), free(c.w), free(c.b), free(c.dinp), free(c.dw), free(c.db);
    }
}

Test(layers, linear_torch) {
    clasp_safetensors *st = ref_open("linear");
    int N = 5, C = 7, OC = 4;
    float *out = zeros(N * OC), *dinp = zeros(N * C), *dw = zeros(OC * C), *db = zeros(OC);
    const float *inp = ref_f32(st, "inp", N * C), *w = ref_f32(st, "w", OC * C);
    const float *b = ref_f32(st, "b", OC), *dout = ref_f32(st, "dout", N * OC);
    clasp_linear_forward(out, inp, w, b, N, C, OC);
    clasp_linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    cr_expect(ref_check(st, "linear", "out", out, N * OC));
    cr_expect(ref_check(st, "linear", "dinp", dinp, N * C));
    cr_expect(ref_check(st, "linear", "dw", dw, OC * C));
    cr_expect(ref_check(st, "linear", "db", db, OC));
    /* NULL gradients are skipped, the others still accumulate */
    clasp_linear_backward(NULL, dw, NULL, dout, inp, w, N, C, OC);
    for (int i = 0; i < OC * C; i++) dw[i] *= 0.5f;
    cr_expect(ref_check(st, "linear", "dw", dw, OC * C));
    free(out), free(dinp), free(dw), free(db);
    clasp_st_free(st);
}

/* ================================ conv2d ================================================== */

typedef struct conv_ctx {
    float *out, *work, *inp, *w, *b, *dinp, *dw, *db;
    int B, C, H, W, OC, KH, KW, s, p;
} conv_ctx;

static void conv_fwd(void *q) {
    conv_ctx *c = q;
    clasp_conv2d_forward(c->out, c->work, c->inp, c->w, c->b, c->B, c->C, c->H, c->W, c->OC, c->KH,
                         c->KW, c->s, c->p);
}

static void conv_bwd(void *q, const float *dout) {
    conv_ctx *c = q;
    clasp_conv2d_backward(c->dinp, c->dw, c->db, c->work, dout, c->inp, c->w, c->B, c->C, c->H,
                          c->W, c->OC, c->KH, c->KW, c->s, c->p);
}

static void conv_alloc(conv_ctx *c, int with_bias, uint64_t seed) {
    int OH = clasp_conv2d_out_size(c->H, c->KH, c->s, c->p);
    int OW = clasp_conv2d_out_size(c->W, c->KW, c->s, c->p);
    size_t ni = (size_t)c->B * c->C * c->H * c->W, nw = (size_t)c->OC * c->C * c->KH * c->KW;
    c->out = zeros((size_t)c->B * c->OC * OH * OW);
    c->work = zeros(clasp_conv2d_work_floats(c->B, c->C, c->H, c->W, c->KH, c->KW, c->s, c->p));
    c->inp = randf(ni, seed, 1.0f), c->w = randf(nw, seed + 1, 0.4f);
    c->b = with_bias ? randf(c->OC, seed + 2, 1.0f) : NULL;
    c->dinp = zeros(ni), c->dw = zeros(nw), c->db = zeros(c->OC);
}

static void conv_free(conv_ctx *c) {
    free(c->out), free(c->work), free(c->inp), free(c->w), free(c->b), free(c->dinp), free(c->dw),
        free(c->db);
}

Test(layers, conv2d_fd) {
    static const int cfgs[][9] = {/* B C H W OC KH KW stride pad */
                                  {2, 2, 5, 4, 3, 3, 3, 1, 1},
                                  {1, 2, 6, 5, 2, 3, 3, 2, 1},
                                  {2, 1, 4, 4, 3, 2, 2, 2, 0},
                                  {1, 3, 4, 5, 2, 2, 3, 1, 2}};
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        const int *g = cfgs[k];
        conv_ctx c = {.B = g[0],
                      .C = g[1],
                      .H = g[2],
                      .W = g[3],
                      .OC = g[4],
                      .KH = g[5],
                      .KW = g[6],
                      .s = g[7],
                      .p = g[8]};
        conv_alloc(&c, k != 2, 10 + k);
        int OH = clasp_conv2d_out_size(c.H, c.KH, c.s, c.p);
        int OW = clasp_conv2d_out_size(c.W, c.KW, c.s, c.p);
        size_t ni = (size_t)c.B * c.C * c.H * c.W, nw = (size_t)c.OC * c.C * c.KH * c.KW;
        fd_case fc = {conv_fwd, conv_bwd, &c, c.out, (size_t)c.B * c.OC * OH * OW};
        fd_param ps[] = {{"inp", c.inp, c.dinp, ni}, {"w", c.w, c.dw, nw}, {"b", c.b, c.db, c.OC}};
        cr_expect(fd_check("conv2d", &fc, ps, c.b ? 3 : 2, 1e-2f, 1e-3, 1e-3), "config %zu", k);
        conv_free(&c);
    }
}

Test(layers, conv2d_torch) {
    static const char *tags[] = {"conv2d_s1p1", "conv2d_s2p1", "conv2d_k2s2", "conv2d_k23p1"};
    for (int k = 0; k < 4; k++) {
        clasp_safetensors *st = ref_open(tags[k]);
        int32_t *g = ref_i32(st, "cfg", NULL);
        int B = g[0], C = g[1], H = g[2], W = g[3], OC = g[4], KH = g[5], KW = g[6], s = g[7],
            p = g[8];
        int OH = clasp_conv2d_out_size(H, KH, s, p), OW = clasp_conv2d_out_size(W, KW, s, p);
        size_t ni = (size_t)B * C * H * W, nw = (size_t)OC * C * KH * KW,
               no = (size_t)B * OC * OH * OW;
        float *out = zeros(no), *dinp = zeros(ni), *dw = zeros(nw), *db = zeros(OC);
        float *work = zeros(clasp_conv2d_work_floats(B, C, H, W, KH, KW, s, p));
        const float *inp = ref_f32(st, "inp", ni), *w = ref_f32(st, "w", nw);
        clasp_conv2d_forward(out, work, inp, w, ref_f32(st, "b", OC), B, C, H, W, OC, KH, KW, s, p);
        clasp_conv2d_backward(dinp, dw, db, work, ref_f32(st, "dout", no), inp, w, B, C, H, W, OC,
                              KH, KW, s, p);
        cr_expect(ref_check(st, tags[k], "out", out, no));
        cr_expect(ref_check(st, tags[k], "dinp", dinp, ni));
        cr_expect(ref_check(st, tags[k], "dw", dw, nw));
        cr_expect(ref_check(st, tags[k], "db", db, OC));
        free(out), free(dinp), free(dw), free(db), free(work), free(g);
        clasp_st_free(st);
    }
}

Test(layers, conv2d_identity_kernel_copies) {
    /* 3x3 kernel with a single 1 at the centre, pad 1: out = inp, channel by channel */
    int B = 2, C = 3, H = 5, W = 4;
    float *inp = randf(B * C * H * W, 5, 1.0f), *out = zeros(B * C * H * W);
    float *w = zeros(C * C * 9);
    for (int c = 0; c < C; c++) w[(c * C + c) * 9 + 4] = 1.0f;
    float *work = zeros(clasp_conv2d_work_floats(B, C, H, W, 3, 3, 1, 1));
    clasp_conv2d_forward(out, work, inp, w, NULL, B, C, H, W, C, 3, 3, 1, 1);
    cr_expect(clasp_test_check_tensor("conv identity", out, inp, B * C * H * W, 0, 0));
    free(inp), free(out), free(w), free(work);
}

/* ================================ pooling ================================================= */

typedef struct pool_ctx {
    float *out, *inp, *dinp;
    int32_t *idx;
    int B, C, H, W, k, s, max;
} pool_ctx;

static void pool_fwd(void *q) {
    pool_ctx *c = q;
    if (c->max)
        clasp_maxpool2d_forward(c->out, c->idx, c->inp, c->B, c->C, c->H, c->W, c->k, c->s);
    else
        clasp_avgpool2d_forward(c->out, c->inp, c->B, c->C, c->H, c->W, c->k, c->s);
}

static void pool_bwd(void *q, const float *dout) {
    pool_ctx *c = q;
    if (c->max)
        clasp_maxpool2d_backward(c->dinp, dout, c->idx, c->B, c->C, c->H, c->W, c->k, c->s);
    else
        clasp_avgpool2d_backward(c->dinp, dout, c->B, c->C, c->H, c->W, c->k, c->s);
}

Test(layers, pool2d_fd) {
    for (int max = 0; max < 2; max++) {
        for (int cfg = 0; cfg < 2; cfg++) {
            pool_ctx c = {.B = 2,
                          .C = 2,
                          .H = cfg ? 7 : 6,
                          .W = cfg ? 7 : 4,
                          .k = cfg ? 3 : 2,
                          .s = 2,
                          .max = max};
            size_t ni = (size_t)c.B * c.C * c.H * c.W;
            int OH = (c.H - c.k) / c.s + 1, OW = (c.W - c.k) / c.s + 1;
            size_t no = (size_t)c.B * c.C * OH * OW;
            c.inp = zeros(ni), c.dinp = zeros(ni), c.out = zeros(no);
            c.idx = calloc(no, sizeof(int32_t));
            /* distinct values 0.1 apart (a permutation), so +-h never changes the argmax */
            for (size_t i = 0; i < ni; i++) c.inp[i] = 0.1f * (float)((i * 37) % ni);
            fd_case fc = {pool_fwd, pool_bwd, &c, c.out, no};
            fd_param ps[] = {{"inp", c.inp, c.dinp, ni}};
            cr_expect(fd_check(max ? "maxpool2d" : "avgpool2d", &fc, ps, 1, 1e-2f, 1e-3, 1e-3));
            free(c.inp), free(c.dinp), free(c.out), free(c.idx);
        }
    }
}

Test(layers, pool2d_torch) {
    static const char *tags[] = {"k2s2", "k3s2"};
    for (int k = 0; k < 2; k++) {
        for (int max = 0; max < 2; max++) {
            char file[64];
            snprintf(file, sizeof file, "%s_%s", max ? "maxpool2d" : "avgpool2d", tags[k]);
            clasp_safetensors *st = ref_open(file);
            int32_t *g = ref_i32(st, "cfg", NULL);
            int B = g[0], C = g[1], H = g[2], W = g[3], kk = g[4], s = g[5];
            int OH = (H - kk) / s + 1, OW = (W - kk) / s + 1;
            size_t ni = (size_t)B * C * H * W, no = (size_t)B * C * OH * OW;
            float *out = zeros(no), *dinp = zeros(ni);
            int32_t *idx = calloc(no, sizeof(int32_t));
            const float *inp = ref_f32(st, "inp", ni), *dout = ref_f32(st, "dout", no);
            if (max) {
                clasp_maxpool2d_forward(out, idx, inp, B, C, H, W, kk, s);
                clasp_maxpool2d_backward(dinp, dout, idx, B, C, H, W, kk, s);
                size_t nidx = 0;
                int32_t *want = ref_i32(st, "idx", &nidx);
                cr_assert_eq(nidx, no);
                for (size_t i = 0; i < no; i++)
                    cr_expect_eq(idx[i], want[i], "%s idx[%zu]: %d, torch %d (ties: first max)",
                                 file, i, idx[i], want[i]);
                free(want);
            } else {
                clasp_avgpool2d_forward(out, inp, B, C, H, W, kk, s);
                clasp_avgpool2d_backward(dinp, dout, B, C, H, W, kk, s);
            }
            cr_expect(ref_check(st, file, "out", out, no));
            cr_expect(ref_check(st, file, "dinp", dinp, ni));
            free(out), free(dinp), free(idx), free(g);
            clasp_st_free(st);
        }
    }
}

/* The fused ReLU + max pool the CNN towers run must equal, bit for bit, the composition of
 * the two layers it replaces (each of which has its own finite-difference and PyTorch tests):
 * forward relu(maxpool(x)) with the same argmax, backward maxpool_backward(relu_backward). */
Test(layers, relu_maxpool_equals_composition) {
    const int cfgs[2][4] = {{6, 4, 2, 2}, {7, 7, 3, 2}}; /* H, W, k, s */
    for (int ci = 0; ci < 2; ci++) {
        int B = 3, C = 4, H = cfgs[ci][0], W = cfgs[ci][1], k = cfgs[ci][2], s = cfgs[ci][3];
        int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
        size_t ni = (size_t)B * C * H * W, no = (size_t)B * C * OH * OW;
        float *inp = randf(ni, 40 + (uint64_t)ci, 1.0f); /* about half negative */
        float *dout = randf(no, 50 + (uint64_t)ci, 1.0f);
        float *out_f = zeros(no), *out_p = zeros(no), *out_r = zeros(no);
        float *din_f = zeros(ni), *din_c = zeros(ni), *dmid = zeros(no);
        int32_t *idx_f = calloc(no, sizeof(int32_t)), *idx_p = calloc(no, sizeof(int32_t));
        clasp_relu_maxpool2d_forward(out_f, idx_f, inp, B, C, H, W, k, s);
        clasp_maxpool2d_forward(out_p, idx_p, inp, B, C, H, W, k, s);
        clasp_relu_forward(out_r, out_p, no);
        cr_expect(clasp_test_check_tensor("relu_maxpool.out", out_f, out_r, no, 0, 0));
        cr_expect_eq(memcmp(idx_f, idx_p, no * sizeof(int32_t)), 0, "argmax differs");
        for (size_t i = 0; i < ni; i++) din_f[i] = 7.0f; /* written, not accumulated */
        clasp_relu_maxpool2d_backward(din_f, dout, idx_f, out_f, B, C, H, W, k, s);
        clasp_relu_backward(dmid, dout, out_r, no);
        clasp_maxpool2d_backward(din_c, dmid, idx_p, B, C, H, W, k, s);
        cr_expect(clasp_test_check_tensor("relu_maxpool.dinp", din_f, din_c, ni, 0, 0));
        free(inp), free(dout), free(out_f), free(out_p), free(out_r), free(din_f), free(din_c);
        free(dmid), free(idx_f), free(idx_p);
    }
}

typedef struct gpool_ctx {
    float *out, *inp, *dinp;
    int32_t pos[3];
    int B, T, C, kind; /* 0 global avgpool (T = HW), 1 token mean, 2 token gather */
} gpool_ctx;

static void gpool_fwd(void *q) {
    gpool_ctx *c = q;
    if (c->kind == 0) clasp_global_avgpool_forward(c->out, c->inp, c->B, c->C, c->T);
    if (c->kind == 1) clasp_meanpool_tokens_forward(c->out, c->inp, c->B, c->T, c->C);
    if (c->kind == 2) clasp_gather_tokens_forward(c->out, c->inp, c->pos, c->B, c->T, c->C);
}

static void gpool_bwd(void *q, const float *dout) {
    gpool_ctx *c = q;
    if (c->kind == 0) clasp_global_avgpool_backward(c->dinp, dout, c->B, c->C, c->T);
    if (c->kind == 1) clasp_meanpool_tokens_backward(c->dinp, dout, c->B, c->T, c->C);
    if (c->kind == 2) clasp_gather_tokens_backward(c->dinp, dout, c->pos, c->B, c->T, c->C);
}

Test(layers, global_and_token_pool_fd) {
    static const char *names[] = {"global_avgpool", "meanpool_tokens", "gather_tokens"};
    for (int kind = 0; kind < 3; kind++) {
        gpool_ctx c = {.B = 3, .T = 4, .C = 5, .kind = kind, .pos = {3, 0, 1}};
        size_t ni = 60, no = 15;
        c.inp = randf(ni, 40 + kind, 1.0f), c.dinp = zeros(ni), c.out = zeros(no);
        fd_case fc = {gpool_fwd, gpool_bwd, &c, c.out, no};
        fd_param ps[] = {{"inp", c.inp, c.dinp, ni}};
        cr_expect(fd_check(names[kind], &fc, ps, 1, 1e-2f, 1e-3, 1e-3));
        free(c.inp), free(c.dinp), free(c.out);
    }
}

Test(layers, global_and_token_pool_torch) {
    static const char *names[] = {"global_avgpool", "meanpool_tokens", "gather_tokens"};
    for (int kind = 0; kind < 3; kind++) {
        clasp_safetensors *st = ref_open(names[kind]);
        int32_t *g = ref_i32(st, "cfg", NULL);
        gpool_ctx c = {.kind = kind};
        if (kind == 0)
            c.B = g[0], c.C = g[1], c.T = g[2];
        else
            c.B = g[0], c.T = g[1], c.C = g[2];
        if (kind == 2) {
            int32_t *pos = ref_i32(st, "pos", NULL);
            memcpy(c.pos, pos, (size_t)c.B * sizeof(int32_t));
            free(pos);
        }
        size_t ni = (size_t)c.B * c.T * c.C, no = (size_t)c.B * c.C;
        c.inp = ref_copy(st, "inp", ni), c.dinp = zeros(ni), c.out = zeros(no);
        gpool_fwd(&c);
        gpool_bwd(&c, ref_f32(st, "dout", no));
        cr_expect(ref_check(st, names[kind], "out", c.out, no));
        cr_expect(ref_check(st, names[kind], "dinp", c.dinp, ni));
        free(c.inp), free(c.dinp), free(c.out), free(g);
        clasp_st_free(st);
    }
}

/* ================================ activations ============================================= */

typedef struct act_ctx {
    float *out, *inp, *dinp;
    size_t n;
    int kind; /* 0 relu, 1 gelu, 2 gelu tanh, 3 quick gelu */
} act_ctx;

static void act_fwd(void *q) {
    act_ctx *c = q;
    if (c->kind == 0) clasp_relu_forward(c->out, c->inp, c->n);
    if (c->kind == 1) clasp_gelu_forward(c->out, c->inp, c->n);
    if (c->kind == 2) clasp_gelu_tanh_forward(c->out, c->inp, c->n);
    if (c->kind == 3) clasp_quick_gelu_forward(c->out, c->inp, c->n);
}

static void act_bwd(void *q, const float *dout) {
    act_ctx *c = q;
    if (c->kind == 0) clasp_relu_backward(c->dinp, dout, c->out, c->n);
    if (c->kind == 1) clasp_gelu_backward(c->dinp, dout, c->inp, c->n);
    if (c->kind == 2) clasp_gelu_tanh_backward(c->dinp, dout, c->inp, c->n);
    if (c->kind == 3) clasp_quick_gelu_backward(c->dinp, dout, c->inp, c->n);
}

static const char *act_names[] = {"relu", "gelu", "gelu_tanh", "quick_gelu"};

Test(layers, activations_fd) {
    for (int kind = 0; kind < 4; kind++) {
        act_ctx c = {.n = 41, .kind = kind};
        c.inp = zeros(c.n), c.out = zeros(c.n), c.dinp = zeros(c.n);
        /* -4 .. 4 in steps of 0.2, shifted off 0 so ReLU's kink is never crossed */
        for (size_t i = 0; i < c.n; i++) c.inp[i] = -4.0f + 0.2f * (float)i + 0.05f;
        fd_case fc = {act_fwd, act_bwd, &c, c.out, c.n};
        fd_param ps[] = {{"inp", c.inp, c.dinp, c.n}};
        cr_expect(fd_check(act_names[kind], &fc, ps, 1, 1e-2f, 1e-3, 1e-3));
        free(c.inp), free(c.out), free(c.dinp);
    }
}

Test(layers, activations_torch) {
    for (int kind = 0; kind < 4; kind++) {
        clasp_safetensors *st = ref_open(act_names[kind]);
        act_ctx c = {.n = 51, .kind = kind};
        c.inp = ref_copy(st, "inp", c.n), c.out = zeros(c.n), c.dinp = zeros(c.n);
        act_fwd(&c);
        act_bwd(&c, ref_f32(st, "dout", c.n));
        cr_expect(ref_check(st, act_names[kind], "out", c.out, c.n));
        cr_expect(ref_check(st, act_names[kind], "dinp", c.dinp, c.n));
        free(c.inp), free(c.out), free(c.dinp);
        clasp_st_free(st);
    }
}

Test(layers, relu_backward_in_place) {
    /* the backward reads the output only, so out may overwrite inp */
    float x[4] = {-1.0f, 2.0f, 0.0f, 3.0f}, dout[4] = {1, 1, 1, 1}, dx[4] = {0};
    clasp_relu_forward(x, x, 4);
    clasp_relu_backward(dx, dout, x, 4);
    cr_expect(x[0] == 0.0f && x[1] == 2.0f && x[2] == 0.0f && x[3] == 3.0f);
    cr_expect(dx[0] == 0.0f && dx[1] == 1.0f && dx[2] == 0.0f && dx[3] == 1.0f);
}

/* ================================ layer norm ============================================== */

typedef struct ln_ctx {
    float *out, *mean, *rstd, *inp, *w, *b, *dinp, *dw, *db;
    int N, C;
} ln_ctx;

static void ln_fwd(void *q) {
    ln_ctx *c = q;
    clasp_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5f);
}

static void ln_bwd(void *q, const float *dout) {
    ln_ctx *c = q;
    clasp_layernorm_backward(c->dinp, c->dw, c->db, dout, c->inp, c->w, c->mean, c->rstd, c->N,
                             c->C);
}

Test(layers, layernorm_fd) {
    ln_ctx c = {.N = 4, .C = 7};
    size_t n = 28;
    c.out = zeros(n), c.mean = zeros(4), c.rstd = zeros(4), c.inp = randf(n, 50, 1.0f);
    for (size_t i = 0; i < n; i++) c.inp[i] += 2.0f;
    c.w = randf(7, 51, 1.0f), c.b = randf(7, 52, 1.0f);
    c.dinp = zeros(n), c.dw = zeros(7), c.db = zeros(7);
    fd_case fc = {ln_fwd, ln_bwd, &c, c.out, n};
    fd_param ps[] = {{"inp", c.inp, c.dinp, n}, {"w", c.w, c.dw, 7}, {"b", c.b, c.db, 7}};
    cr_expect(fd_check("layernorm", &fc, ps, 3, 1e-2f, 2e-3, 2e-3));
    free(c.out), free(c.mean), free(c.rstd), free(c.inp), free(c.w), free(c.b), free(c.dinp),
        free(c.dw), free(c.db);
}

Test(layers, layernorm_torch) {
    clasp_safetensors *st = ref_open("layernorm");
    int N = 6, C = 10;
    ln_ctx c = {.N = N, .C = C};
    c.out = zeros(N * C), c.mean = zeros(N), c.rstd = zeros(N), c.dinp = zeros(N * C);
    c.dw = zeros(C), c.db = zeros(C);
    c.inp = ref_copy(st, "inp", N * C), c.w = ref_copy(st, "w", C), c.b = ref_copy(st, "b", C);
    ln_fwd(&c);
    ln_bwd(&c, ref_f32(st, "dout", N * C));
    cr_expect(ref_check(st, "layernorm", "out", c.out, N * C));
    cr_expect(ref_check(st, "layernorm", "dinp", c.dinp, N * C));
    cr_expect(ref_check(st, "layernorm", "dw", c.dw, C));
    cr_expect(ref_check(st, "layernorm", "db", c.db, C));
    free(c.out), free(c.mean), free(c.rstd), free(c.inp), free(c.w), free(c.b), free(c.dinp),
        free(c.dw), free(c.db);
    clasp_st_free(st);
}

Test(layers, layernorm_closed_form) {
    /* w = 1, b = 0: each row has mean 0 and (biased) variance 1/(1 + eps/var); an offset of
     * 300 (float ulp 3e-5) must not destroy precision (two-pass double statistics) */
    int N = 3, C = 64;
    float *x = randf(N * C, 53, 1.0f), *y = zeros(N * C), mean[3], rstd[3];
    for (int i = 0; i < N * C; i++) x[i] += 300.0f;
    clasp_layernorm_forward(y, mean, rstd, x, NULL, NULL, N, C, 1e-5f);
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += (double)y[n * C + c];
        m /= C;
        for (int c = 0; c < C; c++) v += ((double)y[n * C + c] - m) * ((double)y[n * C + c] - m);
        v /= C;
        cr_expect(fabs(m) < 2e-5, "row %d mean %g", n, m);
        cr_expect(fabs(v - 1.0) < 1e-4, "row %d var %g", n, v);
    }
    free(x), free(y);
}

/* ================================ embeddings ============================================== */

typedef struct emb_ctx {
    float *out, *wte, *wpe, *dwte, *dwpe;
    int32_t *tok;
    int B, T, C;
} emb_ctx;

static void emb_fwd(void *q) {
    emb_ctx *c = q;
    clasp_embedding_forward(c->out, c->tok, c->wte, c->wpe, c->B, c->T, c->C);
}

static void emb_bwd(void *q, const float *dout) {
    emb_ctx *c = q;
    clasp_embedding_backward(c->dwte, c->dwpe, dout, c->tok, c->B, c->T, c->C);
}

Test(layers, embedding_fd) {
    int32_t tok[8] = {1, 3, 3, 0, 4, 1, 2, 1};
    for (int with_pe = 0; with_pe < 2; with_pe++) {
        emb_ctx c = {.B = 2, .T = 4, .C = 3, .tok = tok};
        c.out = zeros(24), c.wte = randf(15, 60, 1.0f), c.dwte = zeros(15);
        c.wpe = with_pe ? randf(12, 61, 1.0f) : NULL, c.dwpe = with_pe ? zeros(12) : NULL;
        fd_case fc = {emb_fwd, emb_bwd, &c, c.out, 24};
        fd_param ps[] = {{"wte", c.wte, c.dwte, 15}, {"wpe", c.wpe, c.dwpe, 12}};
        cr_expect(fd_check("embedding", &fc, ps, with_pe ? 2 : 1, 1e-2f, 1e-3, 1e-3));
        free(c.out), free(c.wte), free(c.dwte), free(c.wpe), free(c.dwpe);
    }
}

typedef struct pe_ctx {
    float *x, *inp, *wpe, *dinp, *dwpe;
    int B, T, C;
} pe_ctx;

static void pe_fwd(void *q) {
    pe_ctx *c = q;
    memcpy(c->x, c->inp, (size_t)c->B * c->T * c->C * sizeof(float));
    clasp_posemb_forward(c->x, c->wpe, c->B, c->T, c->C);
}

static void pe_bwd(void *q, const float *dout) {
    pe_ctx *c = q;
    size_t n = (size_t)c->B * c->T * c->C;
    for (size_t i = 0; i < n; i++) c->dinp[i] += dout[i]; /* identity path, done by the caller */
    clasp_posemb_backward(c->dwpe, dout, c->B, c->T, c->C);
}

Test(layers, posemb_fd) {
    pe_ctx c = {.B = 2, .T = 3, .C = 4};
    c.x = zeros(24), c.inp = randf(24, 62, 1.0f), c.wpe = randf(12, 63, 1.0f);
    c.dinp = zeros(24), c.dwpe = zeros(12);
    fd_case fc = {pe_fwd, pe_bwd, &c, c.x, 24};
    fd_param ps[] = {{"inp", c.inp, c.dinp, 24}, {"wpe", c.wpe, c.dwpe, 12}};
    cr_expect(fd_check("posemb", &fc, ps, 2, 1e-2f, 1e-3, 1e-3));
    free(c.x), free(c.inp), free(c.wpe), free(c.dinp), free(c.dwpe);
}

Test(layers, embedding_torch) {
    clasp_safetensors *st = ref_open("embedding");
    int V = 11, B = 2, T = 5, C = 6;
    int32_t *tok = ref_i32(st, "tok", NULL);
    float *out = zeros(B * T * C), *dwte = zeros(V * C), *dwpe = zeros(T * C);
    clasp_embedding_forward(out, tok, ref_f32(st, "wte", V * C), ref_f32(st, "wpe", T * C), B, T,
                            C);
    clasp_embedding_backward(dwte, dwpe, ref_f32(st, "dout", B * T * C), tok, B, T, C);
    cr_expect(ref_check(st, "embedding", "out", out, B * T * C));
    cr_expect(ref_check(st, "embedding", "dwte", dwte, V * C));
    cr_expect(ref_check(st, "embedding", "dwpe", dwpe, T * C));
    free(out), free(dwte), free(dwpe), free(tok);
    clasp_st_free(st);

    st = ref_open("posemb");
    float *x = ref_copy(st, "inp", B * T * C), *dpe = zeros(T * C);
    clasp_posemb_forward(x, ref_f32(st, "wpe", T * C), B, T, C);
    clasp_posemb_backward(dpe, ref_f32(st, "dout", B * T * C), B, T, C);
    cr_expect(ref_check(st, "posemb", "out", x, B * T * C));
    cr_expect(ref_check(st, "posemb", "dwpe", dpe, T * C));
    free(x), free(dpe);
    clasp_st_free(st);
}

/* ================================ attention =============================================== */

typedef struct att_ctx {
    float *out, *att, *work, *qkv, *dqkv;
    uint8_t *pad;
    int causal, B, T, C, NH;
} att_ctx;

static void att_fwd(void *q) {
    att_ctx *c = q;
    clasp_attention_forward(c->out, c->att, c->work, c->qkv, c->pad, c->causal, c->B, c->T, c->C,
                            c->NH);
}

static void att_bwd(void *q, const float *dout) {
    att_ctx *c = q;
    clasp_attention_backward(c->dqkv, c->work, dout, c->qkv, c->att, c->B, c->T, c->C, c->NH);
}

Test(layers, attention_fd) {
    /* b = 1 has keys 0 and 3 padded: with the causal mask its row 0 sees no key at all */
    uint8_t pad[8] = {0, 0, 0, 0, 1, 0, 0, 1};
    for (int mode = 0; mode < 4; mode++) {
        att_ctx c = {
            .causal = mode & 1, .pad = (mode & 2) ? pad : NULL, .B = 2, .T = 4, .C = 6, .NH = 2};
        size_t nq = 2 * 4 * 18, no = 2 * 4 * 6;
        c.out = zeros(no), c.att = zeros(2 * 2 * 16), c.qkv = randf(nq, 70 + mode, 1.0f);
        c.work = zeros(clasp_attention_work_floats(2, 4, 6, 2)), c.dqkv = zeros(nq);
        fd_case fc = {att_fwd, att_bwd, &c, c.out, no};
        fd_param ps[] = {{"qkv", c.qkv, c.dqkv, nq}};
        cr_expect(fd_check("attention", &fc, ps, 1, 1e-2f, 1e-3, 2e-3), "mode %d", mode);
        if (mode == 3) {
            for (int j = 0; j < 6; j++) cr_expect_eq(c.out[(4 + 0) * 6 + j], 0.0f);
        }
        free(c.out), free(c.att), free(c.qkv), free(c.work), free(c.dqkv);
    }
}

Test(layers, attention_torch) {
    static const char *tags[] = {"attention_none", "attention_causal", "attention_pad",
                                 "attention_causal_pad"};
    for (int k = 0; k < 4; k++) {
        clasp_safetensors *st = ref_open(tags[k]);
        int32_t *g = ref_i32(st, "cfg", NULL);
        att_ctx c = {.B = g[0], .T = g[1], .C = g[2], .NH = g[3], .causal = g[4]};
        size_t nq = (size_t)c.B * c.T * 3 * c.C, no = (size_t)c.B * c.T * c.C;
        size_t na = (size_t)c.B * c.NH * c.T * c.T;
        c.pad = clasp_st_find(st, "pad") ? ref_u8(st, "pad", (size_t)c.B * c.T) : NULL;
        c.out = zeros(no), c.att = zeros(na), c.dqkv = zeros(nq);
        c.work = zeros(clasp_attention_work_floats(c.B, c.T, c.C, c.NH));
        c.qkv = ref_copy(st, "qkv", nq);
        att_fwd(&c);
        att_bwd(&c, ref_f32(st, "dout", no));
        cr_expect(ref_check(st, tags[k], "out", c.out, no));
        cr_expect(ref_check(st, tags[k], "att", c.att, na));
        cr_expect(ref_check(st, tags[k], "dqkv", c.dqkv, nq));
        free(c.out), free(c.att), free(c.dqkv), free(c.work), free(c.qkv), free(c.pad), free(g);
        clasp_st_free(st);
    }
}

Test(layers, attention_equal_keys_average_values) {
    /* all keys equal -> uniform attention over the visible keys -> mean of their values */
    int B = 1, T = 4, C = 4, NH = 2;
    float *qkv = randf(B * T * 3 * C, 80, 1.0f), *out = zeros(T * C), *att = zeros(NH * T * T);
    for (int t = 1; t < T; t++) memcpy(qkv + t * 3 * C + C, qkv + C, C * sizeof(float));
    float *work = zeros(clasp_attention_work_floats(B, T, C, NH));
    clasp_attention_forward(out, att, work, qkv, NULL, 1, B, T, C, NH);
    for (int i = 0; i < T; i++) {
        for (int c = 0; c < C; c++) {
            double m = 0;
            for (int j = 0; j <= i; j++) m += (double)qkv[j * 3 * C + 2 * C + c];
            m /= (i + 1);
            cr_expect(fabs((double)out[i * C + c] - m) < 1e-6, "row %d col %d: %g vs %g", i, c,
                      (double)out[i * C + c], m);
        }
    }
    free(qkv), free(out), free(att), free(work);
}

/* Attention of one (batch, head) in double: a (T, T) probabilities, y rows of the output,
 * and with dy the gradients dq, dk, dv (ADDED to; rows of stride ld). A row whose keys are
 * all masked has zero probabilities and output. */
static void att_ref_bh(double *a, double *y, double *dq, double *dk, double *dv, const float *q,
                       const float *k, const float *v, const float *dy, const uint8_t *pm,
                       int causal, int T, int hs, int ld, int ldy) {
    double scale = 1.0 / sqrt((double)hs);
    for (int i = 0; i < T; i++) {
        double *ai = a + (size_t)i * T, mx = -HUGE_VAL;
        for (int j = 0; j < T; j++) {
            ai[j] = -HUGE_VAL;
            if ((causal && j > i) || (pm && pm[j])) continue;
            double sc = 0;
            for (int d = 0; d < hs; d++) sc += (double)q[i * ld + d] * (double)k[j * ld + d];
            ai[j] = sc * scale;
            if (ai[j] > mx) mx = ai[j];
        }
        double sum = 0;
        for (int j = 0; j < T; j++) {
            ai[j] = mx == -HUGE_VAL || ai[j] == -HUGE_VAL ? 0.0 : exp(ai[j] - mx);
            sum += ai[j];
        }
        for (int j = 0; j < T; j++) ai[j] = sum > 0 ? ai[j] / sum : 0.0;
        for (int d = 0; d < hs; d++) {
            double o = 0;
            for (int j = 0; j < T; j++) o += ai[j] * (double)v[j * ld + d];
            y[i * ldy + d] = o;
        }
    }
    if (!dy) return;
    for (int i = 0; i < T; i++) {
        const double *ai = a + (size_t)i * T;
        const float *g = dy + (size_t)i * ldy;
        double da[64], dot = 0;
        for (int j = 0; j < T; j++) {
            da[j] = 0;
            for (int d = 0; d < hs; d++) da[j] += (double)g[d] * (double)v[j * ld + d];
            dot += ai[j] * da[j];
        }
        for (int j = 0; j < T; j++) {
            double ds = ai[j] * (da[j] - dot) * scale;
            for (int d = 0; d < hs; d++) {
                dv[j * ld + d] += ai[j] * (double)g[d];
                dq[i * ld + d] += ds * (double)k[j * ld + d];
                dk[j * ld + d] += ds * (double)q[i * ld + d];
            }
        }
    }
}

/* T = 32 (the compiled-in constant-size path) and T = 33 (the generic path, rows padded to 40)
 * with hs = 32, causal or not, with or without padded keys, forward and backward, at the
 * SIMD level `level` (0 is the OpenBLAS path), against att_ref_bh. */
static void attention_long_check(int level) {
    char lv[2] = {(char)('0' + level), 0};
    setenv("CLASP_SIMD", lv, 1); /* read once per process: each Test runs in its own */
    const int B = 3, NH = 2, hs = 32, C = NH * hs, C3 = 3 * C;
    for (int T = 32; T <= 33; T++) {
        for (int mode = 0; mode < 4; mode++) {
            int causal = mode & 1;
            uint8_t *pad = NULL;
            if (mode & 2) { /* b = 0: none; b = 1: key 0 and the tail; b = 2: all but key 5 */
                pad = calloc((size_t)B * T, 1);
                pad[T] = 1;
                for (int t = T - 7; t < T; t++) pad[T + t] = 1;
                for (int t = 0; t < T; t++) pad[2 * T + t] = t != 5;
            }
            size_t nq = (size_t)B * T * C3, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
            float *qkv = randf(nq, 900 + 10 * T + mode, 1.5f), *dout = randf(no, 950 + mode, 1.0f);
            float *out = zeros(no), *att = zeros(na), *dqkv = zeros(nq);
            float *work = zeros(clasp_attention_work_floats(B, T, C, NH));
            for (size_t i = 0; i < nq; i++) dqkv[i] = 0.25f; /* backward adds to it */
            clasp_attention_forward(out, att, work, qkv, pad, causal, B, T, C, NH);
            clasp_attention_backward(dqkv, work, dout, qkv, att, B, T, C, NH);
            double *ra = calloc(na, sizeof(double)), *ry = calloc(no, sizeof(double));
            double *rd = calloc(nq, sizeof(double));
            for (int b = 0; b < B; b++)
                for (int h = 0; h < NH; h++) {
                    size_t qo = (size_t)b * T * C3 + (size_t)h * hs;
                    size_t yo = (size_t)b * T * C + (size_t)h * hs;
                    att_ref_bh(ra + ((size_t)b * NH + h) * T * T, ry + yo, rd + qo, rd + qo + C,
                               rd + qo + 2 * C, qkv + qo, qkv + qo + C, qkv + qo + 2 * C, dout + yo,
                               pad ? pad + (size_t)b * T : NULL, causal, T, hs, C3, C);
                }
            double *ga = calloc(na, sizeof(double)), *gy = calloc(no, sizeof(double));
            double *gd = calloc(nq, sizeof(double));
            for (size_t i = 0; i < na; i++) ga[i] = (double)att[i];
            for (size_t i = 0; i < no; i++) gy[i] = (double)out[i];
            for (size_t i = 0; i < nq; i++) gd[i] = (double)dqkv[i] - 0.25;
            char name[96];
            snprintf(name, sizeof name, "attention T=%d causal=%d pad=%d simd<=%d att", T, causal,
                     pad != NULL, level);
            cr_expect(clasp_test_check_tensor_f64(name, ga, ra, na, 1e-6, 1e-5), "%s", name);
            snprintf(name, sizeof name, "attention T=%d causal=%d pad=%d simd<=%d out", T, causal,
                     pad != NULL, level);
            cr_expect(clasp_test_check_tensor_f64(name, gy, ry, no, 2e-6, 1e-5), "%s", name);
            snprintf(name, sizeof name, "attention T=%d causal=%d pad=%d simd<=%d dqkv", T, causal,
                     pad != NULL, level);
            cr_expect(clasp_test_check_tensor_f64(name, gd, rd, nq, 5e-6, 1e-4), "%s", name);
            if (pad && causal) /* b = 1, row 0: its only visible key is padded */
                for (int h = 0; h < NH; h++)
                    for (int d = 0; d < hs; d++)
                        cr_expect_eq(out[(size_t)T * C + (size_t)h * hs + d], 0.0f);
            free(qkv), free(dout), free(out), free(att), free(dqkv), free(work), free(pad);
            free(ra), free(ry), free(rd), free(ga), free(gy), free(gd);
        }
    }
}

Test(layers, attention_long_sequences_simd) {
    attention_long_check(2);
}

Test(layers, attention_long_sequences_avx2) {
    attention_long_check(1);
}

Test(layers, attention_long_sequences_blas) {
    attention_long_check(0);
}

/* ================================ L2 norm ================================================= */

typedef struct l2_ctx {
    float *out, *norm, *inp, *dinp, eps;
    int N, D;
} l2_ctx;

static void l2_fwd(void *q) {
    l2_ctx *c = q;
    clasp_l2norm_forward(c->out, c->norm, c->inp, c->N, c->D, c->eps);
}

static void l2_bwd(void *q, const float *dout) {
    l2_ctx *c = q;
    clasp_l2norm_backward(c->dinp, dout, c->out, c->norm, c->N, c->D);
}

Test(layers, l2norm_fd) {
    l2_ctx c = {.N = 4, .D = 5, .eps = 0.5f};
    c.out = zeros(20), c.norm = zeros(4), c.inp = randf(20, 90, 1.0f), c.dinp = zeros(20);
    for (int d = 0; d < 5; d++) c.inp[2 * 5 + d] *= 0.05f; /* row 2: norm < eps, clamped */
    fd_case fc = {l2_fwd, l2_bwd, &c, c.out, 20};
    fd_param ps[] = {{"inp", c.inp, c.dinp, 20}};
    cr_expect(fd_check("l2norm", &fc, ps, 1, 1e-3f, 2e-3, 2e-3));
    cr_expect_eq(c.norm[2], 0.5f);
    for (int n = 0; n < 4; n++) {
        if (n == 2) continue;
        double s = 0;
        for (int d = 0; d < 5; d++) s += (double)(c.out[n * 5 + d] * c.out[n * 5 + d]);
        cr_expect(fabs(s - 1.0) < 1e-6, "row %d: |y|^2 = %g", n, s);
    }
    free(c.out), free(c.norm), free(c.inp), free(c.dinp);
}

Test(layers, l2norm_torch) {
    clasp_safetensors *st = ref_open("l2norm");
    l2_ctx c = {.N = 4, .D = 6, .eps = ref_f32(st, "eps", 1)[0]};
    c.out = zeros(24), c.norm = zeros(4), c.inp = ref_copy(st, "inp", 24), c.dinp = zeros(24);
    l2_fwd(&c);
    l2_bwd(&c, ref_f32(st, "dout", 24));
    cr_expect(ref_check(st, "l2norm", "out", c.out, 24));
    cr_expect(ref_check(st, "l2norm", "dinp", c.dinp, 24));
    free(c.out), free(c.norm), free(c.inp), free(c.dinp);
    clasp_st_free(st);
}

/* ================================ dropout ================================================= */

Test(layers, dropout_statistics_and_scale) {
    size_t n = 200000;
    float p = 0.3f;
    float *x = randf(n, 100, 1.0f), *y = zeros(n);
    for (size_t i = 0; i < n; i++) x[i] = fabsf(x[i]) + 0.1f; /* never 0, so kept != dropped */
    clasp_dropout_forward(y, x, n, p, 42, 7, 3);
    size_t kept = 0;
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        if (y[i] != 0.0f) {
            kept++;
            cr_assert_eq(y[i], x[i] * scale, "element %zu: %g, want %g", i, (double)y[i],
                         (double)(x[i] * scale));
        }
    }
    double frac = (double)kept / (double)n; /* sd = sqrt(0.21 / 2e5) ~ 0.001 */
    cr_expect(fabs(frac - 0.7) < 0.005, "kept fraction %g, want 0.7", frac);
    /* the mask is the stream's u32 sequence: element i kept iff (u32_i >> 8) / 2^24 >= p */
    clasp_rng r;
    clasp_rng_init(&r, 42, CLASP_RNG_DROPOUT, 7, 3);
    for (size_t i = 0; i < 1000; i++) {
        int keep = clasp_rng_uniform(&r) >= p;
        cr_assert_eq(keep, y[i] != 0.0f, "element %zu", i);
    }
    free(x), free(y);
}

Test(layers, dropout_deterministic_and_keyed) {
    size_t n = 10001;
    float *x = zeros(n), *a = zeros(n), *b = zeros(n), *c = zeros(n), *d = zeros(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    clasp_dropout_forward(a, x, n, 0.5f, 1, 10, 0);
    clasp_dropout_forward(b, x, n, 0.5f, 1, 10, 0);
    clasp_dropout_forward(c, x, n, 0.5f, 1, 11, 0);
    clasp_dropout_forward(d, x, n, 0.5f, 1, 10, 1);
    cr_expect(memcmp(a, b, n * sizeof(float)) == 0, "same key, different mask");
    size_t diff_step = 0, diff_layer = 0;
    for (size_t i = 0; i < n; i++) diff_step += (a[i] != 0.0f) != (c[i] != 0.0f);
    for (size_t i = 0; i < n; i++) diff_layer += (a[i] != 0.0f) != (d[i] != 0.0f);
    /* independent masks differ in about half of the places */
    cr_expect(diff_step > n / 3 && diff_step < 2 * n / 3, "step: %zu differ", diff_step);
    cr_expect(diff_layer > n / 3 && diff_layer < 2 * n / 3, "layer: %zu differ", diff_layer);
    /* element i depends only on i: a shorter call is a prefix of a longer one */
    clasp_dropout_forward(b, x, 37, 0.5f, 1, 10, 0);
    cr_expect(memcmp(a, b, 37 * sizeof(float)) == 0);
    free(x), free(a), free(b), free(c), free(d);
}

Test(layers, dropout_backward_matches_forward_mask) {
    size_t n = 1003;
    float p = 0.25f;
    float *dout = randf(n, 101, 1.0f), *fw = zeros(n), *dx = zeros(n);
    for (size_t i = 0; i < n; i++) dx[i] = 1.0f; /* accumulates */
    clasp_dropout_forward(fw, dout, n, p, 9, 2, 5);
    clasp_dropout_backward(dx, dout, n, p, 9, 2, 5);
    for (size_t i = 0; i < n; i++) cr_assert_eq(dx[i], 1.0f + fw[i], "element %zu", i);
    /* p = 0 is the identity; p = 1 drops everything */
    clasp_dropout_forward(fw, dout, n, 0.0f, 9, 2, 5);
    cr_expect(memcmp(fw, dout, n * sizeof(float)) == 0);
    clasp_dropout_forward(fw, dout, n, 1.0f, 9, 2, 5);
    for (size_t i = 0; i < n; i++) cr_assert_eq(fw[i], 0.0f);
    free(dout), free(fw), free(dx);
}

Test(layers, add_forward) {
    float a[3] = {1, 2, 3}, b[3] = {0.5f, -2, 4}, o[3];
    clasp_add_forward(o, a, b, 3);
    cr_expect(o[0] == 1.5f && o[1] == 0.0f && o[2] == 7.0f);
}

/* ================================ transformer block ======================================= */

/* Parameter tensors in the order of clasp_block_params, with their PyTorch names. */
static const char *blk_names[12] = {"ln1.weight",    "ln1.bias",         "attn.qkv.weight",
                                    "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                    "ln2.weight",    "ln2.bias",         "mlp.fc1.weight",
                                    "mlp.fc1.bias",  "mlp.fc2.weight",   "mlp.fc2.bias"};

static void blk_sizes(const clasp_block_dims *d, size_t n[12]) {
    size_t C = (size_t)d->C, F = (size_t)d->F;
    size_t s[12] = {C, C, 3 * C * C, 3 * C, C * C, C, C, C, F * C, F, C * F, C};
    memcpy(n, s, sizeof s);
}

static float **blk_fields(clasp_block_params *p) {
    return (float **)p; /* the struct is 12 float pointers in order */
}

typedef struct blk_ctx {
    clasp_block_dims d;
    clasp_block_params p, g;
    clasp_block_acts a;
    float *acts, *work, *inp, *out, *dinp;
    uint8_t *pad;
} blk_ctx;

static void blk_fwd(void *q) {
    blk_ctx *c = q;
    clasp_block_forward(c->out, &c->a, c->work, c->inp, &c->p, c->pad, &c->d);
}

static void blk_bwd(void *q, const float *dout) {
    blk_ctx *c = q;
    clasp_block_backward(c->dinp, &c->g, c->work, dout, c->inp, &c->a, &c->p, &c->d);
}

static void blk_alloc(blk_ctx *c) {
    size_t n[12], nx = (size_t)c->d.B * c->d.T * c->d.C;
    blk_sizes(&c->d, n);
    for (int k = 0; k < 12; k++) {
        blk_fields(&c->p)[k] = randf(n[k], 200 + k, 0.3f);
        blk_fields(&c->g)[k] = zeros(n[k]);
    }
    for (size_t i = 0; i < n[0]; i++) c->p.ln1_w[i] += 1.0f;
    for (size_t i = 0; i < n[6]; i++) c->p.ln2_w[i] += 1.0f;
    c->acts = zeros(clasp_block_acts_floats(&c->d));
    clasp_block_acts_point(&c->a, c->acts, &c->d);
    c->work = zeros(clasp_block_work_floats(&c->d));
    c->inp = randf(nx, 220, 1.0f), c->out = zeros(nx), c->dinp = zeros(nx);
}

/* Sets the block's dims (LayerNorm eps 1e-5) and padding mask, and allocates its buffers. */
static void blk_init(blk_ctx *c, int B, int T, int C, int NH, int F, bool causal, bool gelu_tanh,
                     uint8_t *pad) {
    *c = (blk_ctx){.d = {.B = B,
                         .T = T,
                         .C = C,
                         .NH = NH,
                         .F = F,
                         .causal = causal,
                         .gelu_tanh = gelu_tanh,
                         .ln_eps = 1e-5f},
                   .pad = pad};
    blk_alloc(c);
}

static void blk_free(blk_ctx *c) {
    for (int k = 0; k < 12; k++) free(blk_fields(&c->p)[k]), free(blk_fields(&c->g)[k]);
    free(c->acts), free(c->work), free(c->inp), free(c->out), free(c->dinp);
}

Test(layers, block_fd) {
    uint8_t pad[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    for (int mode = 0; mode < 2; mode++) {
        blk_ctx c;
        blk_init(&c, 2, 4, 6, 2, 12, mode == 0, mode == 1, mode == 1 ? pad : NULL);
        size_t n[12], nx = (size_t)c.d.B * c.d.T * c.d.C;
        blk_sizes(&c.d, n);
        fd_param ps[13];
        for (int k = 0; k < 12; k++)
            ps[k] = (fd_param){blk_names[k], blk_fields(&c.p)[k], blk_fields(&c.g)[k], n[k]};
        ps[12] = (fd_param){"inp", c.inp, c.dinp, nx};
        fd_case fc = {blk_fwd, blk_bwd, &c, c.out, nx};
        cr_expect(
            fd_check(mode ? "block(pad,tanh)" : "block(causal)", &fc, ps, 13, 1e-2f, 2e-3, 5e-3));
        blk_free(&c);
    }
}

/* Layer scale (OpenCLIP's LayerScale gammas ls1, ls2 on the two branches): finite differences
 * of every parameter, the gammas and the input, causal with QuickGELU and padded with GELU. */
Test(layers, block_layer_scale_fd) {
    uint8_t pad[8] = {0, 0, 0, 0, 0, 1, 1, 1};
    for (int mode = 0; mode < 2; mode++) {
        blk_ctx c = {.d = {.B = 2,
                           .T = 4,
                           .C = 6,
                           .NH = 2,
                           .F = 12,
                           .causal = mode == 0,
                           .gelu_tanh = mode == 0 ? 2 : 0,
                           .ln_eps = 1e-5f,
                           .layer_scale = 1},
                     .pad = mode == 1 ? pad : NULL};
        blk_alloc(&c);
        size_t C = (size_t)c.d.C, n[12], nx = (size_t)c.d.B * c.d.T * C;
        c.p.ls1 = randf(C, 240, 0.8f), c.p.ls2 = randf(C, 241, 0.8f);
        c.g.ls1 = zeros(C), c.g.ls2 = zeros(C);
        blk_sizes(&c.d, n);
        fd_param ps[15];
        for (int k = 0; k < 12; k++)
            ps[k] = (fd_param){blk_names[k], blk_fields(&c.p)[k], blk_fields(&c.g)[k], n[k]};
        ps[12] = (fd_param){"ls1.gamma", c.p.ls1, c.g.ls1, C};
        ps[13] = (fd_param){"ls2.gamma", c.p.ls2, c.g.ls2, C};
        ps[14] = (fd_param){"inp", c.inp, c.dinp, nx};
        fd_case fc = {blk_fwd, blk_bwd, &c, c.out, nx};
        cr_expect(fd_check(mode ? "block(ls,pad)" : "block(ls,causal,quick)", &fc, ps, 15, 1e-2f,
                           2e-3, 5e-3));
        free(c.p.ls1), free(c.p.ls2), free(c.g.ls1), free(c.g.ls2);
        blk_free(&c);
    }
}

/* The block caches neither the LayerNorm outputs nor GELU's output and recomputes them in the
 * backward: its results must equal, bit for bit, the block composed from the public layers
 * with every activation stored (the gradients of the composition start from zeros, which the
 * layers add to). */
Test(layers, block_recomputation_equals_stored_composition) {
    uint8_t pad[10] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    for (int mode = 0; mode < 2; mode++) {
        blk_ctx c;
        blk_init(&c, 2, 5, 8, 2, 16, mode == 0, mode == 1, mode == 1 ? pad : NULL);
        const clasp_block_dims *d = &c.d;
        int BT = d->B * d->T, C = d->C, F = d->F, NH = d->NH;
        size_t nC = (size_t)BT * C, nF = (size_t)BT * F, n[12];
        blk_sizes(d, n);
        float *dout = randf(nC, 230 + mode, 1.0f);
        blk_fwd(&c);
        blk_bwd(&c, dout);
        /* the composition */
        const clasp_block_params *p = &c.p;
        clasp_block_params g;
        for (int k = 0; k < 12; k++) blk_fields(&g)[k] = zeros(n[k]);
        float *ln1 = zeros(nC), *m1 = zeros(BT), *r1 = zeros(BT), *qkv = zeros(3 * nC);
        float *att = zeros((size_t)d->B * NH * d->T * d->T), *atty = zeros(nC);
        float *res1 = zeros(nC), *ln2 = zeros(nC), *m2 = zeros(BT), *r2 = zeros(BT);
        float *fc1 = zeros(nF), *act = zeros(nF), *out = zeros(nC);
        float *awork = zeros(clasp_attention_work_floats(d->B, d->T, C, NH));
        clasp_layernorm_forward(ln1, m1, r1, c.inp, p->ln1_w, p->ln1_b, BT, C, d->ln_eps);
        clasp_linear_forward(qkv, ln1, p->qkv_w, p->qkv_b, BT, C, 3 * C);
        clasp_attention_forward(atty, att, awork, qkv, c.pad, d->causal, d->B, d->T, C, NH);
        clasp_linear_forward(res1, atty, p->proj_w, p->proj_b, BT, C, C);
        for (size_t i = 0; i < nC; i++) res1[i] += c.inp[i];
        clasp_layernorm_forward(ln2, m2, r2, res1, p->ln2_w, p->ln2_b, BT, C, d->ln_eps);
        clasp_linear_forward(fc1, ln2, p->fc1_w, p->fc1_b, BT, C, F);
        (d->gelu_tanh ? clasp_gelu_tanh_forward : clasp_gelu_forward)(act, fc1, nF);
        clasp_linear_forward(out, act, p->fc2_w, p->fc2_b, BT, F, C);
        for (size_t i = 0; i < nC; i++) out[i] += res1[i];
        float *dres1 = zeros(nC), *dact = zeros(nF), *dfc1 = zeros(nF), *dln2 = zeros(nC);
        float *datty = zeros(nC), *dqkv = zeros(3 * nC), *dln1 = zeros(nC), *dinp = zeros(nC);
        memcpy(dres1, dout, nC * sizeof(float));
        clasp_linear_backward(dact, g.fc2_w, g.fc2_b, dout, act, p->fc2_w, BT, F, C);
        (d->gelu_tanh ? clasp_gelu_tanh_backward : clasp_gelu_backward)(dfc1, dact, fc1, nF);
        clasp_linear_backward(dln2, g.fc1_w, g.fc1_b, dfc1, ln2, p->fc1_w, BT, C, F);
        clasp_layernorm_backward(dres1, g.ln2_w, g.ln2_b, dln2, res1, p->ln2_w, m2, r2, BT, C);
        for (size_t i = 0; i < nC; i++) dinp[i] += dres1[i];
        clasp_linear_backward(datty, g.proj_w, g.proj_b, dres1, atty, p->proj_w, BT, C, C);
        clasp_attention_backward(dqkv, awork, datty, qkv, att, d->B, d->T, C, NH);
        clasp_linear_backward(dln1, g.qkv_w, g.qkv_b, dqkv, ln1, p->qkv_w, BT, C, 3 * C);
        clasp_layernorm_backward(dinp, g.ln1_w, g.ln1_b, dln1, c.inp, p->ln1_w, m1, r1, BT, C);
        for (size_t i = 0; i < nC; i++)
            cr_expect(c.out[i] == out[i], "mode %d out[%zu]: %.9g vs %.9g", mode, i,
                      (double)c.out[i], (double)out[i]);
        for (size_t i = 0; i < nC; i++)
            cr_expect(c.dinp[i] == dinp[i], "mode %d dinp[%zu]: %.9g vs %.9g", mode, i,
                      (double)c.dinp[i], (double)dinp[i]);
        for (int k = 0; k < 12; k++)
            for (size_t i = 0; i < n[k]; i++)
                cr_expect(blk_fields(&c.g)[k][i] == blk_fields(&g)[k][i],
                          "mode %d d%s[%zu]: %.9g vs %.9g", mode, blk_names[k], i,
                          (double)blk_fields(&c.g)[k][i], (double)blk_fields(&g)[k][i]);
        for (int k = 0; k < 12; k++) free(blk_fields(&g)[k]);
        free(ln1), free(m1), free(r1), free(qkv), free(att), free(atty), free(res1), free(ln2);
        free(m2), free(r2), free(fc1), free(act), free(out), free(awork), free(dres1), free(dact);
        free(dfc1), free(dln2), free(datty), free(dqkv), free(dln1), free(dinp), free(dout);
        blk_free(&c);
    }
}

Test(layers, block_torch) {
    static const char *tags[] = {"block_causal", "block_pad_tanh"};
    for (int k = 0; k < 2; k++) {
        clasp_safetensors *st = ref_open(tags[k]);
        int32_t *g = ref_i32(st, "cfg", NULL);
        blk_ctx c;
        blk_init(&c, g[0], g[1], g[2], g[3], g[4], g[5], g[6], NULL);
        size_t n[12], nx = (size_t)c.d.B * c.d.T * c.d.C;
        blk_sizes(&c.d, n);
        for (int i = 0; i < 12; i++)
            memcpy(blk_fields(&c.p)[i], ref_f32(st, blk_names[i], n[i]), n[i] * sizeof(float));
        memcpy(c.inp, ref_f32(st, "inp", nx), nx * sizeof(float));
        c.pad = clasp_st_find(st, "pad") ? ref_u8(st, "pad", (size_t)c.d.B * c.d.T) : NULL;
        blk_fwd(&c);
        blk_bwd(&c, ref_f32(st, "dout", nx));
        cr_expect(ref_check(st, tags[k], "out", c.out, nx));
        cr_expect(ref_check(st, tags[k], "dinp", c.dinp, nx));
        for (int i = 0; i < 12; i++) {
            char key[64];
            snprintf(key, sizeof key, "d.%s", blk_names[i]);
            cr_expect(ref_check(st, tags[k], key, blk_fields(&c.g)[i], n[i]));
        }
        /* g == NULL: only dinp, the same values accumulated once more */
        clasp_block_backward(c.dinp, NULL, c.work, ref_f32(st, "dout", nx), c.inp, &c.a, &c.p,
                             &c.d);
        for (size_t i = 0; i < nx; i++) c.dinp[i] *= 0.5f;
        cr_expect(ref_check(st, tags[k], "dinp", c.dinp, nx));
        free(c.pad), free(g);
        blk_free(&c);
        clasp_st_free(st);
    }
}

Test(layers, gelu_of_nan_is_nan) {
    /* NaN stays NaN through both GELUs and their gradients, with no float-to-int conversion
     * of a NaN inside exp (UBSan checks that in the sanitizer build) */
    float x[9], y[9], yt[9], g[9] = {0}, gt[9] = {0}, ones[9];
    for (int i = 0; i < 9; i++) x[i] = i == 4 ? NAN : (float)(i - 4), ones[i] = 1.0f;
    clasp_gelu_forward(y, x, 9);
    clasp_gelu_tanh_forward(yt, x, 9);
    clasp_gelu_backward(g, ones, x, 9);
    clasp_gelu_tanh_backward(gt, ones, x, 9);
    for (int i = 0; i < 9; i++) {
        bool want = i == 4;
        cr_expect(isnan(y[i]) == want && isnan(yt[i]) == want && isnan(g[i]) == want &&
                      isnan(gt[i]) == want,
                  "x = %g: %g %g %g %g", (double)x[i], (double)y[i], (double)yt[i], (double)g[i],
                  (double)gt[i]);
    }
}

Test(layers, gelu_accuracy_wide_range) {
    /* the branch-free erfc/exp used by GELU against libm in double, over [-12, 12] and at
     * extreme inputs; relative accuracy must hold in the left tail too */
    size_t n = 2401 + 4;
    float *x = zeros(n), *y = zeros(n), *g = zeros(n), *yt = zeros(n), *gt = zeros(n);
    float *ones = zeros(n);
    for (size_t i = 0; i < 2401; i++) x[i] = -12.0f + 0.01f * (float)i;
    x[2401] = -100.0f, x[2402] = 100.0f, x[2403] = 1e-30f, x[2404] = -1e-30f;
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    clasp_gelu_forward(y, x, n);
    clasp_gelu_backward(g, ones, x, n);
    clasp_gelu_tanh_forward(yt, x, n);
    clasp_gelu_tanh_backward(gt, ones, x, n);
    double *want = calloc(n, sizeof(double)), *wg = calloc(n, sizeof(double));
    double *wt = calloc(n, sizeof(double)), *wgt = calloc(n, sizeof(double));
    double *got = calloc(n, sizeof(double)), *gg = calloc(n, sizeof(double));
    double *gott = calloc(n, sizeof(double)), *ggt = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i];
        double cdf = 0.5 * erfc(-v / sqrt(2.0)), pdf = exp(-0.5 * v * v) / sqrt(2.0 * M_PI);
        want[i] = v * cdf, wg[i] = cdf + v * pdf;
        /* 0.5 (1 + tanh u) = sigmoid(2u), without cancellation in double either */
        double u = sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v), sg = 1.0 / (1.0 + exp(-2 * u));
        wt[i] = v * sg;
        wgt[i] = sg + 2.0 * v * sg * (1.0 - sg) * sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * v * v);
        got[i] = (double)y[i], gg[i] = (double)g[i], gott[i] = (double)yt[i],
        ggt[i] = (double)gt[i];
    }
    cr_expect(clasp_test_check_tensor_f64("gelu wide", got, want, n, 1e-7, 1e-5));
    cr_expect(clasp_test_check_tensor_f64("gelu' wide", gg, wg, n, 1e-7, 1e-5));
    cr_expect(clasp_test_check_tensor_f64("gelu_tanh wide", gott, wt, n, 1e-7, 1e-5));
    cr_expect(clasp_test_check_tensor_f64("gelu_tanh' wide", ggt, wgt, n, 1e-7, 1e-5));
    /* relative accuracy in the left tail (x in [-9, -3]: values 1e-3 .. 1e-18) */
    for (size_t i = 300; i <= 900; i++)
        cr_expect(fabs(got[i] - want[i]) <= 1e-4 * fabs(want[i]), "x = %g: %g vs %g", (double)x[i],
                  got[i], want[i]);
    free(x), free(y), free(g), free(yt), free(gt), free(ones), free(want), free(wg), free(wt),
        free(wgt), free(got), free(gg), free(gott), free(ggt);
}
