/* test_datasets_espeak.c: the espeak-ng builder with the real espeak-ng (skipped when it is not
 * installed) on two short transcripts from a KEY<TAB>TEXT file and a fake Asterisk tree: keys,
 * fields, 22.05 kHz audio, split by transcript (every voice in one split), variant draw,
 * skip reasons, option errors, byte-identical rebuild and the Python tarfile check. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "datasets/espeak.h"
#include "modalities/audio.h"
#include "fixtures.h"

static bool have_espeak(void) {
    return system("espeak-ng --version >/dev/null 2>&1") == 0;
}

static void mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

typedef struct member {
    char name[512];
    char *data;
    size_t n;
    char split;
} member;

/* All members of all shards of both splits (split 't' or 'v'). */
static size_t read_all(const char *dir, member *mv, size_t cap) {
    size_t k = 0;
    const char *splits[] = {"train", "validation"};
    for (int sp = 0; sp < 2; sp++)
        for (int s = 0;; s++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s-%06d.tar", dir, splits[sp], s);
            if (access(path, R_OK) != 0) break;
            struct archive *a = archive_read_new();
            archive_read_support_format_tar(a);
            cr_assert_eq(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
            struct archive_entry *e;
            while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
                cr_assert_lt(k, cap);
                member *m = &mv[k++];
                snprintf(m->name, sizeof m->name, "%s", archive_entry_pathname(e));
                m->n = (size_t)archive_entry_size(e);
                m->data = malloc(m->n + 1);
                cr_assert_eq(archive_read_data(a, m->data, m->n), (la_ssize_t)m->n);
                m->data[m->n] = 0;
                m->split = splits[sp][0];
            }
            archive_read_free(a);
        }
    return k;
}

static const member *find(const member *mv, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(mv[i].name, name)) return &mv[i];
    return NULL;
}

static int reason(const cJSON *man, const char *r) {
    const cJSON *c = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(man, "skipped"), "by_reason"), r);
    return c ? c->valueint : 0;
}

static bool same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    cr_assert_eq(clasp_read_file(a, (size_t)1 << 30, &x, &nx), CLASP_OK);
    cr_assert_eq(clasp_read_file(b, (size_t)1 << 30, &y, &ny), CLASP_OK);
    bool same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* A fake root with an English Asterisk transcript file (no audio needed). */
static void fake_asterisk(const char *root) {
    char doc[900], p[1000];
    snprintf(doc, sizeof doc, "%s/usr/share/doc/asterisk-core-sounds-en", root);
    mkdirs(doc);
    snprintf(p, sizeof p, "%s/core-sounds-en.txt.gz", doc);
    const char *t = "\xEF\xBB\xBF; prompts\r\nvm-hi.x: Hi.\r\nbeep: [beep]\r\nsilence/1: (quiet)\n";
    cr_assert_eq(clasp_write_file_atomic(p, t, strlen(t)), CLASP_OK);
}

Test(datasets_espeak, file_and_asterisk_sources) {
    if (!have_espeak()) cr_skip_test("espeak-ng not installed (apt-get install espeak-ng)");
    char base[512], list[700], out[700], out2[700], p[900];
    clasp_test_tmpdir("dsesp_src", base, sizeof base);
    snprintf(list, sizeof list, "%s/list.tsv", base);
    snprintf(out, sizeof out, "%s/out", base);
    snprintf(out2, sizeof out2, "%s/out2", base);
    const char *tsv = "# key<TAB>text\n"
                      "one.a\tGood morning.\r\n"
                      "no tab here\n"
                      "empty\t \n"
                      "\n";
    cr_assert_eq(clasp_write_file_atomic(list, tsv, strlen(tsv)), CLASP_OK);
    fake_asterisk(base);

    char from[800];
    snprintf(from, sizeof from, "asterisk,%s", list);
    clasp_espeak_options o = clasp_espeak_default_options();
    o.from = from;
    o.src_root = base;
    o.out_dir = out;
    o.voices = "en-us,en-gb";
    o.speeds = "170";
    o.pitches = "40";
    o.variants = 0;
    o.val_percent = 50;
    o.maxcount = 3;
    clasp_manifest m;
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);

    snprintf(p, sizeof p, "%s/manifest.json", out);
    cJSON *man;
    cr_assert_eq(clasp_json_load(p, &man), CLASP_OK);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(man, "total"), "samples")->valueint, 4);
    cr_assert_eq(reason(man, "bad_line"), 1);
    cr_assert_eq(reason(man, "empty_transcript"), 1);
    cr_assert_eq(reason(man, "nonspeech"), 1);
    cr_assert_eq(reason(man, "silence"), 1);
    cJSON_Delete(man);

    static member mv[64];
    size_t n = read_all(out, mv, 64);
    cr_assert_eq(n, 12);
    const char *src_keys[] = {"asterisk/en/vm-hi_x", "file/one_a"};
    const char *split_ids[] = {"en/vm-hi_x", "one_a"};
    const char *texts[] = {"Hi.", "Good morning."};
    for (int t = 0; t < 2; t++) {
        char want = clasp_hash_str(split_ids[t], 0) % 100 < 50 ? 'v' : 't';
        const char *voices[] = {"en-us", "en-gb"};
        for (int v = 0; v < 2; v++) {
            char k[600];
            snprintf(k, sizeof k, "%s/%s_s170_p40.wav", src_keys[t], voices[v]);
            const member *w = find(mv, n, k);
            cr_assert_not_null(w, "%s missing", k);
            cr_assert_eq(w->split, want, "%s in the wrong split", k); /* voices never split */
            clasp_audio_info info;
            clasp_audio_skip why;
            cr_assert_eq(clasp_audio_probe(w->data, w->n, &info, &why), CLASP_OK);
            cr_assert_eq(info.source_rate, 22050);
            cr_assert_eq(info.channels, 1);
            cr_assert_gt(info.source_frames, 2000);
            snprintf(k, sizeof k, "%s/%s_s170_p40.txt", src_keys[t], voices[v]);
            cr_assert_str_eq(find(mv, n, k)->data, texts[t]);
            snprintf(k, sizeof k, "%s/%s_s170_p40.json", src_keys[t], voices[v]);
            cJSON *j = cJSON_Parse(find(mv, n, k)->data);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "voice")->valuestring, voices[v]);
            cr_assert_eq(cJSON_GetObjectItem(j, "speed")->valueint, 170);
            cr_assert_eq(cJSON_GetObjectItem(j, "pitch")->valueint, 40);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "language")->valuestring, "en");
            cr_assert_str_eq(cJSON_GetObjectItem(j, "source_key")->valuestring, src_keys[t]);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "split_id")->valuestring, split_ids[t]);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "source")->valuestring,
                             t ? "file" : "asterisk");
            cJSON_Delete(j);
        }
    }
    /* Two voices are two different recordings. */
    const member *a = find(mv, n, "file/one_a/en-us_s170_p40.wav");
    const member *b = find(mv, n, "file/one_a/en-gb_s170_p40.wav");
    cr_assert(a->n != b->n || memcmp(a->data, b->data, a->n));
    for (size_t i = 0; i < n; i++) free(mv[i].data);

    char script[700], cmd[2000];
    clasp_test_ref_path("read_shards.py", script, sizeof script);
    if (access("/usr/bin/python3", X_OK) == 0) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s --espeak >/dev/null", script, out);
        int rc = system(cmd);
        cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "read_shards.py rc %d", rc);
    }

    /* Rebuild: espeak-ng output and therefore every shard byte is the same. */
    o.out_dir = out2;
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    const cJSON *sp;
    int n_sh = 0;
    cJSON_ArrayForEach(sp, m.splits) {
        const cJSON *sh;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItem(sp, "shards")) {
            char x[1100], y[1100];
            snprintf(x, sizeof x, "%s/%s", out, cJSON_GetObjectItem(sh, "name")->valuestring);
            snprintf(y, sizeof y, "%s/%s", out2, cJSON_GetObjectItem(sh, "name")->valuestring);
            cr_assert(same_file(x, y), "%s differs on rebuild", y);
            n_sh++;
        }
    }
    cr_assert_geq(n_sh, 2);
    clasp_manifest_free(&m);
    char x[1100], y[1100];
    snprintf(x, sizeof x, "%s/manifest.json", out);
    snprintf(y, sizeof y, "%s/manifest.json", out2);
    cr_assert(same_file(x, y));
}

Test(datasets_espeak, variants_drawn_per_transcript) {
    if (!have_espeak()) cr_skip_test("espeak-ng not installed (apt-get install espeak-ng)");
    char base[512], list[700], out[700];
    clasp_test_tmpdir("dsesp_var", base, sizeof base);
    snprintf(list, sizeof list, "%s/list.tsv", base);
    snprintf(out, sizeof out, "%s/out", base);
    const char *tsv = "k1\tYes.\nk2\tNo.\n";
    cr_assert_eq(clasp_write_file_atomic(list, tsv, strlen(tsv)), CLASP_OK);
    clasp_espeak_options o = clasp_espeak_default_options();
    o.from = list;
    o.out_dir = out;
    o.voices = "en-us";
    o.speeds = "120,200";
    o.pitches = "20,80";
    o.variants = 2;
    clasp_manifest m;
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);
    static member mv[64];
    size_t n = read_all(out, mv, 64);
    cr_assert_eq(n, 12); /* 2 transcripts x 2 cells x 3 fields */
    for (int t = 1; t <= 2; t++) {
        int cells = 0;
        const char *sp[] = {"120", "200"}, *pi[] = {"20", "80"};
        for (int s = 0; s < 2; s++)
            for (int q = 0; q < 2; q++) {
                char k[200];
                snprintf(k, sizeof k, "file/k%d/en-us_s%s_p%s.wav", t, sp[s], pi[q]);
                if (find(mv, n, k)) cells++;
            }
        cr_assert_eq(cells, 2, "transcript k%d has %d cells", t, cells);
    }
    for (size_t i = 0; i < n; i++) free(mv[i].data);
}

Test(datasets_espeak, option_errors) {
    char base[512], list[700], out[700];
    clasp_test_tmpdir("dsesp_err", base, sizeof base);
    snprintf(list, sizeof list, "%s/list.tsv", base);
    snprintf(out, sizeof out, "%s/out", base);
    cr_assert_eq(clasp_write_file_atomic(list, "k\tHi.\n", 5), CLASP_OK);
    clasp_espeak_options o = clasp_espeak_default_options();
    o.from = list;
    o.out_dir = out;
    clasp_manifest m;
    const char *bad_voices[] = {"en;rm -rf", "-v", "en,en", ""};
    for (int i = 0; i < 4; i++) {
        o.voices = bad_voices[i];
        cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_ERR_ARG, "%s", bad_voices[i]);
    }
    o.voices = "en-us";
    o.speeds = "20";
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_ERR_ARG);
    o.speeds = "175";
    o.pitches = "1x";
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_ERR_ARG);
    o.pitches = "50";
    o.espeak = "/nonexistent/espeak-ng";
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "apt-get install espeak-ng"), "%s", clasp_last_error());
    o.espeak = NULL;
    o.from = "/nonexistent/list.tsv";
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_ERR_NOT_FOUND);
    if (!have_espeak()) return;
    o.from = list;
    o.voices = "en-us,xx-nosuchvoice";
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "xx-nosuchvoice"), "%s", clasp_last_error());
}

Test(datasets_espeak, real_asterisk_transcripts) {
    if (!have_espeak()) cr_skip_test("espeak-ng not installed");
    if (access("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", R_OK) != 0)
        cr_skip_test("asterisk-core-sounds-en not installed");
    char out[512];
    clasp_test_tmpdir("dsesp_real", out, sizeof out);
    clasp_espeak_options o = clasp_espeak_default_options();
    o.from = "asterisk";
    o.out_dir = out;
    o.limit = 3;
    o.variants = 2;
    clasp_manifest m;
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    cJSON *sum = clasp_manifest_summary(&m, out);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "total"), "samples")->valueint, 6);
    cJSON_Delete(sum);
    cr_assert_gt(m.n_skipped, 0); /* beeps and silence */
    clasp_manifest_free(&m);
}
