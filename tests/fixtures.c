/* fixtures.c: the shared test fixtures of fixtures.h (files, images, audio, tar shards,
 * manifests, runs of the clasp binary), without Criterion so bench programs can link it. */
#include "fixtures.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/json.h"
#include "core/rng.h"
#include "datasets/espeak.h"
#include "encoders/model.h"
#include "export/export.h"
#include "modalities/preprocess.h"
#include "modalities/image.h"
#include "modalities/tokenizer.h"
#include "train/runstate.h"

#ifndef CLASP_SOURCE_DIR
#define CLASP_SOURCE_DIR "."
#endif
#ifndef CLASP_BINARY_DIR
#define CLASP_BINARY_DIR "."
#endif

/* ---- tensors ---------------------------------------------------------------------------- */

static bool check_(const char *name, size_t n, double atol, double rtol, const float *gf,
                   const float *wf, const double *gd, const double *wd) {
    size_t first_bad = (size_t)-1, nbad = 0;
    double max_abs = 0.0, max_rel = 0.0;
    for (size_t i = 0; i < n; i++) {
        double g = gf ? (double)gf[i] : gd[i];
        double w = wf ? (double)wf[i] : wd[i];
        double d = fabs(g - w);
        if (!(d <= atol + rtol * fabs(w))) { /* also catches NaN */
            if (first_bad == (size_t)-1) first_bad = i;
            nbad++;
        }
        if (d > max_abs || isnan(d)) max_abs = d;
        double rel = d / (fabs(w) > 1e-12 ? fabs(w) : 1e-12);
        if (fabs(w) > atol && rel > max_rel) max_rel = rel;
    }
    bool ok = nbad == 0;
    if (!ok || getenv("CLASP_TEST_VERBOSE")) {
        fprintf(stderr, "%s %-40s n=%zu max_abs=%.3e max_rel=%.3e", ok ? "OK  " : "FAIL", name, n,
                max_abs, max_rel);
        if (!ok) {
            double g = gf ? (double)gf[first_bad] : gd[first_bad];
            double w = wf ? (double)wf[first_bad] : wd[first_bad];
            fprintf(stderr, " bad=%zu first_bad[%zu]: got %.8g want %.8g", nbad, first_bad, g, w);
        }
        fprintf(stderr, "\n");
    }
    return ok;
}

bool clasp_test_check_tensor(const char *name, const float *got, const float *want, size_t n,
                             double atol, double rtol) {
    return check_(name, n, atol, rtol, got, want, NULL, NULL);
}

bool clasp_test_check_tensor_f64(const char *name, const double *got, const double *want, size_t n,
                                 double atol, double rtol) {
    return check_(name, n, atol, rtol, NULL, NULL, got, want);
}

double fx_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* ---- paths and runs --------------------------------------------------------------------- */

const char *clasp_test_ref_path(const char *rel, char *out, size_t cap) {
    snprintf(out, cap, "%s/tests/reference/%s", CLASP_SOURCE_DIR, rel);
    return out;
}

const char *clasp_test_tmpdir(const char *name, char *out, size_t cap) {
    char base[4096];
    snprintf(base, sizeof base, "%s/tests/tmp", CLASP_BINARY_DIR);
    mkdir(base, 0755);
    snprintf(out, cap, "%s/%s-%ld", base, name, (long)getpid());
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", out, strerror(errno));
    }
    return out;
}

clasp_safetensors *fx_ref_open(const char *rel_fmt, ...) {
    char rel[1024], path[4096];
    va_list ap;
    va_start(ap, rel_fmt);
    vsnprintf(rel, sizeof rel, rel_fmt, ap);
    va_end(ap);
    clasp_safetensors *st = NULL;
    return clasp_st_open(clasp_test_ref_path(rel, path, sizeof path), &st) == CLASP_OK ? st : NULL;
}

const char *fx_scratch(const char *name, char *dir, ...) {
    clasp_test_tmpdir(name, dir, FX_PATH);
    va_list ap;
    va_start(ap, dir);
    for (char *out; (out = va_arg(ap, char *)) != NULL;) {
        const char *leaf = va_arg(ap, const char *);
        snprintf(out, FX_PATH, "%s/%s", dir, leaf);
    }
    va_end(ap);
    return dir;
}

const char *clasp_test_bin(void) {
    const char *b = getenv("CLASP_BIN");
    return b ? b : CLASP_BINARY_DIR "/cli/clasp";
}

int fx_system(const char *cmd) {
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int fx_clasp(char **out, const char *args_fmt, ...) {
    char args[16384], cmd[20000];
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s", clasp_test_bin(), args);
    if (out) *out = NULL;
    FILE *p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "fx_clasp: cannot run %s: %s\n", cmd, strerror(errno));
        return -1;
    }
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    for (size_t k; buf && (k = fread(buf + n, 1, cap - n - 1, p)) > 0;) {
        n += k;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int rc = pclose(p);
    if (buf) buf[n] = '\0';
    if (out)
        *out = buf;
    else
        free(buf);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int fx_read_shards_py(const char *dir, const char *args) {
    if (access(FX_PYTHON, X_OK) != 0) return FX_NO_PYTHON;
    char script[2048], cmd[8192];
    clasp_test_ref_path("read_shards.py", script, sizeof script);
    snprintf(cmd, sizeof cmd, FX_PYTHON " %s %s %s", script, dir, args);
    return fx_system(cmd);
}

/* ---- files ------------------------------------------------------------------------------ */

uint8_t *fx_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    size_t got = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    if (!b) return NULL;
    b[got] = 0;
    if (n) *n = got;
    return b;
}

char *fx_read_text(const char *path) {
    char *t = (char *)fx_read(path, NULL);
    return t ? t : calloc(1, 1);
}

bool fx_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

bool fx_write_str(const char *path, const char *text) {
    return fx_write(path, text, strlen(text));
}

bool fx_put(const char *dir, const char *name, const void *data, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return fx_write(p, data, n);
}

bool fx_same_file(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *x = fx_read(a, &na), *y = fx_read(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* ---- images ----------------------------------------------------------------------------- */

uint8_t *fx_pnm(int w, int h, int channels, unsigned seed, size_t *n) {
    char head[64];
    int hn = snprintf(head, sizeof head, "P%d\n%d %d\n255\n", channels == 1 ? 5 : 6, w, h);
    size_t np = (size_t)w * (size_t)h * (size_t)channels;
    uint8_t *b = malloc((size_t)hn + np);
    if (!b) return NULL;
    memcpy(b, head, (size_t)hn);
    for (size_t i = 0; i < np; i++) b[(size_t)hn + i] = (uint8_t)((i * 31u + seed * 17u) & 255u);
    *n = (size_t)hn + np;
    return b;
}

uint8_t *fx_png(const uint8_t *pixels, int w, int h, int channels, size_t *n) {
    uint8_t *png = NULL;
    if (clasp_image_encode_png(pixels, w, h, channels, &png, n) != CLASP_OK) {
        fprintf(stderr, "fx_png: %s\n", clasp_last_error());
        return NULL;
    }
    return png;
}

bool fx_write_png(const char *path, const uint8_t *pixels, int w, int h, int channels) {
    size_t n;
    uint8_t *png = fx_png(pixels, w, h, channels, &n);
    bool ok = png && fx_write(path, png, n);
    free(png);
    return ok;
}

uint8_t *fx_random_pixels(int w, int h, int channels, uint64_t seed) {
    size_t n = (size_t)w * (size_t)h * (size_t)channels;
    uint8_t *px = malloc(n);
    if (!px) return NULL;
    clasp_rng r;
    clasp_rng_init(&r, seed, 0, 0, 0);
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)(clasp_rng_u32(&r) & 0xff);
    return px;
}

/* ---- audio ------------------------------------------------------------------------------ */

/* Writes frames in chunks (a long-file test writes millions). */
static bool write_frames_(SNDFILE *sf, int channels, const float *x, int64_t frames) {
    for (int64_t done = 0; done < frames;) {
        sf_count_t k = frames - done < 65536 ? (sf_count_t)(frames - done) : 65536;
        if (sf_writef_float(sf, x + done * channels, k) != k) return false;
        done += k;
    }
    return true;
}

bool fx_write_audio(const char *path, int format, int rate, int channels, const float *x,
                    int64_t frames) {
    SF_INFO si = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &si);
    if (!sf) {
        fprintf(stderr, "sf_open(%s): %s\n", path, sf_strerror(NULL));
        return false;
    }
    bool ok = write_frames_(sf, channels, x, frames);
    return sf_close(sf) == 0 && ok;
}

bool fx_write_wav16(const char *path, int rate, const short *pattern, size_t period,
                    int64_t frames) {
    SF_INFO si = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &si);
    if (!sf) {
        fprintf(stderr, "sf_open(%s): %s\n", path, sf_strerror(NULL));
        return false;
    }
    bool ok = true;
    for (int64_t done = 0; ok && done < frames;) {
        sf_count_t k =
            frames - done < (int64_t)period ? (sf_count_t)(frames - done) : (sf_count_t)period;
        ok = sf_writef_short(sf, pattern, k) == k;
        done += k;
    }
    return sf_close(sf) == 0 && ok;
}

uint8_t *fx_encode_audio(int format, int rate, int channels, const float *x, int64_t frames,
                         size_t *n) {
    /* An anonymous temporary file (no name another test process could share), read back. */
    SF_INFO si = {.samplerate = rate, .channels = channels, .format = format};
    if (!sf_format_check(&si)) {
        fprintf(stderr, "fx_encode_audio: format %x not writable\n", (unsigned)format);
        return NULL;
    }
    FILE *f = tmpfile();
    SNDFILE *sf = f ? sf_open_fd(fileno(f), SFM_WRITE, &si, 0) : NULL;
    if (!sf) {
        fprintf(stderr, "fx_encode_audio(%x): %s\n", (unsigned)format, sf_strerror(NULL));
        if (f) fclose(f);
        return NULL;
    }
    bool ok = write_frames_(sf, channels, x, frames);
    ok = sf_close(sf) == 0 && ok;
    uint8_t *b = NULL;
    long sz = ok && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)sz + 1)) != NULL)
        *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* ---- tar shards ------------------------------------------------------------------------- */

bool fx_write_tar(const char *path, int format, int filter, const fx_member *m, size_t n) {
    /* libarchive converts names through the locale; UTF-8 names need a UTF-8 locale. */
    setlocale(LC_CTYPE, "C.UTF-8");
    struct archive *a = archive_write_new();
    if (!a) return false;
    if (archive_write_set_format(a, format) != ARCHIVE_OK) goto fail;
    if (filter != ARCHIVE_FILTER_NONE && archive_write_add_filter(a, filter) != ARCHIVE_OK)
        goto fail;
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) goto fail;
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname_utf8(e, m[i].name);
        archive_entry_set_mode(e, (m[i].type ? (unsigned)m[i].type : AE_IFREG) | 0644);
        if (m[i].type == AE_IFLNK) archive_entry_set_symlink(e, "target");
        size_t sz = m[i].type ? 0 : m[i].n;
        archive_entry_set_size(e, (la_int64_t)sz);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK) {
            fprintf(stderr, "write header %s: %s\n", m[i].name, archive_error_string(a));
            archive_entry_free(e);
            goto fail;
        }
        if (sz) {
            uint8_t *buf = NULL;
            const void *d = m[i].data;
            if (!d) {
                buf = malloc(sz);
                if (!buf) {
                    archive_entry_free(e);
                    goto fail;
                }
                for (size_t k = 0; k < sz; k++) buf[k] = (uint8_t)(k * 7 + i);
                d = buf;
            }
            la_ssize_t w = archive_write_data(a, d, sz);
            free(buf);
            if (w != (la_ssize_t)sz) {
                archive_entry_free(e);
                goto fail;
            }
        }
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK) goto fail;
    archive_write_free(a);
    return true;
fail:
    fprintf(stderr, "fx_write_tar %s: %s\n", path, archive_error_string(a));
    archive_write_free(a);
    return false;
}

/* Appends the members of the tar at path to the n entries of *list. */
static long read_tar_(const char *path, const char *prefix, int shard, fx_entry **list, long n) {
    struct archive *a = archive_read_new();
    if (!a) return -1;
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK) {
        fprintf(stderr, "fx_read_tar %s: %s\n", path, archive_error_string(a));
        archive_read_free(a);
        return -1;
    }
    struct archive_entry *e;
    int r;
    bool ok = true;
    while (ok && ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)) {
        fx_entry *g = realloc(*list, (size_t)(n + 1) * sizeof *g);
        if (!g) {
            ok = false;
            break;
        }
        *list = g;
        fx_entry *m = &g[n++];
        memset(m, 0, sizeof *m);
        const char *name = archive_entry_pathname(e);
        la_int64_t sz = archive_entry_size(e);
        m->name = strdup(name ? name : "");
        m->n = sz > 0 ? (size_t)sz : 0;
        m->data = malloc(m->n + 1);
        m->mtime = (int64_t)archive_entry_mtime(e);
        m->uid = (int64_t)archive_entry_uid(e);
        m->gid = (int64_t)archive_entry_gid(e);
        m->perm = (unsigned)archive_entry_perm(e);
        m->filetype = (unsigned)archive_entry_filetype(e);
        m->prefix = prefix;
        m->shard = shard;
        ok = m->name && m->data &&
             (m->n == 0 || archive_read_data(a, m->data, m->n) == (la_ssize_t)m->n);
        if (m->data) m->data[m->n] = 0;
    }
    if (!ok) fprintf(stderr, "fx_read_tar %s: %s\n", path, archive_error_string(a));
    archive_read_free(a);
    return ok ? n : -1;
}

long fx_read_tar(const char *path, fx_entry **list, long n) {
    return read_tar_(path, NULL, 0, list, n);
}

long fx_read_shards(const char *dir, const char *prefix, fx_entry **list, long n) {
    for (int s = 0; n >= 0; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s-%06d.tar", dir, prefix, s);
        if (access(path, R_OK) != 0) break;
        n = read_tar_(path, prefix, s, list, n);
    }
    return n;
}

void fx_entries_free(fx_entry *e, long n) {
    for (long i = 0; e && i < n; i++) {
        free(e[i].name);
        free(e[i].data);
    }
    free(e);
}

const fx_entry *fx_find_entry(const fx_entry *e, long n, const char *name) {
    for (long i = 0; i < n; i++)
        if (!strcmp(e[i].name, name)) return &e[i];
    return NULL;
}

/* ---- models ----------------------------------------------------------------------------- */

bool fx_export_model(const char *config_path, const clasp_tokenizer *tok, const char *dir,
                     uint64_t seed) {
    clasp_model_config cfg;
    clasp_model m;
    if (clasp_model_config_load(config_path, &cfg) != CLASP_OK) return false;
    clasp_preprocess pre; /* the config's preprocessing, its tokenizer included */
    if (clasp_preprocess_load(config_path, &pre) != CLASP_OK) return false;
    bool ok = clasp_model_init(&m, &cfg) == CLASP_OK;
    if (ok) clasp_model_init_weights(&m, seed);
    if (ok && tok && clasp_tokenizer_vocab_size(tok) != clasp_tokenizer_vocab_size(pre.tokenizer)) {
        fprintf(stderr, "fx_export_model: %s names a tokenizer of %d tokens, not the given %d\n",
                config_path, clasp_tokenizer_vocab_size(pre.tokenizer),
                clasp_tokenizer_vocab_size(tok));
        ok = false;
    }
    ok = ok && clasp_export_model(&m, &pre, dir) == CLASP_OK;
    clasp_preprocess_free(&pre);
    clasp_model_free(&m);
    return ok;
}

bool fx_checkpoint_model(const char *config_path, uint64_t seed, int64_t step, const char *run,
                         clasp_model *model) {
    clasp_model_config cfg;
    clasp_model m;
    if (clasp_model_config_load(config_path, &cfg) != CLASP_OK) return false;
    if (clasp_model_init(&m, &cfg) != CLASP_OK) return false;
    clasp_model_init_weights(&m, seed);
    /* the config a checkpoint holds: towers and preprocessing, as the trainer writes it */
    cJSON *cj = NULL;
    clasp_preprocess pre;
    bool ok = clasp_model_config_to_json(&cfg, &cj) == CLASP_OK &&
              clasp_preprocess_load(config_path, &pre) == CLASP_OK;
    if (ok) {
        ok = clasp_preprocess_add_json(&pre, cj) == CLASP_OK;
        clasp_preprocess_free(&pre);
    }
    if (ok) {
        clasp_runstate rs;
        clasp_runstate_init(&rs, &m, NULL, cj);
        rs.step = step;
        ok =
            clasp_mkdir_p(run) == CLASP_OK && clasp_runstate_save(&rs, run, 0, NULL, 0) == CLASP_OK;
    }
    cJSON_Delete(cj);
    if (ok && model)
        *model = m;
    else
        clasp_model_free(&m);
    return ok;
}

clasp_espeak_options fx_espeak_once(const char *from, const char *out_dir, int val_percent) {
    clasp_espeak_options e = clasp_espeak_default_options();
    e.from = from;
    e.shards.out_dir = out_dir;
    e.voices = "en-us";
    e.speeds = "170";
    e.pitches = "40";
    e.variants = 0;
    e.val_percent = val_percent;
    return e;
}

/* ---- manifests and run folders ---------------------------------------------------------- */

cJSON *fx_manifest_load(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    char *text = fx_read_text(p);
    cJSON *j = cJSON_Parse(text);
    if (!j) fprintf(stderr, "fx_manifest_load: cannot parse %s\n", p);
    free(text);
    return j;
}

bool fx_built(clasp_status st, clasp_manifest *m, const char *dir, cJSON **manifest) {
    if (st != CLASP_OK) fprintf(stderr, "dataset builder failed: %s\n", clasp_last_error());
    clasp_manifest_free(m);
    if (manifest) *manifest = st == CLASP_OK ? fx_manifest_load(dir) : NULL;
    return st == CLASP_OK && (!manifest || *manifest);
}

double fx_manifest_samples(const cJSON *manifest, const char *split) {
    const cJSON *of = split ? cJSON_GetObjectItem(cJSON_GetObjectItem(manifest, "splits"), split)
                            : cJSON_GetObjectItem(manifest, "total");
    const cJSON *n = cJSON_GetObjectItem(of, "samples");
    return cJSON_IsNumber(n) ? n->valuedouble : -1.0;
}

bool fx_manifest_reasons(const cJSON *manifest, ...) {
    const cJSON *by = cJSON_GetObjectItem(cJSON_GetObjectItem(manifest, "skipped"), "by_reason");
    bool ok = manifest != NULL;
    va_list ap;
    va_start(ap, manifest);
    for (const char *r; (r = va_arg(ap, const char *)) != NULL;) {
        int want = va_arg(ap, int);
        const cJSON *c = cJSON_GetObjectItem(by, r);
        int got = c ? c->valueint : 0;
        if (got != want) {
            fprintf(stderr, "manifest: skipped.by_reason.%s = %d, want %d\n", r, got, want);
            ok = false;
        }
    }
    va_end(ap);
    return ok;
}

/* dir_a/name and dir_b/name hold the same bytes (else printed). */
static bool same_in_(const char *dir_a, const char *dir_b, const char *name) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", dir_a, name);
    snprintf(b, sizeof b, "%s/%s", dir_b, name);
    bool same = fx_same_file(a, b);
    if (!same) fprintf(stderr, "rebuild: %s differs from %s\n", b, a);
    return same;
}

int fx_same_build(const char *dir_a, const char *dir_b) {
    cJSON *man = fx_manifest_load(dir_b);
    int n = man ? 0 : -1;
    const cJSON *sp;
    cJSON_ArrayForEach(sp, cJSON_GetObjectItem(man, "splits")) {
        const cJSON *sh;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItem(sp, "shards")) {
            const cJSON *name = cJSON_GetObjectItem(sh, "name");
            if (n >= 0 && !(cJSON_IsString(name) && same_in_(dir_a, dir_b, name->valuestring)))
                n = -1;
            else if (n >= 0)
                n++;
        }
    }
    cJSON_Delete(man);
    return n >= 0 && same_in_(dir_a, dir_b, "manifest.json") ? n : -1;
}

char *fx_metrics_values(const char *run, const char *kind, const char *field) {
    char path[4096], kq[256], fq[256];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    snprintf(kq, sizeof kq, "\"kind\":\"%s\"", kind);
    snprintf(fq, sizeof fq, "\"%s\":", field);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = 0, cap = 4096;
    char *out = malloc(cap), line[16384];
    out[0] = 0;
    while (out && fgets(line, sizeof line, f)) {
        if (!strstr(line, kq)) continue;
        char *p = strstr(line, fq);
        if (!p) continue;
        p += strlen(fq);
        size_t k = strcspn(p, ",}");
        if (n + k + 2 > cap) {
            while (n + k + 2 > cap) cap *= 2;
            char *g = realloc(out, cap);
            if (!g) free(out);
            out = g;
            if (!out) break;
        }
        memcpy(out + n, p, k);
        n += k;
        out[n++] = '\n';
        out[n] = 0;
    }
    fclose(f);
    return out;
}

int fx_metrics_numbers(const char *run, const char *kind, const char *field, double *v, int cap) {
    char *text = fx_metrics_values(run, kind, field);
    if (!text) return -1;
    int n = 0;
    for (char *p = text; *p && n < cap; p = strchr(p, '\n') + 1) v[n++] = strtod(p, NULL);
    free(text);
    return n;
}

int fx_fmnist_shards(const char *dir) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s shards build fmnist -o %s --limit 640 --maxcount 128 >/dev/null 2>&1",
             clasp_test_bin(), dir);
    return fx_system(cmd);
}

int fx_count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

void fx_clustered(float *x, int64_t n, int dim, int n_clusters, float spread, uint64_t seed,
                  uint64_t noise_seed) {
    clasp_rng r;
    clasp_rng_init(&r, seed, 0, (uint64_t)n_clusters, (uint64_t)dim);
    float *c = malloc((size_t)n_clusters * (size_t)dim * sizeof *c);
    for (int64_t i = 0; i < (int64_t)n_clusters * dim; i++) c[i] = (float)clasp_rng_normal(&r);
    clasp_rng_init(&r, noise_seed, 1, (uint64_t)n, (uint64_t)dim);
    for (int64_t i = 0; i < n; i++) {
        const float *ci = c + (i % n_clusters) * dim;
        float *row = x + i * dim;
        double ss = 0, cs = 0;
        for (int j = 0; j < dim; j++) cs += (double)ci[j] * (double)ci[j];
        float cn = (float)(1.0 / sqrt(cs));
        for (int j = 0; j < dim; j++) {
            row[j] = ci[j] * cn + spread * (float)clasp_rng_normal(&r);
            ss += (double)row[j] * (double)row[j];
        }
        float inv = (float)(1.0 / sqrt(ss));
        for (int j = 0; j < dim; j++) row[j] *= inv;
    }
    free(c);
}
