/* espeak.c: the espeak-ng speech builder (see espeak.h). */
#include "datasets/espeak.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "core/rng.h"
#include "datasets/emoji.h"
#include "datasets/internal.h"
#include "datasets/shard_writer.h"
#include "datasets/split.h"
#include "modalities/audio.h"
#include "modalities/text.h"

#define MAX_GRID  64 /* values per list */
#define MAX_WAV   ((size_t)64 << 20)
#define MAX_TEXTS ((size_t)64 << 20)

clasp_espeak_options clasp_espeak_default_options(void) {
    return (clasp_espeak_options){.voices = CLASP_ESPEAK_DEFAULT_VOICES,
                                  .speeds = CLASP_ESPEAK_DEFAULT_SPEEDS,
                                  .pitches = CLASP_ESPEAK_DEFAULT_PITCHES,
                                  .variants = 4,
                                  .val_percent = 10,
                                  .shards = {.maxcount = 1000}};
}

/* A parsed comma-separated list: names point into `buf`. */
typedef struct word_list {
    char buf[1024];
    char *v[MAX_GRID];
    int num[MAX_GRID];
    size_t n;
} word_list;

static clasp_status split_list(const char *what, const char *s, word_list *l) {
    memset(l, 0, sizeof *l);
    if (!s || !*s || strlen(s) >= sizeof l->buf)
        return clasp_set_error(CLASP_ERR_ARG, "espeak: bad %s list '%s'", what, s ? s : "");
    strcpy(l->buf, s);
    for (char *p = l->buf;;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        if (!*p || l->n == MAX_GRID)
            return clasp_set_error(CLASP_ERR_ARG, "espeak: bad %s list '%s'", what, s);
        for (size_t i = 0; i < l->n; i++)
            if (!strcmp(l->v[i], p))
                return clasp_set_error(CLASP_ERR_ARG, "espeak: %s '%s' given twice", what, p);
        l->v[l->n++] = p;
        if (!c) break;
        p = c + 1;
    }
    return CLASP_OK;
}

static clasp_status parse_numbers(const char *what, const char *s, int lo, int hi, word_list *l) {
    CLASP_TRY(split_list(what, s, l));
    for (size_t i = 0; i < l->n; i++) {
        char *end;
        errno = 0;
        long x = strtol(l->v[i], &end, 10);
        if (errno || *end || x < lo || x > hi)
            return clasp_set_error(CLASP_ERR_ARG, "espeak: %s '%s' not an integer in %d..%d", what,
                                   l->v[i], lo, hi);
        l->num[i] = (int)x;
    }
    return CLASP_OK;
}

static bool valid_voice(const char *v) {
    for (const char *c = v; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '+'))
            return false;
    return *v && *v != '-' && strlen(v) < 64;
}

/* ---- sources ------------------------------------------------------------------------------ */

/* Reads a "key<TAB>text" file; keys become "file/KEY" with '.' -> '_'. */
static clasp_status read_tsv(const char *path, clasp__transcripts *out, clasp_manifest *m) {
    char *buf;
    size_t n;
    CLASP_TRY(clasp_read_file(path, MAX_TEXTS, &buf, &n));
    const char *p = buf, *end = buf + n;
    if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    clasp_status st = CLASP_OK;
    size_t line_no = 0;
    while (st == CLASP_OK && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        line_no++;
        if (e > s && e[-1] == '\r') e--;
        if (s == e || *s == '#') continue;
        char item[64];
        snprintf(item, sizeof item, "%s: line %zu", path, line_no);
        if (strlen(item) > 60) snprintf(item, sizeof item, "line %zu", line_no);
        const char *tab = memchr(s, '\t', (size_t)(e - s));
        if (!tab || tab == s || (size_t)(tab - s) > 512) {
            st = clasp_manifest_skip(m, "bad_line", item, "expected KEY<TAB>TEXT");
            continue;
        }
        size_t off;
        if (clasp_text_validate_utf8(s, (size_t)(e - s), &off) != CLASP_OK) {
            st = clasp_manifest_skip(m, "bad_utf8", item, NULL);
            continue;
        }
        const char *t = tab + 1;
        while (t < e && (*t == ' ' || *t == '\t')) t++;
        if (t == e) {
            st = clasp_manifest_skip(m, "empty_transcript", item, NULL);
            continue;
        }
        char key[600];
        snprintf(key, sizeof key, "file/%.*s", (int)(tab - s), s);
        for (char *c = key; *c; c++)
            if (*c == '.') *c = '_';
        char *text = strndup(t, (size_t)(e - t));
        if (!text) {
            st = clasp_set_error(CLASP_ERR_NOMEM, "espeak: out of memory");
            break;
        }
        st = clasp__transcripts_push(out, key, text, key + 5);
        free(text);
    }
    free(buf);
    return st;
}

static int cmp_transcript(const void *a, const void *b) {
    return strcmp(((const clasp__transcript *)a)->key, ((const clasp__transcript *)b)->key);
}

/* Appends the transcripts of `src` with keys prefixed by `prefix`, at most `limit`. */
static clasp_status append(clasp__transcripts *all, clasp__transcripts *src, const char *prefix,
                           size_t limit) {
    clasp_status st = CLASP_OK;
    for (size_t i = 0; st == CLASP_OK && i < src->n && (!limit || i < limit); i++) {
        char key[700];
        snprintf(key, sizeof key, "%s%s", prefix, src->v[i].key);
        st = clasp__transcripts_push(all, key, src->v[i].text, src->v[i].split_id);
    }
    clasp__transcripts_free(src);
    return st;
}

/* Path of a present emojibase-data package (emoji_dir or the cache) or "" when absent. */
static void present_emojibase(const clasp_espeak_options *o, char *out, size_t cap) {
    char cache[3000];
    out[0] = 0;
    if (!o->emoji_dir) {
        if (clasp_datasets_cache_dir(cache, sizeof cache) != CLASP_OK) return;
        snprintf(out, cap, "%s/npm/emojibase-data-%s.tgz", cache, CLASP_EMOJIBASE_VERSION);
    } else {
        snprintf(out, cap, "%s/emojibase-data-%s.tgz", o->emoji_dir, CLASP_EMOJIBASE_VERSION);
    }
    if (!clasp_is_file(out)) out[0] = 0;
}

static clasp_status gather(const clasp_espeak_options *o, const char *root, clasp_manifest *m,
                           clasp__transcripts *all, cJSON *used) {
    clasp_status st = CLASP_OK;
    if (!o->from) {
        char ap[4096], tgz[4096];
        snprintf(ap, sizeof ap, "%s/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz",
                 root);
        present_emojibase(o, tgz, sizeof tgz);
        if (!clasp_is_file(ap) && !tgz[0])
            return clasp_set_error(CLASP_ERR_NOT_FOUND,
                                   "espeak: no default transcripts: `apt-get install "
                                   "asterisk-core-sounds-en`, or `clasp shards build emoji` "
                                   "(fetches emojibase-data), or --from FILE");
        if (clasp_is_file(ap)) {
            clasp__transcripts a = {0};
            st = clasp__asterisk_transcripts(root, "en", m, &a);
            if (st == CLASP_OK) st = append(all, &a, "asterisk/", o->shards.limit);
            clasp__transcripts_free(&a);
            if (st == CLASP_OK) {
                cJSON_AddItemToArray(used, cJSON_CreateString("asterisk"));
                st = clasp_manifest_add_package(m, "asterisk-core-sounds-en", "CC-BY-SA-3.0");
            }
        }
        if (st == CLASP_OK && tgz[0]) {
            clasp__transcripts e = {0};
            st = clasp__emojibase_en_labels(tgz, &e);
            if (st == CLASP_OK) st = append(all, &e, "", o->shards.limit);
            clasp__transcripts_free(&e);
            if (st == CLASP_OK) {
                cJSON_AddItemToArray(used, cJSON_CreateString("emoji"));
                st = clasp_manifest_add_source(m, "emojibase-data", CLASP_EMOJIBASE_VERSION,
                                               "MIT (CLDR annotations: Unicode License v3)");
            }
        }
        return st;
    }
    word_list src;
    CLASP_TRY(split_list("source", o->from, &src));
    for (size_t i = 0; st == CLASP_OK && i < src.n; i++) {
        clasp__transcripts t = {0};
        const char *s = src.v[i];
        if (!strcmp(s, "asterisk")) {
            st = clasp__asterisk_transcripts(root, "en", m, &t);
            if (st == CLASP_OK) st = append(all, &t, "asterisk/", o->shards.limit);
            if (st == CLASP_OK)
                st = clasp_manifest_add_package(m, "asterisk-core-sounds-en", "CC-BY-SA-3.0");
        } else if (!strcmp(s, "emoji")) {
            clasp_emoji_options eo = clasp_emoji_default_options();
            eo.src_dir = o->emoji_dir;
            char tgz[4096];
            st = clasp_emoji_package(&eo, "emojibase-data", CLASP_EMOJIBASE_VERSION, tgz,
                                     sizeof tgz);
            if (st == CLASP_OK) st = clasp__emojibase_en_labels(tgz, &t);
            if (st == CLASP_OK) st = append(all, &t, "", o->shards.limit);
            if (st == CLASP_OK)
                st = clasp_manifest_add_source(m, "emojibase-data", CLASP_EMOJIBASE_VERSION,
                                               "MIT (CLDR annotations: Unicode License v3)");
        } else {
            if (!clasp_is_file(s))
                st = clasp_set_error(CLASP_ERR_NOT_FOUND,
                                     "espeak: --from '%s': not asterisk, emoji or a file", s);
            if (st == CLASP_OK) st = read_tsv(s, &t, m);
            if (st == CLASP_OK) st = append(all, &t, "", o->shards.limit);
            if (st == CLASP_OK) st = clasp_manifest_add_source(m, s, "local file", "unknown");
        }
        clasp__transcripts_free(&t);
        if (st == CLASP_OK) cJSON_AddItemToArray(used, cJSON_CreateString(s));
    }
    return st;
}

/* ---- speaking ----------------------------------------------------------------------------- */

typedef struct speaker {
    const char *prog;
    char dir[4096], in[4200], out[4200], err[4200];
} speaker;

/* Speaks text with (voice, speed, pitch) into s->out; *code is espeak-ng's exit status. */
static clasp_status speak(const speaker *s, const char *text, const char *voice, int speed,
                          int pitch, int *code) {
    /* A scratch file: plain stdio, no fsync (the atomic writer's fsync cost ~25 ms a text). */
    FILE *f = fopen(s->in, "wb");
    if (!f) return clasp_set_error(CLASP_ERR_IO, "%s: %s", s->in, strerror(errno));
    size_t tn = strlen(text);
    bool ok = fwrite(text, 1, tn, f) == tn;
    if (fclose(f) != 0 || !ok) return clasp_set_error(CLASP_ERR_IO, "%s: write failed", s->in);
    char sp[16], pi[16];
    snprintf(sp, sizeof sp, "%d", speed);
    snprintf(pi, sizeof pi, "%d", pitch);
    char *argv[] = {(char *)s->prog, "-v", (char *)voice, "-s", sp, "-p", pi, "-w",
                    (char *)s->out,  "-f", (char *)s->in, NULL};
    unlink(s->out);
    clasp_status st = clasp__run(argv, NULL, s->err, code);
    if (st == CLASP_ERR_NOT_FOUND)
        return clasp_set_error(CLASP_ERR_NOT_FOUND,
                               "espeak: '%s' not found: `apt-get install espeak-ng`", s->prog);
    return st;
}

/* Chooses the cells of transcript `key` into cells[], ascending; returns how many. */
static size_t choose_cells(const clasp_espeak_options *o, const char *key, size_t n_cells,
                           size_t *cells) {
    for (size_t i = 0; i < n_cells; i++) cells[i] = i;
    if (!o->variants || o->variants >= n_cells) return n_cells;
    clasp_rng r;
    clasp_rng_init(&r, o->seed, CLASP_RNG_DATASET, clasp_hash_str(key, 0), 0);
    for (size_t i = 0; i < o->variants; i++) { /* partial Fisher-Yates */
        size_t j = i + (size_t)clasp_rng_below(&r, n_cells - i);
        size_t t = cells[i];
        cells[i] = cells[j];
        cells[j] = t;
    }
    for (size_t i = 1; i < o->variants; i++) /* grid order */
        for (size_t j = i; j > 0 && cells[j - 1] > cells[j]; j--) {
            size_t t = cells[j];
            cells[j] = cells[j - 1];
            cells[j - 1] = t;
        }
    return o->variants;
}

static const char *source_of(const char *key) {
    if (!strncmp(key, "asterisk/", 9)) return "asterisk";
    if (!strncmp(key, "emoji/", 6)) return "emoji";
    return "file";
}

static clasp_status speak_all(const clasp_espeak_options *o, const speaker *sp,
                              const clasp__transcripts *all, const word_list *voices,
                              const word_list *speeds, const word_list *pitches,
                              clasp_split_writers *sw, clasp_manifest *m, size_t *written) {
    size_t n_cells = voices->n * speeds->n * pitches->n;
    size_t *cells = malloc(n_cells * sizeof *cells);
    if (!cells) return clasp_set_error(CLASP_ERR_NOMEM, "espeak: out of memory");
    clasp_status st = CLASP_OK;
    for (size_t i = 0; st == CLASP_OK && i < all->n; i++) {
        const clasp__transcript *t = &all->v[i];
        if (i > 0 && !strcmp(all->v[i - 1].key, t->key)) {
            st = clasp_manifest_skip(m, "duplicate_key", t->key, NULL);
            continue;
        }
        size_t nc = choose_cells(o, t->key, n_cells, cells);
        for (size_t c = 0; st == CLASP_OK && c < nc; c++) {
            size_t g = cells[c];
            const char *voice = voices->v[g / (speeds->n * pitches->n)];
            int speed = speeds->num[(g / pitches->n) % speeds->n];
            int pitch = pitches->num[g % pitches->n];
            char key[900], item[900];
            snprintf(key, sizeof key, "%s/%s_s%d_p%d", t->key, voice, speed, pitch);
            snprintf(item, sizeof item, "%s", key);
            int code;
            st = speak(sp, t->text, voice, speed, pitch, &code);
            if (st != CLASP_OK) break;
            if (code != 0) {
                st = clasp_manifest_skip(m, "speak_failed", item, NULL);
                continue;
            }
            char *wav;
            size_t wn;
            st = clasp_read_file(sp->out, MAX_WAV, &wav, &wn);
            if (st != CLASP_OK) break;
            clasp_audio_info info;
            clasp_audio_skip why = CLASP_AUDIO_EMPTY;
            if (wn == 0 || clasp_audio_probe(wav, wn, &info, &why) != CLASP_OK ||
                info.source_frames == 0) {
                free(wav);
                st = clasp_manifest_skip(m, "empty_audio", item, NULL);
                continue;
            }
            char lang[64];
            snprintf(lang, sizeof lang, "%s", voice);
            lang[strcspn(lang, "-+")] = 0;
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "voice", voice);
            cJSON_AddNumberToObject(j, "speed", speed);
            cJSON_AddNumberToObject(j, "pitch", pitch);
            cJSON_AddStringToObject(j, "language", lang);
            cJSON_AddStringToObject(j, "source", source_of(t->key));
            cJSON_AddStringToObject(j, "source_key", t->key);
            cJSON_AddStringToObject(j, "split_id", t->split_id);
            st = clasp_split_writers_add_speech(sw, t->split_id, key, item, j, t->text, wav, wn,
                                                written);
            free(wav);
        }
        if (o->shards.progress && st == CLASP_OK && (i + 1) % 200 == 0)
            fprintf(stderr, "espeak: %zu/%zu transcripts, %zu samples\n", i + 1, all->n, *written);
    }
    free(cells);
    return st;
}

/* Each voice must speak a word: an unknown voice is an option error, not a skip per sample. */
static clasp_status check_voices(const speaker *sp, const word_list *voices) {
    for (size_t i = 0; i < voices->n; i++) {
        int code;
        CLASP_TRY(speak(sp, "test", voices->v[i], 175, 50, &code));
        if (code != 0)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "espeak: voice '%s' not available in %s (exit %d; `%s "
                                   "--voices` lists them)",
                                   voices->v[i], sp->prog, code, sp->prog);
    }
    return CLASP_OK;
}

clasp_status clasp_espeak_build(const clasp_espeak_options *o, clasp_manifest *m) {
    if (!o || !o->shards.out_dir || !m)
        return clasp_set_error(CLASP_ERR_ARG, "espeak: NULL argument");
    CLASP_TRY(clasp_split_check_percent("espeak", o->val_percent));
    word_list voices, speeds, pitches;
    CLASP_TRY(split_list("voice", o->voices, &voices));
    for (size_t i = 0; i < voices.n; i++)
        if (!valid_voice(voices.v[i]))
            return clasp_set_error(CLASP_ERR_ARG, "espeak: bad voice name '%s'", voices.v[i]);
    CLASP_TRY(parse_numbers("speed", o->speeds, 80, 450, &speeds));
    CLASP_TRY(parse_numbers("pitch", o->pitches, 0, 99, &pitches));
    const char *root = o->src_root && strcmp(o->src_root, "/") ? o->src_root : "";

    speaker sp;
    memset(&sp, 0, sizeof sp);
    sp.prog = o->espeak ? o->espeak : "espeak-ng";
    const char *tmpd = getenv("TMPDIR");
    snprintf(sp.dir, sizeof sp.dir, "%s/clasp-espeak-XXXXXX", tmpd && *tmpd ? tmpd : "/tmp");
    if (!mkdtemp(sp.dir))
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot create: %s", sp.dir, strerror(errno));
    snprintf(sp.in, sizeof sp.in, "%s/in.txt", sp.dir);
    snprintf(sp.out, sizeof sp.out, "%s/out.wav", sp.dir);
    snprintf(sp.err, sizeof sp.err, "%s/stderr.txt", sp.dir);

    clasp__transcripts all = {0};
    clasp_split_writers sw = {0};
    size_t written = 0;
    clasp_status st = clasp_manifest_init(m, "espeak");
    bool have_m = st == CLASP_OK;
    if (st == CLASP_OK) st = check_voices(&sp, &voices);
    cJSON *opt = clasp_manifest_options(m);
    cJSON *used = have_m ? cJSON_AddArrayToObject(opt, "from") : NULL;
    if (st == CLASP_OK) st = gather(o, root, m, &all, used);
    if (st == CLASP_OK) {
        qsort(all.v, all.n, sizeof *all.v, cmp_transcript);
        cJSON_AddStringToObject(opt, "voices", o->voices);
        cJSON_AddStringToObject(opt, "speeds", o->speeds);
        cJSON_AddStringToObject(opt, "pitches", o->pitches);
        cJSON_AddNumberToObject(opt, "variants", (double)o->variants);
        cJSON_AddNumberToObject(opt, "seed", (double)o->seed);
        clasp_split_options(opt, o->val_percent,
                            "xxh64(split_id of the transcript, 0) % 100 < val_percent -> "
                            "validation",
                            &o->shards);
        cJSON_AddNumberToObject(opt, "transcripts", (double)all.n);
        static const char *const exts[] = {"json", "txt", "wav"};
        st = clasp_manifest_set_fields(m, exts, 3);
    }
    if (st == CLASP_OK) st = clasp_manifest_add_package(m, "espeak-ng", "GPL-3.0-or-later");
    if (st == CLASP_OK) st = clasp_split_writers_open(&sw, m, &o->shards, o->val_percent);
    if (st == CLASP_OK) st = speak_all(o, &sp, &all, &voices, &speeds, &pitches, &sw, m, &written);
    if (st == CLASP_OK && o->shards.progress)
        fprintf(stderr, "espeak: %zu samples from %zu transcripts\n", written, all.n);
    if (st == CLASP_OK) st = clasp_split_writers_finish(&sw, o->shards.out_dir);
    clasp_split_writers_free(&sw);
    clasp__transcripts_free(&all);
    unlink(sp.in);
    unlink(sp.out);
    unlink(sp.err);
    rmdir(sp.dir);
    if (st != CLASP_OK && have_m) clasp_manifest_free(m);
    return st;
}
