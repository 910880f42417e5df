/* asterisk.c: the Asterisk speech prompt builder (see asterisk.h). */
#include "datasets/asterisk.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/array.h"
#include "core/json.h"
#include "datasets/internal.h"
#include "datasets/shard_writer.h"
#include "datasets/split.h"
#include "modalities/audio.h"
#include "modalities/text.h"

#define SOUNDS_DIR "/usr/share/asterisk/sounds"
#define MAX_WAV    ((size_t)64 << 20)

clasp_asterisk_options clasp_asterisk_default_options(void) {
    return (clasp_asterisk_options){
        .langs = "en,es,fr,it,ru", .val_percent = 10, .shards = {.maxcount = 1000}};
}

static const char *licence_of(const char *lang) {
    if (!strcmp(lang, "it") || !strcmp(lang, "ru")) return "CC-BY-3.0";
    return "CC-BY-SA-3.0";
}

typedef struct named {
    char *lower; /* lower-cased name: the match key */
    char *name;  /* as written (transcript) or relative path without .wav (audio) */
    char *text;  /* transcript, or for audio the file name relative to the voice folder */
    int used;
} named;

typedef struct named_list {
    named *v;
    size_t n, cap;
} named_list;

static void named_free(named *e) {
    free(e->lower);
    free(e->name);
    free(e->text);
}

static void list_free(named_list *l) {
    for (size_t i = 0; i < l->n; i++) named_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static clasp_status list_push(named_list *l, const char *name, size_t name_n, const char *text,
                              size_t text_n) {
    named *p = clasp_grow(l->v, l->n, &l->cap, sizeof *p, 256);
    if (!p) return clasp_set_error(CLASP_ERR_NOMEM, "asterisk: out of memory");
    l->v = p;
    named *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    e->name = strndup(name, name_n);
    e->lower = strndup(name, name_n);
    e->text = text ? strndup(text, text_n) : NULL;
    if (!e->name || !e->lower || (text && !e->text)) {
        named_free(e);
        return clasp_set_error(CLASP_ERR_NOMEM, "asterisk: out of memory");
    }
    for (char *c = e->lower; *c; c++) *c = (char)tolower((unsigned char)*c);
    l->n++;
    return CLASP_OK;
}

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named *)a)->lower, ((const named *)b)->lower);
}

static clasp_status walk_wavs(const char *root, const char *rel, int depth, named_list *l) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return clasp_set_error(CLASP_ERR_IO, "%s: cannot open folder", path);
    clasp_status st = CLASP_OK;
    struct dirent *de;
    while (st == CLASP_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char sub[2048], full[8192];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat sb;
        if (stat(full, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) && depth < 8) {
            st = walk_wavs(root, sub, depth + 1, l);
        } else if (S_ISREG(sb.st_mode)) {
            size_t n = strlen(sub);
            if (n > 4 && !strcasecmp(sub + n - 4, ".wav"))
                st = list_push(l, sub, n - 4, sub, n); /* text = file name */
        }
    }
    closedir(d);
    return st;
}

/* Finds SOUNDS_DIR/LANG_* (first in byte order) into out. */
static clasp_status find_audio_dir(const char *root, const char *lang, char *out, size_t cap) {
    char base[4096];
    snprintf(base, sizeof base, "%s%s", root, SOUNDS_DIR);
    DIR *d = opendir(base);
    char best[256] = "";
    if (d) {
        struct dirent *de;
        size_t ln = strlen(lang);
        while ((de = readdir(d))) {
            if (strncmp(de->d_name, lang, ln) || de->d_name[ln] != '_') continue;
            char full[4400];
            snprintf(full, sizeof full, "%s/%s", base, de->d_name);
            struct stat sb;
            if (lstat(full, &sb) != 0 || !S_ISDIR(sb.st_mode)) continue; /* skip symlinks */
            if (!best[0] || strcmp(de->d_name, best) < 0)
                snprintf(best, sizeof best, "%s", de->d_name);
        }
        closedir(d);
    }
    if (!best[0])
        return clasp_set_error(CLASP_ERR_NOT_FOUND,
                               "%s/%s_*: no audio folder: `apt-get install "
                               "asterisk-core-sounds-%s-wav`",
                               base, lang, lang);
    if ((size_t)snprintf(out, cap, "%s/%s", base, best) >= cap)
        return clasp_set_error(CLASP_ERR_ARG, "%s/%s: path too long", base, best);
    return CLASP_OK;
}

/* Parses "name: text" lines (BOM, CRLF, ';' comments). */
static clasp_status parse_transcripts(const char *path, const char *lang, named_list *l,
                                      clasp_manifest *m) {
    uint8_t *buf;
    size_t n;
    CLASP_TRY(clasp__read_decompressed(path, (size_t)16 << 20, &buf, &n));
    const char *p = (const char *)buf, *end = p + n;
    if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    clasp_status st = CLASP_OK;
    size_t line_no = 0;
    while (st == CLASP_OK && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line_no++;
        const char *s = p, *e = le;
        p = nl ? nl + 1 : end;
        while (s < e && isspace((unsigned char)*s)) s++;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if (s == e || *s == ';') continue;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        if (!colon || colon == s) {
            char item[64];
            snprintf(item, sizeof item, "%s: line %zu", lang, line_no);
            st = clasp_manifest_skip(m, "bad_line", item, NULL);
            continue;
        }
        const char *ne = colon;
        while (ne > s && isspace((unsigned char)ne[-1])) ne--;
        const char *t = colon + 1;
        while (t < e && isspace((unsigned char)*t)) t++;
        st = list_push(l, s, (size_t)(ne - s), t, (size_t)(e - t));
    }
    free(buf);
    return st;
}

static bool is_nonspeech(const char *t) {
    size_t n = strlen(t);
    return n >= 2 && ((t[0] == '[' && t[n - 1] == ']') || (t[0] == '(' && t[n - 1] == ')'));
}

/* Why sorted transcript i is not speech to keep (NULL: keep it); *detail for the manifest. */
static const char *transcript_skip_reason(const named_list *tr, size_t i, const char **detail) {
    const named *t = &tr->v[i];
    *detail = NULL;
    if (i > 0 && !strcmp(tr->v[i - 1].lower, t->lower)) return "duplicate_name";
    if (!strncmp(t->lower, "silence/", 8)) return "silence";
    if (!t->text[0]) return "empty_transcript";
    if (is_nonspeech(t->text)) {
        *detail = t->text;
        return "nonspeech";
    }
    size_t off;
    if (clasp_text_validate_utf8(t->text, strlen(t->text), &off) != CLASP_OK) {
        *detail = clasp_last_error();
        return "bad_utf8";
    }
    return NULL;
}

static clasp_status transcript_path(const char *root, const char *lang, char *out, size_t cap) {
    snprintf(out, cap, "%s/usr/share/doc/asterisk-core-sounds-%s/core-sounds-%s.txt.gz", root, lang,
             lang);
    if (!clasp_is_file(out))
        return clasp_set_error(CLASP_ERR_NOT_FOUND,
                               "%s not found: `apt-get install asterisk-core-sounds-%s "
                               "asterisk-core-sounds-%s-wav`",
                               out, lang, lang);
    return CLASP_OK;
}

/* The sample key of transcript `name`: "LANG/name" with '.' replaced by '_'. */
static void sample_key(const char *lang, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", lang, name);
    for (char *c = out; *c; c++)
        if (*c == '.') *c = '_';
}

clasp_status clasp__asterisk_transcripts(const char *root, const char *lang, clasp_manifest *m,
                                         clasp__transcripts *out) {
    char tpath[4096];
    CLASP_TRY(transcript_path(root, lang, tpath, sizeof tpath));
    named_list tr = {0};
    clasp_manifest scratch;
    clasp_manifest *mm = m;
    if (!mm) {
        CLASP_TRY(clasp_manifest_init(&scratch, "scratch"));
        mm = &scratch;
    }
    clasp_status st = parse_transcripts(tpath, lang, &tr, mm);
    if (st == CLASP_OK) qsort(tr.v, tr.n, sizeof *tr.v, cmp_named);
    for (size_t i = 0; st == CLASP_OK && i < tr.n; i++) {
        char item[600], key[600];
        snprintf(item, sizeof item, "%s/%s", lang, tr.v[i].name);
        const char *detail;
        const char *why = transcript_skip_reason(&tr, i, &detail);
        if (why) {
            st = clasp_manifest_skip(mm, why, item, detail);
            continue;
        }
        sample_key(lang, tr.v[i].name, key, sizeof key);
        st = clasp__transcripts_push(out, key, tr.v[i].text, NULL);
    }
    list_free(&tr);
    if (!m) clasp_manifest_free(&scratch);
    return st;
}

static clasp_status build_lang(const clasp_asterisk_options *o, const char *root, const char *lang,
                               clasp_split_writers *sw, clasp_manifest *m) {
    char tpath[4096], adir[4096];
    CLASP_TRY(transcript_path(root, lang, tpath, sizeof tpath));
    CLASP_TRY(find_audio_dir(root, lang, adir, sizeof adir));
    named_list tr = {0}, au = {0};
    clasp_status st = parse_transcripts(tpath, lang, &tr, m);
    if (st == CLASP_OK) st = walk_wavs(adir, "", 0, &au);
    if (st != CLASP_OK) goto done;
    qsort(tr.v, tr.n, sizeof *tr.v, cmp_named);
    qsort(au.v, au.n, sizeof *au.v, cmp_named);
    const char *voice = strrchr(adir, '/') + 1;
    size_t written = 0;
    for (size_t i = 0; st == CLASP_OK && i < tr.n; i++) {
        named *t = &tr.v[i];
        char item[600], key[600];
        snprintf(item, sizeof item, "%s/%s", lang, t->name);
        named *a = bsearch(t, au.v, au.n, sizeof *au.v, cmp_named);
        if (a) a->used = 1;
        const char *detail;
        const char *why = transcript_skip_reason(&tr, i, &detail);
        if (why) {
            st = clasp_manifest_skip(m, why, item, detail);
            continue;
        }
        if (!a) {
            st = clasp_manifest_skip(m, "no_audio", item, NULL);
            continue;
        }
        if (o->shards.limit && written >= o->shards.limit) continue;
        char wpath[8400];
        snprintf(wpath, sizeof wpath, "%s/%s", adir, a->text);
        char *wav;
        size_t wn;
        clasp_status rs = clasp_read_file(wpath, MAX_WAV, &wav, &wn);
        if (rs == CLASP_ERR_NOMEM) {
            st = rs;
            break;
        }
        if (rs != CLASP_OK) {
            st = clasp_manifest_skip(m, "bad_audio", item, clasp_last_error());
            continue;
        }
        clasp_audio_info info;
        clasp_audio_skip askip;
        askip = CLASP_AUDIO_EMPTY;
        if (wn == 0 || clasp_audio_probe(wav, wn, &info, &askip) != CLASP_OK) {
            free(wav);
            bool empty = askip == CLASP_AUDIO_EMPTY;
            st = clasp_manifest_skip(m, empty ? "empty_audio" : "bad_audio", item,
                                     empty ? NULL : clasp_last_error());
            continue;
        }
        if (info.source_frames == 0) {
            free(wav);
            st = clasp_manifest_skip(m, "empty_audio", item, NULL);
            continue;
        }
        sample_key(lang, t->name, key, sizeof key);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "lang", lang);
        cJSON_AddStringToObject(j, "name", t->name);
        cJSON_AddStringToObject(j, "voice", voice);
        cJSON_AddStringToObject(j, "licence", licence_of(lang));
        st = clasp_split_writers_add_speech(sw, key, key, item, j, t->text, wav, wn, &written);
        free(wav);
    }
    for (size_t i = 0; st == CLASP_OK && i < au.n; i++) {
        if (au.v[i].used) continue;
        char item[600];
        snprintf(item, sizeof item, "%s/%s", lang, au.v[i].name);
        st = clasp_manifest_skip(m, "no_transcript", item, NULL);
    }
    if (o->shards.progress)
        fprintf(stderr, "asterisk %s: %zu samples from %s\n", lang, written, voice);
done:
    list_free(&tr);
    list_free(&au);
    return st;
}

clasp_status clasp_asterisk_build(const clasp_asterisk_options *o, clasp_manifest *m) {
    if (!o || !o->shards.out_dir || !m)
        return clasp_set_error(CLASP_ERR_ARG, "asterisk: NULL argument");
    CLASP_TRY(clasp_split_check_percent("asterisk", o->val_percent));
    const char *root = o->src_root && strcmp(o->src_root, "/") ? o->src_root : "";
    const char *langs = o->langs ? o->langs : "en,es,fr,it,ru";
    CLASP_TRY(clasp_manifest_init(m, "asterisk"));
    cJSON *opt = clasp_manifest_options(m);
    cJSON_AddStringToObject(opt, "langs", langs);
    clasp_split_options(opt, o->val_percent, "xxh64(key, 0) % 100 < val_percent -> validation",
                        &o->shards);
    static const char *const exts[] = {"json", "txt", "wav"};
    clasp_status st = clasp_manifest_set_fields(m, exts, 3);
    clasp_split_writers sw = {0};
    if (st == CLASP_OK) st = clasp_split_writers_open(&sw, m, &o->shards, o->val_percent);
    char lang[16];
    for (const char *p = langs; st == CLASP_OK && *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == 0 || n >= sizeof lang) {
            st = clasp_set_error(CLASP_ERR_ARG, "asterisk: bad language list '%s'", langs);
            break;
        }
        memcpy(lang, p, n);
        lang[n] = 0;
        for (char *q = lang; *q; q++)
            if (!islower((unsigned char)*q))
                st = clasp_set_error(CLASP_ERR_ARG,
                                     "asterisk: bad "
                                     "language '%s'",
                                     lang);
        if (st == CLASP_OK) st = build_lang(o, root, lang, &sw, m);
        if (st == CLASP_OK) {
            char pkg[64];
            snprintf(pkg, sizeof pkg, "asterisk-core-sounds-%s-wav", lang);
            st = clasp_manifest_add_package(m, pkg, licence_of(lang));
            snprintf(pkg, sizeof pkg, "asterisk-core-sounds-%s", lang);
            if (st == CLASP_OK) st = clasp_manifest_add_package(m, pkg, licence_of(lang));
        }
        p = c ? c + 1 : p + n;
    }
    if (st == CLASP_OK) st = clasp_split_writers_finish(&sw, o->shards.out_dir);
    clasp_split_writers_free(&sw);
    if (st != CLASP_OK) clasp_manifest_free(m);
    return st;
}
