/* test_model.c: encoders/model.c at model level: parameter table (count, names, shapes,
 * decay flags, contiguity), init statistics and determinism, parity of forward and of every
 * gradient with PyTorch (fmnist-small, tiny ViT/text variants, speech-small's audio CNN, tiny
 * audio CNN and AST variants; references made by tests/reference/make_model.py),
 * finite-difference checks, the activation arena (no growth, partial batches, any order of
 * towers), and load/save by name with errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "encoders/model.h"
#include "fixtures.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static void load_fmnist(clasp_model *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_model_config cfg;
    cr_assert_eq(clasp_model_config_load(path, &cfg), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_init(m, &cfg), CLASP_OK, "%s", clasp_last_error());
}

static clasp_safetensors *open_ref(const char *rel) {
    clasp_safetensors *st = fx_ref_open("%s", rel);
    cr_assert(st, "%s (run tests/reference/make_model.py)", clasp_last_error());
    return st;
}

/* Copies a tensor's raw bytes (any dtype) after checking its element count. */
static void read_raw(clasp_safetensors *st, const char *name, void *dst, size_t numel,
                     clasp_dtype dt) {
    const clasp_st_tensor *t = clasp_st_find(st, name);
    cr_assert(t, "reference lacks '%s'", name);
    cr_assert_eq(t->dtype, dt, "'%s' dtype", name);
    cr_assert_eq(t->numel, numel, "'%s' has %zu elements, want %zu", name, t->numel, numel);
    memcpy(dst, t->data, numel * clasp_dtype_size(dt));
}

static float *read_f32(clasp_safetensors *st, const char *name, size_t numel) {
    float *p = malloc(numel * sizeof(float));
    read_raw(st, name, p, numel, CLASP_DTYPE_F32);
    return p;
}

static double max_abs(const float *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* rel 1e-4, atol 1e-4 of the tensor's largest magnitude (fp32 sums of hundreds of terms) */
static bool check(const char *name, const float *got, const float *want, size_t n) {
    return clasp_test_check_tensor(name, got, want, n, 1e-4 * max_abs(want, n) + 1e-8, 1e-4);
}

/* ---- parameter table ---------------------------------------------------------------------- */

/* The model config of JSON text (`what` names it in errors). */
static clasp_model_config parse_config_(const char *json, const char *what) {
    cJSON *root;
    clasp_model_config cfg;
    cr_assert_eq(clasp_json_parse(json, strlen(json), what, &root), CLASP_OK);
    cr_assert_eq(clasp_model_config_parse(root, what, &cfg), CLASP_OK, "%s", clasp_last_error());
    cJSON_Delete(root);
    return cfg;
}

/* A parameter a model must have: name, shape (ndim, then up to 4 dims), decay, tower. */
typedef struct want_param {
    const char *name;
    int ndim;
    int64_t s0, s1, s2, s3;
    bool decay;
    clasp_tower tower;
} want_param;

static void check_params_(const clasp_model *m, const want_param *want, size_t n) {
    for (size_t k = 0; k < n; k++) {
        int i = clasp_model_find(m, want[k].name);
        cr_assert(i >= 0, "missing %s", want[k].name);
        const clasp_param_info *p = &m->info[i];
        int64_t s[4] = {want[k].s0, want[k].s1, want[k].s2, want[k].s3};
        cr_assert_eq(p->ndim, want[k].ndim, "%s ndim", p->name);
        for (int d = 0; d < p->ndim; d++) cr_assert_eq(p->shape[d], s[d], "%s dim %d", p->name, d);
        cr_assert_eq(p->decay, want[k].decay, "%s decay", p->name);
        cr_assert_eq(p->tower, want[k].tower, "%s tower", p->name);
    }
}

Test(model, fmnist_small_param_count_and_names) {
    clasp_model m;
    load_fmnist(&m);
    cr_assert_eq(m.n_floats, (size_t)1305345);
    cr_assert_eq(m.range[CLASP_TOWER_IMAGE].n_floats, (size_t)854784);
    cr_assert_eq(m.range[CLASP_TOWER_TEXT].n_floats, (size_t)450560);
    cr_assert_eq(m.range[CLASP_TOWER_SHARED].n_floats, (size_t)1);
    cr_assert_eq(m.range[CLASP_TOWER_AUDIO].count, 0);
    cr_assert_eq(m.range[CLASP_TOWER_IMAGE].count, 8);
    cr_assert_eq(m.range[CLASP_TOWER_TEXT].count, 2 + 2 * 12 + 2 + 2);
    /* contiguous, in order, ranges partition the buffer */
    size_t off = 0;
    for (int i = 0; i < m.n_params; i++) {
        cr_assert_eq(m.info[i].offset, off, "%s", m.info[i].name);
        size_t n = 1;
        for (int d = 0; d < m.info[i].ndim; d++) n *= (size_t)m.info[i].shape[d];
        cr_assert_eq(n, m.info[i].numel);
        off += n;
        const clasp_param_range *r = &m.range[m.info[i].tower];
        cr_assert(i >= r->first && i < r->first + r->count);
        cr_assert(m.info[i].offset >= r->offset && off <= r->offset + r->n_floats);
    }
    cr_assert_eq(off, m.n_floats);
    const want_param want[] = {
        {"image.conv1.weight", 4, 32, 1, 3, 3, true, CLASP_TOWER_IMAGE},
        {"image.conv1.bias", 1, 32, 0, 0, 0, false, CLASP_TOWER_IMAGE},
        {"image.conv2.weight", 4, 64, 32, 3, 3, true, CLASP_TOWER_IMAGE},
        {"image.fc1.weight", 2, 256, 3136, 0, 0, true, CLASP_TOWER_IMAGE},
        {"image.fc2.weight", 2, 128, 256, 0, 0, true, CLASP_TOWER_IMAGE},
        {"image.fc2.bias", 1, 128, 0, 0, 0, false, CLASP_TOWER_IMAGE},
        {"text.tok_emb.weight", 2, 259, 128, 0, 0, false, CLASP_TOWER_TEXT},
        {"text.pos_emb", 2, 32, 128, 0, 0, false, CLASP_TOWER_TEXT},
        {"text.blocks.0.ln1.weight", 1, 128, 0, 0, 0, false, CLASP_TOWER_TEXT},
        {"text.blocks.1.attn.qkv.weight", 2, 384, 128, 0, 0, true, CLASP_TOWER_TEXT},
        {"text.blocks.1.attn.qkv.bias", 1, 384, 0, 0, 0, false, CLASP_TOWER_TEXT},
        {"text.blocks.0.attn.proj.weight", 2, 128, 128, 0, 0, true, CLASP_TOWER_TEXT},
        {"text.blocks.0.ln2.bias", 1, 128, 0, 0, 0, false, CLASP_TOWER_TEXT},
        {"text.blocks.1.mlp.fc1.weight", 2, 512, 128, 0, 0, true, CLASP_TOWER_TEXT},
        {"text.blocks.1.mlp.fc2.weight", 2, 128, 512, 0, 0, true, CLASP_TOWER_TEXT},
        {"text.ln_f.weight", 1, 128, 0, 0, 0, false, CLASP_TOWER_TEXT},
        {"text.proj.weight", 2, 128, 128, 0, 0, true, CLASP_TOWER_TEXT},
        {"text.proj.bias", 1, 128, 0, 0, 0, false, CLASP_TOWER_TEXT},
        {"logit_scale", 0, 0, 0, 0, 0, false, CLASP_TOWER_SHARED},
    };
    check_params_(&m, want, sizeof want / sizeof want[0]);
    /* decay exactly on weights with ndim >= 2 except embeddings */
    for (int i = 0; i < m.n_params; i++) {
        const clasp_param_info *p = &m.info[i];
        bool w = strstr(p->name, ".weight") && p->ndim >= 2 && !strstr(p->name, "tok_emb");
        cr_assert_eq(p->decay, w, "%s", p->name);
    }
    cr_assert_eq(clasp_model_find(&m, "logit_bias"), -1);
    cr_assert_eq(m.logit_bias_offset, -1);
    clasp_model_free(&m);
    clasp_model_free(&m); /* double free of a zeroed struct is fine */
}

Test(model, init_statistics_and_determinism) {
    clasp_model a, b;
    load_fmnist(&a);
    load_fmnist(&b);
    clasp_model_init_weights(&a, 42);
    clasp_model_init_weights(&b, 42);
    cr_assert(!memcmp(a.params, b.params, a.n_floats * sizeof(float)), "same seed, same params");
    clasp_model_init_weights(&b, 43);
    for (int i = 0; i < a.n_params; i++) {
        const clasp_param_info *p = &a.info[i];
        const float *x = a.params + p->offset;
        bool same = !memcmp(x, b.params + p->offset, p->numel * sizeof(float));
        if (p->init == CLASP_INIT_CONST)
            cr_assert(same, "%s constant init", p->name);
        else
            cr_assert(!same, "%s must change with the seed", p->name);
        double s = 0.0, s2 = 0.0, mx = 0.0;
        for (size_t k = 0; k < p->numel; k++) {
            s += (double)x[k];
            s2 += (double)x[k] * (double)x[k];
            mx = fmax(mx, fabs((double)x[k]));
        }
        double n = (double)p->numel, mean = s / n, sd = sqrt(fmax(s2 / n - mean * mean, 0.0));
        if (p->init == CLASP_INIT_UNIFORM_FANIN) {
            double bound = 1.0 / sqrt((double)p->fan_in);
            cr_assert(mx <= bound, "%s exceeds its bound", p->name);
            if (p->numel >= 1000) {
                /* U(-b, b): sd = b / sqrt 3, max close to b */
                cr_assert(fabs(sd - bound / sqrt(3.0)) < 0.03 * bound, "%s sd %g", p->name, sd);
                cr_assert(mx > 0.99 * bound, "%s", p->name);
                cr_assert(fabs(mean) < 0.03 * bound, "%s mean %g", p->name, mean);
            }
        } else if (p->init == CLASP_INIT_NORMAL) {
            cr_assert(fabs(sd - (double)p->init_scale) < 0.03 * (double)p->init_scale, "%s sd %g",
                      p->name, sd);
        }
    }
    int ie = clasp_model_find(&a, "text.tok_emb.weight"), ip = clasp_model_find(&a, "text.pos_emb");
    cr_assert_float_eq(a.info[ie].init_scale, 0.02f, 0.0f);
    cr_assert_float_eq(a.info[ip].init_scale, 0.01f, 0.0f);
    float *ln = clasp_model_param(&a, "text.blocks.0.ln1.weight");
    float *lb = clasp_model_param(&a, "text.blocks.0.ln1.bias");
    for (int k = 0; k < 128; k++) cr_assert(ln[k] == 1.0f && lb[k] == 0.0f);
    cr_assert_float_eq(a.params[a.logit_scale_offset], (float)log(1.0 / 0.07), 1e-7f);
    clasp_model_free(&a);
    clasp_model_free(&b);
}

/* ---- parity with PyTorch ------------------------------------------------------------------ */

/* The deterministic parameter formula of make_model.py (gen_values). */
static void gen_fill(float *w, size_t n, uint64_t k, double scale, double shift) {
    for (size_t i = 0; i < n; i++) {
        uint64_t z = clasp_splitmix64((k << 32) + i);
        double u = ((double)(z >> 40) + 0.5) / 16777216.0;
        w[i] = (float)((2.0 * u - 1.0) * scale + shift);
    }
}

/* Runs encode image, encode text, backward image, backward text on the reference inputs and
 * checks the outputs. Returns with m->grads filled. */
static void run_reference(clasp_model *m, clasp_safetensors *st, int B) {
    int D = m->config.embed_dim;
    size_t npix =
        (size_t)B * m->config.image.channels * m->config.image.size * m->config.image.size;
    size_t ntok = (size_t)B * m->config.text.context_length;
    float *pix = read_f32(st, "input.pixels", npix);
    int32_t *tok = malloc(ntok * sizeof(int32_t));
    read_raw(st, "input.tokens", tok, ntok, CLASP_DTYPE_I32);
    float *di = read_f32(st, "dfeat.image", (size_t)B * D);
    float *dt = read_f32(st, "dfeat.text", (size_t)B * D);
    float *oi = read_f32(st, "out.image", (size_t)B * D);
    float *ot = read_f32(st, "out.text", (size_t)B * D);
    float *fi = malloc((size_t)B * D * sizeof(float)), *ft = malloc((size_t)B * D * sizeof(float));
    cr_assert_eq(clasp_model_prepare(m, B), CLASP_OK, "%s", clasp_last_error());
    clasp_model_zero_grad(m);
    cr_assert_eq(clasp_model_encode_image(m, pix, B, fi), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_encode_text(m, tok, B, ft), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_backward_image(m, di), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_backward_text(m, dt), CLASP_OK, "%s", clasp_last_error());
    cr_expect(check("out.image", fi, oi, (size_t)B * D));
    cr_expect(check("out.text", ft, ot, (size_t)B * D));
    free(pix);
    free(tok);
    free(di);
    free(dt);
    free(oi);
    free(ot);
    free(fi);
    free(ft);
}

/* Fills every parameter outside the shared tower from the reference's "gen.NAME" triple
 * (counter key, scale, shift: the formula make_model.py shares). */
static void gen_params(clasp_model *m, clasp_safetensors *st) {
    for (int i = 0; i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        if (p->tower == CLASP_TOWER_SHARED) continue;
        char name[128];
        double g[3];
        snprintf(name, sizeof name, "gen.%s", p->name);
        read_raw(st, name, g, 3, CLASP_DTYPE_F64);
        gen_fill(m->params + p->offset, p->numel, (uint64_t)g[0], g[1], g[2]);
    }
}

/* Checks a sampled gradient: 1024 sampled entries plus the sums over each dim. */
static void check_sampled_grad(clasp_safetensors *st, const clasp_param_info *p, const float *gr) {
    char name[128];
    int64_t idx[1024];
    float val[1024], got[1024];
    snprintf(name, sizeof name, "gidx.%s", p->name);
    read_raw(st, name, idx, 1024, CLASP_DTYPE_I64);
    snprintf(name, sizeof name, "gval.%s", p->name);
    read_raw(st, name, val, 1024, CLASP_DTYPE_F32);
    for (int k = 0; k < 1024; k++) got[k] = gr[idx[k]];
    snprintf(name, sizeof name, "sampled grad.%s", p->name);
    cr_expect(check(name, got, val, 1024));
    size_t R = (size_t)p->shape[0], Cn = p->numel / R;
    for (int dim = 0; dim < 2; dim++) {
        size_t nn = dim == 0 ? R : Cn, bad = 0;
        float *ws = malloc(nn * sizeof(float)), *wa = malloc(nn * sizeof(float));
        double *gs = calloc(nn, sizeof(double));
        snprintf(name, sizeof name, "gsum%d.%s", dim, p->name);
        read_raw(st, name, ws, nn, CLASP_DTYPE_F32);
        snprintf(name, sizeof name, "gabs%d.%s", dim, p->name);
        read_raw(st, name, wa, nn, CLASP_DTYPE_F32);
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < Cn; c++) gs[dim == 0 ? r : c] += (double)gr[r * Cn + c];
        double worst = 0.0;
        for (size_t k = 0; k < nn; k++) {
            double err = fabs(gs[k] - (double)ws[k]), tol = 1e-4 * (double)wa[k] + 1e-7;
            worst = fmax(worst, err / tol);
            bad += !(err <= tol);
        }
        if (bad || getenv("CLASP_TEST_VERBOSE"))
            fprintf(stderr, "%s %-40s sums over dim %d: %zu bad, worst err/tol %.3f\n",
                    bad ? "FAIL" : "OK  ", p->name, dim, bad, worst);
        cr_expect_eq(bad, 0, "%s sums over dim %d: %zu bad", p->name, dim, bad);
        free(ws);
        free(wa);
        free(gs);
    }
}

/* Checks the gradient of every parameter outside the shared tower against the reference's
 * "grad.NAME"; with n_sampled, a tensor without one is checked by check_sampled_grad and
 * counted there. Returns the number of full checks. */
static int check_grads(clasp_model *m, clasp_safetensors *st, int *n_sampled) {
    int n_full = 0;
    for (int i = 0; i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        if (p->tower == CLASP_TOWER_SHARED) continue;
        char name[128];
        snprintf(name, sizeof name, "grad.%s", p->name);
        if (n_sampled && !clasp_st_find(st, name)) {
            check_sampled_grad(st, p, m->grads + p->offset);
            (*n_sampled)++;
            continue;
        }
        float *want = read_f32(st, name, p->numel);
        cr_expect(check(name, m->grads + p->offset, want, p->numel));
        free(want);
        n_full++;
    }
    return n_full;
}

Test(model, fmnist_small_parity_with_pytorch) {
    clasp_model m;
    load_fmnist(&m);
    clasp_safetensors *st = open_ref("model/fmnist_small.safetensors");
    /* parameters from the shared formula, keyed by name */
    gen_params(&m, st);
    run_reference(&m, st, 8);
    int n_sampled = 0, n_full = check_grads(&m, st, &n_sampled);
    cr_assert_eq(n_full + n_sampled, m.n_params - 1);
    cr_assert(n_sampled >= 5);
    clasp_st_free(st);
    clasp_model_free(&m);
}

/* Model from the config in a reference file's metadata, parameters loaded by name. */
static void load_tiny(clasp_model *m, const char *rel) {
    clasp_safetensors *st = open_ref(rel);
    const char *cj = clasp_st_meta(st, "config");
    cr_assert(cj, "no config in %s", rel);
    clasp_model_config cfg = parse_config_(cj, rel);
    clasp_st_free(st);
    cr_assert_eq(clasp_model_init(m, &cfg), CLASP_OK, "%s", clasp_last_error());
    /* logit_scale is not in the tower references: load all but it */
    float ls = m->params[m->logit_scale_offset];
    clasp_safetensors *s2 = open_ref(rel);
    for (int i = 0; i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        if (p->tower == CLASP_TOWER_SHARED) continue;
        cr_assert_eq(clasp_st_read_f32(s2, p->name, p->ndim, p->shape, m->params + p->offset),
                     CLASP_OK, "%s", clasp_last_error());
    }
    m->params[m->logit_scale_offset] = ls;
    clasp_st_free(s2);
}

static void tiny_parity(const char *rel) {
    clasp_model m;
    load_tiny(&m, rel);
    clasp_safetensors *st = open_ref(rel);
    run_reference(&m, st, 3);
    check_grads(&m, st, NULL);
    clasp_st_free(st);
    clasp_model_free(&m);
}

Test(model, tiny_vit_cls_text_mean_parity) {
    tiny_parity("model/tiny_a.safetensors");
}

Test(model, tiny_vit_mean_text_eos_tanh_parity) {
    tiny_parity("model/tiny_b.safetensors");
}

Test(model, tiny_quick_gelu_parity) {
    tiny_parity("model/tiny_c.safetensors");
}

Test(model, tiny_ln_pre_parity) {
    /* ViT "ln_pre": true (OpenCLIP's LayerNorm after the embeddings), forward and gradients */
    tiny_parity("model/tiny_d.safetensors");
}

Test(model, tiny_layer_scale_parity) {
    /* "ls_init_value" (OpenCLIP's LayerScale) in both towers: gammas ls1/ls2 forward and
     * gradients */
    tiny_parity("model/tiny_e.safetensors");
}

/* ---- finite differences ------------------------------------------------------------------ */

/* loss = sum(f_img * gi) + sum(f_txt * gt), accumulated in double */
static double tiny_loss(clasp_model *m, const float *pix, const int32_t *tok, const float *gi,
                        const float *gt, int B, float *fi, float *ft) {
    int D = m->config.embed_dim;
    cr_assert_eq(clasp_model_encode_image(m, pix, B, fi), CLASP_OK);
    cr_assert_eq(clasp_model_encode_text(m, tok, B, ft), CLASP_OK);
    double L = 0.0;
    for (int k = 0; k < B * D; k++)
        L += (double)fi[k] * (double)gi[k] + (double)ft[k] * (double)gt[k];
    return L;
}

Test(model, finite_differences_tiny) {
    static const char *const files[] = {"model/tiny_a.safetensors", "model/tiny_b.safetensors"};
    for (int f = 0; f < 2; f++) {
        clasp_model m;
        load_tiny(&m, files[f]);
        clasp_safetensors *st = open_ref(files[f]);
        int B = 3, D = m.config.embed_dim;
        size_t npix = (size_t)B * 3 * 8 * 8, ntok = (size_t)B * m.config.text.context_length;
        float *pix = read_f32(st, "input.pixels", npix);
        int32_t tok[64];
        read_raw(st, "input.tokens", tok, ntok, CLASP_DTYPE_I32);
        float *gi = read_f32(st, "dfeat.image", (size_t)B * D);
        float *gt = read_f32(st, "dfeat.text", (size_t)B * D);
        float fi[64], ft[64];
        cr_assert_eq(clasp_model_prepare(&m, B), CLASP_OK);
        clasp_model_zero_grad(&m);
        tiny_loss(&m, pix, tok, gi, gt, B, fi, ft);
        cr_assert_eq(clasp_model_backward_image(&m, gi), CLASP_OK);
        cr_assert_eq(clasp_model_backward_text(&m, gt), CLASP_OK);
        /* 3 entries of every tensor, picked by a seeded RNG */
        clasp_rng r;
        clasp_rng_init(&r, 5, CLASP_RNG_TEST, (uint64_t)f, 0);
        int n_checked = 0, n_bad = 0;
        double worst = 0.0;
        for (int i = 0; i < m.n_params; i++) {
            const clasp_param_info *p = &m.info[i];
            if (p->tower == CLASP_TOWER_SHARED) continue;
            for (int s = 0; s < 3; s++) {
                size_t k = (size_t)clasp_rng_below(&r, p->numel);
                float *w = m.params + p->offset + k, w0 = *w;
                if (strstr(p->name, "tok_emb")) {
                    /* only rows of tokens that occur have a gradient: use one of them */
                    k = (size_t)tok[s] * (size_t)p->shape[1] + k % (size_t)p->shape[1];
                    w = m.params + p->offset + k;
                    w0 = *w;
                }
                const float h = 1e-2f;
                *w = w0 + h;
                double lp = tiny_loss(&m, pix, tok, gi, gt, B, fi, ft);
                *w = w0 - h;
                double lm = tiny_loss(&m, pix, tok, gi, gt, B, fi, ft);
                *w = w0;
                double num = (lp - lm) / (2.0 * (double)h);
                double ana = m.grads[p->offset + k];
                double err = fabs(num - ana), tol = 2e-3 + 2e-2 * fabs(ana);
                worst = fmax(worst, err / tol);
                if (!(err <= tol)) {
                    n_bad++;
                    fprintf(stderr, "FD %s[%zu]: numeric %.6g analytic %.6g\n", p->name, k, num,
                            ana);
                }
                n_checked++;
            }
        }
        if (getenv("CLASP_TEST_VERBOSE"))
            fprintf(stderr, "FD %s: %d checked, worst err/tol %.3f\n", files[f], n_checked, worst);
        cr_expect_eq(n_bad, 0, "%s: %d of %d finite differences off", files[f], n_bad, n_checked);
        free(pix);
        free(gi);
        free(gt);
        clasp_st_free(st);
        clasp_model_free(&m);
    }
}

/* ---- arena, batch sizes, order of towers ------------------------------------------------- */

Test(model, arena_fixed_and_partial_batches) {
    clasp_model m;
    load_fmnist(&m);
    clasp_model_init_weights(&m, 1);
    int B = 8, D = 128, T = 32;
    float pix[8 * 784], fi8[8 * 128], ft8[8 * 128], fi3[3 * 128], ft3[3 * 128];
    int32_t tok[8 * 32];
    clasp_rng r;
    clasp_rng_init(&r, 1, CLASP_RNG_TEST, 0, 0);
    for (int i = 0; i < B * 784; i++) pix[i] = (float)clasp_rng_normal(&r);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int len = 3 + 3 * b;
            tok[b * T + t] = t == 0     ? 256
                             : t < len  ? 97 + (int)clasp_rng_below(&r, 26)
                             : t == len ? 257
                                        : 258;
        }
    /* before prepare */
    cr_assert_eq(clasp_model_encode_image(&m, pix, B, fi8), CLASP_ERR_STATE);
    cr_assert_eq(clasp_model_prepare(&m, B), CLASP_OK);
    size_t cap_i = clasp_model_arena_bytes(&m, CLASP_TOWER_IMAGE);
    size_t cap_t = clasp_model_arena_bytes(&m, CLASP_TOWER_TEXT);
    cr_assert(cap_i > 0 && cap_t > 0);
    cr_assert_eq(clasp_model_arena_bytes(&m, CLASP_TOWER_AUDIO), 0);
    cr_assert_eq(clasp_model_backward_image(&m, fi8), CLASP_ERR_STATE); /* no forward yet */
    cr_assert_eq(clasp_model_encode_image(&m, pix, 9, fi8), CLASP_ERR_ARG);
    cr_assert_eq(clasp_model_encode_image(&m, pix, 0, fi8), CLASP_ERR_ARG);
    cr_assert_eq(clasp_model_encode(&m, CLASP_TOWER_AUDIO, pix, 1, fi8), CLASP_ERR_ARG);
    /* full batch: the arena is used up to exactly its measured size, never more */
    cr_assert_eq(clasp_model_encode_image(&m, pix, B, fi8), CLASP_OK);
    cr_assert_eq(clasp_model_encode_text(&m, tok, B, ft8), CLASP_OK);
    cr_assert_eq(clasp_model_arena_high(&m, CLASP_TOWER_IMAGE), cap_i);
    cr_assert_eq(clasp_model_arena_high(&m, CLASP_TOWER_TEXT), cap_t);
    clasp_model_zero_grad(&m);
    cr_assert_eq(clasp_model_backward_image(&m, fi8), CLASP_OK);
    cr_assert_eq(clasp_model_backward_text(&m, ft8), CLASP_OK);
    float *g8 = malloc(m.n_floats * sizeof(float));
    memcpy(g8, m.grads, m.n_floats * sizeof(float));
    /* partial batch: same rows, no reallocation */
    cr_assert_eq(clasp_model_encode_image(&m, pix, 3, fi3), CLASP_OK);
    cr_assert_eq(clasp_model_encode_text(&m, tok, 3, ft3), CLASP_OK);
    cr_assert_eq(clasp_model_arena_bytes(&m, CLASP_TOWER_IMAGE), cap_i);
    cr_assert_eq(clasp_model_arena_high(&m, CLASP_TOWER_IMAGE), cap_i);
    cr_assert_eq(clasp_model_arena_high(&m, CLASP_TOWER_TEXT), cap_t);
    cr_expect(clasp_test_check_tensor("partial image", fi3, fi8, 3 * (size_t)D, 1e-5, 1e-5));
    cr_expect(clasp_test_check_tensor("partial text", ft3, ft8, 3 * (size_t)D, 1e-5, 1e-5));
    /* the other order of backward gives the same gradients */
    cr_assert_eq(clasp_model_encode_image(&m, pix, B, fi8), CLASP_OK);
    cr_assert_eq(clasp_model_encode_text(&m, tok, B, ft8), CLASP_OK);
    clasp_model_zero_grad(&m);
    cr_assert_eq(clasp_model_backward_text(&m, ft8), CLASP_OK);
    cr_assert_eq(clasp_model_backward_image(&m, fi8), CLASP_OK);
    cr_expect(clasp_test_check_tensor("grads, other order", m.grads, g8, m.n_floats, 0.0, 0.0));
    /* bad token */
    tok[5 * T + 7] = 259;
    cr_assert_eq(clasp_model_encode_text(&m, tok, B, ft8), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "row 5 position 7"), "%s", clasp_last_error());
    cr_assert_eq(clasp_model_backward_text(&m, ft8), CLASP_ERR_STATE);
    free(g8);
    clasp_model_free(&m);
}

/* An inference model (the embedder's replicas): no gradient buffer, parameters shared with
 * another model, an arena only for the towers prepared, sized within a byte budget; encoding
 * any number of rows in pieces of the arena's rows gives the training model's features. */
Test(model, inference_model_shares_params_and_encodes_in_pieces) {
    clasp_model m, a, b;
    load_fmnist(&m);
    clasp_model_init_weights(&m, 3);
    cr_assert_eq(clasp_model_prepare(&m, 8), CLASP_OK);
    cr_assert_eq(clasp_model_init_inference(&a, &m.config, NULL), CLASP_OK);
    cr_assert_eq(clasp_model_init_inference(&b, &m.config, a.params), CLASP_OK);
    memcpy(a.params, m.params, m.n_floats * sizeof(float));
    cr_assert_null(a.grads);
    cr_assert_null(b.grads);
    cr_assert_eq(b.params, a.params);
    size_t pbytes = m.n_floats * sizeof(float);
    cr_assert_eq(clasp_model_bytes(&a), pbytes); /* params only: no grads, no arena */
    cr_assert_eq(clasp_model_bytes(&b), 0);      /* borrowed params */
    cr_assert_eq(clasp_model_bytes(&m),
                 2 * pbytes + clasp_model_arena_bytes(&m, 0) + clasp_model_arena_bytes(&m, 1));
    float pix[7 * 784], f_ref[7 * 128], f_a[7 * 128], f_b[7 * 128];
    clasp_rng r;
    clasp_rng_init(&r, 2, CLASP_RNG_TEST, 0, 0);
    for (int i = 0; i < 7 * 784; i++) pix[i] = (float)clasp_rng_normal(&r);
    cr_assert_eq(clasp_model_encode_image(&a, pix, 1, f_a), CLASP_ERR_STATE); /* no arena */
    /* a budget below one row's arena still gives one row; the text tower gets none */
    cr_assert_eq(clasp_model_prepare_tower(&a, CLASP_TOWER_IMAGE, 8, 1), CLASP_OK);
    cr_assert_eq(clasp_model_tower_cap(&a, CLASP_TOWER_IMAGE), 1);
    cr_assert_eq(clasp_model_tower_cap(&a, CLASP_TOWER_TEXT), 0);
    cr_assert_eq(clasp_model_arena_bytes(&a, CLASP_TOWER_TEXT), 0);
    cr_assert(clasp_model_arena_bytes(&a, CLASP_TOWER_IMAGE) <
              clasp_model_arena_bytes(&m, CLASP_TOWER_IMAGE));
    /* a budget of 3 rows' arena gives 3 rows */
    clasp_model c;
    cr_assert_eq(clasp_model_init_inference(&c, &m.config, a.params), CLASP_OK);
    cr_assert_eq(clasp_model_prepare_tower(&c, CLASP_TOWER_IMAGE, 3, 0), CLASP_OK);
    size_t three = clasp_model_arena_bytes(&c, CLASP_TOWER_IMAGE);
    clasp_model_free(&c);
    cr_assert_eq(clasp_model_prepare_tower(&b, CLASP_TOWER_IMAGE, 8, three), CLASP_OK);
    cr_assert_eq(clasp_model_tower_cap(&b, CLASP_TOWER_IMAGE), 3);
    cr_assert_eq(clasp_model_encode_image(&b, pix, 4, f_b), CLASP_ERR_ARG); /* above the cap */
    cr_assert_eq(clasp_model_encode_image(&m, pix, 7, f_ref), CLASP_OK);
    cr_assert_eq(clasp_model_encode_rows(&a, CLASP_TOWER_IMAGE, pix, 7, f_a), CLASP_OK);
    cr_assert_eq(clasp_model_encode_rows(&b, CLASP_TOWER_IMAGE, pix, 7, f_b), CLASP_OK);
    /* the same bits on oneDNN (the embedder relies on it in fp32); OpenBLAS may route a
     * one-row product through gemv, another summation order */
    double tol = strcmp(clasp_compute_backend(), "onednn") ? 1e-5 : 0.0;
    cr_expect(clasp_test_check_tensor("pieces of 1", f_a, f_ref, 7 * 128, tol, tol));
    cr_expect(clasp_test_check_tensor("pieces of 3", f_b, f_ref, 7 * 128, tol, tol));
    cr_assert_eq(clasp_model_encode_rows(&a, CLASP_TOWER_TEXT, pix, 1, f_a), CLASP_ERR_STATE);
    cr_assert_eq(clasp_model_backward_image(&a, f_a), CLASP_ERR_STATE); /* no gradients */
    clasp_model_zero_grad(&a);                                          /* a no-op, not a crash */
    clasp_model_free(&b);
    clasp_model_free(&a);
    clasp_model_free(&m);
}

/* ---- load / save ----------------------------------------------------------------------- */

Test(model, save_load_roundtrip_and_errors) {
    char dir[4096], path[4200], bad[4200];
    fx_scratch("model_io", dir, path, "model.safetensors", NULL);
    clasp_model a, b;
    load_fmnist(&a);
    load_fmnist(&b);
    clasp_model_init_weights(&a, 7);
    a.params[a.logit_scale_offset] = 3.25f;
    cr_assert_eq(clasp_model_save(&a, path), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_load(&b, path), CLASP_OK, "%s", clasp_last_error());
    cr_assert(!memcmp(a.params, b.params, a.n_floats * sizeof(float)));
    /* the config travels in the metadata */
    clasp_safetensors *st;
    cr_assert_eq(clasp_st_open(path, &st), CLASP_OK);
    cr_assert_str_eq(clasp_st_meta(st, "format"), "clasp-model");
    const char *cj = clasp_st_meta(st, "config");
    clasp_model_config cfg = parse_config_(cj, "meta");
    cr_assert_eq(cfg.text.mlp_width, 512);
    clasp_st_free(st);

    /* missing tensor */
    snprintf(bad, sizeof bad, "%s/missing.safetensors", dir);
    clasp_st_writer *w = clasp_st_writer_new();
    for (int i = 0; i < a.n_params; i++)
        if (strcmp(a.info[i].name, "text.blocks.1.mlp.fc2.bias"))
            cr_assert_eq(clasp_st_writer_add(w, a.info[i].name, CLASP_DTYPE_F32, a.info[i].ndim,
                                             a.info[i].shape, a.params + a.info[i].offset),
                         CLASP_OK);
    cr_assert_eq(clasp_st_writer_write(w, bad), CLASP_OK);
    clasp_st_writer_free(w);
    memset(b.params, 0, b.n_floats * sizeof(float));
    cr_assert_eq(clasp_model_load(&b, bad), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "missing.safetensors"), "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "text.blocks.1.mlp.fc2.bias"), "%s", clasp_last_error());
    for (size_t k = 0; k < b.n_floats; k++) cr_assert(b.params[k] == 0.0f, "failed load wrote");

    /* wrong shape */
    snprintf(bad, sizeof bad, "%s/shape.safetensors", dir);
    w = clasp_st_writer_new();
    for (int i = 0; i < a.n_params; i++) {
        int64_t shape[4];
        memcpy(shape, a.info[i].shape, sizeof shape);
        if (!strcmp(a.info[i].name, "image.fc1.weight")) {
            shape[0] = 3136;
            shape[1] = 256;
        }
        cr_assert_eq(clasp_st_writer_add(w, a.info[i].name, CLASP_DTYPE_F32, a.info[i].ndim, shape,
                                         a.params + a.info[i].offset),
                     CLASP_OK);
    }
    cr_assert_eq(clasp_st_writer_write(w, bad), CLASP_OK);
    clasp_st_writer_free(w);
    cr_assert_eq(clasp_model_load(&b, bad), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "shape.safetensors"), "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "image.fc1.weight"), "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "[3136,256]"), "%s", clasp_last_error());

    /* prefixed tensors (optimizer moments) */
    snprintf(bad, sizeof bad, "%s/moments.safetensors", dir);
    w = clasp_st_writer_new();
    cr_assert_eq(clasp_model_add_tensors(&a, w, "m.", a.params), CLASP_OK);
    cr_assert_eq(clasp_st_writer_write(w, bad), CLASP_OK);
    clasp_st_writer_free(w);
    cr_assert_eq(clasp_st_open(bad, &st), CLASP_OK);
    memset(b.grads, 0, b.n_floats * sizeof(float));
    cr_assert_eq(clasp_model_read_tensors(&b, st, "m.", b.grads), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert(!memcmp(a.params, b.grads, a.n_floats * sizeof(float)));
    cr_assert_eq(clasp_model_read_tensors(&b, st, "v.", b.grads), CLASP_ERR_NOT_FOUND);
    clasp_st_free(st);
    clasp_model_free(&a);
    clasp_model_free(&b);
}

Test(model, logit_bias_for_siglip) {
    const char *doc = "{\"embed_dim\": 4, \"init_logit_scale\": 2.302585, \"init_logit_bias\": -10,"
                      " \"text\": {\"type\": \"transformer\", \"vocab_size\": 5, "
                      "\"context_length\": 3, \"width\": 4, \"layers\": 0, \"heads\": 1, "
                      "\"mlp_width\": 4, \"pool\": \"mean\"}}";
    clasp_model m;
    clasp_model_config cfg = parse_config_(doc, "siglip");
    cr_assert_eq(clasp_model_init(&m, &cfg), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&m, 0);
    cr_assert(m.logit_bias_offset >= 0);
    cr_assert_eq(m.params[m.logit_bias_offset], -10.0f);
    cr_assert_float_eq(m.params[m.logit_scale_offset], 2.302585f, 0.0f);
    cr_assert_eq(m.range[CLASP_TOWER_SHARED].count, 2);
    cr_assert_eq(m.tower[CLASP_TOWER_IMAGE], NULL);
    /* a text-only model with zero blocks still encodes */
    cr_assert_eq(clasp_model_prepare(&m, 2), CLASP_OK, "%s", clasp_last_error());
    int32_t tok[6] = {1, 2, 3, 4, 0, 1};
    float f[8];
    cr_assert_eq(clasp_model_encode_text(&m, tok, 2, f), CLASP_OK, "%s", clasp_last_error());
    for (int k = 0; k < 8; k++) cr_assert(isfinite(f[k]));
    clasp_model_free(&m);
}

/* ---- audio towers ------------------------------------------------------------------------ */

static void load_config_file(clasp_model *m, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/%s", CLASP_SOURCE_DIR, name);
    clasp_model_config cfg;
    cr_assert_eq(clasp_model_config_load(path, &cfg), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_init(m, &cfg), CLASP_OK, "%s", clasp_last_error());
}

Test(model, speech_small_param_count_and_names) {
    clasp_model m;
    load_config_file(&m, "speech-small.json");
    /* conv 1->16->32->64->128 (3x3), fc 128->256->128; text as fmnist-small with 64 tokens */
    size_t audio = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 64 * 9 + 128) +
                   (256 * 128 + 256) + (128 * 256 + 128);
    cr_assert_eq(m.range[CLASP_TOWER_AUDIO].n_floats, audio);
    cr_assert_eq(m.range[CLASP_TOWER_AUDIO].count, 12);
    cr_assert_eq(m.range[CLASP_TOWER_TEXT].n_floats, (size_t)450560 + 32 * 128);
    cr_assert_eq(m.range[CLASP_TOWER_IMAGE].count, 0);
    cr_assert_eq(m.n_floats, audio + 450560 + 32 * 128 + 1);
    cr_assert_eq(m.tower[CLASP_TOWER_IMAGE], NULL);
    /* order: text, audio, shared; contiguous */
    cr_assert(m.range[CLASP_TOWER_TEXT].offset < m.range[CLASP_TOWER_AUDIO].offset);
    cr_assert_eq(m.range[CLASP_TOWER_AUDIO].offset + m.range[CLASP_TOWER_AUDIO].n_floats,
                 m.range[CLASP_TOWER_SHARED].offset);
    const want_param want[] = {
        {"audio.conv1.weight", 4, 16, 1, 3, 3, true, CLASP_TOWER_AUDIO},
        {"audio.conv1.bias", 1, 16, 0, 0, 0, false, CLASP_TOWER_AUDIO},
        {"audio.conv4.weight", 4, 128, 64, 3, 3, true, CLASP_TOWER_AUDIO},
        {"audio.fc1.weight", 2, 256, 128, 0, 0, true, CLASP_TOWER_AUDIO},
        {"audio.fc2.weight", 2, 128, 256, 0, 0, true, CLASP_TOWER_AUDIO},
        {"audio.fc2.bias", 1, 128, 0, 0, 0, false, CLASP_TOWER_AUDIO},
        {"text.pos_emb", 2, 64, 128, 0, 0, false, CLASP_TOWER_TEXT},
    };
    check_params_(&m, want, sizeof want / sizeof want[0]);
    cr_assert_eq(clasp_model_find(&m, "audio.fc3.weight"), -1);
    clasp_model_free(&m);
}

Test(model, speech_ast_param_names) {
    clasp_model m;
    load_config_file(&m, "speech-ast.json");
    int W = m.config.audio.width, N = (64 / 16) * (301 / 10);
    cr_assert_eq(N, 120);
    int i = clasp_model_find(&m, "audio.patch_embed.weight");
    cr_assert(i >= 0);
    cr_assert_eq(m.info[i].ndim, 4);
    cr_assert_eq(m.info[i].shape[0], W);
    cr_assert_eq(m.info[i].shape[1], 1);
    cr_assert_eq(m.info[i].shape[2], 16);
    cr_assert_eq(m.info[i].shape[3], 10);
    cr_assert_eq(m.info[i].fan_in, 160);
    i = clasp_model_find(&m, "audio.pos_emb");
    cr_assert_eq(m.info[i].shape[0], N); /* mean pooling: no class token */
    cr_assert_eq(clasp_model_find(&m, "audio.cls_token"), -1);
    cr_assert(clasp_model_find(&m, "audio.blocks.2.mlp.fc2.bias") >= 0);
    cr_assert(clasp_model_find(&m, "audio.ln_f.weight") >= 0);
    cr_assert(clasp_model_find(&m, "audio.proj.weight") >= 0);
    /* 12 tensors per block; patch_embed 2, pos_emb 1, ln_f 2, proj 2 */
    cr_assert_eq(m.range[CLASP_TOWER_AUDIO].count, 3 * 12 + 7);
    clasp_model_free(&m);
}

/* Encodes `mel`, backpropagates dfeat.audio, checks out.audio. */
static void run_audio_reference(clasp_model *m, clasp_safetensors *st, const float *mel, int B) {
    int D = m->config.embed_dim;
    float *da = read_f32(st, "dfeat.audio", (size_t)B * D);
    float *oa = read_f32(st, "out.audio", (size_t)B * D);
    float *fa = malloc((size_t)B * D * sizeof(float));
    cr_assert_eq(clasp_model_prepare(m, B), CLASP_OK, "%s", clasp_last_error());
    clasp_model_zero_grad(m);
    cr_assert_eq(clasp_model_encode_audio(m, mel, B, fa), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_backward_audio(m, da), CLASP_OK, "%s", clasp_last_error());
    cr_expect(check("out.audio", fa, oa, (size_t)B * D));
    free(da);
    free(oa);
    free(fa);
}

static size_t mel_numel(const clasp_model *m, int B) {
    return (size_t)B * clasp_model_input_elems(&m->config, CLASP_TOWER_AUDIO);
}

static void tiny_audio_parity(const char *rel) {
    clasp_model m;
    load_tiny(&m, rel);
    cr_assert_neq(m.tower[CLASP_TOWER_AUDIO], NULL);
    clasp_safetensors *st = open_ref(rel);
    float *mel = read_f32(st, "input.mel", mel_numel(&m, 3));
    run_audio_reference(&m, st, mel, 3);
    check_grads(&m, st, NULL);
    free(mel);
    clasp_st_free(st);
    clasp_model_free(&m);
}

Test(model, tiny_audio_cnn_parity) {
    tiny_audio_parity("model/tiny_audio_cnn.safetensors");
}

Test(model, tiny_ast_cls_parity) {
    tiny_audio_parity("model/tiny_ast_a.safetensors");
}

Test(model, tiny_ast_mean_tanh_parity) {
    tiny_audio_parity("model/tiny_ast_b.safetensors");
}

Test(model, speech_small_audio_parity_with_pytorch) {
    clasp_safetensors *st = open_ref("model/speech_small_audio.safetensors");
    const char *cj = clasp_st_meta(st, "config");
    cr_assert(cj, "no config in the reference");
    clasp_model m;
    clasp_model_config cfg = parse_config_(cj, "speech_small_audio");
    cr_assert_eq(clasp_model_init(&m, &cfg), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(m.config.audio.n_frames, 301);
    gen_params(&m, st);
    double g[3];
    int B = 2;
    size_t n = mel_numel(&m, B);
    float *mel = malloc(n * sizeof(float));
    read_raw(st, "gen.input.mel", g, 3, CLASP_DTYPE_F64);
    gen_fill(mel, n, (uint64_t)g[0], g[1], g[2]);
    run_audio_reference(&m, st, mel, B);
    int n_sampled = 0, n_full = check_grads(&m, st, &n_sampled);
    cr_assert_eq(n_full + n_sampled, m.range[CLASP_TOWER_AUDIO].count);
    cr_assert(n_sampled >= 3);
    free(mel);
    clasp_st_free(st);
    clasp_model_free(&m);
}

static double audio_loss(clasp_model *m, const float *mel, const float *ga, int B, float *fa) {
    cr_assert_eq(clasp_model_encode_audio(m, mel, B, fa), CLASP_OK, "%s", clasp_last_error());
    double L = 0.0;
    for (int k = 0; k < B * m->config.embed_dim; k++) L += (double)fa[k] * (double)ga[k];
    return L;
}

/* Central differences on 4 entries of every audio tensor. A ReLU or max-pool switch within
 * +-h shows as one-sided slopes that differ; the central difference means nothing there, so
 * such points are skipped and counted (the CNN has hundreds of ReLU inputs per weight). */
static void audio_fd(const char *rel, int seed) {
    clasp_model m;
    load_tiny(&m, rel);
    clasp_safetensors *st = open_ref(rel);
    int B = 3, D = m.config.embed_dim;
    float *mel = read_f32(st, "input.mel", mel_numel(&m, B));
    float *ga = read_f32(st, "dfeat.audio", (size_t)B * D);
    float *fa = malloc((size_t)B * D * sizeof(float));
    cr_assert_eq(clasp_model_prepare(&m, B), CLASP_OK);
    clasp_model_zero_grad(&m);
    double l0 = audio_loss(&m, mel, ga, B, fa);
    cr_assert_eq(clasp_model_backward_audio(&m, ga), CLASP_OK);
    clasp_rng r;
    clasp_rng_init(&r, 9, CLASP_RNG_TEST, (uint64_t)seed, 0);
    int n_checked = 0, n_bad = 0, n_kink = 0;
    const double h = 4e-3;
    for (int i = 0; i < m.n_params; i++) {
        const clasp_param_info *p = &m.info[i];
        if (p->tower == CLASP_TOWER_SHARED) continue;
        for (int s = 0; s < 4; s++) {
            size_t k = (size_t)clasp_rng_below(&r, p->numel);
            float *w = m.params + p->offset + k, w0 = *w;
            *w = (float)((double)w0 + h);
            double lp = audio_loss(&m, mel, ga, B, fa);
            *w = (float)((double)w0 - h);
            double lm = audio_loss(&m, mel, ga, B, fa);
            *w = w0;
            double num = (lp - lm) / (2.0 * h), ana = m.grads[p->offset + k];
            double tol = 3e-3 + 2e-2 * fabs(ana);
            if (fabs((lp - l0) / h - (l0 - lm) / h) > tol) {
                n_kink++;
                continue;
            }
            if (!(fabs(num - ana) <= tol)) {
                n_bad++;
                fprintf(stderr, "FD %s %s[%zu]: numeric %.6g analytic %.6g\n", rel, p->name, k, num,
                        ana);
            }
            n_checked++;
        }
    }
    if (getenv("CLASP_TEST_VERBOSE"))
        fprintf(stderr, "FD %s: %d checked, %d at kinks skipped\n", rel, n_checked, n_kink);
    cr_expect_eq(n_bad, 0, "%s: %d of %d finite differences off", rel, n_bad, n_checked);
    cr_expect(n_kink * 4 <= n_checked, "%s: %d kinks for %d checks", rel, n_kink, n_checked);
    free(mel);
    free(ga);
    free(fa);
    clasp_st_free(st);
    clasp_model_free(&m);
}

Test(model, finite_differences_audio_cnn) {
    audio_fd("model/tiny_audio_cnn.safetensors", 0);
}

Test(model, finite_differences_ast) {
    audio_fd("model/tiny_ast_a.safetensors", 1);
    audio_fd("model/tiny_ast_b.safetensors", 2);
}

/* Audio + text model: arena sized once, partial batches give the same rows, backward order
 * does not matter, errors before prepare / without forward / out of range. */
static void audio_arena_case(const char *config) {
    clasp_model m;
    load_config_file(&m, config);
    clasp_model_init_weights(&m, 3);
    int B = 4, D = m.config.embed_dim, T = m.config.text.context_length;
    size_t nm = mel_numel(&m, 1);
    float *mel = malloc((size_t)B * nm * sizeof(float));
    float *fa4 = malloc((size_t)B * D * sizeof(float)),
          *ft4 = malloc((size_t)B * D * sizeof(float));
    float *fa2 = malloc((size_t)2 * D * sizeof(float));
    int32_t *tok = malloc((size_t)B * T * sizeof(int32_t));
    clasp_rng r;
    clasp_rng_init(&r, 2, CLASP_RNG_TEST, 0, 0);
    for (size_t i = 0; i < (size_t)B * nm; i++) mel[i] = (float)clasp_rng_normal(&r);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            tok[b * T + t] = t == 0 ? 256 : t < 5 + b ? 97 + t % 26 : t == 5 + b ? 257 : 258;
    cr_assert_eq(clasp_model_encode_audio(&m, mel, B, fa4), CLASP_ERR_STATE);
    cr_assert_eq(clasp_model_prepare(&m, B), CLASP_OK, "%s", clasp_last_error());
    size_t cap = clasp_model_arena_bytes(&m, CLASP_TOWER_AUDIO);
    cr_assert(cap > (size_t)B * nm * sizeof(float), "arena %zu", cap);
    cr_assert_eq(clasp_model_arena_bytes(&m, CLASP_TOWER_IMAGE), 0);
    cr_assert_eq(clasp_model_backward_audio(&m, fa4), CLASP_ERR_STATE);
    cr_assert_eq(clasp_model_encode_audio(&m, mel, B + 1, fa4), CLASP_ERR_ARG);
    cr_assert_eq(clasp_model_encode_audio(&m, NULL, B, fa4), CLASP_ERR_ARG);
    cr_assert_eq(clasp_model_encode_image(&m, mel, 1, fa4), CLASP_ERR_ARG); /* no image tower */
    cr_assert_eq(clasp_model_encode_audio(&m, mel, B, fa4), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_arena_high(&m, CLASP_TOWER_AUDIO), cap);
    bool finite = true;
    for (int k = 0; k < B * D; k++) finite = finite && isfinite(fa4[k]);
    cr_assert(finite);
    cr_assert_eq(clasp_model_encode_text(&m, tok, B, ft4), CLASP_OK, "%s", clasp_last_error());
    clasp_model_zero_grad(&m);
    cr_assert_eq(clasp_model_backward_audio(&m, ft4), CLASP_OK);
    cr_assert_eq(clasp_model_backward_text(&m, fa4), CLASP_OK);
    float *g = malloc(m.n_floats * sizeof(float));
    memcpy(g, m.grads, m.n_floats * sizeof(float));
    const clasp_param_range *ra = &m.range[CLASP_TOWER_AUDIO];
    double gn = 0.0;
    for (size_t k = 0; k < ra->n_floats; k++) gn += fabs((double)g[ra->offset + k]);
    cr_assert(gn > 0.0, "audio gradients are all zero");
    /* partial batch: rows 1..2 alone give the same features, no reallocation */
    cr_assert_eq(clasp_model_encode_audio(&m, mel + nm, 2, fa2), CLASP_OK);
    cr_assert_eq(clasp_model_arena_bytes(&m, CLASP_TOWER_AUDIO), cap);
    cr_assert_eq(clasp_model_arena_high(&m, CLASP_TOWER_AUDIO), cap);
    cr_expect(clasp_test_check_tensor("partial audio", fa2, fa4 + D, 2 * (size_t)D, 1e-5, 1e-5));
    /* other order: text backward first */
    cr_assert_eq(clasp_model_encode_audio(&m, mel, B, fa4), CLASP_OK);
    clasp_model_zero_grad(&m);
    cr_assert_eq(clasp_model_backward_text(&m, fa4), CLASP_OK);
    cr_assert_eq(clasp_model_backward_audio(&m, ft4), CLASP_OK);
    cr_expect(clasp_test_check_tensor("grads, other order", m.grads, g, m.n_floats, 0.0, 0.0));
    free(g);
    free(mel);
    free(fa4);
    free(ft4);
    free(fa2);
    free(tok);
    clasp_model_free(&m);
}

Test(model, audio_cnn_arena_and_partial_batches) {
    audio_arena_case("speech-small.json");
}

Test(model, ast_arena_and_partial_batches) {
    audio_arena_case("speech-ast.json");
}

Test(model, audio_save_load_roundtrip) {
    char dir[4096], path[4200];
    fx_scratch("model_audio_io", dir, path, "speech.safetensors", NULL);
    clasp_model a, b;
    load_config_file(&a, "speech-small.json");
    clasp_model_init_weights(&a, 11);
    cr_assert_eq(clasp_model_save(&a, path), CLASP_OK, "%s", clasp_last_error());
    /* the saved config rebuilds the same model, front-end fields included */
    clasp_safetensors *st;
    cr_assert_eq(clasp_st_open(path, &st), CLASP_OK);
    const char *cj = clasp_st_meta(st, "config");
    clasp_model_config cfg = parse_config_(cj, "meta");
    clasp_st_free(st);
    cr_assert_eq(cfg.audio.n_frames, a.config.audio.n_frames);
    cr_assert_eq(cfg.audio.clip_seconds, a.config.audio.clip_seconds);
    cr_assert_eq(clasp_model_init(&b, &cfg), CLASP_OK);
    cr_assert_eq(b.n_floats, a.n_floats);
    cr_assert_eq(clasp_model_load(&b, path), CLASP_OK, "%s", clasp_last_error());
    cr_assert(!memcmp(a.params, b.params, a.n_floats * sizeof(float)));
    clasp_model_free(&a);
    clasp_model_free(&b);
}

Test(model, audio_init_rules) {
    clasp_model m;
    load_config_file(&m, "speech-ast.json");
    clasp_model_init_weights(&m, 5);
    int i = clasp_model_find(&m, "audio.pos_emb");
    cr_assert_eq(m.info[i].init, CLASP_INIT_NORMAL);
    cr_assert_float_eq(m.info[i].init_scale, 0.02f, 0.0f);
    i = clasp_model_find(&m, "audio.patch_embed.weight");
    cr_assert_eq(m.info[i].init, CLASP_INIT_UNIFORM_FANIN);
    cr_assert(m.info[i].decay);
    const float *w = m.params + m.info[i].offset;
    float mx = 0.0f;
    for (size_t k = 0; k < m.info[i].numel; k++) mx = fmaxf(mx, fabsf(w[k]));
    cr_assert(mx <= 1.0f / sqrtf(160.0f) && mx > 0.0f, "max %g", (double)mx);
    clasp_model_free(&m);
}
