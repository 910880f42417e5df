/* test_datasets_espeak.c: the espeak-ng builder with the real espeak-ng (skipped when it is not
 * installed) on two short transcripts from a KEY<TAB>TEXT file and a fake Asterisk tree: keys,
 * fields, 22.05 kHz audio, split by transcript (every voice in one split), variant draw,
 * skip reasons, option errors, byte-identical rebuild and the Python tarfile check. */
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

/* All members of all shards of both splits (prefix "train" or "validation"). */
static long read_all(const char *dir, fx_entry **mv) {
    *mv = NULL;
    long n = fx_read_shards(dir, "validation", mv, fx_read_shards(dir, "train", mv, 0));
    cr_assert_geq(n, 0, "%s", dir);
    return n;
}

/* Options reading `from` into out with the voice x speed x pitch grid and `variants` draws. */
static clasp_espeak_options grid_(const char *from, const char *out, const char *voices,
                                  const char *speeds, const char *pitches, int variants) {
    clasp_espeak_options o = clasp_espeak_default_options();
    o.from = from, o.shards.out_dir = out;
    o.voices = voices, o.speeds = speeds, o.pitches = pitches, o.variants = variants;
    return o;
}

/* A fake root with an English Asterisk transcript file (no audio needed). */
static void fake_asterisk(const char *root) {
    char doc[900], p[1000];
    snprintf(doc, sizeof doc, "%s/usr/share/doc/asterisk-core-sounds-en", root);
    cr_assert_eq(clasp_mkdir_p(doc), CLASP_OK);
    snprintf(p, sizeof p, "%s/core-sounds-en.txt.gz", doc);
    const char *t = "\xEF\xBB\xBF; prompts\r\nvm-hi.x: Hi.\r\nbeep: [beep]\r\nsilence/1: (quiet)\n";
    cr_assert_eq(clasp_write_file_atomic(p, t, strlen(t)), CLASP_OK);
}

Test(datasets_espeak, file_and_asterisk_sources) {
    if (!have_espeak()) cr_skip_test("espeak-ng not installed (apt-get install espeak-ng)");
    char base[512], list[700], out[700], out2[700];
    clasp_manifest m;
    cJSON *man;
    fx_scratch("dsesp_src", base, list, "list.tsv", out, "out", out2, "out2", NULL);
    const char *tsv = "# key<TAB>text\n"
                      "one.a\tGood morning.\r\n"
                      "no tab here\n"
                      "empty\t \n"
                      "\n";
    cr_assert_eq(clasp_write_file_atomic(list, tsv, strlen(tsv)), CLASP_OK);
    fake_asterisk(base);

    char from[800];
    snprintf(from, sizeof from, "asterisk,%s", list);
    clasp_espeak_options o = grid_(from, out, "en-us,en-gb", "170", "40", 0);
    o.src_root = base;
    o.val_percent = 50;
    o.shards.maxcount = 3;
    cr_assert(fx_built(clasp_espeak_build(&o, &m), &m, o.shards.out_dir, &man));
    cr_assert(fx_manifest_reasons(man, "bad_line", 1, "empty_transcript", 1, "nonspeech", 1,
                                  "silence", 1, NULL));
    cr_assert_eq(fx_manifest_samples(man, NULL), 4);
    cJSON_Delete(man);

    fx_entry *mv;
    long n = read_all(out, &mv);
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
            const fx_entry *w = fx_find_entry(mv, n, k);
            cr_assert_not_null(w, "%s missing", k);
            cr_assert_eq(w->prefix[0], want, "%s in the wrong split", k); /* voices never split */
            clasp_audio_info info;
            clasp_audio_skip why;
            cr_assert_eq(clasp_audio_probe(w->data, w->n, &info, &why), CLASP_OK);
            cr_assert_eq(info.source_rate, 22050);
            cr_assert_eq(info.channels, 1);
            cr_assert_gt(info.source_frames, 2000);
            snprintf(k, sizeof k, "%s/%s_s170_p40.txt", src_keys[t], voices[v]);
            cr_assert_str_eq(fx_find_entry(mv, n, k)->data, texts[t]);
            snprintf(k, sizeof k, "%s/%s_s170_p40.json", src_keys[t], voices[v]);
            cJSON *j = cJSON_Parse(fx_find_entry(mv, n, k)->data);
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
    const fx_entry *a = fx_find_entry(mv, n, "file/one_a/en-us_s170_p40.wav");
    const fx_entry *b = fx_find_entry(mv, n, "file/one_a/en-gb_s170_p40.wav");
    cr_assert(a->n != b->n || memcmp(a->data, b->data, a->n));
    fx_entries_free(mv, n);

    int rc = fx_read_shards_py(out, "--espeak >/dev/null");
    cr_assert(rc == 0 || rc == FX_NO_PYTHON, "read_shards.py rc %d", rc);

    /* Rebuild: espeak-ng output and therefore every shard byte is the same. */
    o.shards.out_dir = out2;
    cr_assert(fx_built(clasp_espeak_build(&o, &m), &m, NULL, NULL));
    cr_assert_geq(fx_same_build(out, out2), 2, "the rebuild is not byte-identical");
}

Test(datasets_espeak, variants_drawn_per_transcript) {
    if (!have_espeak()) cr_skip_test("espeak-ng not installed (apt-get install espeak-ng)");
    char base[512], list[700], out[700];
    fx_scratch("dsesp_var", base, list, "list.tsv", out, "out", NULL);
    const char *tsv = "k1\tYes.\nk2\tNo.\n";
    cr_assert_eq(clasp_write_file_atomic(list, tsv, strlen(tsv)), CLASP_OK);
    clasp_espeak_options o = grid_(list, out, "en-us", "120,200", "20,80", 2);
    clasp_manifest m;
    cr_assert(fx_built(clasp_espeak_build(&o, &m), &m, NULL, NULL));
    fx_entry *mv;
    long n = read_all(out, &mv);
    cr_assert_eq(n, 12); /* 2 transcripts x 2 cells x 3 fields */
    for (int t = 1; t <= 2; t++) {
        int cells = 0;
        const char *sp[] = {"120", "200"}, *pi[] = {"20", "80"};
        for (int s = 0; s < 2; s++)
            for (int q = 0; q < 2; q++) {
                char k[200];
                snprintf(k, sizeof k, "file/k%d/en-us_s%s_p%s.wav", t, sp[s], pi[q]);
                if (fx_find_entry(mv, n, k)) cells++;
            }
        cr_assert_eq(cells, 2, "transcript k%d has %d cells", t, cells);
    }
    fx_entries_free(mv, n);
}

Test(datasets_espeak, option_errors) {
    char base[512], list[700], out[700];
    fx_scratch("dsesp_err", base, list, "list.tsv", out, "out", NULL);
    cr_assert_eq(clasp_write_file_atomic(list, "k\tHi.\n", 5), CLASP_OK);
    clasp_espeak_options o = clasp_espeak_default_options();
    o.from = list;
    o.shards.out_dir = out;
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
    o.shards.out_dir = out;
    o.shards.limit = 3;
    o.variants = 2;
    clasp_manifest m;
    cr_assert_eq(clasp_espeak_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    cJSON *sum = clasp_manifest_summary(&m, out);
    cr_assert_eq(fx_manifest_samples(sum, NULL), 6);
    cJSON_Delete(sum);
    cr_assert_gt(m.n_skipped, 0); /* beeps and silence */
    clasp_manifest_free(&m);
}
