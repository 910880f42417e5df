/* test_export_audio.c: exports of audio models (export/export.h): preprocess.json's audio
 * front-end, `clasp embed --audio`, `clasp search --audio`, `clasp embed --shards` on audio
 * shards, the public C API (clasp_model_embed_audio*) and tools/clasp_torch.py: PyTorch
 * embeddings of raw WAV files equal `clasp embed`'s to max abs diff <= 1e-4, for the
 * speech-small audio CNN (zero padding), a small AST (repeat padding) and a small CNN with
 * another front-end (repeatpad, no centre, Slaney dB, Hamming). The WAVs are written here with
 * libsndfile at the model's rate: shorter than the clip (padding), longer (head crop), exactly
 * the clip, silence, a chirp, stereo and 24-bit. Untrained models with deterministic random
 * weights (clasp_model_init_weights). Needs /usr/bin/python3 with torch and numpy: a missing
 * module makes the test FAIL (never skip). */
#include <criterion/criterion.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"
#include "core/rng.h"
#include "include/clasp.h"
#include "modalities/tokenizer.h"
#include "export/export.h"
#include "eval/retrieval.h"
#include "tests/fixtures.h"

#define PY "/usr/bin/python3"

static void write_file_(const char *path, const void *data, size_t n) {
    cr_assert(fx_write(path, data, n), "cannot write %s", path);
}

typedef enum sig_kind { SIG_CHIRP = 0, SIG_SILENCE, SIG_TONES_NOISE } sig_kind;

/* Writes a WAV of `seconds` at `rate` Hz with `channels` channels and libsndfile subformat
 * `sub` (SF_FORMAT_PCM_16, ...). Chirp: 60 Hz -> 0.45 rate linear sweep at amplitude 0.5 plus
 * low noise; silence: zeros; tones + noise: two tones and white noise, a different mix per
 * channel. */
static void write_wav_(const char *path, int rate, double seconds, int channels, int sub,
                       sig_kind kind, uint64_t seed) {
    size_t n = (size_t)llround(seconds * rate);
    float *x = calloc(n * (size_t)channels + 1, sizeof(float));
    cr_assert(x);
    clasp_rng r;
    clasp_rng_init(&r, seed, 0, 0, 0);
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate;
        for (int c = 0; c < channels; c++) {
            double v = 0.0;
            if (kind == SIG_CHIRP) {
                double f0 = 60.0, f1 = 0.45 * rate;
                v = 0.5 * sin(two_pi * (f0 * t + (f1 - f0) * t * t / (2.0 * seconds))) +
                    0.01 * (double)clasp_rng_normal(&r);
            } else if (kind == SIG_TONES_NOISE) {
                v = 0.3 * sin(two_pi * (220.0 + 110.0 * c) * t) + 0.2 * sin(two_pi * 1234.5 * t) +
                    0.1 * (double)clasp_rng_normal(&r);
            }
            x[i * (size_t)channels + (size_t)c] = (float)v;
        }
    }
    cr_assert(fx_write_audio(path, SF_FORMAT_WAV | sub, rate, channels, x, (int64_t)n), "%s", path);
    free(x);
}

/* One WAV of a parity test: length, channels, libsndfile subformat, signal. */
typedef struct wav_spec {
    double sec;
    int ch, sub;
    sig_kind k;
} wav_spec;

/* Writes w[i] to TMP/PREFIX<i>.wav at `rate` with seed seed0 + i; names[i] holds the path,
 * files[i] points at it. */
static void write_wavs_(const char *tmp, const char *prefix, int rate, const wav_spec *w, int n,
                        uint64_t seed0, char (*names)[1200], const char **files) {
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s/%s%d.wav", tmp, prefix, i);
        write_wav_(names[i], rate, w[i].sec, w[i].ch, w[i].sub, w[i].k, seed0 + (uint64_t)i);
        files[i] = names[i];
    }
}

/* Builds a model from a config file, random weights, and exports it (byte tokenizer). */
static void make_export_(const char *config_path, const char *dir, uint64_t seed) {
    cr_assert(fx_export_model(config_path, NULL, dir, seed), "%s", clasp_last_error());
}

/* Writes the model config `json` to path and exports that model (seed) to dir. */
static void make_export_json_(const char *path, const char *json, const char *dir, uint64_t seed) {
    write_file_(path, json, strlen(json));
    make_export_(path, dir, seed);
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

/* `clasp embed --audio` vs clasp_torch.py --audio on the files (<= 1e-4), rows unit length,
 * the C API (files and memory) equal to `clasp embed`, and `clasp search --audio` finding
 * each file itself first. */
static void torch_parity_(const char *name, const char *dir, const char *tmp,
                          const char *const *files, int n) {
    const char *bin = clasp_test_bin();
    char cmd[16384], list[8192] = "", cn[1200], pn[1200], script[1200];
    for (int i = 0; i < n; i++) {
        strcat(list, " ");
        strcat(list, files[i]);
    }
    snprintf(cn, sizeof cn, "%s/c_audio.npy", tmp);
    snprintf(pn, sizeof pn, "%s/py_audio.npy", tmp);
    snprintf(script, sizeof script, "%s/tools/clasp_torch.py", CLASP_SOURCE_DIR);
    snprintf(cmd, sizeof cmd,
             "%s embed --model %s --audio%s -o %s --threads 2 --batch-size 4 2>/dev/null", bin, dir,
             list, cn);
    run_ok_(cmd);
    /* torch must be importable: a missing torch is a failure, not a skip */
    cr_assert_eq(system(PY " -c 'import torch, numpy'"), 0,
                 "/usr/bin/python3 cannot import torch and numpy");
    snprintf(cmd, sizeof cmd, PY " %s %s --audio%s -o %s", script, dir, list, pn);
    run_ok_(cmd);
    int64_t r1, c1, r2, c2;
    float *a = load_npy_(cn, &r1, &c1), *b = load_npy_(pn, &r2, &c2);
    cr_assert(r1 == n && r2 == n && c1 == c2, "shapes %lldx%lld vs %lldx%lld", (long long)r1,
              (long long)c1, (long long)r2, (long long)c2);
    size_t total = (size_t)(r1 * c1);
    fprintf(stderr, "[export_audio] %s: %d files, dim %lld: max |clasp - torch| = %.3g\n", name, n,
            (long long)c1, fx_max_abs_diff(a, b, total));
    cr_assert(clasp_test_check_tensor("torch audio embeddings", b, a, total, 1e-4, 0));
    for (int64_t i = 0; i < r1; i++) {
        double s = 0;
        for (int64_t d = 0; d < c1; d++) s += (double)a[i * c1 + d] * (double)a[i * c1 + d];
        cr_assert(fabs(s - 1.0) < 1e-5, "row %lld has squared norm %g", (long long)i, s);
    }

    /* the public C API gives what `clasp embed` wrote, from files and from memory */
    clasp_handle *h = clasp_model_open(dir, 1);
    cr_assert(h, "clasp_model_open: %s", clasp_last_error());
    cr_assert_eq(clasp_model_has_modality(h, 2), 1);
    cr_assert_eq(clasp_model_has_modality(h, 0), 0);
    int D = clasp_model_dim(h);
    cr_assert_eq(D, c1);
    float *z = calloc((size_t)n * D, sizeof(float));
    cr_assert_eq(clasp_model_embed_audio_files(h, files, n, z), 0, "%s", clasp_last_error());
    cr_assert(clasp_test_check_tensor("C API audio files", z, a, (size_t)n * D, 1e-6, 0));
    void **bufs = calloc((size_t)n, sizeof *bufs);
    size_t *sz = calloc((size_t)n, sizeof *sz);
    for (int i = 0; i < n; i++) {
        char *p;
        cr_assert_eq(clasp_read_file(files[i], 1 << 26, &p, &sz[i]), CLASP_OK);
        bufs[i] = p;
    }
    memset(z, 0, (size_t)n * D * sizeof(float));
    cr_assert_eq(clasp_model_embed_audio(h, (const void *const *)bufs, sz, n, z), 0, "%s",
                 clasp_last_error());
    cr_assert(clasp_test_check_tensor("C API audio (memory)", z, a, (size_t)n * D, 1e-6, 0));
    /* an image query on an audio model is refused, naming the missing tower */
    cr_assert_neq(clasp_model_embed_image_files(h, files, 1, z), 0);
    cr_assert(strstr(clasp_last_error(), "no image tower"), "%s", clasp_last_error());
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(sz);
    clasp_model_close(h);
    free(z);

    /* clasp search --audio: each file finds itself first, with cosine ~1 */
    for (int i = 0; i < n; i++) {
        char out[1200];
        snprintf(out, sizeof out, "%s/search_%d.json", tmp, i);
        snprintf(cmd, sizeof cmd, "%s search --model %s --index %s --audio %s -k 2 --json > %s",
                 bin, dir, cn, files[i], out);
        run_ok_(cmd);
        cJSON *j;
        cr_assert_eq(clasp_json_load(out, &j), CLASP_OK, "%s", clasp_last_error());
        const cJSON *res = cJSON_GetObjectItem(j, "results");
        const cJSON *first = cJSON_GetArrayItem(res, 0);
        const cJSON *key = cJSON_GetObjectItem(first, "key");
        const cJSON *score = cJSON_GetObjectItem(first, "score");
        cr_assert(cJSON_IsString(key) && cJSON_IsNumber(score));
        cr_assert_str_eq(cJSON_GetObjectItem(j, "modality")->valuestring, "audio");
        /* files with equal embeddings (e.g. two silences) may tie: compare the score */
        double own = 0;
        for (int d = 0; d < D; d++)
            own += (double)a[(size_t)i * D + d] * (double)a[(size_t)i * D + d];
        cr_assert(fabs(score->valuedouble - own) < 1e-5, "%s: top score %g, itself %g", files[i],
                  score->valuedouble, own);
        if (strcmp(key->valuestring, files[i]) != 0) {
            int row = (int)cJSON_GetObjectItem(first, "row")->valuedouble;
            cr_assert(fx_max_abs_diff(a + (size_t)row * D, a + (size_t)i * D, (size_t)D) < 1e-6,
                      "%s: first hit %s", files[i], key->valuestring);
        }
        cJSON_Delete(j);
    }
    free(a), free(b);
}

Test(export_audio, torch_parity_speech_small_cnn) {
    char tmp[1024], dir[1100], cfg[1100];
    fx_scratch("export_audio_cnn", tmp, dir, "export", NULL);
    snprintf(cfg, sizeof cfg, "%s/configs/speech-small.json", CLASP_SOURCE_DIR);
    make_export_(cfg, dir, 21);
    /* speech-small: 8 kHz, 3 s clips, zero padding */
    char names[6][1200];
    const char *files[6];
    const wav_spec w[6] = {
        {1.3, 1, SF_FORMAT_PCM_16, SIG_CHIRP},       /* short: zero padding */
        {4.7, 1, SF_FORMAT_PCM_16, SIG_CHIRP},       /* long: head crop */
        {2.0, 1, SF_FORMAT_PCM_16, SIG_SILENCE},     /* silence: log floor */
        {3.0, 2, SF_FORMAT_PCM_16, SIG_TONES_NOISE}, /* exactly the clip, stereo */
        {0.4, 1, SF_FORMAT_PCM_U8, SIG_TONES_NOISE}, /* very short, 8-bit */
        {5.0, 1, SF_FORMAT_PCM_16, SIG_TONES_NOISE}};
    write_wavs_(tmp, "a", 8000, w, 6, 50, names, files);
    torch_parity_("speech-small (audio CNN, zero pad)", dir, tmp, files, 6);

    /* preprocess.json carries the whole front-end */
    char p[1200];
    snprintf(p, sizeof p, "%s/preprocess.json", dir);
    cJSON *j;
    cr_assert_eq(clasp_json_load(p, &j), CLASP_OK, "%s", clasp_last_error());
    const cJSON *au = cJSON_GetObjectItem(j, "audio");
    cr_assert(cJSON_IsObject(au), "preprocess.json has no audio object");
    static const char *const fields[] = {
        "sample_rate", "clip_seconds", "pad",       "crop",     "eval_crop",   "n_fft",
        "win_length",  "hop_length",   "window",    "center",   "pad_mode",    "n_mels",
        "fmin",        "fmax",         "mel_scale", "mel_norm", "power",       "log",
        "log_floor",   "norm_mean",    "norm_std",  "n_frames", "clip_samples"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        cr_assert(cJSON_GetObjectItem(au, fields[i]), "preprocess.json: audio.%s missing",
                  fields[i]);
    cr_assert_eq(cJSON_GetObjectItem(au, "sample_rate")->valueint, 8000);
    cr_assert_eq(cJSON_GetObjectItem(au, "n_frames")->valueint, 301);
    cr_assert_str_eq(cJSON_GetObjectItem(au, "pad")->valuestring, "zero");
    cr_assert_str_eq(cJSON_GetObjectItem(au, "eval_crop")->valuestring, "head");
    cr_assert(!cJSON_GetObjectItem(j, "image"));
    cJSON_Delete(j);
}

Test(export_audio, torch_parity_ast_repeat_pad) {
    char tmp[1024], dir[1100], cfgp[1100];
    fx_scratch("export_audio_ast", tmp, dir, "export", cfgp, "ast.json", NULL);
    /* 16 kHz, 1.5 s, repeat padding, 40 mels Slaney scale + norm, periodic Hann 400/512,
     * CLS pooling, tanh GELU */
    const char *cfg =
        "{\"embed_dim\": 32,"
        " \"audio\": {\"type\": \"ast\", \"patch_freq\": 8, \"patch_time\": 10, \"width\": 32,"
        "  \"layers\": 2, \"heads\": 4, \"mlp_width\": 64, \"pool\": \"cls\", \"act\": "
        "\"gelu_tanh\","
        "  \"sample_rate\": 16000, \"clip_seconds\": 1.5, \"pad\": \"repeat\", \"crop\": "
        "\"random\","
        "  \"n_fft\": 512, \"win_length\": 400, \"hop_length\": 160, \"window\": \"hann\","
        "  \"center\": true, \"pad_mode\": \"reflect\", \"n_mels\": 40, \"fmin\": 50,"
        "  \"fmax\": 7600, \"mel_scale\": \"slaney\", \"mel_norm\": \"slaney\", \"power\": 2.0,"
        "  \"log\": \"ln\", \"log_floor\": 1e-10, \"norm_mean\": -6.0, \"norm_std\": 5.0},"
        " \"text\": {\"type\": \"transformer\", \"vocab_size\": 259, \"context_length\": 16,"
        "  \"width\": 32, \"layers\": 1, \"heads\": 2, \"mlp_width\": 64,"
        "  \"tokenizer\": {\"type\": \"bytes\", \"bos\": 256, \"eos\": 257, \"pad\": 258}}}";
    make_export_json_(cfgp, cfg, dir, 7);
    char names[5][1200];
    const char *files[5];
    const wav_spec w[5] = {{0.37, 1, SF_FORMAT_PCM_16, SIG_CHIRP}, /* repeated 5 times and cut */
                           {2.2, 2, SF_FORMAT_PCM_16, SIG_CHIRP},  /* stereo, head crop */
                           {1.0, 1, SF_FORMAT_PCM_16, SIG_SILENCE},
                           {0.9, 1, SF_FORMAT_PCM_24, SIG_TONES_NOISE},
                           {1.5, 1, SF_FORMAT_PCM_32, SIG_TONES_NOISE}};
    write_wavs_(tmp, "b", 16000, w, 5, 70, names, files);
    torch_parity_("AST (repeat pad, Slaney)", dir, tmp, files, 5);
}

Test(export_audio, torch_parity_cnn_repeatpad_no_center_db) {
    char tmp[1024], dir[1100], cfgp[1100];
    fx_scratch("export_audio_cnn2", tmp, dir, "export", cfgp, "cnn.json", NULL);
    /* 11025 Hz, 1 s, repeatpad, no centre, Hamming 256, HTK with Slaney norm, dB, magnitude */
    const char *cfg =
        "{\"embed_dim\": 16,"
        " \"audio\": {\"type\": \"audio_cnn\", \"conv\": ["
        "   {\"channels\": 8, \"kernel\": 3, \"stride\": 1, \"padding\": 1, \"pool\": 2},"
        "   {\"channels\": 12, \"kernel\": 3, \"stride\": 2, \"padding\": 0, \"pool\": 0}],"
        "  \"fc\": [24], \"sample_rate\": 11025, \"clip_seconds\": 1.0, \"pad\": \"repeatpad\","
        "  \"n_fft\": 256, \"win_length\": 256, \"hop_length\": 110, \"window\": \"hamming\","
        "  \"center\": false, \"n_mels\": 32, \"fmin\": 0, \"fmax\": 5000, \"mel_scale\": \"htk\","
        "  \"mel_norm\": \"slaney\", \"power\": 1.0, \"log\": \"db\", \"log_floor\": 1e-5,"
        "  \"norm_mean\": -20.0, \"norm_std\": 15.0},"
        " \"text\": {\"type\": \"transformer\", \"vocab_size\": 259, \"context_length\": 8,"
        "  \"width\": 16, \"layers\": 1, \"heads\": 2, \"mlp_width\": 32,"
        "  \"tokenizer\": {\"type\": \"bytes\", \"bos\": 256, \"eos\": 257, \"pad\": 258}}}";
    make_export_json_(cfgp, cfg, dir, 9);
    char names[4][1200];
    const char *files[4];
    const wav_spec w[4] = {{0.3, 1, SF_FORMAT_PCM_16, SIG_CHIRP}, /* 3 whole repeats, then zeros */
                           {0.6, 2, SF_FORMAT_PCM_16, SIG_TONES_NOISE},
                           {1.8, 1, SF_FORMAT_PCM_16, SIG_CHIRP},
                           {0.5, 1, SF_FORMAT_PCM_16, SIG_SILENCE}};
    write_wavs_(tmp, "c", 11025, w, 4, 90, names, files);
    torch_parity_("small CNN (repeatpad, no centre, dB)", dir, tmp, files, 4);
}

/* Replaces the first `from` in the file by `to`. */
static void edit_file_(const char *path, const char *from, const char *to) {
    char *buf;
    size_t n;
    cr_assert_eq(clasp_read_file(path, 1 << 20, &buf, &n), CLASP_OK);
    char *at = strstr(buf, from);
    cr_assert(at, "%s: no '%s'", path, from);
    size_t pre = (size_t)(at - buf), fl = strlen(from), tl = strlen(to);
    char *out = malloc(n - fl + tl + 1);
    memcpy(out, buf, pre);
    memcpy(out + pre, to, tl);
    memcpy(out + pre + tl, at + fl, n - pre - fl);
    write_file_(path, out, n - fl + tl);
    free(out);
    free(buf);
}

static void expect_open_error_(const char *dir, const char *file, const char *field) {
    clasp_embedder em;
    cr_assert_neq(clasp_embedder_open(dir, 1, 4, &em), CLASP_OK, "%s: opened", field);
    const char *e = clasp_last_error();
    cr_assert(strstr(e, file) && strstr(e, field), "error should name %s and %s: %s", file, field,
              e);
}

Test(export_audio, bad_preprocess_audio_names_file_and_field) {
    char tmp[1024], dir[1100], good[1100], cfg[1100], pre[1200], cmd[4096];
    fx_scratch("export_audio_bad", tmp, good, "good", dir, "bad", NULL);
    snprintf(cfg, sizeof cfg, "%s/configs/speech-small.json", CLASP_SOURCE_DIR);
    make_export_(cfg, good, 3);
    snprintf(pre, sizeof pre, "%s/preprocess.json", dir);
    struct {
        const char *from, *to, *field;
    } cases[] = {
        {"\"n_fft\":", "\"n_fft_x\":", "audio.n_fft"},                          /* missing */
        {"\"window\":\t\"hann\"", "\"window\":\t\"blackman\"", "audio.window"}, /* bad value */
        {"\"n_mels\":\t64", "\"n_mels\":\t32", "audio.n_mels"}, /* differs from config */
        {"\"hop_length\":\t80", "\"hop_length\":\t\"80\"", "audio.hop_length"}, /* wrong type */
        {"\"norm_std\":\t6", "\"norm_std\":\t6.5", "audio.norm_std"},
        {"\"eval_crop\":\t\"head\"", "\"eval_crop\":\t\"random\"", "audio.eval_crop"},
        {"\"audio\":", "\"audio_x\":", "audio"}, /* no audio object */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s %s", dir, good, dir);
        run_ok_(cmd);
        edit_file_(pre, cases[i].from, cases[i].to);
        expect_open_error_(dir, "preprocess.json", cases[i].field);
    }
    /* the good one opens; an audio front-end in config.json that the tower cannot take fails */
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(good, 1, 4, &em), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
}

Test(export_audio, cli_shards_and_errors) {
    char tmp[1024], dir[1100], cfg[1100], cmd[8192], shard[1200], out[1200], out2[1200];
    const char *bin = clasp_test_bin();
    fx_scratch("export_audio_cli", tmp, dir, "export", NULL);
    snprintf(cfg, sizeof cfg, "%s/configs/speech-small.json", CLASP_SOURCE_DIR);
    make_export_(cfg, dir, 4);
    /* three WAVs, as files and as the audio field of a shard (one sample without audio) */
    char names[3][1200];
    const char *files[3];
    char *bytes[3];
    size_t nb[3];
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s/s%d.wav", tmp, i);
        write_wav_(names[i], 8000, 1.0 + i, 1, SF_FORMAT_PCM_16, SIG_TONES_NOISE,
                   200 + (uint64_t)i);
        files[i] = names[i];
        cr_assert_eq(clasp_read_file(names[i], 1 << 24, &bytes[i], &nb[i]), CLASP_OK);
    }
    fx_member m[] = {{"k0.wav", bytes[0], nb[0], 0}, {"k0.txt", "zero", 4, 0},
                     {"k1.txt", "no audio", 8, 0},   {"k2.wav", bytes[1], nb[1], 0},
                     {"k2.txt", "one", 3, 0},        {"k3.wav", bytes[2], nb[2], 0},
                     {"k3.txt", "two", 3, 0}};
    snprintf(shard, sizeof shard, "%s/shard-000000.tar", tmp);
    cr_assert(fx_write_tar(shard, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 7));
    snprintf(out, sizeof out, "%s/shards.npy", tmp);
    snprintf(out2, sizeof out2, "%s/files.npy", tmp);
    /* --shards defaults to the audio field on a model without an image tower */
    snprintf(cmd, sizeof cmd, "%s embed --model %s --shards %s -o %s 2>/dev/null", bin, dir, shard,
             out);
    run_ok_(cmd);
    snprintf(cmd, sizeof cmd, "%s embed --model %s --audio %s %s %s -o %s 2>/dev/null", bin, dir,
             files[0], files[1], files[2], out2);
    run_ok_(cmd);
    int64_t r1, c1, r2, c2;
    float *a = load_npy_(out, &r1, &c1), *b = load_npy_(out2, &r2, &c2);
    cr_assert(r1 == 3 && r2 == 3 && c1 == 128 && c2 == 128);
    cr_assert(clasp_test_check_tensor("shards vs files", a, b, (size_t)(r1 * c1), 1e-6, 0));
    free(a), free(b);
    char side[1200];
    snprintf(side, sizeof side, "%s/shards.json", tmp);
    cJSON *j;
    cr_assert_eq(clasp_json_load(side, &j), CLASP_OK);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "modality")->valuestring, "audio");
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 1)->valuestring, "k2");
    cJSON_Delete(j);
    /* text shards of the same model: the text tower */
    snprintf(cmd, sizeof cmd, "%s embed --model %s --shards %s --modality text -o %s 2>/dev/null",
             bin, dir, shard, out);
    run_ok_(cmd);
    a = load_npy_(out, &r1, &c1);
    cr_assert_eq(r1, 4);
    free(a);
    /* errors: --image on an audio model, a file that is not audio, a missing file */
    snprintf(cmd, sizeof cmd, "%s embed --model %s --image %s -o %s 2>/dev/null", bin, dir,
             files[0], out);
    cr_assert_neq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s embed --model %s --audio %s -o %s 2>/dev/null", bin, dir, cfg,
             out);
    cr_assert_neq(system(cmd), 0);
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(dir, 1, 2, &em), CLASP_OK, "%s", clasp_last_error());
    float z[2 * 128];
    const char *bad[2] = {files[0], cfg};
    cr_assert_neq(clasp_embedder_audio_files(&em, bad, 2, z), CLASP_OK);
    cr_assert(strstr(clasp_last_error(), "speech-small.json"), "%s", clasp_last_error());
    const char *missing[1] = {"/nonexistent/x.wav"};
    cr_assert_neq(clasp_embedder_audio_files(&em, missing, 1, z), CLASP_OK);
    cr_assert(strstr(clasp_last_error(), "/nonexistent/x.wav"), "%s", clasp_last_error());
    /* an empty file is a decode error naming it, never a crash */
    char empty[1200];
    snprintf(empty, sizeof empty, "%s/empty.wav", tmp);
    write_file_(empty, "", 0);
    const char *e1[1] = {empty};
    cr_assert_neq(clasp_embedder_audio_files(&em, e1, 1, z), CLASP_OK);
    cr_assert(strstr(clasp_last_error(), "empty.wav"), "%s", clasp_last_error());
    /* another sample rate: clasp resamples it (libsamplerate) ... */
    char r16[1200], msg[1200];
    snprintf(r16, sizeof r16, "%s/rate16k.wav", tmp);
    write_wav_(r16, 16000, 1.0, 1, SF_FORMAT_PCM_16, SIG_CHIRP, 9);
    const char *e2[1] = {r16};
    cr_assert_eq(clasp_embedder_audio_files(&em, e2, 1, z), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
    /* ... clasp_torch.py refuses it (no libsamplerate in Python), naming file and rates */
    snprintf(msg, sizeof msg, "%s/refused.txt", tmp);
    snprintf(cmd, sizeof cmd, PY " %s/tools/clasp_torch.py %s --audio %s -o %s/x.npy 2> %s",
             CLASP_SOURCE_DIR, dir, r16, tmp, msg);
    cr_assert_neq(system(cmd), 0, "clasp_torch.py accepted a 16 kHz file for an 8 kHz model");
    char *txt;
    size_t nt;
    cr_assert_eq(clasp_read_file(msg, 1 << 20, &txt, &nt), CLASP_OK);
    cr_assert(strstr(txt, "rate16k.wav") && strstr(txt, "16000") && strstr(txt, "8000"), "%s", txt);
    free(txt);
    for (int i = 0; i < 3; i++) free(bytes[i]);
}

Test(export_audio, checkpoint_to_export) {
    char tmp[1024], run[1100], cfgp[1100], exp[1100], cmd[4096], wav[1200];
    fx_scratch("export_audio_ckpt", tmp, run, "run", exp, "export", NULL);
    snprintf(cfgp, sizeof cfgp, "%s/configs/speech-ast.json", CLASP_SOURCE_DIR);
    /* a checkpoint of the parameters alone (no optimiser state) */
    cr_assert(fx_checkpoint_model(cfgp, 13, 5, run, NULL), "%s", clasp_last_error());
    snprintf(cmd, sizeof cmd, "%s export %s -o %s 2>/dev/null", clasp_test_bin(), run, exp);
    run_ok_(cmd);
    snprintf(wav, sizeof wav, "%s/q.wav", tmp);
    write_wav_(wav, 8000, 2.5, 1, SF_FORMAT_PCM_16, SIG_CHIRP, 5);
    /* the run, the checkpoint and the export embed the same audio identically */
    clasp_embedder a, b;
    cr_assert_eq(clasp_embedder_open(run, 1, 4, &a), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(a.kind, CLASP_SOURCE_CHECKPOINT);
    cr_assert_eq(clasp_embedder_open(exp, 2, 4, &b), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(b.kind, CLASP_SOURCE_EXPORT);
    const char *f[1] = {wav};
    float za[128], zb[128];
    cr_assert_eq(clasp_embedder_audio_files(&a, f, 1, za), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_embedder_audio_files(&b, f, 1, zb), CLASP_OK, "%s", clasp_last_error());
    cr_assert(clasp_test_check_tensor("export vs checkpoint (audio)", zb, za, 128, 1e-6, 0));
    clasp_embedder_close(&a);
    clasp_embedder_close(&b);
}

/* An ImageBind-style model with image, text and audio towers: image-text runs on the engine,
 * the audio tower on the engine's replicas; audio still equals PyTorch. */
Test(export_audio, three_towers) {
    char tmp[1024], dir[1100], cfgp[1100];
    fx_scratch("export_audio_3", tmp, dir, "export", cfgp, "three.json", NULL);
    const char *cfg =
        "{\"embed_dim\": 16,"
        " \"image\": {\"type\": \"cnn\", \"channels\": 1, \"size\": 12, \"conv\": [{\"channels\": "
        "4, \"kernel\": 3, \"padding\": 1, \"pool\": 2}], \"fc\": [8]},"
        " \"audio\": {\"type\": \"audio_cnn\", \"conv\": [{\"channels\": 6, \"kernel\": 3, "
        "\"padding\": 1, \"pool\": 2}], \"sample_rate\": 8000, \"clip_seconds\": 0.5,"
        "  \"pad\": \"repeat\", \"n_fft\": 128, \"win_length\": 128, \"hop_length\": 64, "
        "\"n_mels\": 16, \"fmax\": 4000},"
        " \"text\": {\"type\": \"transformer\", \"vocab_size\": 259, \"context_length\": 8,"
        "  \"width\": 16, \"layers\": 1, \"heads\": 2, \"mlp_width\": 32,"
        "  \"tokenizer\": {\"type\": \"bytes\", \"bos\": 256, \"eos\": 257, \"pad\": 258}}}";
    make_export_json_(cfgp, cfg, dir, 17);
    char names[3][1200];
    const char *files[3];
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s/t%d.wav", tmp, i);
        write_wav_(names[i], 8000, 0.2 + 0.3 * i, 1, SF_FORMAT_PCM_16,
                   i == 1 ? SIG_CHIRP : SIG_TONES_NOISE, 300 + (uint64_t)i);
        files[i] = names[i];
    }
    const char *bin = clasp_test_bin();
    char cmd[8192], cn[1200], pn[1200];
    snprintf(cn, sizeof cn, "%s/c.npy", tmp);
    snprintf(pn, sizeof pn, "%s/p.npy", tmp);
    snprintf(cmd, sizeof cmd, "%s embed --model %s --audio %s %s %s -o %s --threads 2 2>/dev/null",
             bin, dir, files[0], files[1], files[2], cn);
    run_ok_(cmd);
    cr_assert_eq(system(PY " -c 'import torch, numpy'"), 0,
                 "/usr/bin/python3 cannot import torch and numpy");
    snprintf(cmd, sizeof cmd, PY " %s/tools/clasp_torch.py %s --audio %s %s %s -o %s",
             CLASP_SOURCE_DIR, dir, files[0], files[1], files[2], pn);
    run_ok_(cmd);
    int64_t r1, c1, r2, c2;
    float *a = load_npy_(cn, &r1, &c1), *b = load_npy_(pn, &r2, &c2);
    cr_assert(r1 == 3 && r2 == 3 && c1 == 16 && c2 == 16);
    fprintf(stderr, "[export_audio] three towers: max |clasp - torch| = %.3g\n",
            fx_max_abs_diff(a, b, 48));
    cr_assert(clasp_test_check_tensor("three towers: audio", b, a, 48, 1e-4, 0));
    /* the embedder took the engine (image + text) and embeds all three modalities */
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(dir, 2, 4, &em), CLASP_OK, "%s", clasp_last_error());
    cr_assert(em.own == NULL && em.engine.models != NULL);
    cr_assert(clasp_embedder_has(&em, CLASP_TOWER_IMAGE) &&
              clasp_embedder_has(&em, CLASP_TOWER_TEXT) &&
              clasp_embedder_has(&em, CLASP_TOWER_AUDIO));
    float z[3 * 16];
    cr_assert_eq(clasp_embedder_audio_files(&em, files, 3, z), CLASP_OK, "%s", clasp_last_error());
    cr_assert(clasp_test_check_tensor("embedder vs clasp embed", z, a, 48, 1e-6, 0));
    const char *texts[2] = {"a dog barking", "rain"};
    cr_assert_eq(clasp_embedder_texts(&em, texts, 2, z), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
    free(a), free(b);
}
