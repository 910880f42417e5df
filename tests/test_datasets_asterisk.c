/* test_datasets_asterisk.c: the Asterisk prompt builder on a fake package tree (BOM, CRLF,
 * case-insensitive names, non-speech, silence, empty transcripts, 0-frame audio, one-sided
 * names, hash split) and, when the Debian packages are installed, on the real prompts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "datasets/asterisk.h"
#include "datasets/espeak.h"
#include "datasets/split.h"
#include "fixtures.h"

/* A mono 8 kHz 16-bit WAV of `frames` frames (a ramp repeating every 100 frames). */
static void wav(const char *dir, const char *name, int frames) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    short s[100] = {0};
    for (int i = 0; i < 100; i++) s[i] = (short)(i * 100);
    cr_assert(fx_write_wav16(p, 8000, s, 100, frames), "%s", p);
}

Test(datasets_asterisk, fake_tree_rules) {
    char base[512], doc[700], snd[700], sub[760], out[700], p[800];
    fx_scratch("dsa_fake", base, doc, "usr/share/doc/asterisk-core-sounds-xx", snd,
               "usr/share/asterisk/sounds/xx_YY_f_Test", NULL);
    snprintf(sub, sizeof sub, "%s/digits", snd);
    snprintf(out, sizeof out, "%s/out", base);
    cr_assert_eq(clasp_mkdir_p(doc), CLASP_OK);
    cr_assert_eq(clasp_mkdir_p(sub), CLASP_OK);
    char silence[800];
    snprintf(silence, sizeof silence, "%s/silence", snd);
    cr_assert_eq(clasp_mkdir_p(silence), CLASP_OK);
    /* Transcript written plain: libarchive reads it whether gzip-compressed or not. */
    const char *txt = "\xEF\xBB\xBF; comment\r\n"
                      "\r\n"
                      "hello: Hello there.\r\n"
                      "Digits/One: One.\n"
                      "beep: [a simple beep tone]\n"
                      "silence/1: (1 second of silence)\n"
                      "empty:\n"
                      "zero: Zero frames here.\n"
                      "ghost: No file for me.\n"
                      "v1.5: Version one point five.\n"
                      "no colon line\n";
    snprintf(p, sizeof p, "%s/core-sounds-xx.txt.gz", doc);
    cr_assert_eq(clasp_write_file_atomic(p, txt, strlen(txt)), CLASP_OK);
    wav(snd, "hello.wav", 800);
    wav(sub, "one.WAV", 400);
    wav(snd, "beep.wav", 100);
    wav(silence, "1.wav", 8000);
    wav(snd, "empty.wav", 100);
    wav(snd, "zero.wav", 0);
    wav(snd, "v1.5.wav", 300);
    wav(snd, "orphan.wav", 300);

    clasp_asterisk_options o = clasp_asterisk_default_options();
    o.src_root = base;
    o.shards.out_dir = out;
    o.langs = "xx";
    o.val_percent = 0;
    cJSON *man;
    clasp_manifest m;
    cr_assert(fx_built(clasp_asterisk_build(&o, &m), &m, o.shards.out_dir, &man));
    cr_assert_eq(fx_manifest_samples(man, "train"), 3); /* hello, Digits/One, v1.5 */
    cr_assert(fx_manifest_reasons(man, "nonspeech", 1, "silence", 1, "empty_transcript", 1,
                                  "empty_audio", 1, "no_audio", 1, "no_transcript", 1, "bad_line",
                                  1, NULL));
    cJSON_Delete(man);

    int rc = fx_read_shards_py(out, ">/dev/null");
    cr_assert(rc == 0 || rc == FX_NO_PYTHON, "read_shards.py rc %d", rc);

    /* Hash split: val_percent 100 sends everything to validation. */
    o.val_percent = 100;
    snprintf(out, sizeof out, "%s/out100", base);
    o.shards.out_dir = out;
    cr_assert_eq(clasp_asterisk_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    cJSON *sum = clasp_manifest_summary(&m, out);
    const cJSON *sp = cJSON_GetObjectItem(sum, "splits");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "validation"), "samples")->valueint,
                 3);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "train"), "samples")->valueint, 0);
    cJSON_Delete(sum);
    clasp_manifest_free(&m);

    /* A missing language names both packages. */
    o.langs = "zz";
    cr_assert_eq(clasp_asterisk_build(&o, &m), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "apt-get install asterisk-core-sounds-zz"), "%s",
              clasp_last_error());
}

Test(datasets_asterisk, real_packages) {
    if (access("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", R_OK) != 0 ||
        access("/usr/share/asterisk/sounds/en_US_f_Allison/activated.wav", R_OK) != 0)
        cr_skip_test("asterisk-core-sounds-en(-wav) not installed");
    char out[512];
    clasp_test_tmpdir("dsa_real", out, sizeof out);
    clasp_asterisk_options o = clasp_asterisk_default_options();
    o.shards.out_dir = out;
    o.langs = "en";
    clasp_manifest m;
    cr_assert_eq(clasp_asterisk_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    cJSON *sum = clasp_manifest_summary(&m, out);
    double n = cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "total"), "samples")->valuedouble;
    cr_assert_gt(n, 400);
    const cJSON *val = cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "splits"), "validation");
    double v = cJSON_GetObjectItem(val, "samples")->valuedouble;
    cr_assert(v > 0.03 * n && v < 0.2 * n, "validation share %g of %g", v, n);
    cJSON_Delete(sum);
    cr_assert_gt(m.n_skipped, 0); /* beeps and silence are always there */
    clasp_manifest_free(&m);
}

/* One split rule: the asterisk builder and espeak speaking the asterisk transcripts put each
 * prompt in the same split, the one datasets/split.h gives its key. */
Test(datasets_asterisk, espeak_speaks_each_prompt_into_the_same_split) {
    if (system("espeak-ng --version >/dev/null 2>&1") != 0)
        cr_skip_test("espeak-ng not installed (apt-get install espeak-ng)");
    char base[512], doc[700], snd[700], sub[760], out[700], spk[700], p[800];
    clasp_test_tmpdir("dsa_espeak_split", base, sizeof base);
    snprintf(doc, sizeof doc, "%s/usr/share/doc/asterisk-core-sounds-en", base);
    snprintf(snd, sizeof snd, "%s/usr/share/asterisk/sounds/en_US_f_Test", base);
    snprintf(sub, sizeof sub, "%s/digits", snd);
    snprintf(out, sizeof out, "%s/out", base);
    snprintf(spk, sizeof spk, "%s/spk", base);
    cr_assert_eq(clasp_mkdir_p(doc), CLASP_OK);
    cr_assert_eq(clasp_mkdir_p(sub), CLASP_OK);
    const char *names[] = {"hello", "vm-intro", "goodbye", "digits/1", "agent-pass", "welcome"};
    const char *txt = "hello: Hello.\nvm-intro: Intro.\ngoodbye: Goodbye.\ndigits/1: One.\n"
                      "agent-pass: Password.\nwelcome: Welcome.\n";
    snprintf(p, sizeof p, "%s/core-sounds-en.txt.gz", doc);
    cr_assert_eq(clasp_write_file_atomic(p, txt, strlen(txt)), CLASP_OK);
    for (int i = 0; i < 6; i++) {
        char f[64];
        snprintf(f, sizeof f, "%s.wav", names[i]);
        wav(snd, f, 200);
    }
    clasp_asterisk_options o = clasp_asterisk_default_options();
    o.src_root = base;
    o.shards.out_dir = out;
    o.langs = "en";
    o.val_percent = 50;
    clasp_manifest m;
    cr_assert_eq(clasp_asterisk_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);
    clasp_espeak_options e = fx_espeak_once("asterisk", spk, 50);
    e.src_root = base;
    cr_assert_eq(clasp_espeak_build(&e, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);

    int n_val = 0;
    for (int i = 0; i < 6; i++) {
        char key[64], in_val[1000], in_tr[1000], sp_val[1000], sp_tr[1000];
        snprintf(key, sizeof key, "en/%s", names[i]);
        snprintf(in_val, sizeof in_val,
                 "tar tf %s/validation-000000.tar 2>/dev/null | grep -qx '%s.wav'", out, key);
        snprintf(in_tr, sizeof in_tr, "tar tf %s/train-000000.tar 2>/dev/null | grep -qx '%s.wav'",
                 out, key);
        snprintf(sp_val, sizeof sp_val,
                 "tar tf %s/validation-000000.tar 2>/dev/null | grep -q '^asterisk/%s/.*\\.wav$'",
                 spk, key);
        snprintf(sp_tr, sizeof sp_tr,
                 "tar tf %s/train-000000.tar 2>/dev/null | grep -q '^asterisk/%s/.*\\.wav$'", spk,
                 key);
        bool a_val = system(in_val) == 0, e_val = system(sp_val) == 0;
        cr_assert(a_val || system(in_tr) == 0, "%s in no asterisk split", key);
        cr_assert(e_val || system(sp_tr) == 0, "%s in no espeak split", key);
        cr_assert_eq(a_val, e_val, "%s: asterisk %s, espeak %s", key,
                     a_val ? "validation" : "train", e_val ? "validation" : "train");
        cr_assert_eq(a_val, clasp_split_is_validation(key, 50));
        n_val += a_val;
    }
    cr_assert(n_val > 0 && n_val < 6, "both splits used (%d of 6 in validation)", n_val);
}
