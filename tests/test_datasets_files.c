/* test_datasets_files.c: the folder and TSV/CSV builders: pairing by basename, skip reasons
 * (missing file, unreadable image, invalid UTF-8, unpaired, URLs), manifest listing, CLI. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/json.h"
#include "datasets/files.h"
#include "fixtures.h"

static void put_str(const char *dir, const char *name, const char *s) {
    cr_assert(fx_put(dir, name, s, strlen(s)), "%s/%s", dir, name);
}

/* A w x h binary PPM (P6) with a gradient. */
static void put_ppm(const char *dir, const char *name, int w, int h) {
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", w, h);
    size_t n = (size_t)k + (size_t)w * h * 3;
    unsigned char *buf = malloc(n);
    memcpy(buf, hdr, (size_t)k);
    for (int i = 0; i < w * h * 3; i++) buf[k + i] = (unsigned char)(i * 7);
    cr_assert(fx_put(dir, name, buf, n), "%s/%s", dir, name);
    free(buf);
}

/* A mono 8 kHz 16-bit WAV of `frames` frames (a sawtooth repeating every 800 frames). */
static void put_wav(const char *dir, const char *name, int frames) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    short s[800];
    for (int i = 0; i < 800; i++) s[i] = (short)((i % 40) * 500 - 10000);
    cr_assert(fx_write_wav16(p, 8000, s, 800, frames), "%s", p);
}

static void mk(const char *base, const char *sub, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", base, sub);
    mkdir(out, 0755);
}

/* Lists "key.ext" member names of all shards PREFIX-*.tar in order, joined by '\n'. */
static long list_all(const char *dir, const char *prefix, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    fx_entry *e = NULL;
    long n = fx_read_shards(dir, prefix, &e, 0);
    for (long i = 0; i < n; i++) k += (size_t)snprintf(out + k, cap - k, "%s\n", e[i].name);
    fx_entries_free(e, n);
    return n;
}

static bool manifest_lists(const char *dir, const char *item_substr, const char *reason) {
    cJSON *j = fx_manifest_load(dir);
    cr_assert_not_null(j);
    const cJSON *it;
    bool found = false;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(cJSON_GetObjectItem(j, "skipped"), "items")) {
        if (strstr(cJSON_GetObjectItem(it, "item")->valuestring, item_substr) &&
            !strcmp(cJSON_GetObjectItem(it, "reason")->valuestring, reason))
            found = true;
    }
    cJSON_Delete(j);
    return found;
}

Test(datasets_files, folder_pairs_by_basename_and_skips_bad_items) {
    char base[512], src[600], out[600], sub[700];
    clasp_test_tmpdir("dsf_folder", base, sizeof base);
    mk(base, "src", src, sizeof src);
    snprintf(out, sizeof out, "%s/out", base);
    mk(src, "d.v1", sub, sizeof sub);
    put_ppm(src, "a.ppm", 8, 6);
    put_str(src, "a.txt", "a red square");
    put_str(src, "a.json", "{\"x\": 1}");
    put_ppm(sub, "b.ppm", 4, 4);
    put_str(sub, "b.TXT", "caf\xc3\xa9 au lait");
    put_wav(src, "c.wav", 4000);
    put_str(src, "c.txt", "a beep");
    put_str(src, "bad.jpg", "this is not a jpeg");
    put_str(src, "bad.txt", "caption of a broken image");
    put_ppm(src, "u8.ppm", 3, 3);
    put_str(src, "u8.txt", "bad \xff\xfe utf-8");
    put_ppm(src, "lonely.ppm", 3, 3);
    put_str(src, "empty.txt", "   ");
    put_ppm(src, "empty.ppm", 2, 2);
    put_str(src, "notes.md", "ignored");
    put_str(src, ".hidden.txt", "ignored");

    clasp_files_options o = clasp_files_default_options();
    o.source = src;
    o.shards.out_dir = out;
    o.prefix = "f";
    o.shards.maxcount = 2;
    clasp_manifest m;
    cr_assert_eq(clasp_folder_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(m.n_skipped, 5, "skipped %zu", m.n_skipped);
    clasp_manifest_free(&m);
    char names[4096];
    cr_assert_eq(list_all(out, "f", names, sizeof names), 7, "%s", names);
    cr_assert_str_eq(names, "a.json\na.ppm\na.txt\nc.txt\nc.wav\nd.v1/b.ppm\nd.v1/b.txt\n");
    cJSON *man = fx_manifest_load(out);
    cr_assert(fx_manifest_reasons(man, "bad_image", 1, "bad_utf8", 1, "unpaired", 1,
                                  "empty_caption", 1, "unknown_type", 1, NULL));
    cJSON_Delete(man);
    cr_assert(manifest_lists(out, "bad.jpg", "bad_image"));
    cr_assert(manifest_lists(out, "u8.txt", "bad_utf8"));
    cr_assert(manifest_lists(out, "lonely", "unpaired"));
    cr_assert(manifest_lists(out, "notes.md", "unknown_type"));
}

Test(datasets_files, tsv_and_csv_rows_with_skips) {
    char base[512], out[600], out2[600];
    fx_scratch("dsf_tsv", base, out, "out", out2, "out2", NULL);
    put_ppm(base, "x.ppm", 5, 5);
    put_ppm(base, "y.PPM", 6, 5);
    put_str(base, "broken.png", "\x89PNG\r\n\x1a\nnot really");
    put_wav(base, "s.wav", 800);
    char abs_line[1024];
    snprintf(abs_line, sizeof abs_line, "%s/s.wav\ta sound\t3\n", base);
    char tsv[4096];
    snprintf(tsv, sizeof tsv,
             "\xEF\xBB\xBFpath\ttext\textra\n"
             "x.ppm\ta small picture\t1\n"
             "missing.ppm\tgone\t2\n"
             "%s"
             "broken.png\tbroken\t4\n"
             "y.PPM\tbad \xc3\x28 utf8\t5\n"
             "http://example.invalid/a.jpg\ta url\t6\n"
             "short-row\n"
             "y.PPM\tcaption ok\r\n",
             abs_line);
    put_str(base, "t.tsv", tsv);
    char tpath[700];
    snprintf(tpath, sizeof tpath, "%s/t.tsv", base);
    clasp_files_options o = clasp_files_default_options();
    o.source = tpath;
    o.shards.out_dir = out;
    o.url_col = "path";
    o.caption_col = "text";
    clasp_manifest m;
    cr_assert_eq(clasp_tsv_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);
    char names[4096];
    cr_assert_eq(list_all(out, "shard", names, sizeof names), 6, "%s", names);
    cr_assert_str_eq(names, "000000000.ppm\n000000000.txt\n000000002.txt\n000000002.wav\n"
                            "000000007.ppm\n000000007.txt\n");
    cJSON *man = fx_manifest_load(out);
    cr_assert(fx_manifest_reasons(man, "missing_file", 1, "bad_image", 1, "bad_utf8", 1,
                                  "not_local", 1, "bad_row", 1, NULL));
    cJSON_Delete(man);
    cr_assert(manifest_lists(out, "missing.ppm", "missing_file"));

    /* Missing column: a clear error naming the file and the column. */
    o.caption_col = "caption";
    cr_assert_eq(clasp_tsv_build(&o, &m), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "t.tsv") && strstr(clasp_last_error(), "caption"), "%s",
              clasp_last_error());

    /* CSV with quoted captions holding commas, quotes and a newline. */
    put_str(base, "t.csv",
            "url,caption\n"
            "x.ppm,\"a picture, with \"\"quotes\"\"\nand a newline\"\n"
            "y.PPM,plain\n");
    snprintf(tpath, sizeof tpath, "%s/t.csv", base);
    o = clasp_files_default_options();
    o.source = tpath;
    o.shards.out_dir = out2;
    cr_assert_eq(clasp_tsv_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(m.n_skipped, 0);
    clasp_manifest_free(&m);
    char p[1024];
    snprintf(p, sizeof p, "%s/shard-000000.tar", out2);
    fx_entry *e = NULL;
    long n = fx_read_tar(p, &e, 0);
    cr_assert_geq(n, 2, "%s", p);
    cr_assert_str_eq(e[1].name, "000000000.txt");
    cr_assert_str_eq(e[1].data, "a picture, with \"quotes\"\nand a newline");
    fx_entries_free(e, n);
}

Test(datasets_files, cli_folder_and_python_check) {
    const char *bin = clasp_test_bin();
    if (!bin || access(bin, X_OK) != 0) cr_skip_test("clasp binary not found");
    char base[512], src[600];
    clasp_test_tmpdir("dsf_cli", base, sizeof base);
    mk(base, "src", src, sizeof src);
    for (int i = 0; i < 5; i++) {
        char n[32];
        snprintf(n, sizeof n, "img%d.ppm", i);
        put_ppm(src, n, 4 + i, 4);
        snprintf(n, sizeof n, "img%d.txt", i);
        put_str(src, n, "a caption");
    }
    int rc = fx_clasp(NULL, "shards build folder %s -o %s/out --maxcount 2 2>/dev/null", src, base);
    cr_assert_eq(rc, 0, "rc %d", rc);
    rc = fx_clasp(NULL, "shards build folder -o %s/out 2>/dev/null", base);
    cr_assert_eq(rc, 2, "rc %d", rc);
    rc = fx_clasp(NULL, "shards build folder %s/nope -o %s/out2 2>/dev/null", base, base);
    cr_assert_eq(rc, 1, "rc %d", rc);
    char args[700];
    snprintf(args, sizeof args, "%s/out", base);
    rc = fx_read_shards_py(args, "--fields ppm,txt");
    if (rc == FX_NO_PYTHON) cr_skip_test("no python3");
    cr_assert_eq(rc, 0, "read_shards.py rc %d", rc);
}
