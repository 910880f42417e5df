/* test_datasets.c: the shard writer (order, limits, exact sizes, reproducibility, atomic
 * rename), the manifest, the Fashion-MNIST builder and `clasp shards build`, plus an
 * independent check of the shards by Python's tarfile (tests/reference/read_shards.py). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "core/rng.h"
#include "datasets/fmnist.h"
#include "datasets/manifest.h"
#include "datasets/shard_writer.h"
#include "fixtures.h"

#define PY "/usr/bin/python3"

static int have_fmnist(void) {
    return access(CLASP_FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access(CLASP_FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", R_OK) == 0;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Reads a whole file into a malloc'd buffer. */
static char *slurp(const char *path, size_t *n) {
    char *buf = NULL;
    cr_assert_eq(clasp_read_file(path, (size_t)1 << 30, &buf, n), CLASP_OK, "%s",
                 clasp_last_error());
    return buf;
}

/* Member names of a tar, in order, joined by '\n' into out. Also checks every header's
 * mtime/uid/gid/mode. Returns the number of members. (In the "C" locale libarchive warns that a
 * UTF-8 pax path cannot be converted to the locale and still gives the raw UTF-8 bytes: the
 * reader accepts the warning.) */
static int list_members(const char *path, char *out, size_t cap) {
    fx_entry *e = NULL;
    long n = fx_read_tar(path, &e, 0);
    cr_assert_geq(n, 0, "%s", path);
    size_t k = 0;
    out[0] = 0;
    for (long i = 0; i < n; i++) {
        cr_assert_eq(e[i].mtime, 0);
        cr_assert_eq(e[i].uid, 0);
        cr_assert_eq(e[i].gid, 0);
        cr_assert_eq(e[i].perm, 0644);
        cr_assert_eq(e[i].filetype, AE_IFREG);
        k += (size_t)snprintf(out + k, cap - k, "%s\n", e[i].name);
        cr_assert_lt(k, cap);
    }
    fx_entries_free(e, n);
    return (int)n;
}

/* The shard writer's default config, writing PREFIX-*.tar into dir. */
static clasp_shard_writer_config writer_config_(const char *dir, const char *prefix) {
    clasp_shard_writer_config c = clasp_shard_writer_default_config();
    c.dir = dir;
    c.prefix = prefix;
    return c;
}

/* A shard writer of PREFIX-*.tar in the scratch folder `name` (its path into dir[512]). */
static clasp_shard_writer *open_writer_(const char *name, char *dir, const char *prefix) {
    clasp_test_tmpdir(name, dir, 512);
    clasp_shard_writer_config c = writer_config_(dir, prefix);
    clasp_shard_writer *w;
    cr_assert_eq(clasp_shard_writer_open(&c, &w), CLASP_OK);
    return w;
}

static void shard_path(char *out, size_t cap, const char *dir, const char *prefix, int i) {
    snprintf(out, cap, "%s/%s-%06d.tar", dir, prefix, i);
}

Test(datasets, caption_templates_match_reference) {
    cr_assert_eq(clasp_splitmix64(0x5EED0000ull), 0x1cc152e47d174d3cull);
    const int want[8] = {4, 4, 7, 4, 4, 1, 5, 6};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(clasp_fmnist_template_index(CLASP_FMNIST_TRAIN_CAPTION_SEED, (uint64_t)i),
                     want[i], "train image %d", i);
    char c[128];
    cr_assert_gt(clasp_fmnist_caption(9, 7, c, sizeof c), 0);
    cr_assert_str_eq(c, "a ankle boot");
    clasp_fmnist_caption(0, 2, c, sizeof c);
    cr_assert_str_eq(c, "a t-shirt/top on a white background");
    cr_assert_eq(clasp_fmnist_caption(10, 0, c, sizeof c), 0);
    cr_assert_eq(clasp_fmnist_caption(0, 8, c, sizeof c), 0);
    cr_assert_eq(clasp_fmnist_caption(0, 0, c, 4), 0);
}

Test(datasets, sample_nbytes_counts_headers_padding_and_pax) {
    char data[1100];
    memset(data, 'x', sizeof data);
    uint64_t n;
    clasp_shard_field f1[] = {{"txt", data, 0}};
    cr_assert_eq(clasp_shard_sample_nbytes("k", f1, 1, &n), CLASP_OK);
    cr_assert_eq(n, 512);
    clasp_shard_field f2[] = {{"a", data, 1}, {"b", data, 512}, {"c", data, 513}};
    cr_assert_eq(clasp_shard_sample_nbytes("k", f2, 3, &n), CLASP_OK);
    cr_assert_eq(n, 3 * 512 + 512 + 512 + 1024);
    /* A long name needs a pax extended header (ustar holds 100 + 155 split at '/'). */
    char key[300];
    memset(key, 'k', 250);
    key[250] = 0;
    clasp_shard_field f3[] = {{"txt", data, 10}};
    cr_assert_eq(clasp_shard_sample_nbytes(key, f3, 1, &n), CLASP_OK);
    cr_assert_gt(n, 1024, "long names must cost a pax header: %llu", (unsigned long long)n);
}

Test(datasets, writer_sorts_members_and_splits_by_maxcount) {
    char dir[512], path[600], names[8192];
    clasp_test_tmpdir("ds_count", dir, sizeof dir);
    clasp_shard_writer_config c = writer_config_(dir, "s");
    c.maxcount = 10;
    clasp_shard_writer *w;
    cr_assert_eq(clasp_shard_writer_open(&c, &w), CLASP_OK, "%s", clasp_last_error());
    for (int i = 0; i < 25; i++) {
        char key[32], txt[32];
        snprintf(key, sizeof key, "sample%03d", i);
        snprintf(txt, sizeof txt, "caption %d", i);
        clasp_shard_field f[] = {{"txt", txt, strlen(txt)}, {"cls", "3", 1}, {"json", "{}", 2}};
        cr_assert_eq(clasp_shard_writer_add(w, key, f, 3), CLASP_OK, "%s", clasp_last_error());
    }
    cr_assert_eq(clasp_shard_writer_close(w), CLASP_OK);
    size_t ns;
    const clasp_shard_info *sh = clasp_shard_writer_shards(w, &ns);
    cr_assert_eq(ns, 3);
    cr_assert_eq(sh[0].n_samples, 10);
    cr_assert_eq(sh[1].n_samples, 10);
    cr_assert_eq(sh[2].n_samples, 5);
    cr_assert_str_eq(sh[2].name, "s-000002.tar");
    cr_assert_eq(clasp_shard_writer_n_samples(w), 25);
    for (int i = 0; i < 3; i++) {
        shard_path(path, sizeof path, dir, "s", i);
        cr_assert_eq(file_size(path), (long)sh[i].nbytes);
        size_t n;
        char *buf = slurp(path, &n);
        cr_assert_eq(clasp_hash64(buf, n, 0), sh[i].xxh64, "shard %d checksum", i);
        free(buf);
        int nm = list_members(path, names, sizeof names);
        cr_assert_eq(nm, 3 * (int)sh[i].n_samples);
    }
    shard_path(path, sizeof path, dir, "s", 0);
    list_members(path, names, sizeof names);
    cr_assert(!strncmp(names, "sample000.cls\nsample000.json\nsample000.txt\nsample001.cls\n",
                       strlen("sample000.cls\nsample000.json\nsample000.txt\nsample001.cls\n")),
              "order: %s", names);
    shard_path(path, sizeof path, dir, "s", 3);
    cr_assert_eq(file_size(path), -1, "no empty shard");
    clasp_shard_writer_free(w);
}

Test(datasets, writer_respects_maxsize_exactly) {
    char dir[512], path[600];
    clasp_test_tmpdir("ds_size", dir, sizeof dir);
    /* Variable sizes from a fixed RNG stream. */
    clasp_rng r;
    clasp_rng_init(&r, 1, CLASP_RNG_TEST, 0, 0);
    static char data[5000];
    memset(data, 'z', sizeof data);
    size_t sizes[60];
    for (int i = 0; i < 60; i++) sizes[i] = (size_t)clasp_rng_below(&r, 3000);
    const uint64_t maxsize = 8192;
    clasp_shard_writer_config c = writer_config_(dir, "m");
    c.maxcount = 0;
    c.maxsize = maxsize;
    clasp_shard_writer *w;
    cr_assert_eq(clasp_shard_writer_open(&c, &w), CLASP_OK);
    uint64_t need[62];
    for (int i = 0; i < 60; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%02d", i);
        clasp_shard_field f[] = {{"bin", data, sizes[i]}, {"txt", "t", 1}};
        cr_assert_eq(clasp_shard_sample_nbytes(key, f, 2, &need[i]), CLASP_OK);
        cr_assert_eq(clasp_shard_writer_add(w, key, f, 2), CLASP_OK, "%s", clasp_last_error());
    }
    /* One sample alone larger than maxsize: its own shard, exceeding the limit. */
    clasp_shard_field big[] = {{"bin", data, sizeof data}, {"txt", "t", 1}};
    cr_assert_eq(clasp_shard_writer_add(w, "k60", big, 2), CLASP_OK);
    clasp_shard_sample_nbytes("k60", big, 2, &need[60]);
    clasp_shard_field small[] = {{"txt", "t", 1}};
    cr_assert_eq(clasp_shard_writer_add(w, "k61", small, 1), CLASP_OK);
    clasp_shard_sample_nbytes("k61", small, 1, &need[61]);
    cr_assert_eq(clasp_shard_writer_close(w), CLASP_OK);
    size_t ns;
    const clasp_shard_info *sh = clasp_shard_writer_shards(w, &ns);
    int s = 0;
    for (size_t i = 0; i < ns; i++) {
        shard_path(path, sizeof path, dir, "m", (int)i);
        cr_assert_eq((uint64_t)file_size(path), sh[i].nbytes);
        /* Exact size: sum of the measured samples + end-of-archive. */
        uint64_t sum = CLASP_SHARD_EOA_NBYTES;
        for (size_t j = 0; j < sh[i].n_samples; j++) sum += need[s + j];
        cr_assert_eq(sh[i].nbytes, sum, "shard %zu", i);
        if (sh[i].n_samples > 1)
            cr_assert_leq(sh[i].nbytes, maxsize, "shard %zu", i);
        else
            cr_assert(sh[i].nbytes <= maxsize || s == 60, "only the big sample may exceed");
        /* Greedy: the next sample would not have fitted. */
        if (i + 1 < ns && s + (int)sh[i].n_samples <= 60)
            cr_assert_gt(sh[i].nbytes + need[s + sh[i].n_samples], maxsize, "shard %zu", i);
        s += (int)sh[i].n_samples;
    }
    cr_assert_eq(s, 62);
    clasp_shard_writer_free(w);
}

Test(datasets, writer_rejects_bad_samples_and_stays_usable) {
    char dir[512];
    clasp_test_tmpdir("ds_bad", dir, sizeof dir);
    clasp_shard_writer_config c = writer_config_(dir, "b");
    clasp_shard_writer *w;
    cr_assert_eq(clasp_shard_writer_open(&c, &w), CLASP_OK);
    clasp_shard_field ok[] = {{"txt", "a", 1}};
    clasp_shard_field dup[] = {{"txt", "a", 1}, {"txt", "b", 1}};
    clasp_shard_field noext[] = {{"", "a", 1}};
    clasp_shard_field slash[] = {{"a/b", "a", 1}};
    cr_assert_eq(clasp_shard_writer_add(w, "x.y", ok, 1), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "x.y"));
    cr_assert_eq(clasp_shard_writer_add(w, "", ok, 1), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "bad\xff", ok, 1), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "bad\xc3", ok, 1), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "/abs", ok, 1), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "d/", ok, 1), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "k", dup, 2), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "k", noext, 1), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "k", slash, 1), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "k", ok, 0), CLASP_ERR_ARG);
    cr_assert_eq(clasp_shard_writer_add(w, "dir.v1/k", ok, 1), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_shard_writer_close(w), CLASP_OK);
    cr_assert_eq(clasp_shard_writer_add(w, "k2", ok, 1), CLASP_ERR_STATE);
    cr_assert_eq(clasp_shard_writer_n_samples(w), 1);
    clasp_shard_writer_free(w);
    clasp_shard_writer_config bad = c;
    bad.prefix = "a/b";
    cr_assert_eq(clasp_shard_writer_open(&bad, &w), CLASP_ERR_ARG);
    cr_assert_null(w);
    clasp_shard_writer_free(NULL);
}

Test(datasets, unfinished_shard_is_a_temp_file_removed_on_free) {
    char dir[512], path[600], tmp[640];
    clasp_shard_writer *w = open_writer_("ds_tmp", dir, "t");
    clasp_shard_field f[] = {{"txt", "abc", 3}};
    cr_assert_eq(clasp_shard_writer_add(w, "k", f, 1), CLASP_OK);
    shard_path(path, sizeof path, dir, "t", 0);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(file_size(path), -1, "final name appears only when complete");
    cr_assert_geq(file_size(tmp), 0);
    clasp_shard_writer_free(w);
    cr_assert_eq(file_size(tmp), -1);
    cr_assert_eq(file_size(path), -1);
}

Test(datasets, utf8_and_long_names_round_trip) {
    char dir[512], path[600], names[4096];
    clasp_shard_writer *w = open_writer_("ds_utf8", dir, "u");
    char longkey[400];
    memset(longkey, 'L', 300);
    longkey[300] = 0;
    clasp_shard_field f[] = {{"txt", "x", 1}};
    cr_assert_eq(clasp_shard_writer_add(w, "caf\xc3\xa9/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", f, 1),
                 CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_shard_writer_add(w, longkey, f, 1), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_shard_writer_close(w), CLASP_OK);
    shard_path(path, sizeof path, dir, "u", 0);
    cr_assert_eq(list_members(path, names, sizeof names), 2);
    char want[1024];
    snprintf(want, sizeof want, "caf\xc3\xa9/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87.txt\n%s.txt\n",
             longkey);
    cr_assert_str_eq(names, want);
    clasp_shard_writer_free(w);
}

/* Builds fmnist with `limit` samples per split into a fresh temp dir `name`. */
static void build_small(const char *name, char *dir, size_t cap, size_t limit, bool all) {
    clasp_test_tmpdir(name, dir, cap);
    clasp_fmnist_options o = clasp_fmnist_default_options();
    o.shards.out_dir = dir;
    o.shards.limit = limit;
    o.shards.maxcount = 7;
    o.all_captions = all;
    clasp_manifest m;
    cr_assert_eq(clasp_fmnist_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);
}

static void assert_same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    cr_assert_eq(na, nb, "%s vs %s", a, b);
    cr_assert(memcmp(x, y, na) == 0, "%s differs from %s", a, b);
    free(x);
    free(y);
}

Test(datasets, fmnist_rebuild_is_byte_identical) {
    if (!have_fmnist()) cr_skip_test("dataset-fashion-mnist not installed");
    char d1[512], d2[512], p1[700], p2[700];
    build_small("ds_rep1", d1, sizeof d1, 20, true);
    build_small("ds_rep2", d2, sizeof d2, 20, true);
    const char *files[] = {"train-000000.tar", "train-000001.tar", "train-000002.tar",
                           "test-000000.tar",  "test-000002.tar",  "manifest.json",
                           "classnames.txt",   "templates.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p1, sizeof p1, "%s/%s", d1, files[i]);
        snprintf(p2, sizeof p2, "%s/%s", d2, files[i]);
        assert_same_file(p1, p2);
    }
}

Test(datasets, fmnist_manifest_lists_shards_and_sources) {
    if (!have_fmnist()) cr_skip_test("dataset-fashion-mnist not installed");
    char d[512], p[700];
    build_small("ds_man", d, sizeof d, 15, false);
    snprintf(p, sizeof p, "%s/manifest.json", d);
    cJSON *root;
    cr_assert_eq(clasp_json_load(p, &root), CLASP_OK, "%s", clasp_last_error());
    const cJSON *splits = cJSON_GetObjectItem(root, "splits");
    const char *names[] = {"train", "test"};
    double total_bytes = 0;
    for (int s = 0; s < 2; s++) {
        const cJSON *sp = cJSON_GetObjectItem(splits, names[s]);
        cr_assert_not_null(sp, "split %s", names[s]);
        cr_assert_eq(cJSON_GetObjectItem(sp, "samples")->valueint, 15);
        const cJSON *shards = cJSON_GetObjectItem(sp, "shards");
        cr_assert_eq(cJSON_GetArraySize(shards), 3); /* 7 + 7 + 1 */
        const cJSON *sh;
        int k = 0;
        cJSON_ArrayForEach(sh, shards) {
            char want[64], sp_path[800], hex[17];
            snprintf(want, sizeof want, "%s-%06d.tar", names[s], k);
            cr_assert_str_eq(cJSON_GetObjectItem(sh, "name")->valuestring, want);
            cr_assert_eq(cJSON_GetObjectItem(sh, "samples")->valueint, k < 2 ? 7 : 1);
            snprintf(sp_path, sizeof sp_path, "%s/%s", d, want);
            size_t n;
            char *buf = slurp(sp_path, &n);
            cr_assert_eq((double)n, cJSON_GetObjectItem(sh, "bytes")->valuedouble);
            clasp_hash_hex(clasp_hash64(buf, n, 0), hex);
            cr_assert_str_eq(cJSON_GetObjectItem(sh, "xxh64")->valuestring, hex);
            free(buf);
            total_bytes += (double)n;
            k++;
        }
    }
    const cJSON *tot = cJSON_GetObjectItem(root, "total");
    cr_assert_eq(cJSON_GetObjectItem(tot, "samples")->valueint, 30);
    cr_assert_eq(cJSON_GetObjectItem(tot, "shards")->valueint, 6);
    cr_assert_eq(cJSON_GetObjectItem(tot, "bytes")->valuedouble, total_bytes);
    const cJSON *src = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "sources"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(src, "package")->valuestring, "dataset-fashion-mnist");
    cr_assert_str_neq(cJSON_GetObjectItem(src, "version")->valuestring, "unknown");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "skipped"), "total")->valueint, 0);
    cJSON_Delete(root);
    snprintf(p, sizeof p, "%s/classnames.txt", d);
    size_t n;
    char *cn = slurp(p, &n);
    cr_assert(!strncmp(cn, "t-shirt/top\ntrouser\n", 20), "%s", cn);
    cr_assert(strstr(cn, "\nankle boot\n"));
    free(cn);
}

Test(datasets, fmnist_shards_pass_python_tarfile_check) {
    if (!have_fmnist()) cr_skip_test("dataset-fashion-mnist not installed");
    if (access(PY, X_OK) != 0) cr_skip_test(PY " not found");
    char d[512], script[700], cmd[1600];
    build_small("ds_py", d, sizeof d, 25, true);
    clasp_test_ref_path("read_shards.py", script, sizeof script);
    snprintf(cmd, sizeof cmd, "%s %s %s --fmnist", PY, script, d);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "read_shards.py failed (%d)", rc);
}

Test(datasets, python_check_detects_a_wrong_caption) {
    /* The checker must be able to fail: corrupt one caption in a writer-made fmnist-like set. */
    if (!have_fmnist()) cr_skip_test("dataset-fashion-mnist not installed");
    if (access(PY, X_OK) != 0) cr_skip_test(PY " not found");
    char d[512], script[700], cmd[1600];
    build_small("ds_pybad", d, sizeof d, 3, false);
    clasp_shard_writer_config c = writer_config_(d, "train");
    clasp_shard_writer *w;
    cr_assert_eq(clasp_shard_writer_open(&c, &w), CLASP_OK);
    /* Rewrite train-000000.tar with the right PNGs absent: fields differ from the manifest. */
    clasp_shard_field f[] = {{"cls", "9", 1}, {"txt", "a cat", 5}};
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "train_%06d", i);
        cr_assert_eq(clasp_shard_writer_add(w, key, f, 2), CLASP_OK);
    }
    cr_assert_eq(clasp_shard_writer_close(w), CLASP_OK);
    clasp_shard_writer_free(w);
    clasp_test_ref_path("read_shards.py", script, sizeof script);
    snprintf(cmd, sizeof cmd, "%s %s %s --fmnist >/dev/null", PY, script, d);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "checker should fail (%d)", rc);
}

Test(datasets, idx_loader_rejects_malformed_files) {
    char d[512], p[700];
    fx_scratch("ds_idx", d, p, "x.idx", NULL);
    const uint8_t good[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    cr_assert_eq(clasp_write_file_atomic(p, good, sizeof good), CLASP_OK);
    uint8_t *data;
    size_t nd;
    uint32_t dims[4];
    cr_assert_eq(clasp_idx_load(p, &data, &nd, dims), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(nd, 2);
    cr_assert_eq(dims[0], 2);
    cr_assert_eq(dims[1], 3);
    cr_assert_eq(data[5], 6);
    free(data);
    cr_assert_eq(clasp_write_file_atomic(p, good, sizeof good - 1), CLASP_OK);
    cr_assert_eq(clasp_idx_load(p, &data, &nd, dims), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "x.idx"), "%s", clasp_last_error());
    const uint8_t f32[] = {0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0};
    cr_assert_eq(clasp_write_file_atomic(p, f32, sizeof f32), CLASP_OK);
    cr_assert_eq(clasp_idx_load(p, &data, &nd, dims), CLASP_ERR_FORMAT);
    snprintf(p, sizeof p, "%s/none.idx", d);
    cr_assert_eq(clasp_idx_load(p, &data, &nd, dims), CLASP_ERR_NOT_FOUND);
}

Test(datasets, fmnist_missing_package_names_it) {
    char d[512];
    clasp_test_tmpdir("ds_missing", d, sizeof d);
    clasp_fmnist_options o = clasp_fmnist_default_options();
    o.src_dir = "/nonexistent/fashion";
    o.shards.out_dir = d;
    clasp_manifest m;
    cr_assert_eq(clasp_fmnist_build(&o, &m), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "apt-get install dataset-fashion-mnist"), "%s",
              clasp_last_error());
}

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(datasets, cli_shards_build_fmnist_and_exit_codes) {
    const char *bin = clasp_test_bin();
    if (!bin || access(bin, X_OK) != 0) cr_skip_test("clasp binary not found");
    char d[512], cmd[2048], out[700];
    fx_scratch("ds_cli", d, out, "sum.json", NULL);
    snprintf(cmd, sizeof cmd, "%s shards build --bogus -o %s/x 2>/dev/null", bin, d);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s shards build fmnist 2>/dev/null", bin);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s shards build fmnist -o %s/x --maxcount abc 2>/dev/null", bin, d);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s shards build fmnist /nonexistent -o %s/x 2>/dev/null", bin, d);
    cr_assert_eq(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "%s shards build --help >/dev/null", bin);
    cr_assert_eq(run(cmd), 0);
    if (!have_fmnist()) cr_skip_test("dataset-fashion-mnist not installed");
    snprintf(cmd, sizeof cmd,
             "%s shards build fmnist -o %s/out --limit 12 --maxcount 5 --json >%s "
             "2>/dev/null",
             bin, d, out);
    cr_assert_eq(run(cmd), 0);
    cJSON *j;
    cr_assert_eq(clasp_json_load(out, &j), CLASP_OK, "%s", clasp_last_error());
    const cJSON *tr = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "splits"), "train");
    cr_assert_eq(cJSON_GetObjectItem(tr, "samples")->valueint, 12);
    cr_assert_eq(cJSON_GetObjectItem(tr, "shards")->valueint, 3);
    cJSON_Delete(j);
}

/* A one-sample manifest in dir written by the library, with "format_version" then replaced by
 * `version` (0: removed, as in manifests from before the field). */
static void manifest_with_version(const char *dir, int version) {
    clasp_manifest m;
    cr_assert_eq(clasp_manifest_init(&m, "test"), CLASP_OK);
    static const char *const exts[] = {"txt"};
    cr_assert_eq(clasp_manifest_set_fields(&m, exts, 1), CLASP_OK);
    clasp_shard_writer_config c = clasp_shard_writer_default_config();
    c.dir = dir;
    c.prefix = "train";
    clasp_shard_writer *w;
    cr_assert_eq(clasp_shard_writer_open(&c, &w), CLASP_OK);
    clasp_shard_field f[] = {{"txt", "a cat", 5}};
    cr_assert_eq(clasp_shard_writer_add(w, "k0", f, 1), CLASP_OK);
    cr_assert_eq(clasp_shard_writer_close(w), CLASP_OK);
    cr_assert_eq(clasp_manifest_add_split(&m, "train", w), CLASP_OK);
    clasp_shard_writer_free(w);
    cJSON *fv = cJSON_GetObjectItem(m.root, "format_version");
    cr_assert(cJSON_IsNumber(fv) && fv->valueint == CLASP_MANIFEST_FORMAT_VERSION);
    if (version == 0)
        cJSON_DeleteItemFromObject(m.root, "format_version");
    else
        cJSON_SetNumberValue(fv, version);
    cr_assert_eq(clasp_manifest_save(&m, dir), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);
}

/* Exit status of read_shards.py on dir; its output into out[cap]. -1 without python3. */
static int read_shards_rc(const char *dir, char *out, size_t cap) {
    if (access(PY, X_OK) != 0) return -1;
    char script[700], cmd[1600], log[700];
    clasp_test_ref_path("read_shards.py", script, sizeof script);
    snprintf(log, sizeof log, "%s/read_shards.log", dir);
    snprintf(cmd, sizeof cmd, "%s %s %s >%s 2>&1", PY, script, dir, log);
    int rc = system(cmd);
    char *text;
    cr_assert_eq(clasp_read_file(log, 1 << 20, &text, NULL), CLASP_OK);
    snprintf(out, cap, "%s", text);
    free(text);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

Test(datasets, manifest_format_version_is_written_and_a_newer_one_refused) {
    char d[512], log[2048];
    clasp_test_tmpdir("ds_manifest_version", d, sizeof d);
    manifest_with_version(d, CLASP_MANIFEST_FORMAT_VERSION);
    cJSON *man;
    int v = 0;
    cr_assert_eq(clasp_manifest_load(d, &man, &v), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(v, CLASP_MANIFEST_FORMAT_VERSION);
    cJSON_Delete(man);
    int rc = read_shards_rc(d, log, sizeof log);
    cr_assert(rc == -1 || rc == 0, "read_shards.py rc %d: %s", rc, log);

    manifest_with_version(d, CLASP_MANIFEST_FORMAT_VERSION + 1);
    cr_assert_eq(clasp_manifest_load(d, &man, &v), CLASP_ERR_UNSUPPORTED);
    cr_assert_null(man);
    char want[900];
    snprintf(want, sizeof want,
             "%s/manifest.json: format_version %d is newer than this clasp reads (%d)", d,
             CLASP_MANIFEST_FORMAT_VERSION + 1, CLASP_MANIFEST_FORMAT_VERSION);
    cr_assert(strstr(clasp_last_error(), want), "%s", clasp_last_error());
    rc = read_shards_rc(d, log, sizeof log);
    cr_assert(rc == -1 || rc == 2, "read_shards.py rc %d: %s", rc, log);
    if (rc == 2)
        cr_assert(strstr(log, "format_version 2 is newer than this script reads (1)"), "%s", log);
}

Test(datasets, manifest_without_format_version_reads_as_version_1) {
    char d[512], log[2048];
    clasp_test_tmpdir("ds_manifest_noversion", d, sizeof d);
    manifest_with_version(d, 0);
    cJSON *man;
    int v = 0;
    cr_assert_eq(clasp_manifest_load(d, &man, &v), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(v, 1);
    cr_assert_null(cJSON_GetObjectItem(man, "format_version"));
    cJSON_Delete(man);
    int rc = read_shards_rc(d, log, sizeof log);
    cr_assert(rc == -1 || rc == 0, "read_shards.py rc %d: %s", rc, log);
}

/* A manifest that is empty, cut short, not JSON, or whose format_version is not a positive
 * integer (a string, a fraction, 1e30) is an error naming the file; nothing is returned. */
Test(datasets, bad_manifest_is_an_error_naming_the_file) {
    char d[FX_PATH], p[FX_PATH];
    fx_scratch("ds_manifest_bad", d, p, "manifest.json", NULL);
    const char *bad[] = {"",
                         "{\"format_version\": 1, \"kind\": \"fmni",
                         "not json at all",
                         "{\"format_version\": \"1\"}",
                         "{\"format_version\": 1.5}",
                         "{\"format_version\": 1e30}",
                         "{\"format_version\": 0}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(fx_write_str(p, bad[i]));
        cJSON *man = (cJSON *)1;
        int v = -1;
        clasp_status st = clasp_manifest_load(d, &man, &v);
        cr_assert_neq(st, CLASP_OK, "'%s' was accepted", bad[i]);
        cr_assert_null(man, "'%s' returned a manifest", bad[i]);
        cr_assert(strstr(clasp_last_error(), p), "'%s': %s", bad[i], clasp_last_error());
    }
}
