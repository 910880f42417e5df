/* test_export.c: exports (export/export.h), `clasp export`/`embed`/`search`, the public C API
 * (include/clasp.h) and tools/clasp_torch.py: PyTorch embeddings of an export equal
 * `clasp embed`'s to max abs diff <= 1e-4 on images and texts, for the fmnist-small CNN with
 * the byte tokenizer and for a small ViT with a BPE tokenizer. Needs /usr/bin/python3 with
 * torch, numpy and PIL: a missing module makes the test FAIL (never skip). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/compute.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/rng.h"
#include "include/clasp.h"
#include "modalities/image.h"
#include "modalities/tokenizer.h"
#include "encoders/layers.h"
#include "export/export.h"
#include "eval/retrieval.h"
#include "tests/fixtures.h"

#define PY "/usr/bin/python3"

static void write_file_(const char *path, const void *data, size_t n) {
    cr_assert(fx_write(path, data, n), "cannot write %s", path);
}

/* A random PNG of w x h with `channels` (1..4), pixels from the counter RNG. */
static void write_png_(const char *path, int w, int h, int channels, uint64_t seed) {
    uint8_t *px = fx_random_pixels(w, h, channels, seed);
    cr_assert(px && fx_write_png(path, px, w, h, channels), "%s", path);
    free(px);
}

/* Builds a model from a config file, random weights, and exports it with `tok`. */
static void make_export_(const char *config_path, clasp_tokenizer *tok, const char *dir,
                         uint64_t seed) {
    cr_assert(fx_export_model(config_path, tok, dir, seed), "%s", clasp_last_error());
}

static float *load_npy_(const char *path, int64_t *rows, int64_t *cols) {
    float *x = NULL;
    cr_assert_eq(clasp_npy_read_f32(path, &x, rows, cols), CLASP_OK, "%s", clasp_last_error());
    return x;
}

static void run_ok_(const char *cmd) {
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
}

/* Embeds images and texts with `clasp embed` and with clasp_torch.py and compares. Also
 * checks the C API against `clasp embed`. */
static void torch_parity_(const char *dir, const char *tmp, const char *const *images, int n_img,
                          const char *texts_path, int n_text) {
    const char *bin = clasp_test_bin();
    char cmd[8192], imgs[4096] = "", ci[1024], ct[1024], pi[1024], pt[1024], script[1024];
    for (int i = 0; i < n_img; i++) {
        strcat(imgs, " ");
        strcat(imgs, images[i]);
    }
    snprintf(ci, sizeof ci, "%s/c_img.npy", tmp);
    snprintf(ct, sizeof ct, "%s/c_txt.npy", tmp);
    snprintf(pi, sizeof pi, "%s/py_img.npy", tmp);
    snprintf(pt, sizeof pt, "%s/py_txt.npy", tmp);
    snprintf(script, sizeof script, "%s/tools/clasp_torch.py", CLASP_SOURCE_DIR);
    snprintf(cmd, sizeof cmd, "%s embed --model %s --image%s -o %s --threads 2 --batch-size 4", bin,
             dir, imgs, ci);
    run_ok_(cmd);
    snprintf(cmd, sizeof cmd, "%s embed --model %s --text %s -o %s", bin, dir, texts_path, ct);
    run_ok_(cmd);
    /* torch must be importable: a missing torch is a failure, not a skip */
    snprintf(cmd, sizeof cmd, PY " -c 'import torch, numpy, PIL' ");
    cr_assert_eq(system(cmd), 0, "/usr/bin/python3 cannot import torch, numpy and PIL");
    snprintf(cmd, sizeof cmd, PY " %s %s --image%s -o %s", script, dir, imgs, pi);
    run_ok_(cmd);
    snprintf(cmd, sizeof cmd, PY " %s %s --text %s -o %s", script, dir, texts_path, pt);
    run_ok_(cmd);
    int64_t r1, c1, r2, c2;
    float *a = load_npy_(ci, &r1, &c1), *b = load_npy_(pi, &r2, &c2);
    cr_assert(r1 == n_img && r2 == n_img && c1 == c2, "image shapes %lldx%lld vs %lldx%lld",
              (long long)r1, (long long)c1, (long long)r2, (long long)c2);
    cr_assert(clasp_test_check_tensor("torch image embeddings", b, a, (size_t)(r1 * c1), 1e-4, 0));
    /* rows are unit vectors */
    for (int64_t i = 0; i < r1; i++) {
        double s = 0;
        for (int64_t d = 0; d < c1; d++) s += (double)a[i * c1 + d] * (double)a[i * c1 + d];
        cr_assert(fabs(s - 1.0) < 1e-5, "row %lld has squared norm %g", (long long)i, s);
    }
    float *t = load_npy_(ct, &r1, &c1), *u = load_npy_(pt, &r2, &c2);
    cr_assert(r1 == n_text && r2 == n_text && c1 == c2, "text shapes %lldx%lld vs %lldx%lld",
              (long long)r1, (long long)c1, (long long)r2, (long long)c2);
    cr_assert(clasp_test_check_tensor("torch text embeddings", u, t, (size_t)(r1 * c1), 1e-4, 0));

    /* the public C API gives what `clasp embed` wrote */
    clasp_handle *h = clasp_model_open(dir, 1);
    cr_assert(h, "clasp_model_open: %s", clasp_last_error());
    int D = clasp_model_dim(h);
    cr_assert_eq(D, c1);
    float *z = malloc((size_t)n_img * D * sizeof(float));
    cr_assert_eq(clasp_model_embed_image_files(h, images, n_img, z), 0, "%s", clasp_last_error());
    cr_assert(clasp_test_check_tensor("C API images", z, a, (size_t)n_img * D, 1e-6, 0));
    /* from memory too */
    void **bufs = calloc((size_t)n_img, sizeof *bufs);
    size_t *sz = calloc((size_t)n_img, sizeof *sz);
    for (int i = 0; i < n_img; i++) {
        char *p;
        cr_assert_eq(clasp_read_file(images[i], 1 << 24, &p, &sz[i]), CLASP_OK);
        bufs[i] = p;
    }
    memset(z, 0, (size_t)n_img * D * sizeof(float));
    cr_assert_eq(clasp_model_embed_images(h, (const void *const *)bufs, sz, n_img, z), 0, "%s",
                 clasp_last_error());
    cr_assert(clasp_test_check_tensor("C API images (memory)", z, a, (size_t)n_img * D, 1e-6, 0));
    for (int i = 0; i < n_img; i++) free(bufs[i]);
    free(bufs);
    free(sz);
    clasp_model_close(h);
    free(z);
    free(a), free(b), free(t), free(u);
}

Test(export, torch_parity_fmnist_cnn_bytes) {
    char tmp[1024], dir[1100], cfg[1100], p[1200];
    fx_scratch("export_cnn", tmp, dir, "export", NULL);
    snprintf(cfg, sizeof cfg, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_tokenizer *tok;
    cr_assert_eq(clasp_tokenizer_new_bytes(&tok), CLASP_OK);
    make_export_(cfg, tok, dir, 11);
    clasp_tokenizer_free(tok);
    /* gray at the model size, RGB (luma), gray+alpha and RGBA (composited on white) */
    char names[4][1200];
    const char *imgs[4];
    int chans[4] = {1, 3, 2, 4};
    for (int i = 0; i < 4; i++) {
        snprintf(names[i], sizeof names[i], "%s/img%d.png", tmp, i);
        write_png_(names[i], 28, 28, chans[i], 100 + (uint64_t)i);
        imgs[i] = names[i];
    }
    snprintf(p, sizeof p, "%s/texts.txt", tmp);
    const char *lines = "a photo of a bag\n"
                        "  an   image\tshowing a \xef\xac\x81sh  \r\n"
                        "\n"
                        "a very long caption that goes on well beyond thirty-two bytes of context\n"
                        "caf\xc3\xa9 \xe2\x91\xa0\n";
    write_file_(p, lines, strlen(lines));
    torch_parity_(dir, tmp, imgs, 4, p, 4);
}

Test(export, torch_parity_vit_bpe) {
    char tmp[1024], dir[1100], cfgp[1100], tp[1100], p[1200];
    fx_scratch("export_vit", tmp, dir, "export", NULL);
    /* a BPE trained on a few captions */
    const char *corpus[] = {"a photo of a cat",     "a photo of a dog", "a photo of a red car",
                            "the photo of the cat", "a dog and a cat",  "photo photo photo"};
    clasp_tokenizer *tok;
    cr_assert_eq(clasp_tokenizer_train_bpe(corpus, 6, 300, 2, &tok), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert(clasp_tokenizer_n_merges(tok) > 5);
    snprintf(tp, sizeof tp, "%s/bpe.json", tmp);
    cr_assert_eq(clasp_tokenizer_save(tok, tp), CLASP_OK);
    snprintf(cfgp, sizeof cfgp, "%s/vit.json", tmp);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"embed_dim\": 24, \"init_logit_bias\": -10,"
             " \"image\": {\"type\": \"vit\", \"channels\": 3, \"size\": 16, \"patch_size\": 4,"
             "  \"width\": 32, \"layers\": 2, \"heads\": 4, \"mlp_width\": 48, \"pool\": \"cls\","
             "  \"mean\": [0.5, 0.4, 0.3], \"std\": [0.2, 0.25, 0.3], \"act\": \"gelu_tanh\"},"
             " \"text\": {\"type\": \"transformer\", \"vocab_size\": 320, \"context_length\": 12,"
             "  \"width\": 32, \"layers\": 2, \"heads\": 2, \"mlp_width\": 64, \"causal\": true,"
             "  \"pool\": \"eos\", \"tokenizer\": {\"type\": \"bpe\", \"bos\": 256, \"eos\": 257,"
             "  \"pad\": 258, \"file\": \"%s\"}}}",
             tp);
    write_file_(cfgp, cfg, strlen(cfg));
    make_export_(cfgp, tok, dir, 5);
    clasp_tokenizer_free(tok);
    char names[3][1200];
    const char *imgs[3];
    int chans[3] = {3, 4, 1};
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s/img%d.png", tmp, i);
        write_png_(names[i], 16, 16, chans[i], 200 + (uint64_t)i);
        imgs[i] = names[i];
    }
    snprintf(p, sizeof p, "%s/texts.txt", tmp);
    const char *lines = "a photo of a cat\nthe dog and the photo of a red car with a cat\nzebra\n";
    write_file_(p, lines, strlen(lines));
    torch_parity_(dir, tmp, imgs, 3, p, 3);
}

Test(export, from_checkpoint_and_cli) {
    char tmp[1024], run[1100], cfgp[1100], exp[1100], cmd[4096];
    clasp_test_tmpdir("export_ckpt", tmp, sizeof tmp);
    snprintf(run, sizeof run, "%s/run", tmp);
    snprintf(exp, sizeof exp, "%s/export", tmp);
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    /* a checkpoint of the parameters alone (no optimiser state) */
    clasp_model m;
    cr_assert(fx_checkpoint_model(cfgp, 3, 7, run, &m), "%s", clasp_last_error());
    /* `clasp export RUN -o DIR`, twice (the second replaces the first atomically) */
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s export %s -o %s --json > %s/export.json", clasp_test_bin(),
                 run, exp, tmp);
        run_ok_(cmd);
    }
    const char *files[] = {"model.safetensors", "config.json", "tokenizer.json", "preprocess.json"};
    for (int i = 0; i < 4; i++) {
        char p[1300];
        snprintf(p, sizeof p, "%s/%s", exp, files[i]);
        cr_assert(access(p, R_OK) == 0, "%s missing", p);
    }
    char p[1300];
    snprintf(p, sizeof p, "%s.tmp-%ld", exp, (long)getpid());
    cr_assert(access(p, F_OK) != 0);
    /* the export holds exactly the parameters, no optimiser state */
    clasp_safetensors *st;
    snprintf(p, sizeof p, "%s/model.safetensors", exp);
    cr_assert_eq(clasp_st_open(p, &st), CLASP_OK);
    cr_assert_eq(st->n_tensors, m.n_params);
    for (int i = 0; i < m.n_params; i++) {
        const clasp_st_tensor *x = clasp_st_find(st, m.info[i].name);
        cr_assert(x, "%s missing from the export", m.info[i].name);
        cr_assert_eq(memcmp(clasp_st_f32(st, x), m.params + m.info[i].offset,
                            m.info[i].numel * sizeof(float)),
                     0, "%s differs", m.info[i].name);
    }
    clasp_st_free(st);
    /* the embedder gives the same features from the run, the checkpoint and the export */
    clasp_embedder a, b;
    cr_assert_eq(clasp_embedder_open(run, 1, 8, &a), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(a.kind, CLASP_SOURCE_CHECKPOINT);
    cr_assert_str_eq(a.run_dir, run);
    cr_assert_eq(clasp_embedder_open(exp, 2, 8, &b), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(b.kind, CLASP_SOURCE_EXPORT);
    const char *texts[3] = {"a bag", "a shoe", "a photo of a dress"};
    float za[3 * 128], zb[3 * 128];
    cr_assert_eq(clasp_embedder_texts(&a, texts, 3, za), CLASP_OK);
    cr_assert_eq(clasp_embedder_texts(&b, texts, 3, zb), CLASP_OK);
    cr_assert(clasp_test_check_tensor("export vs checkpoint", zb, za, 3 * 128, 1e-6, 0));
    clasp_embedder_close(&a);
    clasp_embedder_close(&b);
    clasp_model_free(&m);

    /* embed + search: a text index searched with one of its own lines finds it first */
    char lines[1300], idx[1300], out[1300];
    snprintf(lines, sizeof lines, "%s/lines.txt", tmp);
    {
        const char *l4 = "a bag\na shoe\n\na photo of a dress\n";
        write_file_(lines, l4, strlen(l4));
    }
    snprintf(idx, sizeof idx, "%s/index.npy", tmp);
    snprintf(cmd, sizeof cmd, "%s embed --model %s --text %s -o %s", clasp_test_bin(), exp, lines,
             idx);
    run_ok_(cmd);
    snprintf(out, sizeof out, "%s/search.json", tmp);
    snprintf(cmd, sizeof cmd, "%s search --model %s --index %s --text 'a shoe' -k 2 --json > %s",
             clasp_test_bin(), exp, idx, out);
    run_ok_(cmd);
    cJSON *r;
    cr_assert_eq(clasp_json_load(out, &r), CLASP_OK, "%s", clasp_last_error());
    const cJSON *res = cJSON_GetObjectItem(r, "results");
    cr_assert_eq(cJSON_GetArraySize(res), 2);
    const cJSON *first = cJSON_GetArrayItem(res, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "key")->valuestring, "2"); /* line 2 */
    cr_assert(fabs(cJSON_GetObjectItem(first, "score")->valuedouble - 1.0) < 1e-5);
    cJSON_Delete(r);
    /* the sidecar: keys are line numbers (blank line 3 skipped), hash of model.safetensors */
    snprintf(out, sizeof out, "%s/index.json", tmp);
    cr_assert_eq(clasp_json_load(out, &r), CLASP_OK);
    const cJSON *keys = cJSON_GetObjectItem(r, "keys");
    cr_assert_eq(cJSON_GetArraySize(keys), 3);
    cr_assert_str_eq(cJSON_GetArrayItem(keys, 2)->valuestring, "4");
    cr_assert_str_eq(cJSON_GetObjectItem(r, "modality")->valuestring, "text");
    uint64_t h;
    char hex[17];
    snprintf(p, sizeof p, "%s/model.safetensors", exp);
    cr_assert_eq(clasp_hash_file(p, &h), CLASP_OK);
    clasp_hash_hex(h, hex);
    cr_assert_str_eq(cJSON_GetObjectItem(r, "model_hash")->valuestring, hex);
    cJSON_Delete(r);
}

/* An fmnist-small export (byte tokenizer, weights from `seed`) written into dir. */
static void fmnist_export_(const char *dir, uint64_t seed) {
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_tokenizer *tok;
    cr_assert_eq(clasp_tokenizer_new_bytes(&tok), CLASP_OK);
    make_export_(cfg, tok, dir, seed);
    clasp_tokenizer_free(tok);
}

/* The embedder is inference-only: with 1 or 2 threads it holds one copy of the parameters
 * (shared by its replicas), no gradients, and activation arenas only for the towers it has
 * embedded; its features equal a training model's (clasp_model_init + prepare) exactly. */
Test(export, embedder_holds_no_gradients) {
    char tmp[1024], exp[1100];
    clasp_test_tmpdir("export_infer", tmp, sizeof tmp);
    snprintf(exp, sizeof exp, "%s/export", tmp);
    fmnist_export_(exp, 5);
    const char *texts[3] = {"a bag", "a shoe", "a photo of a dress"};
    for (int threads = 1; threads <= 2; threads++) {
        clasp_embedder em;
        cr_assert_eq(clasp_embedder_open(exp, threads, 8, &em), CLASP_OK, "%s", clasp_last_error());
        clasp_model *m0 = clasp_embedder_model(&em);
        size_t pbytes = m0->n_floats * sizeof(float);
        cr_assert_eq(em.n_rep, threads);
        for (int r = 0; r < em.n_rep; r++) {
            cr_assert_null(em.engine.models[r].grads, "replica %d has gradients", r);
            cr_assert_eq(em.engine.models[r].params, m0->params, "replica %d copies params", r);
        }
        cr_assert_eq(clasp_embedder_bytes(&em), pbytes, "%zu bytes for %zu of parameters",
                     clasp_embedder_bytes(&em), pbytes);
        float z[3 * 128];
        cr_assert_eq(clasp_embedder_texts(&em, texts, 3, z), CLASP_OK, "%s", clasp_last_error());
        size_t arenas = 0;
        for (int r = 0; r < em.n_rep; r++) {
            cr_assert_eq(clasp_model_arena_bytes(&em.engine.models[r], CLASP_TOWER_IMAGE), 0);
            arenas += clasp_model_arena_bytes(&em.engine.models[r], CLASP_TOWER_TEXT);
        }
        cr_assert(arenas > 0);
        cr_assert_eq(clasp_embedder_bytes(&em), pbytes + arenas);
        /* the same features as a training model holding the same parameters */
        clasp_model t;
        cr_assert_eq(clasp_model_init(&t, &m0->config), CLASP_OK);
        cr_assert_eq(clasp_model_prepare(&t, 3), CLASP_OK);
        memcpy(t.params, m0->params, pbytes);
        int32_t ids[3 * 32];
        for (int i = 0; i < 3; i++)
            cr_assert_eq(clasp_embedder_tokenize(&em, texts[i], ids + i * 32), CLASP_OK);
        float f[3 * 128], nrm[3];
        cr_assert_eq(clasp_model_encode_text(&t, ids, 3, f), CLASP_OK);
        clasp_l2norm_forward(f, nrm, f, 3, 128, 1e-12f);
        /* oneDNN gives the same bits whatever the rows per call; OpenBLAS may pick another
         * kernel for the replicas' smaller products (2 + 1 rows against 3) */
        double tol = strcmp(clasp_compute_backend(), "onednn") ? 1e-5 : 0.0;
        cr_expect(clasp_test_check_tensor("embedder vs training model", z, f, 3 * 128, tol, tol));
        clasp_model_free(&t);
        clasp_embedder_close(&em);
    }
}

/* Pages of [p, p + n) resident in memory (mincore), counting only whole pages. */
static size_t resident_pages_(const void *p, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + n) / page * page;
    if (hi <= lo) return 0;
    size_t np = (hi - lo) / page, got = 0;
    unsigned char *v = malloc(np);
    cr_assert_not_null(v);
    cr_assert_eq(mincore((void *)lo, hi - lo, v), 0);
    for (size_t i = 0; i < np; i++) got += v[i] & 1;
    free(v);
    return got;
}

/* clasp_embedder_open_lazy reads a tower when it is first embedded: embedding images leaves
 * the text tower's parameters unread and their pages never resident; each tower's features
 * equal the eagerly opened embedder's; the mapping is dropped once every tower is in; a
 * tensor of any tower is still checked at open. An inference model's transformer holds one
 * block's activations: its arena does not grow with the layers (a training model's does). */
Test(export, lazy_towers_and_forward_only_arena) {
    char tmp[1024], exp[1100];
    clasp_test_tmpdir("export_lazy", tmp, sizeof tmp);
    snprintf(exp, sizeof exp, "%s/export", tmp);
    fmnist_export_(exp, 7);
    clasp_embedder eager, lazy;
    cr_assert_eq(clasp_embedder_open(exp, 2, 4, &eager), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_embedder_open_lazy(exp, 2, 4, &lazy), CLASP_OK, "%s", clasp_last_error());
    cr_assert_null(eager.pending);
    cr_assert_not_null(lazy.pending);
    clasp_model *le = &lazy.engine.models[0];
    const clasp_param_range *tr = &le->range[CLASP_TOWER_TEXT];
    size_t tbytes = tr->n_floats * sizeof(float);
    cr_assert(tbytes > 16 * 4096, "text tower of %zu bytes is too small to see pages", tbytes);
    cr_assert(!lazy.loaded[CLASP_TOWER_IMAGE] && !lazy.loaded[CLASP_TOWER_TEXT]);
    cr_assert(lazy.loaded[CLASP_TOWER_SHARED]);
    cr_assert_eq(le->params[le->logit_scale_offset],
                 eager.engine.models[0].params[le->logit_scale_offset]);

    /* images: the same features; the text tower neither read nor resident */
    size_t px = clasp_model_input_elems(&le->config, CLASP_TOWER_IMAGE);
    float *pix = malloc(3 * px * sizeof(float)), za[3 * 128], zb[3 * 128];
    cr_assert_not_null(pix);
    clasp_rng r;
    clasp_rng_init(&r, 3, 0, 0, 0);
    for (size_t i = 0; i < 3 * px; i++) pix[i] = (float)clasp_rng_normal(&r);
    cr_assert_eq(clasp_embedder_embed_inputs(&eager, CLASP_TOWER_IMAGE, pix, 3, za), CLASP_OK);
    cr_assert_eq(clasp_embedder_embed_inputs(&lazy, CLASP_TOWER_IMAGE, pix, 3, zb), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(memcmp(za, zb, sizeof za), 0, "lazily loaded image tower differs");
    cr_assert(lazy.loaded[CLASP_TOWER_IMAGE] && !lazy.loaded[CLASP_TOWER_TEXT]);
    cr_assert_not_null(lazy.pending);
    cr_assert_eq(resident_pages_(le->params + tr->offset, tbytes), 0,
                 "the unread text tower holds memory");
    cr_assert(resident_pages_(le->params + le->range[CLASP_TOWER_IMAGE].offset,
                              le->range[CLASP_TOWER_IMAGE].n_floats * sizeof(float)) > 0);

    /* texts: read on first use, the same features, then the file is let go */
    const char *texts[3] = {"a bag", "a shoe", "a photo of a dress"};
    cr_assert_eq(clasp_embedder_texts(&eager, texts, 3, za), CLASP_OK);
    cr_assert_eq(clasp_embedder_texts(&lazy, texts, 3, zb), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(memcmp(za, zb, sizeof za), 0, "lazily loaded text tower differs");
    cr_assert_null(lazy.pending);
    cr_assert_eq(memcmp(le->params, eager.engine.models[0].params, le->n_floats * sizeof(float)),
                 0);
    clasp_embedder_close(&lazy);

    /* clasp_embedder_model loads every tower */
    cr_assert_eq(clasp_embedder_open_lazy(exp, 1, 4, &lazy), CLASP_OK, "%s", clasp_last_error());
    clasp_model *m = clasp_embedder_model(&lazy);
    cr_assert_not_null(m);
    cr_assert_null(lazy.pending);
    cr_assert_eq(memcmp(m->params, eager.engine.models[0].params, m->n_floats * sizeof(float)), 0);
    clasp_embedder_close(&lazy);

    /* forward-only arenas: one block's activations whatever the depth */
    size_t infer[2], train[2];
    for (int k = 0; k < 2; k++) {
        clasp_model_config c = eager.config;
        c.text.layers = 2 + 2 * k;
        clasp_model a, b;
        cr_assert_eq(clasp_model_init_inference(&a, &c, NULL), CLASP_OK, "%s", clasp_last_error());
        cr_assert_eq(clasp_model_prepare_tower(&a, CLASP_TOWER_TEXT, 8, 0), CLASP_OK);
        cr_assert_eq(clasp_model_init(&b, &c), CLASP_OK);
        cr_assert_eq(clasp_model_prepare(&b, 8), CLASP_OK);
        infer[k] = clasp_model_arena_bytes(&a, CLASP_TOWER_TEXT);
        train[k] = clasp_model_arena_bytes(&b, CLASP_TOWER_TEXT);
        clasp_model_free(&a);
        clasp_model_free(&b);
    }
    cr_assert_eq(infer[0], infer[1], "inference arena grows with depth: %zu -> %zu", infer[0],
                 infer[1]);
    cr_assert(train[1] > train[0] && infer[0] < train[0], "arenas: inference %zu, training %zu",
              infer[0], train[0]);
    free(pix);
    clasp_embedder_close(&eager);
}

static void expect_open_error_(const char *dir, const char *must1, const char *must2) {
    clasp_embedder em;
    for (int lazy = 0; lazy < 2; lazy++) {
        clasp_status s =
            lazy ? clasp_embedder_open_lazy(dir, 1, 4, &em) : clasp_embedder_open(dir, 1, 4, &em);
        cr_assert_neq(s, CLASP_OK, "opening %s should fail (lazy %d)", dir, lazy);
        const char *msg = clasp_last_error();
        cr_assert(strstr(msg, must1), "message '%s' does not name '%s'", msg, must1);
        if (must2) cr_assert(strstr(msg, must2), "message '%s' does not name '%s'", msg, must2);
    }
    /* the public API reports the same */
    cr_assert_null(clasp_model_open(dir, 1));
    cr_assert(strstr(clasp_last_error(), must1));
}

Test(export, bad_exports_name_file_and_field) {
    char tmp[1024], dir[1100], p[1300];
    fx_scratch("export_bad", tmp, dir, "e", NULL);

    /* missing tokenizer.json */
    fmnist_export_(dir, 1);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    expect_open_error_(dir, "tokenizer.json", "missing");

    /* preprocess.json disagreeing with config.json */
    fmnist_export_(dir, 1);
    snprintf(p, sizeof p, "%s/preprocess.json", dir);
    cJSON *j;
    cr_assert_eq(clasp_json_load(p, &j), CLASP_OK);
    cJSON_SetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "image"), "size"), 32);
    cr_assert_eq(clasp_json_save(p, j), CLASP_OK);
    cJSON_Delete(j);
    expect_open_error_(dir, "preprocess.json", "image.size");

    /* config.json changed after the weights were saved: a tensor of the wrong shape */
    fmnist_export_(dir, 1);
    snprintf(p, sizeof p, "%s/config.json", dir);
    cr_assert_eq(clasp_json_load(p, &j), CLASP_OK);
    cJSON *fc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "image"), "fc");
    cJSON_SetNumberValue(cJSON_GetArrayItem(fc, 0), 200);
    cr_assert_eq(clasp_json_save(p, j), CLASP_OK);
    cJSON_Delete(j);
    expect_open_error_(dir, "config.json", "image");

    /* model.safetensors with a tensor of the wrong shape (no config metadata to compare) */
    fmnist_export_(dir, 1);
    {
        clasp_st_writer *w = clasp_st_writer_new();
        float junk[4] = {0};
        int64_t shape[1] = {4};
        cr_assert_eq(clasp_st_writer_add(w, "image.conv1.weight", CLASP_DTYPE_F32, 1, shape, junk),
                     CLASP_OK);
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        cr_assert_eq(clasp_st_writer_write(w, p), CLASP_OK);
        clasp_st_writer_free(w);
    }
    expect_open_error_(dir, "model.safetensors", "image.conv1.weight");

    /* every tensor present but the text tower's last one misshaped: a lazy open (towers read on
     * first use) still checks it when opening */
    fmnist_export_(dir, 1);
    {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        clasp_safetensors *st;
        cr_assert_eq(clasp_st_open(p, &st), CLASP_OK);
        clasp_st_writer *w = clasp_st_writer_new();
        float junk[3] = {0};
        int64_t three[1] = {3};
        const char *bad = NULL;
        for (int i = 0; i < st->n_tensors; i++)
            if (!strncmp(st->tensors[i].name, "text.", 5)) bad = st->tensors[i].name;
        cr_assert_not_null(bad);
        for (int i = 0; i < st->n_tensors; i++) {
            const clasp_st_tensor *t = &st->tensors[i];
            cr_assert_eq(
                t == clasp_st_find(st, bad)
                    ? clasp_st_writer_add(w, t->name, CLASP_DTYPE_F32, 1, three, junk)
                    : clasp_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data),
                CLASP_OK);
        }
        char name[256];
        snprintf(name, sizeof name, "%s", bad);
        cr_assert_eq(clasp_st_writer_write(w, p), CLASP_OK);
        clasp_st_writer_free(w);
        clasp_st_free(st);
        expect_open_error_(dir, "model.safetensors", name);
    }

    /* not a folder at all */
    snprintf(p, sizeof p, "%s/nothing-here", tmp);
    expect_open_error_(p, "nothing-here", NULL);
}

Test(export, npy_roundtrip_and_errors) {
    char tmp[1024], p[1100];
    fx_scratch("export_npy", tmp, p, "a.npy", NULL);
    float x[6] = {1, -2, 3.5f, 0, 1e-8f, -7};
    cr_assert_eq(clasp_npy_write_f32(p, x, 2, 3), CLASP_OK);
    float *y;
    int64_t r, c;
    cr_assert_eq(clasp_npy_read_f32(p, &y, &r, &c), CLASP_OK, "%s", clasp_last_error());
    cr_assert(r == 2 && c == 3);
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
    free(y);
    /* the header is 64-byte aligned NPY 1.0 */
    char *buf;
    size_t n;
    cr_assert_eq(clasp_read_file(p, 1 << 20, &buf, &n), CLASP_OK);
    cr_assert_eq(memcmp(buf, "\x93NUMPY\x01\x00", 8), 0);
    size_t hlen = (size_t)(unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
    cr_assert_eq((10 + hlen) % 64, 0);
    cr_assert_eq(n, 10 + hlen + sizeof x);
    cr_assert_eq(buf[10 + hlen - 1], '\n');
    /* a truncated file and a float64 file are refused with the file named */
    write_file_(p, buf, n - 4);
    cr_assert_eq(clasp_npy_read_f32(p, &y, &r, &c), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "a.npy"));
    char *f8 = strstr(buf + 10, "<f4"); /* bytes 8-9 hold the length: may be NUL */
    cr_assert(f8);
    f8[2] = '8';
    write_file_(p, buf, n);
    cr_assert_eq(clasp_npy_read_f32(p, &y, &r, &c), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "float32"));
    free(buf);
}

/* Every embedding call of the C API refuses a NULL handle, a negative count and NULL inputs or
 * output with an error naming the function (and embeds nothing for n = 0). */
Test(export, capi_refuses_bad_arguments) {
    char tmp[FX_PATH], dir[FX_PATH], cfgp[FX_PATH];
    fx_scratch("capi_args", tmp, dir, "export", NULL);
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    cr_assert(fx_export_model(cfgp, NULL, dir, 3), "%s", clasp_last_error());
    clasp_handle *h = clasp_model_open(dir, 1);
    cr_assert(h, "%s", clasp_last_error());
    float out[1024];
    cr_assert(clasp_model_dim(h) <= 1024);
    const char *texts[1] = {"a bag"};
    const void *data[1] = {texts[0]};
    size_t nb[1] = {5};
    cr_assert_neq(clasp_model_embed_texts(NULL, texts, 1, out), 0);
    cr_assert(strstr(clasp_last_error(), "clasp_model_embed_texts: bad arguments"), "%s",
              clasp_last_error());
    cr_assert_neq(clasp_model_embed_texts(h, NULL, 1, out), 0);
    cr_assert_neq(clasp_model_embed_texts(h, texts, -1, out), 0);
    cr_assert_neq(clasp_model_embed_images(h, data, nb, 1, NULL), 0);
    cr_assert(strstr(clasp_last_error(), "clasp_model_embed_images: bad arguments"), "%s",
              clasp_last_error());
    cr_assert_neq(clasp_model_embed_images(h, NULL, nb, 1, out), 0);
    cr_assert_neq(clasp_model_embed_image_files(h, NULL, 1, out), 0);
    cr_assert_neq(clasp_model_embed_audio(NULL, data, nb, 1, out), 0);
    cr_assert_neq(clasp_model_embed_audio_files(h, texts, 1, NULL), 0);
    cr_assert_eq(clasp_model_embed_texts(h, NULL, 0, NULL), 0, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_embed_texts(h, texts, 1, out), 0, "%s", clasp_last_error());
    clasp_model_close(h);
}

/* The C API's precision: an export says what it was trained in; it embeds in fp32 (default) or,
 * on the oneDNN backend, bf16: close to fp32 but not its bits. An unknown name, and bf16 on
 * OpenBLAS, fail with a message naming the value or the backend. */
Test(export, capi_precision) {
    char tmp[FX_PATH], dir[FX_PATH], cfgp[FX_PATH];
    fx_scratch("capi_precision", tmp, dir, "export", NULL);
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    cr_assert(fx_export_model(cfgp, NULL, dir, 3), "%s", clasp_last_error());
    clasp_handle *h = clasp_model_open(dir, 1);
    cr_assert(h, "%s", clasp_last_error());
    cr_expect_str_eq(clasp_backend(), CLASP_BACKEND_NAME);
    cr_expect_str_eq(clasp_model_trained_precision(h), "fp32");
    int D = clasp_model_dim(h);
    const char *texts[3] = {"a bag", "an ankle boot", "a pullover with long sleeves"};
    float *f = malloc(3 * (size_t)D * sizeof(float)), *g = malloc(3 * (size_t)D * sizeof(float));
    cr_assert_eq(clasp_model_embed_texts(h, texts, 3, f), 0, "%s", clasp_last_error());
    cr_expect_neq(clasp_model_set_precision(h, "fp16"), 0);
    cr_expect(strstr(clasp_last_error(), "fp16"), "%s", clasp_last_error());
    if (!strcmp(CLASP_BACKEND_NAME, "openblas")) {
        cr_expect_neq(clasp_model_set_precision(h, "bf16"), 0);
        cr_expect(strstr(clasp_last_error(), "openblas"), "%s", clasp_last_error());
    } else {
        cr_assert_eq(clasp_model_set_precision(h, "bf16"), 0, "%s", clasp_last_error());
        cr_assert_eq(clasp_model_embed_texts(h, texts, 3, g), 0, "%s", clasp_last_error());
        double maxd = 0;
        for (int i = 0; i < 3 * D; i++) maxd = fmax(maxd, fabs((double)f[i] - (double)g[i]));
        cr_expect(maxd > 0 && maxd < 2e-2, "bf16 vs fp32 embeddings: max |diff| %g", maxd);
        cr_assert_eq(clasp_model_set_precision(h, "fp32"), 0, "%s", clasp_last_error());
        cr_assert_eq(clasp_model_embed_texts(h, texts, 3, g), 0, "%s", clasp_last_error());
        cr_expect(!memcmp(f, g, 3 * (size_t)D * sizeof(float)), "fp32 again: not the same bits");
    }
    free(f), free(g);
    clasp_model_close(h);
}
