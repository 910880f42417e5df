/* test_tar_reader.c: tar reading (formats, compression filters, pipe:) and WebDataset sample
 * assembly, including damaged shards. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/log.h"
#include "pipeline/tar_reader.h"
#include "fixtures.h"

/* Reads a shard into a summary "key:ext,ext|key:ext" (fields in member order). */
static char *summarize_(const char *shard, clasp_data_stats *st, bool payload) {
    clasp_tar_reader *r;
    /* A shard that cannot be opened (missing, not a tar) reads as no samples. */
    if (clasp_tar_open(shard, st, 0, &r) != CLASP_OK) return calloc(1, 1);
    char *out = calloc(1, 1 << 16);
    clasp_sample s = {0};
    bool got;
    while (clasp_tar_next(r, payload, &s, &got) == CLASP_OK && got) {
        if (out[0]) strcat(out, "|");
        strcat(out, s.key);
        strcat(out, ":");
        for (size_t i = 0; i < s.n_fields; i++) {
            if (i) strcat(out, ",");
            strcat(out, s.fields[i].ext);
        }
        if (s.truncated) strcat(out, "!T");
    }
    clasp_sample_clear(&s);
    clasp_tar_close(r);
    return out;
}

static const char *path_(const char *name, char *buf, size_t cap) {
    char dir[1024];
    clasp_test_tmpdir("tar_reader", dir, sizeof dir);
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static void init_(void) {
    clasp_log_set_level(CLASP_LOG_ERROR);
}

TestSuite(tar_reader, .init = init_);

Test(tar_reader, split_name_follows_webdataset) {
    size_t k;
    const char *e;
    cr_assert(clasp_tar_split_name("dir/a.b.c.png", &k, &e));
    cr_assert_eq(k, 5);
    cr_assert_str_eq(e, "b.c.png");
    cr_assert(clasp_tar_split_name("x.y/z.txt", &k, &e));
    cr_assert_eq(k, 5); /* key "x.y/z": dots in folders stay in the key */
    cr_assert(!clasp_tar_split_name("dir/__key__", &k, &e));
    cr_assert(!clasp_tar_split_name("dir/__key__.txt", &k, &e));
    cr_assert(!clasp_tar_split_name("noext", &k, &e));
    cr_assert(!clasp_tar_split_name("dir/.hidden", &k, &e));
    cr_assert(!clasp_tar_split_name("dir/", &k, &e));
}

Test(tar_reader, assembles_samples_like_webdataset) {
    char p[1200];
    path_("basic.tar", p, sizeof p);
    fx_member m[] = {
        {"d", NULL, 0, AE_IFDIR},      {"a.PNG", NULL, 10, 0},        {"a.txt", "cap a", 5, 0},
        {"a.link", NULL, 0, AE_IFLNK}, {"sub/b.c.d.png", NULL, 3, 0}, {"sub/b.cls", "1", 1, 0},
        {"__key__", "k", 1, 0},        {"c.txt", "", 0, 0},           {"c.txt", "again", 5, 0},
        {"a.txt", "back", 4, 0},
    };
    cr_assert(fx_write_tar(p, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 10));
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    char *s = summarize_(p, &st, true);
    cr_assert_str_eq(s, "a:png,txt|sub/b:c.d.png,cls|c:txt|c:txt|a:txt");
    cr_assert_eq(st.repeated_ext, 1);
    cr_assert_eq(st.members_ignored, 3); /* dir, symlink, __key__ */
    cr_assert_eq(st.samples_read, 5);
    cr_assert_eq(clasp_data_stats_total_shard_errors(&st), 0);
    free(s);
    /* Headers only: the same samples. */
    s = summarize_(p, NULL, false);
    cr_assert_str_eq(s, "a:png,txt|sub/b:c.d.png,cls|c:txt|c:txt|a:txt");
    free(s);
    clasp_data_stats_free(&st);
}

Test(tar_reader, payload_bytes_and_zero_byte_members) {
    char p[1200];
    path_("payload.tar", p, sizeof p);
    fx_member m[] = {{"k1.txt", "hello", 5, 0}, {"k1.json", "", 0, 0}};
    cr_assert(fx_write_tar(p, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, m, 2));
    clasp_tar_reader *r;
    cr_assert_eq(clasp_tar_open(p, NULL, 0, &r), CLASP_OK);
    clasp_sample s = {0};
    bool got;
    cr_assert_eq(clasp_tar_next(r, true, &s, &got), CLASP_OK);
    cr_assert(got);
    cr_assert_str_eq(s.shard, p);
    const clasp_field *t = clasp_sample_field(&s, "txt");
    cr_assert_eq(t->n, 5);
    cr_assert_eq(memcmp(t->data, "hello", 5), 0);
    cr_assert_eq(clasp_sample_field(&s, "json")->n, 0);
    cr_assert_eq(clasp_tar_next(r, true, &s, &got), CLASP_OK);
    cr_assert(!got);
    cr_assert(!clasp_tar_failed(r));
    clasp_sample_clear(&s);
    clasp_tar_close(r);
}

static const char *long_name_ =
    "a-very-long-folder-name-that-goes-beyond-the-hundred-character-ustar-limit/"
    "and-another-level-of-folders/sample-000001.caption.txt";

static void roundtrip_(int format, int filter, const char *name) {
    char p[1200];
    path_(name, p, sizeof p);
    fx_member m[] = {
        {long_name_, "x", 1, 0}, {"ünïcödé/日本.txt", "y", 1, 0}, {"s.png", NULL, 5000, 0}};
    size_t n = format == ARCHIVE_FORMAT_TAR_USTAR ? 0 : 2; /* ustar cannot hold these names */
    fx_member u[] = {{"plain.txt", "x", 1, 0}, {"s.png", NULL, 5000, 0}};
    cr_assert(fx_write_tar(p, format, filter, n ? m : u, n ? 3 : 2), "%s", name);
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    char *s = summarize_(p, &st, true);
    cr_assert_not_null(s, "%s: %s", name, clasp_last_error());
    if (n)
        cr_assert_str_eq(s,
                         "a-very-long-folder-name-that-goes-beyond-the-hundred-character-ustar-"
                         "limit/and-another-level-of-folders/sample-000001:caption.txt|ünïcödé/"
                         "日本:txt|s:png",
                         "%s", name);
    else
        cr_assert_str_eq(s, "plain:txt|s:png", "%s", name);
    cr_assert_eq(st.bytes, 5001 + (n ? 1 : 0), "%s", name);
    cr_assert_eq(clasp_data_stats_total_shard_errors(&st), 0, "%s", name);
    free(s);
    clasp_data_stats_free(&st);
}

Test(tar_reader, tar_formats) {
    roundtrip_(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, "f-ustar.tar");
    roundtrip_(ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_NONE, "f-gnu.tar");
    roundtrip_(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, "f-pax.tar");
    roundtrip_(ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_NONE, "f-paxi.tar");
}

Test(tar_reader, compression_filters) {
    roundtrip_(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, "c.tar.gz");
    roundtrip_(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD, "c.tar.zst");
    roundtrip_(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ, "c.tar.xz");
    roundtrip_(ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_BZIP2, "c.tar.bz2");
}

Test(tar_reader, pipe_and_stdin_like_sources) {
    char p[1200], spec[1400];
    path_("piped.tar", p, sizeof p);
    fx_member m[] = {{"a.txt", "1", 1, 0}, {"b.txt", "2", 1, 0}};
    cr_assert(fx_write_tar(p, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, m, 2));
    snprintf(spec, sizeof spec, "pipe:cat '%s'", p);
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    char *s = summarize_(spec, &st, true);
    cr_assert_str_eq(s, "a:txt|b:txt");
    cr_assert_eq(clasp_data_stats_total_shard_errors(&st), 0);
    free(s);
    /* A failing command: no samples, counted, no hang. */
    snprintf(spec, sizeof spec, "pipe:cat '%s.nope' 2>/dev/null", p);
    s = summarize_(spec, &st, true);
    cr_assert_str_eq(s, "");
    free(s);
    cr_assert_geq(clasp_data_stats_total_shard_errors(&st), 1);
    clasp_data_stats_free(&st);
}

Test(tar_reader, missing_shard_is_counted) {
    char p[1200];
    path_("does-not-exist.tar", p, sizeof p);
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    clasp_tar_reader *r;
    cr_assert_eq(clasp_tar_open(p, &st, 0, &r), CLASP_ERR_NOT_FOUND);
    cr_assert_null(r);
    cr_assert(strstr(clasp_last_error(), "does-not-exist.tar"));
    cr_assert_eq(st.shard_errors[CLASP_SHARD_MISSING], 1);
    clasp_data_stats_free(&st);
}

Test(tar_reader, not_a_tar_is_unreadable) {
    char p[1200];
    path_("garbage.tar", p, sizeof p);
    char junk[3000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 13 + 5);
    cr_assert(fx_write(p, junk, sizeof junk));
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    char *s = summarize_(p, &st, true);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "");
    cr_assert_eq(st.shard_errors[CLASP_SHARD_UNREADABLE], 1);
    free(s);
    clasp_data_stats_free(&st);
}

/* Writes a tar of three samples and cuts it at `keep` bytes. */
static void cut_tar_(const char *name, long keep_from_end, char *p, size_t cap) {
    path_(name, p, cap);
    fx_member m[] = {{"a.txt", "aaa", 3, 0},
                     {"b.txt", "bbb", 3, 0},
                     {"c.png", NULL, 4000, 0},
                     {"c.txt", "ccc", 3, 0}};
    cr_assert(fx_write_tar(p, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 4));
    size_t n;
    uint8_t *b = fx_read(p, &n);
    /* ustar: 512 header + 512 data per small member; c.png = 512 + 4096; end = 1024 zeros. */
    size_t keep = (size_t)((long)n - keep_from_end);
    cr_assert(fx_write(p, b, keep));
    free(b);
}

Test(tar_reader, member_with_cut_data) {
    char p[1200];
    /* Keep a, b and c.png's header plus 1000 of its 4000 data bytes. */
    path_("cut.tar", p, sizeof p);
    cut_tar_("cut.tar", 0, p, sizeof p);
    size_t n;
    uint8_t *b = fx_read(p, &n);
    cr_assert(fx_write(p, b, 512 * 4 + 512 + 1000));
    free(b);
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    char *s = summarize_(p, &st, true);
    cr_assert_str_eq(s, "a:txt|b:txt|c:png!T");
    cr_assert_eq(st.shard_errors[CLASP_SHARD_TRUNCATED], 1);
    free(s);
    clasp_data_stats_free(&st);
}

Test(tar_reader, truncated_tar_last_member_cut) {
    char p[1200];
    /* Cut inside the last member's header/data: c.txt is lost, earlier samples are kept. */
    cut_tar_("trunc.tar", 1024 + 512 + 100, p, sizeof p);
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    char *s = summarize_(p, &st, true);
    cr_assert(!strncmp(s, "a:txt|b:txt|c:png", 17), "%s", s);
    cr_assert_eq(clasp_data_stats_total_shard_errors(&st), 1);
    free(s);
    /* Without the end-of-archive blocks only: all samples readable. */
    cut_tar_("noeof.tar", 1024, p, sizeof p);
    s = summarize_(p, NULL, true);
    cr_assert_str_eq(s, "a:txt|b:txt|c:png,txt");
    free(s);
    clasp_data_stats_free(&st);
}

Test(tar_reader, member_size_limit) {
    char p[1200];
    path_("big.tar", p, sizeof p);
    fx_member m[] = {{"a.png", NULL, 3000, 0}, {"a.txt", "x", 1, 0}, {"b.txt", "y", 1, 0}};
    cr_assert(fx_write_tar(p, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 3));
    clasp_tar_reader *r;
    cr_assert_eq(clasp_tar_open(p, NULL, 1000, &r), CLASP_OK);
    clasp_sample s = {0};
    bool got;
    clasp_tar_next(r, true, &s, &got);
    cr_assert(got && s.too_large && !s.truncated);
    clasp_tar_next(r, true, &s, &got);
    cr_assert(got && !s.too_large);
    cr_assert_str_eq(s.key, "b");
    clasp_sample_clear(&s);
    clasp_tar_close(r);
}

Test(tar_reader, field_map) {
    clasp_field_map m = clasp_field_map_default();
    cr_assert_eq(clasp_field_map_kind(&m, "png"), CLASP_FIELD_IMAGE);
    cr_assert_eq(clasp_field_map_kind(&m, "b.c.png"), CLASP_FIELD_IMAGE);
    cr_assert_eq(clasp_field_map_kind(&m, "flac"), CLASP_FIELD_AUDIO);
    cr_assert_eq(clasp_field_map_kind(&m, "cls"), CLASP_FIELD_LABEL);
    cr_assert_eq(clasp_field_map_kind(&m, "json"), CLASP_FIELD_JSON);
    cr_assert_eq(clasp_field_map_kind(&m, "txt"), CLASP_FIELD_TEXT);
    cr_assert_eq(clasp_field_map_kind(&m, "xyz"), CLASP_FIELD_OTHER);
    unsigned need;
    cr_assert_eq(clasp_field_parse_required("image,text", &need), CLASP_OK);
    cr_assert_eq(need, CLASP_NEED_IMAGE | CLASP_NEED_TEXT);
    cr_assert_eq(clasp_field_parse_required("audio;text", &need), CLASP_OK);
    cr_assert_eq(need, CLASP_NEED_AUDIO | CLASP_NEED_TEXT);
    cr_assert_eq(clasp_field_parse_required("image,smell", &need), CLASP_ERR_ARG);
}

Test(tar_reader, shards_inspect_cli_json) {
    char p[1200], cmd[4000];
    path_("inspect.tar", p, sizeof p);
    fx_member m[] = {{"a.pgm", "P5\n1 1\n255\n\x10", 12, 0},
                     {"a.txt", "cap", 3, 0},
                     {"b.pgm", "junk", 4, 0},
                     {"b.txt", "cap", 3, 0},
                     {"c.txt", "no image", 8, 0}};
    cr_assert(fx_write_tar(p, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 5));
    snprintf(
        cmd, sizeof cmd,
        "'%s' shards inspect '%s::%s.missing' --decode --require image,text --json 2>/dev/null",
        clasp_test_bin(), p, p);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char *out = calloc(1, 1 << 16);
    size_t n = fread(out, 1, (1 << 16) - 1, f);
    int rc = pclose(f);
    cr_assert_eq(rc, 0, "exit status %d: %s", rc, out);
    cJSON *j = cJSON_ParseWithLength(out, n);
    cr_assert_not_null(j, "not JSON: %s", out);
    cr_assert_eq(cJSON_GetObjectItem(j, "shards")->valueint, 2);
    cr_assert_eq(cJSON_GetObjectItem(j, "shard_errors")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(j, "samples_ok")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(j, "samples_skipped")->valueint, 2);
    cJSON *by = cJSON_GetObjectItem(j, "skipped_by_reason");
    cr_assert_eq(cJSON_GetObjectItem(by, "bad_image")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(by, "missing_field")->valueint, 1);
    cJSON *fields = cJSON_GetObjectItem(j, "fields");
    cr_assert_eq(cJSON_GetObjectItem(fields, "image")->valueint, 2);
    cr_assert_eq(cJSON_GetObjectItem(fields, "text")->valueint, 3);
    cJSON_Delete(j);
    free(out);
    /* An unusable spec is the only failure. */
    snprintf(cmd, sizeof cmd, "'%s' shards inspect 'x{0..' --json >/dev/null 2>&1",
             clasp_test_bin());
    rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}
