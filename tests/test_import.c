/* test_import.c: `clasp import openclip` (export/openclip.c) against the PyTorch reference of
 * tests/reference/make_openclip.py: a tiny OpenCLIP ViT saved in F16 with OpenCLIP's names,
 * imported, then its image and text embeddings (on the same preprocessed tensors, on the PNGs
 * and captions, and through the C API) equal the reference's within 1e-4; missing, extra,
 * misshaped and wrong-dtype tensors and unsupported architectures are refused naming them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/clasp.h"
#include "core/compute.h"
#include "core/json.h"
#include "export/export.h"
#include "export/openclip.h"
#include "tests/fixtures.h"

#define MERGES CLASP_SOURCE_DIR "/../shared/data/openclip/bpe_simple_vocab_16e6.txt.gz"
#define REF    CLASP_SOURCE_DIR "/tests/reference/openclip/"
#define N_IMG  4
#define N_TXT  6
#define D      16
#define CTX    77
#define TOL    1e-4

static const char *const IMAGES[N_IMG] = {REF "img_cat.png", REF "img_dog.png", REF "img_apple.png",
                                          REF "img_car.png"};

/* Imports ckpt of architecture arch_json into exp; returns the status. */
static clasp_status import_arch(const char *arch_json, const char *ckpt, const char *exp,
                                clasp_openclip_report *r) {
    clasp_openclip_arch a;
    cr_assert_eq(clasp_openclip_arch_load(arch_json, &a), CLASP_OK, "%s", clasp_last_error());
    return clasp_openclip_import(ckpt, &a, MERGES, exp, r);
}

/* The same for the tiny arch. */
static clasp_status import_into(const char *ckpt, const char *exp, clasp_openclip_report *r) {
    return import_arch(REF "tiny.json", ckpt, exp, r);
}

/* The captions of captions.txt (N_TXT lines) into lines[] (static storage). */
static void captions(const char *lines[N_TXT]) {
    static char *text;
    free(text);
    text = fx_read_text(REF "captions.txt");
    char *p = text;
    for (int i = 0; i < N_TXT; i++) {
        cr_assert(p && *p, "captions.txt has fewer than %d lines", N_TXT);
        lines[i] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
}

/* Checks every embedding path of an imported export against the reference file
 * tests/reference/openclip/REF. */
static void check_parity(const char *exp, const char *ref_name) {
    clasp_safetensors *ref = fx_ref_open("openclip/%s", ref_name);
    cr_assert(ref, "%s", clasp_last_error());
    const float *pix = clasp_st_f32(ref, clasp_st_find(ref, "input.pixels"));
    const float *oi = clasp_st_f32(ref, clasp_st_find(ref, "out.image"));
    const float *ot = clasp_st_f32(ref, clasp_st_find(ref, "out.text"));
    const clasp_st_tensor *tt = clasp_st_find(ref, "input.tokens");
    cr_assert(pix && oi && ot && tt && tt->dtype == CLASP_DTYPE_I32);
    int32_t tokens[N_TXT * CTX];
    memcpy(tokens, tt->data, sizeof tokens);

    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(exp, 1, 8, &em), CLASP_OK, "%s", clasp_last_error());
    /* OpenAI's Resize is PIL's bicubic: the import asks for the filter that reproduces it */
    cr_expect_eq(em.pre.image.interp, CLASP_IMAGE_INTERP_BICUBIC);
    float zi[N_IMG * D], zt[N_TXT * D];
    /* the model on the reference's own tensors */
    cr_assert_eq(clasp_embedder_embed_inputs(&em, CLASP_TOWER_IMAGE, pix, N_IMG, zi), CLASP_OK,
                 "%s", clasp_last_error());
    cr_expect(clasp_test_check_tensor("image (tensors)", zi, oi, N_IMG * D, TOL, 0));
    cr_assert_eq(clasp_embedder_embed_inputs(&em, CLASP_TOWER_TEXT, tokens, N_TXT, zt), CLASP_OK,
                 "%s", clasp_last_error());
    cr_expect(clasp_test_check_tensor("text (tokens)", zt, ot, N_TXT * D, TOL, 0));
    /* the export's tokenizer gives the reference tokenizer's ids */
    const char *lines[N_TXT];
    captions(lines);
    for (int i = 0; i < N_TXT; i++) {
        int32_t got[CTX];
        cr_assert_eq(clasp_embedder_tokenize(&em, lines[i], got), CLASP_OK, "%s",
                     clasp_last_error());
        cr_expect_arr_eq(got, tokens + i * CTX, sizeof got, "caption %d '%s'", i, lines[i]);
    }
    /* files and raw texts: the PNGs are at the model's size, so nothing is resampled */
    cr_assert_eq(clasp_embedder_image_files(&em, IMAGES, N_IMG, zi), CLASP_OK, "%s",
                 clasp_last_error());
    cr_expect(clasp_test_check_tensor("image (png)", zi, oi, N_IMG * D, TOL, 0));
    cr_assert_eq(clasp_embedder_texts(&em, lines, N_TXT, zt), CLASP_OK, "%s", clasp_last_error());
    cr_expect(clasp_test_check_tensor("text (captions)", zt, ot, N_TXT * D, TOL, 0));
    clasp_embedder_close(&em);

    /* the public C API */
    clasp_handle *h = clasp_model_open(exp, 1);
    cr_assert(h, "%s", clasp_last_error());
    cr_expect_eq(clasp_model_dim(h), D);
    memset(zi, 0, sizeof zi);
    cr_assert_eq(clasp_model_embed_image_files(h, IMAGES, N_IMG, zi), 0, "%s", clasp_last_error());
    cr_expect(clasp_test_check_tensor("image (C API)", zi, oi, N_IMG * D, TOL, 0));
    cr_assert_eq(clasp_model_embed_texts(h, lines, N_TXT, zt), 0, "%s", clasp_last_error());
    cr_expect(clasp_test_check_tensor("text (C API)", zt, ot, N_TXT * D, TOL, 0));
    clasp_model_close(h);
    clasp_st_free(ref);
}

Test(import, f16_checkpoint_matches_reference, .timeout = 120) {
    char dir[FX_PATH], exp[FX_PATH];
    fx_scratch("import_f16", dir, exp, "export", NULL);
    clasp_openclip_report r;
    cr_assert_eq(import_into(REF "tiny.safetensors", exp, &r), CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(r.n_f16, r.n_tensors);
    cr_expect_eq(r.n_tensors, 62, "%d tensors mapped", r.n_tensors);
    cr_expect_eq(r.n_ignored, 1);
    cr_expect_str_eq(r.ignored, "attn_mask");
    cr_expect(fabs(r.logit_scale - log(1 / 0.07)) < 2e-3, "logit scale %g", r.logit_scale);
    check_parity(exp, "tiny_ref.safetensors");
}

/* Layer scale (ls_1/ls_2 gammas) in both towers, exact GELU, a BF16 checkpoint. */
Test(import, layer_scale_bf16_checkpoint_matches_reference, .timeout = 120) {
    char dir[FX_PATH], exp[FX_PATH], exp2[FX_PATH];
    fx_scratch("import_ls", dir, exp, "export", exp2, "export2", NULL);
    clasp_openclip_report r;
    cr_assert_eq(import_arch(REF "tiny_ls.json", REF "tiny_ls.safetensors", exp, &r), CLASP_OK,
                 "%s", clasp_last_error());
    cr_expect_eq(r.n_bf16, r.n_tensors);
    cr_expect_eq(r.n_tensors, 62 + 8, "%d tensors mapped", r.n_tensors);
    check_parity(exp, "tiny_ls_ref.safetensors");
    /* without layer scale in the arch, the gammas are extra tensors */
    cr_expect_eq(import_arch(REF "tiny.json", REF "tiny_ls.safetensors", exp2, NULL),
                 CLASP_ERR_FORMAT);
    cr_expect(strstr(clasp_last_error(), "ls_1.gamma"), "%s", clasp_last_error());
}

/* ---- rewritten checkpoints ------------------------------------------------------------- */

typedef enum edit_kind {
    EDIT_NONE,
    EDIT_DROP,     /* leave `name` out */
    EDIT_EXTRA,    /* add a tensor called `name` */
    EDIT_SHAPE,    /* store `name` with its two dims swapped */
    EDIT_DTYPE,    /* store `name` as F64 */
    EDIT_ALL_F32,  /* every tensor as F32 */
    EDIT_ALL_BF16, /* every tensor as BF16 */
} edit_kind;

/* Writes a copy of tiny.safetensors to out with one edit. */
static void rewrite(const char *out, edit_kind kind, const char *name) {
    clasp_safetensors *st;
    cr_assert_eq(clasp_st_open(REF "tiny.safetensors", &st), CLASP_OK, "%s", clasp_last_error());
    clasp_st_writer *w = clasp_st_writer_new();
    cr_assert(w);
    void **bufs = calloc((size_t)st->n_tensors + 1, sizeof *bufs);
    cr_assert(bufs);
    for (int i = 0; i < st->n_tensors; i++) {
        const clasp_st_tensor *t = &st->tensors[i];
        bool hit = name && !strcmp(t->name, name);
        if (hit && kind == EDIT_DROP) continue;
        int64_t shape[CLASP_ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (hit && kind == EDIT_SHAPE) {
            cr_assert_eq(t->ndim, 2);
            shape[0] = t->shape[1];
            shape[1] = t->shape[0];
        }
        clasp_dtype dt = t->dtype;
        const void *data = t->data;
        /* F16 -> F32 through the F32 copy clasp makes of an F16 tensor on import: widen here */
        if ((hit && kind == EDIT_DTYPE) || kind == EDIT_ALL_F32 || kind == EDIT_ALL_BF16) {
            dt = hit && kind == EDIT_DTYPE ? CLASP_DTYPE_F64
                 : kind == EDIT_ALL_F32    ? CLASP_DTYPE_F32
                                           : CLASP_DTYPE_BF16;
            bufs[i] = malloc(t->numel * 8 + 8);
            cr_assert(bufs[i]);
            for (size_t k = 0; k < t->numel; k++) {
                uint16_t h;
                memcpy(&h, t->data + 2 * k, 2);
                /* IEEE half: this test reads it through a float conversion of its own */
                uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u;
                float f;
                if (e == 0) {
                    f = ldexpf((float)m, -24);
                } else if (e == 31) {
                    f = m ? NAN : INFINITY;
                } else {
                    f = ldexpf((float)(m | 1024u), (int)e - 25);
                }
                if (s) f = -f;
                if (dt == CLASP_DTYPE_F64)
                    ((double *)bufs[i])[k] = (double)f;
                else if (dt == CLASP_DTYPE_F32)
                    ((float *)bufs[i])[k] = f;
                else
                    ((uint16_t *)bufs[i])[k] = clasp_f32_to_bf16(f);
            }
            data = bufs[i];
        }
        cr_assert_eq(clasp_st_writer_add(w, t->name, dt, t->ndim, shape, data), CLASP_OK);
    }
    static const float extra[3] = {1, 2, 3};
    const int64_t three = 3;
    if (kind == EDIT_EXTRA)
        cr_assert_eq(clasp_st_writer_add(w, name, CLASP_DTYPE_F32, 1, &three, extra), CLASP_OK);
    cr_assert_eq(clasp_st_writer_write(w, out), CLASP_OK, "%s", clasp_last_error());
    clasp_st_writer_free(w);
    for (int i = 0; i < st->n_tensors; i++) free(bufs[i]);
    free(bufs);
    clasp_st_free(st);
}

/* Imports tiny.safetensors with one edit and expects status `want` and `needles` (NULL-ended)
 * in the message. */
static void expect_refused(edit_kind kind, const char *name, clasp_status want, ...) {
    char dir[FX_PATH], ck[FX_PATH], exp[FX_PATH];
    fx_scratch("import_bad", dir, ck, "bad.safetensors", exp, "export", NULL);
    rewrite(ck, kind, name);
    clasp_status s = import_into(ck, exp, NULL);
    cr_expect_eq(s, want, "%s: %s -> %s", name, clasp_status_name(s), clasp_last_error());
    va_list ap;
    va_start(ap, want);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        cr_expect(strstr(clasp_last_error(), n), "'%s' not in: %s", n, clasp_last_error());
    va_end(ap);
    cr_expect(!clasp_is_dir(exp), "no export after a refused import");
}

Test(import, missing_tensor_is_named) {
    expect_refused(EDIT_DROP, "transformer.resblocks.1.mlp.c_fc.bias", CLASP_ERR_NOT_FOUND,
                   "'transformer.resblocks.1.mlp.c_fc.bias'", "(64)", "missing", NULL);
}

Test(import, extra_tensor_is_named) {
    expect_refused(EDIT_EXTRA, "visual.transformer.resblocks.2.ln_1.weight", CLASP_ERR_FORMAT,
                   "'visual.transformer.resblocks.2.ln_1.weight'", "extra", NULL);
}

Test(import, misshaped_tensor_names_the_expected_shape) {
    expect_refused(EDIT_SHAPE, "visual.proj", CLASP_ERR_FORMAT, "'visual.proj'", "(16, 32)",
                   "expects (32, 16)", NULL);
}

Test(import, wrong_dtype_is_named) {
    expect_refused(EDIT_DTYPE, "logit_scale", CLASP_ERR_FORMAT, "'logit_scale'", "F64", NULL);
}

/* F32 and BF16 checkpoints: the same tensors give the same export (BF16: the values rounded). */
Test(import, f32_and_bf16_checkpoints, .timeout = 120) {
    char dir[FX_PATH], c32[FX_PATH], cb[FX_PATH], e32[FX_PATH], eb[FX_PATH], e16[FX_PATH];
    char m32[FX_PATH], mb[FX_PATH], m16[FX_PATH];
    fx_scratch("import_dtypes", dir, c32, "f32.safetensors", cb, "bf16.safetensors", e32, "e32", eb,
               "ebf16", e16, "e16", m32, "e32/model.safetensors", mb, "ebf16/model.safetensors",
               m16, "e16/model.safetensors", NULL);
    rewrite(c32, EDIT_ALL_F32, NULL);
    rewrite(cb, EDIT_ALL_BF16, NULL);
    clasp_openclip_report r;
    cr_assert_eq(import_into(c32, e32, &r), CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(r.n_f32, 62);
    cr_assert_eq(import_into(cb, eb, &r), CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(r.n_bf16, 62);
    cr_assert_eq(import_into(REF "tiny.safetensors", e16, NULL), CLASP_OK, "%s",
                 clasp_last_error());
    cr_expect(fx_same_file(m32, m16), "an F32 copy of the F16 weights imports identically");
    clasp_safetensors *a, *b;
    cr_assert_eq(clasp_st_open(m16, &a), CLASP_OK);
    cr_assert_eq(clasp_st_open(mb, &b), CLASP_OK);
    size_t n_checked = 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const clasp_st_tensor *ta = &a->tensors[i];
        const clasp_st_tensor *tb = clasp_st_find(b, ta->name);
        cr_assert(tb && tb->numel == ta->numel, "%s", ta->name);
        const float *x = clasp_st_f32(a, ta), *y = clasp_st_f32(b, tb);
        for (size_t k = 0; k < ta->numel; k++, n_checked++)
            if (clasp_bf16_round(x[k]) != y[k])
                cr_assert_fail("%s[%zu]: bf16 import %g, bf16(f16 import) %g", ta->name, k,
                               (double)y[k], (double)clasp_bf16_round(x[k]));
    }
    cr_expect_gt(n_checked, 49408 * 16);
    clasp_st_free(a);
    clasp_st_free(b);
}

/* ---- architectures --------------------------------------------------------------------- */

static clasp_status parse_arch(const char *json) {
    cJSON *o = cJSON_Parse(json);
    cr_assert(o, "bad test JSON: %s", json);
    clasp_openclip_arch a;
    clasp_status s = clasp_openclip_arch_parse(o, "arch.json", &a);
    cJSON_Delete(o);
    return s;
}

#define VIT                                                                                        \
    "\"vision_cfg\": {\"image_size\": 224, \"layers\": 12, \"width\": 768, \"patch_size\": 32"
#define TEXT "\"text_cfg\": {\"width\": 512, \"heads\": 8, \"layers\": 12"

Test(import, arch_configs_parse) {
    const char *names[] = {"ViT-B-32", "ViT-B-32-quickgelu", "ViT-B-16", "ViT-L-14"};
    const int widths[] = {768, 768, 768, 1024}, embed[] = {512, 512, 512, 768};
    for (int i = 0; i < 4; i++) {
        char p[FX_PATH];
        snprintf(p, sizeof p, CLASP_SOURCE_DIR "/configs/openclip/%s.json", names[i]);
        clasp_openclip_arch a;
        cr_assert_eq(clasp_openclip_arch_load(p, &a), CLASP_OK, "%s", clasp_last_error());
        cr_expect_eq(a.vision_width, widths[i]);
        cr_expect_eq(a.embed_dim, embed[i]);
        cr_expect_eq(a.vision_heads, widths[i] / 64);
        cr_expect_eq(a.vision_mlp, 4 * widths[i]);
        cr_expect_eq(a.quick_gelu, i == 1);
        cr_expect_eq(a.context_length, 77);
        cr_expect_eq(a.vocab_size, 49408);
    }
    /* OpenCLIP's own file, as published */
    clasp_openclip_arch a;
    cr_assert_eq(
        clasp_openclip_arch_load(CLASP_SOURCE_DIR "/../shared/data/openclip/ViT-B-32.json", &a),
        CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(a.patch_size, 32);
    cr_expect_eq(parse_arch("{\"embed_dim\": 512, " VIT ", \"ls_init_value\": null}, " TEXT
                            ", \"ls_init_value\": 0}}"),
                 CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_openclip_arch_load(REF "tiny_ls.json", &a), CLASP_OK, "%s",
                 clasp_last_error());
    cr_expect(a.vision_ls == 0.1f && a.text_ls == 0.1f && !a.quick_gelu);
    /* image_mean / image_std replace OpenAI's (the export normalises with them) */
    cJSON *o = cJSON_Parse("{\"embed_dim\": 512, " VIT ", \"image_mean\": [0.5, 0.25, 0.125], "
                           "\"image_std\": [0.5, 0.5, 2]}, " TEXT "}}");
    cr_assert(o);
    cr_assert_eq(clasp_openclip_arch_parse(o, "arch.json", &a), CLASP_OK, "%s", clasp_last_error());
    cr_expect(a.mean[0] == 0.5f && a.mean[1] == 0.25f && a.mean[2] == 0.125f && a.std[2] == 2.0f);
    cJSON_Delete(o);
}

Test(import, unsupported_archs_are_refused) {
    struct {
        const char *json, *needle;
        clasp_status want;
    } cases[] = {
        {"{\"embed_dim\": 512, " VIT ", \"no_ln_pre\": true}, " TEXT "}}", "vision_cfg.no_ln_pre",
         CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 512, " VIT ", \"ls_init_value\": -1}, " TEXT "}}",
         "vision_cfg.ls_init_value", CLASP_ERR_CONFIG},
        {"{\"embed_dim\": 512, " VIT "}, " TEXT ", \"no_causal_mask\": true}}",
         "text_cfg.no_causal_mask", CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 512, " VIT ", \"attentional_pool\": true}, " TEXT "}}",
         "attentional pooling", CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 1024, \"vision_cfg\": {\"image_size\": 224, \"layers\": [3, 4, 6, 3], "
         "\"width\": 64}, " TEXT "}}",
         "ResNet", CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 512, \"vision_cfg\": {\"timm_model_name\": \"convnext_base\", "
         "\"image_size\": 224}, " TEXT "}}",
         "timm", CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 512, " VIT "}, \"text_cfg\": {\"hf_model_name\": \"roberta-base\"}}",
         "Hugging Face", CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 512, \"init_logit_bias\": -10, " VIT "}, " TEXT "}}", "SigLIP",
         CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 512, " VIT ", \"pool_type\": \"avg\"}, " TEXT "}}",
         "vision_cfg.pool_type", CLASP_ERR_UNSUPPORTED},
        {"{\"embed_dim\": 512, " VIT ", \"wdith\": 3}, " TEXT "}}", "vision_cfg.wdith",
         CLASP_ERR_CONFIG},
        {"{\"embed_dim\": 512, " VIT ", \"head_width\": 100}, " TEXT "}}", "head_width",
         CLASP_ERR_CONFIG},
        {"{\"embed_dim\": 512, " VIT "}, " TEXT ", \"vocab_size\": 1000}}", "text_cfg.vocab_size",
         CLASP_ERR_CONFIG},
        {"{\"embed_dim\": 512, " VIT ", \"image_std\": [0.5, 0, 1]}, " TEXT "}}",
         "vision_cfg.image_std[1]", CLASP_ERR_CONFIG},
        {"{" VIT "}, " TEXT "}}", "embed_dim", CLASP_ERR_CONFIG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clasp_status s = parse_arch(cases[i].json);
        cr_expect_eq(s, cases[i].want, "case %zu: %s: %s", i, clasp_status_name(s),
                     clasp_last_error());
        cr_expect(strstr(clasp_last_error(), cases[i].needle) &&
                      strstr(clasp_last_error(), "arch.json"),
                  "case %zu: '%s' not in: %s", i, cases[i].needle, clasp_last_error());
    }
}

/* ---- the command ----------------------------------------------------------------------- */

Test(import, cli, .timeout = 120) {
    char dir[FX_PATH], exp[FX_PATH], exp2[FX_PATH], inpy[FX_PATH], tnpy[FX_PATH];
    fx_scratch("import_cli", dir, exp, "export", exp2, "export2", inpy, "images.npy", tnpy,
               "texts.npy", NULL);
    char *out = NULL;
    int rc = fx_clasp(&out,
                      "import openclip %stiny.safetensors --arch-config %stiny.json --vocab %s -o "
                      "%s --json",
                      REF, REF, MERGES, exp);
    cr_assert_eq(rc, 0, "%s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert(j, "%s", out);
    cr_expect_eq(cJSON_GetObjectItem(j, "tensors")->valueint, 62);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "ignored")->valuestring, "attn_mask");
    cJSON_Delete(j);
    free(out);
    check_parity(exp, "tiny_ref.safetensors");
    /* `clasp embed` and tools/clasp_torch.py on the export against the reference */
    char cmd[6 * FX_PATH];
    cr_assert_eq(fx_clasp(NULL, "embed --model %s --image %s %s %s %s -o %s 2>/dev/null", exp,
                          IMAGES[0], IMAGES[1], IMAGES[2], IMAGES[3], inpy),
                 0);
    cr_assert_eq(
        fx_clasp(NULL, "embed --model %s --text %scaptions.txt -o %s 2>/dev/null", exp, REF, tnpy),
        0);
    snprintf(cmd, sizeof cmd,
             FX_PYTHON " %s/tests/reference/make_openclip.py --compare %s %stiny_ref.safetensors "
                       "%s %s",
             CLASP_SOURCE_DIR, exp, REF, inpy, tnpy);
    cr_expect_eq(fx_system(cmd), 0, "%s", cmd);
    /* --arch looks up configs/openclip/NAME.json: ViT-B-32 does not fit the tiny checkpoint */
    rc = fx_clasp(&out, "import openclip %stiny.safetensors --arch ViT-B-32 --vocab %s -o %s 2>&1",
                  REF, MERGES, exp2);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "'visual.conv1.weight'") && strstr(out, "(768, 3, 32, 32)"), "%s", out);
    free(out);
    rc = fx_clasp(&out, "import openclip %stiny.safetensors --arch NoSuchArch -o %s 2>&1", REF,
                  exp2);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "NoSuchArch"), "%s", out);
    free(out);
    rc = fx_clasp(&out, "import openclip %stiny.safetensors --arch-config %stiny.json -o %s 2>&1",
                  REF, REF, exp2);
    cr_expect_eq(rc, 2, "no merges file beside the checkpoint: %s", out);
    cr_expect(strstr(out, "--vocab"), "%s", out);
    free(out);
}

/* The export is a training start as it is: `clasp train --model EXPORT --init EXPORT` (its
 * config.json, "format_version" and all) loads every tensor and trains, image tower frozen. */
Test(import, export_fine_tunes_as_is, .timeout = 120) {
    char dir[FX_PATH], exp[FX_PATH], shards[FX_PATH], run[FX_PATH], cfg[FX_PATH + 16];
    fx_scratch("import_ft", dir, exp, "export", shards, "shards", run, "run", NULL);
    cr_assert_eq(import_into(REF "tiny.safetensors", exp, NULL), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(fx_fmnist_shards(shards), 0);
    char *out = NULL;
    int rc = fx_clasp(&out,
                      "train --model %s --init %s --train '%s/train-{000000..000004}.tar' "
                      "--freeze image --steps 2 --batch-size 8 --out %s --no-progress 2>&1",
                      exp, exp, shards, run);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "62 tensors loaded, 0 keep their fresh init"), "%s", out);
    free(out);
    /* the config file itself, and a folder without one */
    snprintf(cfg, sizeof cfg, "%s/config.json", exp);
    rc = fx_clasp(&out, "train --model %s --train x.tar --steps 1 --out %s/r2 2>&1", shards, dir);
    cr_expect_neq(rc, 0, "%s", out);
    cr_expect(strstr(out, "config.json"), "%s", out);
    free(out);
    clasp_model_config c;
    cr_expect_eq(clasp_model_config_load(cfg, &c), CLASP_OK, "%s", clasp_last_error());
}
