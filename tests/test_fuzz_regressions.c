/* test_fuzz_regressions.c: every finding of the fuzz targets (tests/fuzz/) replayed as a normal
 * test on its saved input (tests/fuzz/regressions/TARGET/), so the normal and sanitizer builds
 * check the fix without libFuzzer: the input is refused with a clear error, and nothing
 * overflows, leaks or allocates what the input merely declares. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/json.h"
#include "core/safetensors.h"
#include "core/hash.h"
#include "eval/retrieval.h"
#include "index/index.h"
#include "fixtures.h"
#include "modalities/image.h"
#include "modalities/tokenizer.h"
#include "pipeline/shardlist.h"

/* A committed fuzz input: tests/fuzz/DIR/TARGET/NAME (DIR: "regressions" or "corpus"). */
static char *fuzz_input_(const char *dir, const char *target, const char *name, size_t *n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/%s/%s/%s", CLASP_SOURCE_DIR, dir, target, name);
    char *data = NULL;
    cr_assert_eq(clasp_read_file(path, (size_t)1 << 24, &data, n), CLASP_OK, "%s",
                 clasp_last_error());
    return data;
}

/* stb_image v2.27 wrote past its 257-entry Huffman size table on a DHT whose counts sum above
 * 256. JPEG now goes to libjpeg-turbo, which refuses the table. */
Test(fuzz_regressions, jpeg_dht_counts_above_256_is_refused) {
    size_t n;
    char *d = fuzz_input_("regressions", "image", "regress-dht-counts-above-256.jpg", &n);
    clasp_image img;
    cr_assert_eq(clasp_image_decode(d, n, 3, 1u << 20, &img), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "JPEG"), "%s", clasp_last_error());
    free(d);
}

/* What stb_image could not read and libjpeg-turbo does: arithmetic coding; and restart markers
 * and progressive scans keep decoding. Each gives the size in its header. */
Test(fuzz_regressions, jpeg_variants_decode) {
    const char *names[] = {"arithmetic.jpg",          "restart.jpg", "progressive.jpg",
                           "progressive_restart.jpg", "gray.jpg",    "cmyk.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n;
        char *d = fuzz_input_("corpus", "image", names[i], &n);
        for (int c = 1; c <= 3; c += 2) {
            clasp_image img;
            cr_assert_eq(clasp_image_decode(d, n, c, 1u << 20, &img), CLASP_OK, "%s: %s", names[i],
                         clasp_last_error());
            cr_assert(img.w == 24 && img.h == 16 && img.channels == c, "%s", names[i]);
            clasp_image_free(&img);
        }
        free(d);
    }
}

/* A truncated JPEG is corrupt data (a skip), not a picture with a gray bottom half. */
Test(fuzz_regressions, truncated_jpeg_is_refused) {
    size_t n;
    char *d = fuzz_input_("corpus", "image", "baseline.jpg", &n);
    clasp_image img;
    cr_assert_eq(clasp_image_decode(d, n * 2 / 3, 3, 1u << 20, &img), CLASP_ERR_FORMAT);
    free(d);
}

/* stb_image grew its IDAT buffer by the declared chunk length before reading: a tiny PNG
 * declaring a 2 GiB IDAT allocated 2 GiB (the input was a tar; the PNG is rebuilt here). */
Test(fuzz_regressions, png_chunk_longer_than_file_is_refused) {
    size_t n;
    char *d = fuzz_input_("corpus", "image", "gray8.png", &n);
    /* IHDR is 8 + 25 bytes; the next chunk's length field follows */
    unsigned char *p = (unsigned char *)d;
    p[33] = 0x7f, p[34] = 0xff, p[35] = 0xff, p[36] = 0x00;
    clasp_image img;
    cr_assert_eq(clasp_image_decode(d, n, 1, 1u << 20, &img), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "declares"), "%s", clasp_last_error());
    cr_assert_eq(clasp_image_decode(d, 40, 1, 1u << 20, &img), CLASP_ERR_FORMAT);
    free(d);
    /* the original finding, through the tar path, is replayed by fuzz_tar on every fuzz run */
    d = fuzz_input_("regressions", "tar", "regress-png-idat-2gib.tar", &n);
    cr_assert_gt(n, 0);
    free(d);
}

/* Casting a merge id of 1e12 to int32 was undefined behaviour (UBSan). */
Test(fuzz_regressions, tokenizer_merge_id_out_of_int32_is_refused) {
    size_t n;
    char *d = fuzz_input_("regressions", "tokenizer", "regress-merge-id-1e12.json", &n);
    cJSON *root = NULL;
    cr_assert_eq(clasp_json_parse(d, n, "tokenizer.json", &root), CLASP_OK);
    clasp_tokenizer *tok = NULL;
    cr_assert_eq(clasp_tokenizer_from_json(root, "tokenizer.json", &tok), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "merges[1]"), "%s", clasp_last_error());
    cJSON_Delete(root);
    free(d);
}

/* "{a,,b}" expanded to an empty shard name ("x-{a,,b}" is fine: "x-"). */
Test(fuzz_regressions, shard_spec_empty_alternative_is_refused) {
    size_t n;
    char *d = fuzz_input_("regressions", "shardspec", "regress-empty-alternative.txt", &n);
    char *spec = calloc(n + 1, 1);
    memcpy(spec, d, n);
    clasp_shardlist l;
    cr_assert_eq(clasp_shardlist_expand(spec, &l), CLASP_ERR_ARG);
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand("{a,,b}", &l), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "empty name"), "%s", clasp_last_error());
    clasp_shardlist_free(&l);
    free(spec);
    free(d);
}

/* A .npy header declaring more data than the file holds made the reader malloc the declared
 * size (5.7e18 bytes: ASan's allocation-size-too-big). */
Test(fuzz_regressions, npy_shape_beyond_file_is_refused) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/regressions/npy/regress-shape-beyond-file.npy",
             CLASP_SOURCE_DIR);
    float *x = NULL;
    int64_t r, c;
    cr_assert_eq(clasp_npy_read_f32(path, &x, &r, &c), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "shorter than shape"), "%s", clasp_last_error());
    cr_assert_null(x);
}

/* "{710..33}...{71010..33}..." is 48 million names: refused at the cap (now two million), in
 * about a second rather than the 10 s and gigabytes the old cap of ten million took. */
Test(fuzz_regressions, shard_spec_range_product_is_refused) {
    size_t n;
    char *d = fuzz_input_("regressions", "shardspec", "regress-range-product-48m.txt", &n);
    char *spec = calloc(n + 1, 1);
    memcpy(spec, d, n);
    clasp_shardlist l;
    cr_assert_eq(clasp_shardlist_expand(spec, &l), CLASP_ERR_OVERFLOW);
    clasp_shardlist_free(&l);
    free(spec);
    free(d);
}

/* stb_image reads zeros past the end: a 22-byte TGA header declaring 40246 x 24 pixels decoded
 * to a black picture (and took seconds to resize under ASan). Refused from the declared size;
 * so is a BMP cut in the middle of its pixel rows. */
Test(fuzz_regressions, image_declaring_more_than_its_bytes_is_refused) {
    size_t n;
    char *d = fuzz_input_("regressions", "image", "regress-tga-22-bytes-40246x24.tga", &n);
    clasp_image img;
    cr_assert_eq(clasp_image_decode(d, n, 3, 1u << 20, &img), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "cannot come from 22 bytes"), "%s", clasp_last_error());
    free(d);
    const char *whole[] = {"rgb.bmp", "rgb.tga", "rle.tga", "palette.bmp"};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        d = fuzz_input_("corpus", "image", whole[i], &n);
        cr_assert_eq(clasp_image_decode(d, n, 3, 1u << 20, &img), CLASP_OK, "%s: %s", whole[i],
                     clasp_last_error());
        clasp_image_free(&img);
        if (strstr(whole[i], "rle")) {
            free(d);
            continue;
        }
        cr_assert_eq(clasp_image_decode(d, n - 40, 3, 1u << 20, &img), CLASP_ERR_FORMAT,
                     "%s cut by 40 bytes", whole[i]);
        cr_assert(strstr(clasp_last_error(), "truncated"), "%s", clasp_last_error());
        free(d);
    }
}

/* A header naming "__metadata__" twice leaked the first one's arrays (LeakSanitizer); a tensor
 * named twice shadowed the first. A repeated key is refused. */
Test(fuzz_regressions, safetensors_repeated_key_is_refused) {
    size_t n;
    char *d = fuzz_input_("regressions", "safetensors", "regress-metadata-twice.safetensors", &n);
    clasp_safetensors *st = NULL;
    cr_assert_eq(clasp_st_from_memory(d, n, "x.safetensors", &st), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "'__metadata__' twice"), "%s", clasp_last_error());
    cr_assert_null(st);
    free(d);
}

/* 3.5 million names from three ranges: refused at the cap by a counting pass, before the names
 * take memory (the first cap check came after two million names, over 1 GiB under ASan). */
Test(fuzz_regressions, shard_spec_cap_is_checked_before_allocating) {
    size_t n;
    char *d = fuzz_input_("regressions", "shardspec", "regress-range-product-3m-memory.txt", &n);
    char *spec = calloc(n + 1, 1);
    memcpy(spec, d, n);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    clasp_shardlist l;
    cr_assert_eq(clasp_shardlist_expand(spec, &l), CLASP_ERR_OVERFLOW);
    clasp_shardlist_free(&l);
    getrusage(RUSAGE_SELF, &after);
#if !defined(__SANITIZE_ADDRESS__)
    /* (under ASan the quarantine keeps the counting pass's freed strings resident: no bound) */
    cr_assert_lt(after.ru_maxrss - before.ru_maxrss, 64 * 1024, "peak RSS grew by %ld KiB",
                 after.ru_maxrss - before.ru_maxrss);
#endif
    free(spec);
    free(d);
}

/* fuzz_index, when it let FAISS read hash-consistent bytes: a crafted HNSW graph FAISS reads
 * without complaint, with a neighbour id out of range, crashed the search. clasp now checks the
 * graph it read (index/faiss_shim.cpp). The input's "@HASH@" / "@KEYS@" are replaced by the
 * xxh64 of its parts, as a writer records them, so the bytes reach FAISS here. */
Test(fuzz_regressions, crafted_hnsw_graph_is_refused_not_searched) {
    size_t n;
    char *in = fuzz_input_("regressions", "index", "regress-hnsw-neighbour-out-of-range.bin", &n);
    size_t ks = 0, fs = 0;
    for (size_t i = 0; i + 11 <= n; i++) {
        if (!ks && !memcmp(in + i, "\n--keys--\n", 10)) ks = i;
        if (!fs && !memcmp(in + i, "\n--faiss--\n", 11)) fs = i;
    }
    cr_assert(ks && fs > ks);
    const char *keys = in + ks + 10, *faiss = in + fs + 11;
    size_t kn = fs - ks - 10, fn = n - fs - 11;
    char hh[17], kh[17];
    clasp_hash_hex(clasp_hash64(faiss, fn, 0), hh);
    clasp_hash_hex(clasp_hash64(keys, kn, 0), kh);
    char *meta = malloc(ks + 32);
    size_t o = 0;
    for (size_t i = 0; i < ks;) {
        int h = i + 6 <= ks && !memcmp(in + i, "@HASH@", 6);
        int k = i + 6 <= ks && !memcmp(in + i, "@KEYS@", 6);
        if (h || k) {
            memcpy(meta + o, h ? hh : kh, 16), o += 16, i += 6;
        } else {
            meta[o++] = in[i++];
        }
    }
    char d[4096], v[4200], link[4200];
    clasp_test_tmpdir("regress-hnsw-graph", d, sizeof d);
    snprintf(v, sizeof v, "%s/v1", d);
    snprintf(link, sizeof link, "%s/current", d);
    cr_assert_eq(clasp_mkdir_p(v), CLASP_OK);
    cr_assert(fx_put(v, "meta.json", meta, o) && fx_put(v, "keys.txt", keys, kn) &&
              fx_put(v, "index.faiss", faiss, fn));
    unlink(link);
    cr_assert_eq(symlink("v1", link), 0);
    clasp_index *ix = NULL;
    cr_assert_eq(clasp_index_open(d, &ix), CLASP_ERR_FORMAT, "%s", clasp_last_error());
    cr_assert_null(ix);
    cr_assert(strstr(clasp_last_error(), "malformed hnsw index"), "%s", clasp_last_error());
    free(meta);
    free(in);
}
