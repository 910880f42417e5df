/* test_safetensors.c: safetensors round trip, a file from an independent (Python) writer,
 * and every malformed-file case as a clear error naming the file and the problem. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "fixtures.h"

Test(safetensors, roundtrip_keeps_data_shapes_and_metadata) {
    char dir[4096], path[4200];
    fx_scratch("st_roundtrip", dir, path, "m.safetensors", NULL);
    float a[6] = {1, 2, 3, 4, 5, 6};
    float s = 2.6592600f;
    int32_t ids[2] = {-1, 7};
    int64_t sa[2] = {2, 3}, sids[1] = {2};
    clasp_st_writer *w = clasp_st_writer_new();
    cr_assert_not_null(w);
    cr_assert_eq(clasp_st_writer_add(w, "image.fc.weight", CLASP_DTYPE_F32, 2, sa, a), CLASP_OK);
    cr_assert_eq(clasp_st_writer_add(w, "logit_scale", CLASP_DTYPE_F32, 0, NULL, &s), CLASP_OK);
    cr_assert_eq(clasp_st_writer_add(w, "ids", CLASP_DTYPE_I32, 1, sids, ids), CLASP_OK);
    cr_assert_eq(clasp_st_writer_add(w, "ids", CLASP_DTYPE_I32, 1, sids, ids), CLASP_ERR_ARG);
    cr_assert_eq(clasp_st_writer_meta(w, "step", "12"), CLASP_OK);
    cr_assert_eq(clasp_st_writer_write(w, path), CLASP_OK);
    clasp_st_writer_free(w);

    clasp_safetensors *st;
    cr_assert_eq(clasp_st_open(path, &st), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(st->n_tensors, 3);
    cr_assert_str_eq(clasp_st_meta(st, "step"), "12");
    const clasp_st_tensor *t = clasp_st_find(st, "image.fc.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    cr_assert_eq(memcmp(clasp_st_f32(st, t), a, sizeof a), 0);
    t = clasp_st_find(st, "logit_scale");
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(t->numel, 1);
    cr_assert_eq(clasp_st_f32(st, t)[0], s);
    cr_assert_null(clasp_st_f32(st, clasp_st_find(st, "ids")), "I32 is not F32");
    float back[6];
    cr_assert_eq(clasp_st_read_f32(st, "image.fc.weight", 2, sa, back), CLASP_OK);
    int64_t wrong[2] = {3, 2};
    cr_assert_eq(clasp_st_read_f32(st, "image.fc.weight", 2, wrong, back), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "'image.fc.weight' has shape [2,3], expected [3,2]"), "%s",
              clasp_last_error());
    cr_assert_eq(clasp_st_read_f32(st, "text.proj.weight", 2, sa, back), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "m.safetensors: tensor 'text.proj.weight' is missing"));
    clasp_st_free(st);
}

Test(safetensors, reads_file_from_independent_python_writer) {
    char path[4096];
    clasp_test_ref_path("core/python_written.safetensors", path, sizeof path);
    clasp_safetensors *st;
    cr_assert_eq(clasp_st_open(path, &st), CLASP_OK, "%s", clasp_last_error());
    const clasp_st_tensor *w = clasp_st_find(st, "w");
    const clasp_st_tensor *ids = clasp_st_find(st, "ids");
    cr_assert(w && ids);
    const float *wf = clasp_st_f32(st, w);
    for (int i = 0; i < 6; i++) cr_assert_eq(wf[i], 0.5f * (float)i - 1.0f);
    cr_assert_eq(ids->dtype, CLASP_DTYPE_I64);
    int64_t v[3];
    memcpy(v, ids->data, sizeof v);
    cr_assert_eq(v[0], 7);
    cr_assert_eq(v[1], -3);
    cr_assert_eq(v[2], (int64_t)1 << 40);
    cr_assert_str_eq(clasp_st_meta(st, "note"), "written by make_core.py");
    clasp_st_free(st);
}

/* Builds a file: 8-byte length, header text, then `ndata` zero bytes. */
static size_t build_(unsigned char *buf, const char *header, size_t ndata, long long fake_len) {
    size_t hl = strlen(header);
    unsigned long long L = fake_len >= 0 ? (unsigned long long)fake_len : hl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(L >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, 0, ndata);
    return 8 + hl + ndata;
}

static void expect_bad_(const char *header, size_t ndata, long long fake_len, clasp_status want,
                        const char *needle) {
    static unsigned char buf[4096];
    size_t n = build_(buf, header, ndata, fake_len);
    clasp_safetensors *st = (clasp_safetensors *)1;
    clasp_status s = clasp_st_from_memory(buf, n, "bad.safetensors", &st);
    cr_assert_eq(s, want, "header %s: got %d (%s)", header, s, clasp_last_error());
    cr_assert_null(st);
    cr_assert(strstr(clasp_last_error(), "bad.safetensors") != NULL, "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), needle) != NULL, "want '%s' in '%s'", needle,
              clasp_last_error());
}

Test(safetensors, malformed_files_are_named_errors) {
    /* header length beyond the file */
    expect_bad_("{}", 0, 1000, CLASP_ERR_FORMAT, "beyond the file");
    /* not JSON */
    expect_bad_("{\"a\": ", 0, -1, CLASP_ERR_FORMAT, "invalid JSON");
    /* unknown dtype */
    expect_bad_("{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1,
                CLASP_ERR_UNSUPPORTED, "unknown dtype 'Q7'");
    /* offsets outside the data block */
    expect_bad_("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1,
                CLASP_ERR_FORMAT, "outside the data block");
    /* overlapping tensors */
    expect_bad_("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, -1, CLASP_ERR_FORMAT, "overlap");
    /* shape and byte count disagree */
    expect_bad_("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1,
                CLASP_ERR_FORMAT, "need 12");
    /* negative shape */
    expect_bad_("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1,
                CLASP_ERR_FORMAT, "bad shape");
    /* shape overflow */
    expect_bad_("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                "\"data_offsets\":[0,4]}}",
                4, -1, CLASP_ERR_OVERFLOW, "overflows");
    /* missing fields */
    expect_bad_("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, CLASP_ERR_FORMAT,
                "missing dtype");
    expect_bad_("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, -1, CLASP_ERR_FORMAT,
                "missing data_offsets");
    /* header not an object */
    expect_bad_("[1,2]", 0, -1, CLASP_ERR_FORMAT, "not a JSON object");
}

Test(safetensors, truncated_and_empty_files) {
    char dir[4096], path[4200];
    fx_scratch("st_trunc", dir, path, "t.safetensors", NULL);
    float a[64] = {0};
    int64_t sh[1] = {64};
    clasp_st_writer *w = clasp_st_writer_new();
    clasp_st_writer_add(w, "a", CLASP_DTYPE_F32, 1, sh, a);
    cr_assert_eq(clasp_st_writer_write(w, path), CLASP_OK);
    clasp_st_writer_free(w);
    FILE *f = fopen(path, "rb");
    unsigned char buf[1024];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    clasp_safetensors *st;
    /* cut inside the data */
    cr_assert_eq(clasp_st_from_memory(buf, n - 10, "cut.safetensors", &st), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "cut.safetensors: tensor 'a'"), "%s", clasp_last_error());
    /* cut inside the header */
    cr_assert_eq(clasp_st_from_memory(buf, 20, "cut.safetensors", &st), CLASP_ERR_FORMAT);
    /* shorter than the length field */
    cr_assert_eq(clasp_st_from_memory(buf, 5, "cut.safetensors", &st), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "too short"));
    cr_assert_eq(clasp_st_from_memory(buf, 0, "empty.safetensors", &st), CLASP_ERR_FORMAT);
    snprintf(path, sizeof path, "%s/nope.safetensors", dir);
    cr_assert_eq(clasp_st_open(path, &st), CLASP_ERR_IO);
}
