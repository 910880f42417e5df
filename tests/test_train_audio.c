/* test_train_audio.c: audio in training, end to end through `clasp train` / `clasp eval` on tiny
 * synthetic shards the test writes itself (tones and chirps as WAV with libsndfile, captions,
 * small PGM images, all through the shard writer): audio-text training lowers the loss; two
 * sources (image-text + audio-text) resume bit-exactly; --freeze leaves the frozen towers'
 * parameters bit-identical while the audio tower learns; --init loads by name and refuses a
 * shape mismatch naming the tensor; audio->text and audio->image retrieval metrics. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/safetensors.h"
#include "datasets/shard_writer.h"
#include "eval/eval.h"
#include "eval/retrieval.h"
#include <cjson/cJSON.h>
#include "fixtures.h"

#define N_CLASS 8

static const char *const WORDS[N_CLASS] = {"low hum",       "soft beep",    "rising chirp",
                                           "falling chirp", "high whistle", "double tone",
                                           "buzz",          "warble"};

/* A 0.3 s clip of class k (tone / chirp families), sample variant v. Writes a WAV through a
 * temporary file and returns its bytes. */
static unsigned char *wav_(const char *tmp, int k, int v, size_t *n) {
    char p[1200];
    snprintf(p, sizeof p, "%s/clip.wav", tmp);
    const int sr = 8000, frames = 2400;
    float *x = malloc(sizeof(float) * frames);
    double ph = 0, ph2 = 0;
    for (int i = 0; i < frames; i++) {
        double t = (double)i / sr, fr;
        switch (k) {
        case 0:
            fr = 200;
            break;
        case 1:
            fr = 1000;
            break;
        case 2:
            fr = 300 + 3000 * t;
            break;
        case 3:
            fr = 1300 - 3000 * t;
            break;
        case 4:
            fr = 3000;
            break;
        case 5:
            fr = 500;
            break;
        case 6:
            fr = 120;
            break;
        default:
            fr = 1800 + 400 * sin(2 * M_PI * 8 * t);
            break;
        }
        fr *= 1.0 + 0.02 * v;
        ph += 2 * M_PI * fr / sr;
        ph2 += 2 * M_PI * 1.5 * fr / sr;
        double y = sin(ph);
        if (k == 5) y = 0.5 * (y + sin(ph2));
        if (k == 6) y = y > 0 ? 0.6 : -0.6;
        x[i] = (float)(0.5 * y * (0.6 + 0.1 * v));
    }
    cr_assert(fx_write_audio(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, sr, 1, x, frames), "%s", p);
    free(x);
    unsigned char *b = fx_read(p, n);
    cr_assert_not_null(b, "%s", p);
    return b;
}

/* An 8x8 PGM of class k (a bar at row/column k), variant v. */
static unsigned char *pgm_(int k, int v, size_t *n) {
    char head[32];
    int hn = snprintf(head, sizeof head, "P5\n8 8\n255\n");
    unsigned char *b = malloc((size_t)hn + 64);
    memcpy(b, head, (size_t)hn);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            b[hn + y * 8 + x] =
                (unsigned char)((k < 4 ? y == 2 * k : x == 2 * (k - 4)) ? 230 - 5 * v : 20 + v);
    *n = (size_t)hn + 64;
    return b;
}

/* Writes DIR/audio-00000{0,1}.tar (audio + caption) and DIR/image-00000{0,1}.tar (image +
 * caption), `per` samples per class each, and the 3-tower config DIR/tiny.json (and a variant
 * DIR/tiny-wide.json whose text tower is wider). */
static void build_(const char *dir, int per) {
    clasp_shard_writer_config c = clasp_shard_writer_default_config();
    c.dir = dir;
    c.maxcount = (size_t)(N_CLASS * per / 2);
    const char *pfx[2] = {"audio", "image"};
    for (int w = 0; w < 2; w++) {
        c.prefix = pfx[w];
        clasp_shard_writer *sw;
        cr_assert_eq(clasp_shard_writer_open(&c, &sw), CLASP_OK, "%s", clasp_last_error());
        for (int v = 0; v < per; v++)
            for (int k = 0; k < N_CLASS; k++) {
                size_t n;
                unsigned char *b = w == 0 ? wav_(dir, k, v, &n) : pgm_(k, v, &n);
                char key[64];
                snprintf(key, sizeof key, "c%d_v%d", k, v);
                char cls[8];
                snprintf(cls, sizeof cls, "%d", k);
                clasp_shard_field f[3] = {{w == 0 ? "wav" : "pgm", b, n},
                                          {"txt", WORDS[k], strlen(WORDS[k])},
                                          {"cls", cls, strlen(cls)}};
                cr_assert_eq(clasp_shard_writer_add(sw, key, f, 3), CLASP_OK, "%s",
                             clasp_last_error());
                free(b);
            }
        cr_assert_eq(clasp_shard_writer_close(sw), CLASP_OK, "%s", clasp_last_error());
        clasp_shard_writer_free(sw);
    }
    for (int wide = 0; wide < 2; wide++) {
        char p[1200], text[2048];
        snprintf(p, sizeof p, "%s/%s.json", dir, wide ? "tiny-wide" : "tiny");
        snprintf(text, sizeof text,
                 "{\"embed_dim\": 16,"
                 " \"image\": {\"type\": \"cnn\", \"channels\": 1, \"size\": 8, \"conv\": "
                 "[{\"channels\": 4, \"kernel\": 3, \"padding\": 1, \"pool\": 2}], \"fc\": [16]},"
                 " \"audio\": {\"type\": \"audio_cnn\", \"conv\": [{\"channels\": 8, \"kernel\": "
                 "3, \"padding\": 1, \"pool\": 2}], \"fc\": [16], \"sample_rate\": 8000, "
                 "\"clip_seconds\": 0.25, \"pad\": \"repeat\", \"crop\": \"random\", \"n_fft\": "
                 "128, \"win_length\": 128, \"hop_length\": 64, \"n_mels\": 16, \"fmax\": 4000, "
                 "\"norm_mean\": -4, \"norm_std\": 4},"
                 " \"text\": {\"type\": \"transformer\", \"vocab_size\": 259, \"context_length\": "
                 "16, \"width\": %d, \"layers\": 1, \"heads\": 2, \"mlp_width\": 32,"
                 "  \"tokenizer\": {\"type\": \"bytes\", \"bos\": 256, \"eos\": 257, \"pad\": "
                 "258}}}",
                 wide ? 24 : 16);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
    }
}

static char g_dir[1024];

/* `clasp train` into OUT with the common options and ARGS (printf-style); its exit status. */
static int run_(const char *out, const char *args_fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_(const char *out, const char *args_fmt, ...) {
    char args[8192], cmd[20000];
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd,
             "%s train --out %s --batch-size 16 --warmup 2 --log-every 1 --no-progress --seed 3 "
             "--threads 2 --shuffle-buffer 64 %s >%s.log 2>&1",
             clasp_test_bin(), out, args, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Loss values of RUN/metrics.jsonl's train lines (at most cap), and as printed into joined. */
static int losses_(const char *run, double *out, int cap, char *joined, size_t jcap) {
    int n = fx_metrics_numbers(run, "train", "loss", out, cap);
    cr_assert_geq(n, 0, "%s/metrics.jsonl", run);
    if (joined) {
        char *t = fx_metrics_values(run, "train", "loss");
        snprintf(joined, jcap, "%s", t);
        free(t);
    }
    return n;
}

Test(train_audio, audio_text_loss_decreases) {
    char out[1200];
    build_(fx_scratch("ta_loss", g_dir, out, "run", NULL), 8);
    cr_assert_eq(
        run_(out,
             "--model %s/tiny.json --train 'audio-text=%s/audio-{000000..000001}.tar' --steps 120 "
             "--lr 5e-3",
             g_dir, g_dir),
        0, "see %s.log", out);
    double l[128], first = 0, last = 0;
    int n = losses_(out, l, 128, NULL, 0);
    cr_assert_eq(n, 120);
    for (int i = 0; i < 10; i++) first += l[i] / 10, last += l[n - 1 - i] / 10;
    cr_assert(last < 0.8 * first, "loss %g -> %g did not decrease", first, last);
    /* per-source losses are logged */
    char mp[1300];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    char *m = fx_read_text(mp);
    cr_assert(strstr(m, "\"pair\":\"audio-text\""), "no per-source entry in metrics.jsonl");
    free(m);
    /* clasp eval on the run: audio<->text retrieval on the training shards beats chance */
    char *j;
    int rc = fx_clasp(
        &j, "eval --model %s --pair audio-text --data '%s/audio-{000000..000001}.tar' --json", out,
        g_dir);
    cr_assert_eq(rc, 0, "clasp eval --model %s: exit %d", out, rc);
    cr_assert(strstr(j, "\"audio_to_text\""), "%s", j);
    cJSON *doc = cJSON_Parse(j);
    cr_assert_not_null(doc, "%s", j);
    const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "retrieval"), "audio_to_text");
    double r1 = cJSON_GetObjectItem(r, "r1")->valuedouble;
    double chance1 = cJSON_GetObjectItem(r, "chance_r1")->valuedouble;
    cr_assert_float_eq(chance1, 1.0 / N_CLASS, 1e-9, "8 distinct captions: chance R@1 1/8");
    cr_assert(r1 > 2 * chance1, "audio->text R@1 %g vs chance %g", r1, chance1);
    cJSON_Delete(doc);
    free(j);
}

Test(train_audio, two_sources_resume_is_bit_exact) {
    char a[1200], b[1200], args[8192];
    build_(fx_scratch("ta_resume", g_dir, a, "straight", b, "stopped", NULL), 4);
    snprintf(args, sizeof args,
             "--model %s/tiny.json --train '%s/image-{000000..000001}.tar' --pair image-text "
             "--train 'audio-text=%s/audio-{000000..000001}.tar' --weight 0.7 --steps 10",
             g_dir, g_dir, g_dir);
    cr_assert_eq(run_(a, "%s", args), 0, "see %s.log", a);
    cr_assert_eq(run_(b, "%s --stop-after 5", args), 3, "see %s.log", b);
    cr_assert_eq(run_(b, "%s --resume latest", args), 0, "see %s.log", b);
    static char ja[8192], jb[8192];
    double l[32];
    cr_assert_eq(losses_(a, l, 32, ja, sizeof ja), 10);
    cr_assert_eq(losses_(b, l, 32, jb, sizeof jb), 10);
    cr_assert_str_eq(ja, jb, "straight:\n%s\nresumed:\n%s", ja, jb);
    /* both sources were drawn, and the checkpoint holds both loader positions */
    char mp[1300];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", a);
    char *m = fx_read_text(mp);
    cr_assert(strstr(m, "\"source\":0") && strstr(m, "\"source\":1"), "one source never drawn");
    free(m);
    char ckp[1400];
    snprintf(ckp, sizeof ckp, "%s/checkpoints/step-00000010/state.json", a);
    char *st = fx_read_text(ckp);
    cr_assert(strstr(st, "\"sources\""), "no per-source positions in %s", ckp);
    free(st);
}

/* Max |a - b| over tensors whose name starts with prefix, and whether all are bit-identical. */
static void compare_(const char *fa, const char *fb, const char *prefix, bool *identical,
                     int *count) {
    clasp_safetensors *x, *y;
    cr_assert_eq(clasp_st_open(fa, &x), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_st_open(fb, &y), CLASP_OK, "%s", clasp_last_error());
    *identical = true;
    *count = 0;
    for (int i = 0; i < x->n_tensors; i++) {
        const clasp_st_tensor *t = &x->tensors[i];
        if (strncmp(t->name, prefix, strlen(prefix)) != 0) continue;
        const clasp_st_tensor *u = clasp_st_find(y, t->name);
        cr_assert_not_null(u, "%s missing in %s", t->name, fb);
        cr_assert_eq(t->end - t->begin, u->end - u->begin);
        if (memcmp(t->data, u->data, t->end - t->begin) != 0) *identical = false;
        (*count)++;
    }
    clasp_st_free(x);
    clasp_st_free(y);
}

Test(train_audio, freeze_and_init_by_name) {
    char a[1200], b[1200], c[1200];
    build_(fx_scratch("ta_freeze", g_dir, a, "base", b, "locked", c, "wide", NULL), 4);
    /* A: image-text only (the audio tower stays at its fresh init) */
    cr_assert_eq(run_(a, "--model %s/tiny.json --train '%s/image-{000000..000001}.tar' --steps 4",
                      g_dir, g_dir),
                 0, "see %s.log", a);
    /* B: start from A, image and text frozen, both sources */
    cr_assert_eq(
        run_(b,
             "--model %s/tiny.json --init %s --freeze image,text --train "
             "'%s/image-{000000..000001}.tar' --train 'audio-text=%s/audio-{000000..000001}.tar' "
             "--steps 6 --seed 9",
             g_dir, a, g_dir, g_dir),
        0, "see %s.log", b);
    char ma[1400], mb[1400];
    snprintf(ma, sizeof ma, "%s/checkpoints/step-00000004/model.safetensors", a);
    snprintf(mb, sizeof mb, "%s/checkpoints/step-00000006/model.safetensors", b);
    bool same;
    int n;
    compare_(ma, mb, "image.", &same, &n);
    cr_assert(n > 0 && same, "frozen image tower changed (%d tensors)", n);
    compare_(ma, mb, "text.", &same, &n);
    cr_assert(n > 0 && same, "frozen text tower changed (%d tensors)", n);
    compare_(ma, mb, "audio.", &same, &n);
    cr_assert(n > 0 && !same, "the audio tower did not train");
    char lb[1300];
    snprintf(lb, sizeof lb, "%s.log", b);
    char *log = fx_read_text(lb);
    cr_assert(strstr(log, "tensors loaded"), "%s", log);
    free(log);
    /* a config with a wider text tower: --init names the first mismatching tensor */
    cr_assert_eq(run_(c,
                      "--model %s/tiny-wide.json --init %s --train "
                      "'audio-text=%s/audio-{000000..000001}.tar' "
                      "--steps 2",
                      g_dir, a, g_dir),
                 1, "see %s.log", c);
    snprintf(lb, sizeof lb, "%s.log", c);
    log = fx_read_text(lb);
    cr_assert(strstr(log, "tensor 'text.") && strstr(log, "shape"), "%s", log);
    free(log);
    /* an unknown tower in --freeze is refused */
    snprintf(c, sizeof c, "%s/badfreeze", g_dir);
    cr_assert_eq(
        run_(
            c,
            "--model %s/tiny.json --freeze video --train '%s/image-{000000..000001}.tar' --steps 1",
            g_dir, g_dir),
        2, "an unknown tower in --freeze is a usage error (exit 2)");
}

/* Group-relevance retrieval on hand-made features: 3 queries, 4 gallery rows. */
Test(train_audio, group_retrieval_metrics) {
    const int D = 2;
    /* gallery: g0 (1,0) group 7, g1 (0,1) group 8, g2 (0.8,0.6) group 7, g3 (-1,0) group 9 */
    float gal[8] = {1, 0, 0, 1, 0.8f, 0.6f, -1, 0};
    uint64_t gg[4] = {7, 8, 7, 9};
    /* q0 (0,1) group 7: scores .0 1 .6 0 -> best relevant g2 at rank 2; q1 (1,0) group 8:
     * scores 1 0 .8 -1 -> g1 rank 3; q2 group 5: no relevant row (left out) */
    float q[6] = {0, 1, 1, 0, 1, 0};
    uint64_t qg[3] = {7, 8, 5};
    clasp_group_retrieval r;
    cr_assert_eq(clasp_retrieval_by_group(q, qg, 3, gal, gg, 4, D, &r), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert_eq(r.stats.n, 2);
    cr_assert_eq(r.unmatched, 1);
    cr_assert_float_eq(r.stats.r1, 0.0, 1e-12);
    cr_assert_float_eq(r.stats.r5, 1.0, 1e-12);
    cr_assert_float_eq(r.stats.mean_rank, 2.5, 1e-12);
    /* chance R@1: q0 has 2 of 4 relevant -> 1/2; q1 1 of 4 -> 1/4; mean 3/8 */
    cr_assert_float_eq(r.chance_r1, 0.375, 1e-12);
    /* chance R@5 = 1 (k >= N) */
    cr_assert_float_eq(r.chance_r5, 1.0, 1e-12);
}

Test(train_audio, audio_to_image_eval) {
    char a[1200];
    build_(fx_scratch("ta_a2i", g_dir, a, "bind", NULL), 4);
    cr_assert_eq(run_(a,
                      "--model %s/tiny.json --train '%s/image-{000000..000001}.tar' --train "
                      "'audio-text=%s/audio-{000000..000001}.tar' --steps 4",
                      g_dir, g_dir, g_dir),
                 0, "see %s.log", a);
    char *j;
    int rc = fx_clasp(&j,
                      "eval --model %s --data '%s/audio-{000000..000001}.tar' --gallery "
                      "'%s/image-{000000..000001}.tar' --json",
                      a, g_dir, g_dir);
    cr_assert_eq(rc, 0, "clasp eval --model %s: exit %d", a, rc);
    cJSON *doc = cJSON_Parse(j);
    cr_assert_not_null(doc, "%s", j);
    const cJSON *x = cJSON_GetObjectItem(doc, "audio_to_image");
    cr_assert_not_null(x, "%s", j);
    cr_assert_eq(cJSON_GetObjectItem(x, "n")->valueint, 32);
    cr_assert_eq(cJSON_GetObjectItem(x, "n_gallery")->valueint, 32);
    /* 4 of 32 gallery images share each query's label: chance R@1 = 1/8 */
    cr_assert_float_eq(cJSON_GetObjectItem(x, "chance_r1")->valuedouble, 0.125, 1e-9);
    cJSON_Delete(doc);
    free(j);
}

/* --pair audio-audio: two augmented views of each clip (random crop and --audio-augment, keyed
 * by view), the same losses whatever the decode threads, and views that differ. */
Test(train_audio, audio_two_views) {
    char a[1200], b[1200];
    build_(fx_scratch("ta_views", g_dir, a, "w1", b, "w2", NULL), 4);
    for (int w = 1; w <= 2; w++)
        cr_assert_eq(run_(w == 1 ? a : b,
                          "--model %s/tiny.json --train '%s/audio-{000000..000001}.tar' --pair "
                          "audio-audio --loss ntxent --steps 4 --workers %d",
                          g_dir, g_dir, w),
                     0, "see %s.log", w == 1 ? a : b);
    char la[2048], lb[2048];
    double l[8], pos[8];
    cr_assert_eq(losses_(a, l, 8, la, sizeof la), 4);
    losses_(b, l, 8, lb, sizeof lb);
    cr_assert_str_eq(la, lb, "workers 1 vs 2");
    cr_assert_eq(fx_metrics_numbers(a, "train", "pos_sim", pos, 8), 4);
    for (int i = 0; i < 4; i++) cr_assert_lt(pos[i], 0.9999, "step %d: identical views", i + 1);
    /* k-NN and the linear probe on audio features: the clips of shard 1 (variants 2, 3) against
     * those of shard 0 (variants 0, 1), labels from .cls: well above chance (1/8) */
    char *j = NULL;
    int rc = fx_clasp(&j,
                      "eval --model %s --pair audio-text --data %s/audio-000001.tar --probe-train "
                      "%s/audio-000000.tar --knn 3 --json 2>/dev/null",
                      a, g_dir, g_dir);
    cr_assert_eq(rc, 0);
    cJSON *doc = cJSON_Parse(j);
    cr_assert_not_null(doc, "%s", j);
    const cJSON *k = cJSON_GetObjectItem(doc, "knn");
    cr_assert_not_null(k, "%s", j);
    cr_assert_eq(cJSON_GetObjectItem(k, "n_test")->valueint, 16);
    cr_assert_eq(cJSON_GetObjectItem(k, "n_train")->valueint, 16);
    cr_assert_gt(cJSON_GetObjectItem(k, "accuracy")->valuedouble, 0.5, "%s", j);
    cr_assert_not_null(cJSON_GetObjectItem(doc, "probe"), "%s", j);
    cJSON_Delete(doc);
    free(j);
}
