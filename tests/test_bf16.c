/* test_bf16.c: --precision bf16, layer by layer and end to end.
 *
 * Layers with matrix products (linear, fmnist-small's 3x3 pad-1 convolutions, the attention
 * core, the transformer block, symmetric InfoNCE), forward and backward, on the inputs of
 * tests/reference/bf16/<case>.safetensors (tests/reference/make_bf16.py), each run in fp32 and
 * with clasp_compute_set_precision(CLASP_BF16). Tolerances are max |got - want| / max |want|
 * over a tensor ("relative to the largest"):
 *   (a) bf16 against clasp's own fp32 path:            TOL_FP32 = 2e-2 (measured <= 1.1e-2)
 *   (b) bf16 against PyTorch autocast (ac.*):           TOL_AC   = 3e-2 (measured <= 1.6e-2)
 *       bf16 against clasp's semantics in float64 (rb.*): 1e-4 for one product (fp32
 *       accumulation order only), 2e-3 where a rounded product feeds another (an fp32 value
 *       next to a bf16 rounding boundary can round the other way: 2^-8 on that element), and
 *       relative rms <= TOL_RB_RMS = 5e-4 (such elements are rare); measured: <= 3e-7
 *   (c) every output that goes through a product is NOT bit-equal to fp32, and its rms
 *       distance to the bf16 semantics is under a quarter of fp32's (a bf16 that silently ran
 *       fp32, or rounded only some products, fails here).
 * PyTorch autocast also rounds the products' OUTPUTS to bf16 (clasp keeps them fp32), hence the
 * wider (b): autocast and clasp's semantics differ by up to 1.6e-2 on these cases.
 * The bias gradient of a convolution is the fp32 sum of the exact dout (as linear's), whatever
 * the CPU: oneDNN's bf16 convolution would sum the rounded one, so clasp sums it itself.
 *
 * End to end: `clasp train --precision bf16` on the Fashion-MNIST test shards is deterministic
 * across --threads (same --chunks), differs from fp32, and under ONEDNN_MAX_CPU_ISA=AVX2 (no
 * bf16 kernels) still runs with losses close to native bf16; an OpenBLAS build refuses it
 * naming the backend. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/compute.h"
#include "core/safetensors.h"
#include "encoders/layers.h"
#include "fixtures.h"
#include "loss/infonce.h"

#define TOL_FP32   2e-2
#define TOL_AC     3e-2
#define TOL_RB1    1e-4
#define TOL_RBN    2e-3
#define TOL_RB_RMS 5e-4

static bool have_bf16_(void) {
    return clasp_compute_check(CLASP_BF16, NULL) == CLASP_OK;
}

/* ---- the outputs of one run of a layer ------------------------------------------------------ */

#define MAX_OUT 16
typedef struct layer_out {
    int n;
    const char *name[MAX_OUT]; /* as in the reference file, after "ac." / "rb." */
    float *v[MAX_OUT];
    size_t len[MAX_OUT];
    bool product[MAX_OUT]; /* computed through a matrix product (else bf16 == fp32 is right) */
} layer_out;

/* A zeroed output buffer of len floats, registered under name. */
static float *out_add_(layer_out *o, const char *name, size_t len, bool product) {
    cr_assert(o->n < MAX_OUT);
    float *p = calloc(len ? len : 1, sizeof(float));
    cr_assert_not_null(p);
    o->name[o->n] = name, o->v[o->n] = p, o->len[o->n] = len, o->product[o->n] = product;
    o->n++;
    return p;
}

static void out_free_(layer_out *o) {
    for (int i = 0; i < o->n; i++) free(o->v[i]);
}

/* tensor `name` of the reference, numel checked */
static const float *ref_(clasp_safetensors *st, const char *name, size_t n) {
    const clasp_st_tensor *t = clasp_st_find(st, name);
    cr_assert_not_null(t, "%s: no tensor %s", st->path, name);
    cr_assert_eq(t->numel, n, "%s: %s has %zu elements, expected %zu", st->path, name, t->numel, n);
    const float *p = clasp_st_f32(st, t);
    cr_assert_not_null(p, "%s", clasp_last_error());
    return p;
}

static int32_t cfg_(clasp_safetensors *st, int i) {
    const clasp_st_tensor *t = clasp_st_find(st, "cfg");
    cr_assert(t && t->dtype == CLASP_DTYPE_I32 && (size_t)i < t->numel);
    int32_t v;
    memcpy(&v, t->data + 4 * (size_t)i, 4);
    return v;
}

/* the uint8 padding mask, or NULL (owned by st) */
static const uint8_t *pad_(clasp_safetensors *st, size_t n) {
    const clasp_st_tensor *t = clasp_st_find(st, "pad");
    if (!t) return NULL;
    cr_assert(t->dtype == CLASP_DTYPE_U8 && t->numel == n);
    return t->data;
}

/* max |a - b| / max |b| */
static double rel_max_(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
    return fx_max_abs_diff(a, b, n) / (m > 0.0 ? m : 1.0);
}

/* sqrt(mean (a - b)^2) / sqrt(mean b^2): a few elements on the other side of a bf16 rounding
 * boundary barely move it */
static double rel_rms_(const float *a, const float *b, size_t n) {
    double e = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        e += d * d, m += (double)b[i] * (double)b[i];
    }
    return sqrt(e / (m > 0.0 ? m : 1.0));
}

typedef void layer_run_fn(clasp_safetensors *st, layer_out *o);

/* Runs `run` on reference `file` in fp32 and in bf16 and checks (a), (b) and (c). */
static void check_layer_(const char *file, layer_run_fn *run, double tol_rb) {
    if (!have_bf16_()) cr_skip_test("%s", clasp_last_error());
    clasp_safetensors *st = fx_ref_open("bf16/%s.safetensors", file);
    cr_assert(st, "%s", clasp_last_error());
    layer_out o32 = {0}, o16 = {0};
    clasp_compute_set_precision(CLASP_FP32);
    run(st, &o32);
    clasp_compute_set_precision(CLASP_BF16);
    run(st, &o16);
    clasp_compute_set_precision(CLASP_FP32);
    cr_assert_eq(o32.n, o16.n);
    for (int i = 0; i < o16.n; i++) {
        const char *nm = o16.name[i];
        size_t n = o16.len[i];
        char key[96];
        snprintf(key, sizeof key, "rb.%s", nm);
        const float *rb = ref_(st, key, n);
        double e32 = rel_max_(o16.v[i], o32.v[i], n);
        double erb = rel_max_(o16.v[i], rb, n), rrb = rel_rms_(o16.v[i], rb, n);
        double f32rb = rel_max_(o32.v[i], rb, n), r32 = rel_rms_(o32.v[i], rb, n);
        snprintf(key, sizeof key, "ac.%s", nm);
        double eac = rel_max_(o16.v[i], ref_(st, key, n), n);
        if (getenv("CLASP_TEST_VERBOSE"))
            fprintf(stderr,
                    "%s %-18s bf16 vs fp32 %.2e | vs autocast %.2e | vs clasp semantics %.2e, "
                    "rms %.2e (fp32: %.2e, rms %.2e)\n",
                    file, nm, e32, eac, erb, rrb, f32rb, r32);
        cr_expect(e32 <= TOL_FP32, "%s %s: bf16 vs fp32 %.3g > %g", file, nm, e32, TOL_FP32);
        cr_expect(eac <= TOL_AC, "%s %s: bf16 vs PyTorch autocast %.3g > %g", file, nm, eac,
                  TOL_AC);
        cr_expect(erb <= tol_rb, "%s %s: bf16 vs rounded-input float64 %.3g > %g", file, nm, erb,
                  tol_rb);
        cr_expect(rrb <= TOL_RB_RMS, "%s %s: bf16 vs rounded-input float64, rms %.3g > %g", file,
                  nm, rrb, TOL_RB_RMS);
        if (o16.product[i]) {
            cr_expect(memcmp(o16.v[i], o32.v[i], n * sizeof(float)),
                      "%s %s: bf16 gave fp32's bits (precision ignored?)", file, nm);
            cr_expect(r32 > 4.0 * rrb,
                      "%s %s: bf16 (rms %.3g) is not much closer to the bf16 semantics than "
                      "fp32 (%.3g)",
                      file, nm, rrb, r32);
        }
    }
    out_free_(&o32), out_free_(&o16);
    clasp_st_free(st);
}

/* ---- the layers ---------------------------------------------------------------------------- */

static void linear_run_(clasp_safetensors *st, layer_out *o) {
    int N = cfg_(st, 0), C = cfg_(st, 1), OC = cfg_(st, 2);
    const float *inp = ref_(st, "inp", (size_t)N * C), *w = ref_(st, "w", (size_t)OC * C);
    float *out = out_add_(o, "out", (size_t)N * OC, true);
    float *dinp = out_add_(o, "dinp", (size_t)N * C, true);
    float *dw = out_add_(o, "dw", (size_t)OC * C, true);
    float *db = out_add_(o, "db", (size_t)OC, false);
    clasp_linear_forward(out, inp, w, ref_(st, "b", (size_t)OC), N, C, OC);
    clasp_linear_backward(dinp, dw, db, ref_(st, "dout", (size_t)N * OC), inp, w, N, C, OC);
}

static void conv_run_(clasp_safetensors *st, layer_out *o) {
    int B = cfg_(st, 0), C = cfg_(st, 1), H = cfg_(st, 2), W = cfg_(st, 3), OC = cfg_(st, 4);
    int KH = cfg_(st, 5), KW = cfg_(st, 6), s = cfg_(st, 7), p = cfg_(st, 8);
    int OH = clasp_conv2d_out_size(H, KH, s, p), OW = clasp_conv2d_out_size(W, KW, s, p);
    size_t ni = (size_t)B * H * W * C, nw = (size_t)OC * C * KH * KW, no = (size_t)B * OH * OW * OC;
    const float *inp = ref_(st, "inp", ni), *w = ref_(st, "w", nw);
    float *out = out_add_(o, "out", no, true), *dinp = out_add_(o, "dinp", ni, true);
    float *dw = out_add_(o, "dw", nw, true), *db = out_add_(o, "db", (size_t)OC, false);
    float *work = calloc(clasp_conv2d_work_floats(B, C, H, W, KH, KW, s, p) + 1, sizeof(float));
    cr_assert_not_null(work);
    clasp_conv2d_forward(out, work, inp, w, ref_(st, "b", (size_t)OC), B, C, H, W, OC, KH, KW, s,
                         p);
    clasp_conv2d_backward(dinp, dw, db, work, ref_(st, "dout", no), inp, w, B, C, H, W, OC, KH, KW,
                          s, p);
    free(work);
}

static void attention_run_(clasp_safetensors *st, layer_out *o) {
    int B = cfg_(st, 0), T = cfg_(st, 1), C = cfg_(st, 2), NH = cfg_(st, 3), causal = cfg_(st, 4);
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    const float *qkv = ref_(st, "qkv", nq);
    float *out = out_add_(o, "out", no, true), *dqkv = out_add_(o, "dqkv", nq, true);
    float *att = calloc((size_t)B * NH * T * T, sizeof(float));
    float *work = calloc(clasp_attention_work_floats(B, T, C, NH) + 1, sizeof(float));
    cr_assert(att && work);
    clasp_attention_forward(out, att, work, qkv, pad_(st, (size_t)B * T), causal, B, T, C, NH);
    clasp_attention_backward(dqkv, work, ref_(st, "dout", no), qkv, att, B, T, C, NH);
    free(att), free(work);
}

/* clasp_block_params' 12 pointers in order, with their reference names */
static const char *blk_names_[12] = {"ln1.weight",    "ln1.bias",         "attn.qkv.weight",
                                     "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                     "ln2.weight",    "ln2.bias",         "mlp.fc1.weight",
                                     "mlp.fc1.bias",  "mlp.fc2.weight",   "mlp.fc2.bias"};
static const char *blk_grads_[12] = {"dln1.weight",    "dln1.bias",         "dattn.qkv.weight",
                                     "dattn.qkv.bias", "dattn.proj.weight", "dattn.proj.bias",
                                     "dln2.weight",    "dln2.bias",         "dmlp.fc1.weight",
                                     "dmlp.fc1.bias",  "dmlp.fc2.weight",   "dmlp.fc2.bias"};

static void block_run_(clasp_safetensors *st, layer_out *o) {
    clasp_block_dims d = {.B = cfg_(st, 0),
                          .T = cfg_(st, 1),
                          .C = cfg_(st, 2),
                          .NH = cfg_(st, 3),
                          .F = cfg_(st, 4),
                          .causal = cfg_(st, 5),
                          .gelu_tanh = cfg_(st, 6),
                          .ln_eps = 1e-5f};
    size_t C = (size_t)d.C, F = (size_t)d.F, nx = (size_t)d.B * d.T * C;
    size_t sz[12] = {C, C, 3 * C * C, 3 * C, C * C, C, C, C, F * C, F, C * F, C};
    clasp_block_params p, g;
    float **pp = (float **)&p, **gp = (float **)&g; /* the struct is 12 float pointers */
    float *out = out_add_(o, "out", nx, true), *dinp = out_add_(o, "dinp", nx, true);
    for (int k = 0; k < 12; k++) {
        pp[k] = (float *)ref_(st, blk_names_[k], sz[k]);
        /* every gradient but fc2's bias (the sum of dout) flows through a product */
        gp[k] = out_add_(o, blk_grads_[k], sz[k], k != 11);
    }
    float *acts = calloc(clasp_block_acts_floats(&d), sizeof(float));
    float *work = calloc(clasp_block_work_floats(&d), sizeof(float));
    cr_assert(acts && work);
    clasp_block_acts a;
    clasp_block_acts_point(&a, acts, &d);
    const float *inp = ref_(st, "inp", nx);
    clasp_block_forward(out, &a, work, inp, &p, pad_(st, (size_t)d.B * d.T), &d);
    clasp_block_backward(dinp, &g, work, ref_(st, "dout", nx), inp, &a, &p, &d);
    free(acts), free(work);
}

static void infonce_run_(clasp_safetensors *st, layer_out *o) {
    const clasp_st_tensor *t = clasp_st_find(st, "A");
    cr_assert(t && t->ndim == 2);
    size_t N = (size_t)t->shape[0], D = (size_t)t->shape[1];
    float *loss = out_add_(o, "out", 1, true);
    float *dA = out_add_(o, "dA", N * D, true), *dB = out_add_(o, "dB", N * D, true);
    float *ds = out_add_(o, "dlog_scale", 1, true);
    float *work = calloc(clasp_infonce_work_floats(N), sizeof(float));
    cr_assert_not_null(work);
    cr_assert_eq(clasp_infonce(loss, dA, dB, ds, ref_(st, "A", N * D), ref_(st, "B", N * D),
                               ref_(st, "log_scale", 1)[0], NULL, N, D, work),
                 CLASP_OK, "%s", clasp_last_error());
    free(work);
}

Test(bf16, linear) {
    check_layer_("linear", linear_run_, TOL_RB1);
}

Test(bf16, conv2d_fmnist_conv1) {
    check_layer_("conv1", conv_run_, TOL_RB1);
}

Test(bf16, conv2d_fmnist_conv2) {
    check_layer_("conv2", conv_run_, TOL_RB1);
}

/* q, k, v and the softmax weights are rounded to bf16 in bf16 (as autocast's q @ k^T and
 * att @ v); the gradients go through products of rounded inputs too, the score gradient
 * rounded after the 1/sqrt(hs) scale (as autocast's backward of (q @ k^T) * scale) */
Test(bf16, attention_causal) {
    check_layer_("attention_causal", attention_run_, TOL_RBN);
}

Test(bf16, attention_pad) {
    check_layer_("attention_pad", attention_run_, TOL_RBN);
}

Test(bf16, block_causal) {
    check_layer_("block_causal", block_run_, TOL_RBN);
}

Test(bf16, block_pad_tanh) {
    check_layer_("block_pad_tanh", block_run_, TOL_RBN);
}

Test(bf16, infonce) {
    check_layer_("infonce", infonce_run_, TOL_RBN);
}

/* ---- clasp train --precision bf16 ---------------------------------------------------------- */

/* The Fashion-MNIST test shards in DIR/fmnist (each Criterion test is its own process). */
static void fmnist_data_(const char *dir, char *data, size_t cap) {
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    snprintf(data, cap, "%s/fmnist", dir);
    cr_assert_eq(fx_fmnist_shards(data), 0, "building %s failed", data);
}

/* `clasp train` of fmnist-small for 4 steps of 64 into RUN with EXTRA; its exit status, its
 * output (stdout and stderr) into *log when not NULL */
static int train_(const char *data, const char *run, const char *extra, char **log) {
    return fx_clasp(log,
                    "train --model %s/configs/fmnist-small.json "
                    "--train '%s/train-{000000..000004}.tar' --out %s --batch-size 64 --warmup 2 "
                    "--steps 4 --log-every 1 --no-progress --seed 5 %s 2>&1",
                    CLASP_SOURCE_DIR, data, run, extra);
}

/* the runs' train losses as numbers: n of them, equal count */
static int losses_(const char *run, double *v, int cap) {
    int n = fx_metrics_numbers(run, "train", "loss", v, cap);
    cr_assert(n > 0, "%s: no train losses", run);
    return n;
}

Test(bf16, train_threads_agree_and_differ_from_fp32, .timeout = 300) {
    if (!have_bf16_()) cr_skip_test("%s", clasp_last_error());
    char dir[FX_PATH], data[FX_PATH + 16], r1[FX_PATH], r2[FX_PATH], r32[FX_PATH];
    fx_scratch("bf16_train", dir, r1, "bf16_t1", r2, "bf16_t2", r32, "fp32", NULL);
    fmnist_data_(dir, data, sizeof data);
    char *log = NULL;
    cr_assert_eq(train_(data, r1, "--precision bf16 --threads 1 --chunks 2", &log), 0, "%s", log);
    free(log);
    cr_assert_eq(train_(data, r2, "--precision bf16 --threads 2 --chunks 2", &log), 0, "%s", log);
    free(log);
    cr_assert_eq(train_(data, r32, "--precision fp32 --threads 1 --chunks 2", &log), 0, "%s", log);
    free(log);
    char *l1 = fx_metrics_values(r1, "train", "loss"), *l2 = fx_metrics_values(r2, "train", "loss");
    char *l32 = fx_metrics_values(r32, "train", "loss");
    cr_assert(l1 && l2 && l32);
    cr_expect_eq(fx_count_lines(l1), 4, "%s", l1);
    cr_expect_str_eq(l1, l2, "bf16 --threads 1 vs 2:\n%s\nvs\n%s", l1, l2);
    cr_expect_str_neq(l1, l32, "bf16 logged fp32's losses:\n%s", l1);
    /* and tracks them: 4 steps from the same start */
    double a[8], b[8];
    int n = losses_(r1, a, 8);
    cr_assert_eq(losses_(r32, b, 8), n);
    for (int i = 0; i < n; i++)
        cr_expect(fabs(a[i] - b[i]) <= 1e-2 * fabs(b[i]), "step %d: bf16 %.6f, fp32 %.6f", i, a[i],
                  b[i]);
    free(l1), free(l2), free(l32);
}

/* Without bf16 kernels (ONEDNN_MAX_CPU_ISA=AVX2: clasp rounds the inputs and runs fp32
 * kernels, convolutions through im2col) the run goes on with the same products up to
 * accumulation order. Step 0 (the same weights) agrees to 1e-4 relative (measured 2.2e-5; bf16
 * is 5e-5 from fp32 there); later steps within 2e-3 (AdamW turns tiny gradient differences
 * into different updates: measured 6.8e-4, bf16 vs fp32 5e-4). */
Test(bf16, train_without_bf16_kernels, .timeout = 300) {
    if (strcmp(CLASP_BACKEND_NAME, "onednn")) cr_skip_test("ONEDNN_MAX_CPU_ISA is for onednn");
    char dir[FX_PATH], data[FX_PATH + 16], rn[FX_PATH], ra[FX_PATH], r32[FX_PATH];
    fx_scratch("bf16_isa", dir, rn, "native", ra, "avx2", r32, "fp32", NULL);
    fmnist_data_(dir, data, sizeof data);
    char *log = NULL;
    cr_assert_eq(train_(data, rn, "--precision bf16 --threads 2 --chunks 2", &log), 0, "%s", log);
    free(log);
    cr_assert_eq(train_(data, r32, "--precision fp32 --threads 2 --chunks 2", &log), 0, "%s", log);
    free(log);
    cr_assert_eq(setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1), 0);
    cr_assert_eq(train_(data, ra, "--precision bf16 --threads 2 --chunks 2", &log), 0, "%s", log);
    unsetenv("ONEDNN_MAX_CPU_ISA");
    cr_log_info("ONEDNN_MAX_CPU_ISA=AVX2 bf16 run says:\n%s", log);
    free(log);
    double n16[8], a16[8], f32[8];
    int n = losses_(rn, n16, 8);
    cr_assert_eq(losses_(ra, a16, 8), n);
    cr_assert_eq(losses_(r32, f32, 8), n);
    for (int i = 0; i < n; i++) {
        double d = fabs(a16[i] - n16[i]) / fabs(n16[i]);
        if (getenv("CLASP_TEST_VERBOSE"))
            fprintf(stderr, "step %d: bf16 %.9g, AVX2 bf16 %.9g (%.2e), fp32 %.9g\n", i, n16[i],
                    a16[i], d, f32[i]);
        cr_expect(d <= (i == 0 ? 1e-4 : 2e-3), "step %d: AVX2 bf16 %.9g, native bf16 %.9g", i,
                  a16[i], n16[i]);
    }
}

Test(bf16, train_refuses_bf16_without_onednn) {
    if (!strcmp(CLASP_BACKEND_NAME, "onednn")) {
        /* the flag's values are checked on any build */
        char *out = NULL;
        cr_expect_eq(fx_clasp(&out, "train --precision fp16 --steps 1 2>&1"), 2, "%s", out);
        cr_expect(strstr(out, "fp16"), "%s", out);
        free(out);
        cr_skip_test("this build has the onednn backend");
    }
    char dir[FX_PATH], run[FX_PATH];
    fx_scratch("bf16_openblas", dir, run, "run", NULL);
    char *log = NULL;
    /* refused before any data is read */
    int rc = train_("/nonexistent", run, "--precision bf16", &log);
    cr_expect_neq(rc, 0, "%s", log);
    cr_expect(strstr(log, "bf16") && strstr(log, "openblas"), "%s", log);
    free(log);
}
