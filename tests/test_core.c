/* test_core.c: status/error messages, sizes, arena, Philox RNG, hashing, JSON helpers. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/sizes.h"
#include "core/status.h"
#include "fixtures.h"

Test(core, error_message_is_thread_local_and_wrapped) {
    clasp_status s = clasp_set_error(CLASP_ERR_FORMAT, "%s: bad %s", "f.json", "field");
    cr_assert_eq(s, CLASP_ERR_FORMAT);
    cr_assert_str_eq(clasp_last_error(), "f.json: bad field");
    clasp_wrap_error(s, "loading model");
    cr_assert_str_eq(clasp_last_error(), "loading model: f.json: bad field");
    cr_assert_str_eq(clasp_status_name(CLASP_ERR_CONFIG), "CLASP_ERR_CONFIG");
    clasp_clear_error();
    cr_assert_str_eq(clasp_last_error(), "");
}

static void *set_other_thread_(void *arg) {
    (void)arg;
    clasp_set_error(CLASP_ERR_IO, "other thread");
    return NULL;
}

Test(core, error_not_shared_between_threads) {
    clasp_set_error(CLASP_ERR_ARG, "main thread");
    pthread_t t;
    pthread_create(&t, NULL, set_other_thread_, NULL);
    pthread_join(t, NULL);
    cr_assert_str_eq(clasp_last_error(), "main thread");
}

Test(core, size_helpers_detect_overflow) {
    size_t r = 7;
    cr_assert(clasp_size_mul(1000, 1000, &r) && r == 1000000);
    cr_assert(!clasp_size_mul(SIZE_MAX / 2 + 1, 2, &r));
    cr_assert(!clasp_size_add(SIZE_MAX, 1, &r));
    cr_assert(!clasp_size_mul4(100000, 100000, 100000, 100000, &r));
    cr_assert(clasp_size_align(65, 64, &r) && r == 128);
}

Test(core, arena_measure_then_allocate) {
    clasp_arena m;
    clasp_arena_init_measure(&m);
    cr_assert_not_null(clasp_arena_floats(&m, 10));
    cr_assert_not_null(clasp_arena_floats(&m, 100));
    size_t need = m.high;
    cr_assert_eq(need, 64 + 448);
    clasp_arena a;
    cr_assert_eq(clasp_arena_init(&a, need), CLASP_OK);
    float *x = clasp_arena_zeros(&a, 10);
    float *y = clasp_arena_floats(&a, 100);
    cr_assert_not_null(x);
    cr_assert_not_null(y);
    cr_assert_eq(((uintptr_t)y) % 64, 0);
    cr_assert_eq(x[9], 0.0f);
    cr_assert_null(clasp_arena_floats(&a, 1), "a full arena must refuse");
    cr_assert(strstr(clasp_last_error(), "arena: full") != NULL);
    clasp_arena_reset(&a);
    cr_assert_eq(clasp_arena_floats(&a, 10), x);
    clasp_arena_free(&a);
    clasp_arena_free(NULL);
}

Test(core, splitmix64_matches_reference) {
    /* ../shared/bench/README.md section 3 check values */
    cr_assert_eq(clasp_splitmix64(0x5EED0000ull), 0x1cc152e47d174d3cull);
    const int want[8] = {4, 4, 7, 4, 4, 1, 5, 6};
    for (int i = 0; i < 8; i++)
        cr_assert_eq((int)((clasp_splitmix64(0x5EED0000ull + (uint64_t)i) >> 32) % 8), want[i]);
}

Test(core, philox_known_answer) {
    /* Random123 kat_vectors: philox4x32 10 rounds, ctr = key = 0 and ctr = key = all ones. */
    uint32_t out[4];
    const uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
    clasp_philox4x32(out, c0, k0);
    cr_assert_eq(out[0], 0x6627e8d5u);
    cr_assert_eq(out[1], 0xe169c58du);
    cr_assert_eq(out[2], 0xbc57ac4cu);
    cr_assert_eq(out[3], 0x9b00dbd8u);
    const uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                   k1[2] = {0xffffffffu, 0xffffffffu};
    clasp_philox4x32(out, c1, k1);
    cr_assert_eq(out[0], 0x408f276du);
    cr_assert_eq(out[1], 0x41c83b0eu);
    cr_assert_eq(out[2], 0xa20bc7c6u);
    cr_assert_eq(out[3], 0x6d5451fdu);
}

typedef struct {
    uint64_t a, b;
    uint32_t vals[64];
} stream_job;

static void *fill_stream_(void *arg) {
    stream_job *j = arg;
    clasp_rng r;
    clasp_rng_init(&r, 1234, CLASP_RNG_TEST, j->a, j->b);
    for (int i = 0; i < 64; i++) j->vals[i] = clasp_rng_u32(&r);
    return NULL;
}

Test(core, rng_same_key_same_stream_on_any_thread) {
    stream_job main_job = {.a = 3, .b = 99}, thread_job = {.a = 3, .b = 99};
    fill_stream_(&main_job);
    pthread_t t;
    pthread_create(&t, NULL, fill_stream_, &thread_job);
    pthread_join(t, NULL);
    cr_assert_eq(memcmp(main_job.vals, thread_job.vals, sizeof main_job.vals), 0);
}

/* Two different keys: streams must look independent. Pearson correlation of 100k uniforms
 * is ~N(0, 1/sqrt(n)) = 0.003 for independent streams; also no identical words. */
Test(core, rng_different_keys_independent) {
    const uint64_t keys[][3] = {{1, 0, 0}, {1, 0, 1}, {1, 1, 0}, {2, 0, 0}};
    enum { N = 100000 };
    static float x[4][N];
    for (int k = 0; k < 4; k++) {
        clasp_rng r;
        clasp_rng_init(&r, keys[k][0], keys[k][1] ? CLASP_RNG_AUGMENT : CLASP_RNG_SHUFFLE,
                       keys[k][2], 0);
        for (int i = 0; i < N; i++) x[k][i] = clasp_rng_uniform(&r);
    }
    for (int a = 0; a < 4; a++) {
        double mean = 0;
        for (int i = 0; i < N; i++) mean += (double)x[a][i];
        mean /= N;
        cr_assert(fabs(mean - 0.5) < 0.01, "mean %f", mean);
        for (int b = a + 1; b < 4; b++) {
            double sab = 0, saa = 0, sbb = 0;
            int same = 0;
            for (int i = 0; i < N; i++) {
                double da = (double)x[a][i] - 0.5, db = (double)x[b][i] - 0.5;
                sab += da * db, saa += da * da, sbb += db * db;
                same += x[a][i] == x[b][i];
            }
            double corr = sab / sqrt(saa * sbb);
            cr_assert(fabs(corr) < 0.02, "streams %d,%d correlated: %f", a, b, corr);
            cr_assert(same < 50, "streams %d,%d share %d values", a, b, same);
        }
    }
}

Test(core, rng_below_and_normal) {
    clasp_rng r;
    clasp_rng_init(&r, 7, CLASP_RNG_TEST, 0, 0);
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) counts[clasp_rng_below(&r, 10)]++;
    for (int i = 0; i < 10; i++) cr_assert(counts[i] > 9500 && counts[i] < 10500);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double z = clasp_rng_normal(&r);
        s += z, s2 += z * z;
    }
    cr_assert(fabs(s / 100000) < 0.02 && fabs(s2 / 100000 - 1.0) < 0.03);
}

Test(core, xxhash_known_values) {
    /* XXH64 of the empty input with seed 0 (xxHash's documented sanity value). */
    cr_assert_eq(clasp_hash64("", 0, 0), 0xEF46DB3751D8E999ull);
    cr_assert_eq(clasp_hash_str("abc", 0), clasp_hash64("abc", 3, 0));
    cr_assert_neq(clasp_hash_str("abc", 0), clasp_hash_str("abc", 1));
    char hex[17];
    clasp_hash_hex(0xEF46DB3751D8E999ull, hex);
    cr_assert_str_eq(hex, "ef46db3751d8e999");
}

Test(core, json_fields_named_in_errors) {
    const char *text = "{\"a\": 3, \"b\": -1.5, \"s\": \"hi\", \"o\": {\"x\": 2.5}, \"t\": true}";
    cJSON *root;
    cr_assert_eq(clasp_json_parse(text, strlen(text), "cfg.json", &root), CLASP_OK);
    int64_t i;
    double d;
    char s[8];
    bool b;
    cr_assert_eq(clasp_json_int(root, "a", "cfg.json", "", 0, 10, &i), CLASP_OK);
    cr_assert_eq(i, 3);
    cr_assert_eq(clasp_json_int(root, "a", "cfg.json", "", 4, 10, &i), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "cfg.json: field 'a'") != NULL, "%s", clasp_last_error());
    cr_assert_eq(clasp_json_int(root, "b", "cfg.json", "", -10, 10, &i), CLASP_ERR_CONFIG);
    cr_assert_eq(clasp_json_num(root, "b", "cfg.json", "", &d), CLASP_OK);
    cr_assert_eq(d, -1.5);
    const cJSON *o;
    cr_assert_eq(clasp_json_obj(root, "o", "cfg.json", "", &o), CLASP_OK);
    cr_assert_eq(clasp_json_int(o, "x", "cfg.json", "o", 0, 9, &i), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "field 'o.x'") != NULL, "%s", clasp_last_error());
    cr_assert_eq(clasp_json_int(o, "missing", "cfg.json", "o", 0, 9, &i), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "'o.missing': missing") != NULL, "%s", clasp_last_error());
    cr_assert_eq(clasp_json_int_opt(o, "missing", "cfg.json", "o", 0, 9, 5, &i), CLASP_OK);
    cr_assert_eq(i, 5);
    cr_assert_eq(clasp_json_str(root, "s", "cfg.json", "", s, sizeof s), CLASP_OK);
    cr_assert_str_eq(s, "hi");
    cr_assert_eq(clasp_json_str(root, "a", "cfg.json", "", s, sizeof s), CLASP_ERR_CONFIG);
    cr_assert_eq(clasp_json_bool_opt(root, "t", "cfg.json", "", false, &b), CLASP_OK);
    cr_assert(b);
    cr_assert_eq(clasp_json_bool_opt(root, "a", "cfg.json", "", false, &b), CLASP_ERR_CONFIG);
    cJSON_Delete(root);
}

Test(core, json_malformed_file_is_error_with_position) {
    char dir[4096], path[4200];
    fx_scratch("core_json", dir, path, "bad.json", NULL);
    FILE *f = fopen(path, "w");
    fputs("{\"a\": 1,\n \"b\": [1, 2,, 3]}", f);
    fclose(f);
    cJSON *root = NULL;
    cr_assert_eq(clasp_json_load(path, &root), CLASP_ERR_FORMAT);
    cr_assert_null(root);
    cr_assert(strstr(clasp_last_error(), "bad.json: invalid JSON at byte") != NULL, "%s",
              clasp_last_error());
    snprintf(path, sizeof path, "%s/absent.json", dir);
    cr_assert_eq(clasp_json_load(path, &root), CLASP_ERR_IO);
    cr_assert(strstr(clasp_last_error(), "absent.json: cannot open") != NULL);
}

Test(core, json_save_roundtrip_atomic) {
    char dir[4096], path[4200];
    fx_scratch("core_json_save", dir, path, "state.json", NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", 42);
    cr_assert_eq(clasp_json_save(path, o), CLASP_OK);
    cJSON_Delete(o);
    cJSON *r;
    cr_assert_eq(clasp_json_load(path, &r), CLASP_OK);
    int64_t step;
    cr_assert_eq(clasp_json_int(r, "step", path, "", 0, 100, &step), CLASP_OK);
    cr_assert_eq(step, 42);
    cJSON_Delete(r);
}

Test(core, grow_doubles_and_keeps_the_array_on_failure) {
    size_t cap = 0, n = 0;
    int *v = NULL;
    for (int i = 0; i < 100; i++) {
        int *p = clasp_grow(v, n, &cap, sizeof *p, 4);
        cr_assert_not_null(p);
        if (n < 4) cr_assert_eq(cap, 4);
        v = p;
        v[n++] = i;
    }
    cr_assert_eq(cap, 128); /* 4, 8, ..., 128 */
    for (int i = 0; i < 100; i++) cr_assert_eq(v[i], i);
    cr_assert_eq(clasp_grow(v, 99, &cap, sizeof *v, 4), v, "room left: the same array");
    size_t huge = SIZE_MAX / 2 + 1;
    cr_assert_null(clasp_grow(v, huge, &huge, sizeof *v, 4), "capacity overflow");
    cr_assert_eq(huge, SIZE_MAX / 2 + 1);
    size_t c2 = 128;
    cr_assert_null(clasp_grow(v, 128, &c2, SIZE_MAX / 64, 4), "byte count overflow");
    cr_assert_eq(c2, 128);
    cr_assert_eq(v[99], 99); /* still the caller's */
    free(v);
}

Test(core, format_version_absent_is_1_and_newer_is_refused) {
    cJSON *r = cJSON_Parse("{\"a\": 1}");
    int v = 0;
    cr_assert_eq(clasp_json_format_version(r, "x.json", 2, &v), CLASP_OK);
    cr_assert_eq(v, 1);
    cJSON_AddNumberToObject(r, "format_version", 2);
    cr_assert_eq(clasp_json_format_version(r, "x.json", 2, &v), CLASP_OK);
    cr_assert_eq(v, 2);
    cr_assert_eq(clasp_json_format_version(r, "x.json", 1, &v), CLASP_ERR_UNSUPPORTED);
    cr_assert(
        strstr(clasp_last_error(), "x.json: format_version 2 is newer than this clasp reads (1)"),
        "%s", clasp_last_error());
    cJSON_ReplaceItemInObject(r, "format_version", cJSON_CreateString("2"));
    cr_assert_eq(clasp_json_format_version(r, "x.json", 1, &v), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "format_version"), "%s", clasp_last_error());
    cJSON_Delete(r);
}

/* clasp_hash_file streams a file through XXH64: the same value as hashing its bytes at once, for
 * an empty file and one spanning several read chunks; a missing file is named. */
Test(core, hash_file_equals_hash_of_bytes) {
    char d[FX_PATH], p[FX_PATH], q[FX_PATH];
    fx_scratch("core_hash_file", d, p, "big.bin", q, "empty.bin", NULL);
    size_t n = 200000;
    unsigned char *b = malloc(n);
    cr_assert(b);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 2654435761u >> 13);
    cr_assert(fx_write(p, b, n));
    cr_assert(fx_write(q, b, 0));
    uint64_t h = 0;
    cr_assert_eq(clasp_hash_file(p, &h), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(h, clasp_hash64(b, n, 0));
    cr_assert_eq(clasp_hash_file(q, &h), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(h, clasp_hash64(b, 0, 0));
    free(b);
    strcat(q, ".missing");
    cr_assert_eq(clasp_hash_file(q, &h), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), q), "%s", clasp_last_error());
}
