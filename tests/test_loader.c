/* test_loader.c: the threaded loader: byte-identical batches for 1, 2 and 4 decode threads,
 * exact resume from a serialised position, skips by reason for damaged data, error policies,
 * empty epochs, eval mode and resampling. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/loader.h"
#include "fixtures.h"

/* ---- fixtures ---- */

static char g_dir[1024];

static const char *dir_(void) {
    if (!g_dir[0]) clasp_test_tmpdir("loader", g_dir, sizeof g_dir);
    return g_dir;
}

/* Writes shard `idx` with n samples of an 8x8 gray PGM, a caption (or json captions) and a
 * label. */
static void write_shard_(int idx, int n, int filter) {
    char path[1200];
    snprintf(path, sizeof path, "%s/train-%04d.tar", dir_(), idx);
    fx_member *m = calloc((size_t)n * 3, sizeof *m);
    char(*names)[64] = calloc((size_t)n * 3, 64);
    char(*caps)[128] = calloc((size_t)n, 128);
    char(*cls)[16] = calloc((size_t)n, 16);
    uint8_t **imgs = calloc((size_t)n, sizeof *imgs);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t ni;
        imgs[i] = fx_pnm(8, 8, 1, (unsigned)(idx * 1000 + i), &ni);
        snprintf(names[k], 64, "s%02d-%03d.pgm", idx, i);
        m[k++] = (fx_member){names[k - 1], imgs[i], ni, 0};
        if (i % 3 == 2) {
            snprintf(names[k], 64, "s%02d-%03d.json", idx, i);
            snprintf(caps[i], 128, "{\"captions\": [\"first %d-%d\", \"second %d-%d\", \"third\"]}",
                     idx, i, idx, i);
        } else {
            snprintf(names[k], 64, "s%02d-%03d.txt", idx, i);
            snprintf(caps[i], 128, "a photo of item %d in shard %d", i, idx);
        }
        m[k++] = (fx_member){names[k - 1], caps[i], strlen(caps[i]), 0};
        snprintf(names[k], 64, "s%02d-%03d.cls", idx, i);
        snprintf(cls[i], 16, "%d", (idx * 7 + i) % 10);
        m[k++] = (fx_member){names[k - 1], cls[i], strlen(cls[i]), 0};
    }
    cr_assert(fx_write_tar(path, ARCHIVE_FORMAT_TAR_USTAR, filter, m, k));
    for (int i = 0; i < n; i++) free(imgs[i]);
    free(imgs);
    free(m);
    free(names);
    free(caps);
    free(cls);
}

static void write_shards_(void) {
    int sizes[5] = {11, 9, 14, 7, 12};
    for (int i = 0; i < 5; i++) write_shard_(i, sizes[i], i == 2 ? ARCHIVE_FILTER_GZIP : 0);
}

static clasp_loader_config cfg_(int threads) {
    static char spec[1400];
    snprintf(spec, sizeof spec, "%s/train-{0000..0004}.tar", dir_());
    clasp_loader_config c = clasp_loader_default_config();
    c.spec = spec;
    c.seed = 1234;
    c.n_threads = threads;
    c.batch_size = 5, c.shuffle_buffer = 7, c.drop_last = false;
    c.image.channels = 1, c.image.size = 8, c.image.mean[0] = 0.5f, c.image.std[0] = 0.25f;
    c.context_length = 24;
    /* Training augmentation on (random resized crop, flip, jitter): keyed by (seed, epoch,
     * key), so it must not break thread-count identity or exact resume. */
    c.image_augment.enabled = true;
    c.image_augment.brightness = 0.2f;
    c.image_augment.contrast = 0.2f;
    c.quiet = true;
    c.queue_depth = 3; /* small, to exercise back-pressure */
    return c;
}

/* ---- batch capture ---- */

typedef struct stream {
    uint8_t *b;
    size_t n, cap;
    size_t n_batches;
    size_t batch_end[256]; /* byte offset after each batch */
} stream;

static void put_(stream *s, const void *p, size_t n) {
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->b = realloc(s->b, s->cap);
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void capture_(stream *s, const clasp_batch *b) {
    put_(s, &b->n, sizeof b->n);
    put_(s, &b->epoch, sizeof b->epoch);
    put_(s, &b->index, sizeof b->index);
    if (b->images)
        put_(s, b->images, b->n * (size_t)(b->img_c * b->img_h * b->img_w) * sizeof(float));
    if (b->tokens) put_(s, b->tokens, b->n * (size_t)b->ctx * sizeof(int32_t));
    if (b->audio) put_(s, b->audio, b->n * (size_t)b->n_mels * b->n_frames * sizeof(float));
    if (b->images2)
        put_(s, b->images2, b->n * (size_t)(b->img_c * b->img_h * b->img_w) * sizeof(float));
    if (b->audio2) put_(s, b->audio2, b->n * (size_t)b->n_mels * b->n_frames * sizeof(float));
    put_(s, b->labels, b->n * sizeof(int64_t));
    put_(s, b->group_ids, b->n * sizeof(uint64_t));
    for (size_t i = 0; i < b->n; i++) put_(s, b->keys[i], strlen(b->keys[i]) + 1);
    s->batch_end[s->n_batches++] = s->n;
}

/* Runs a loader until `epochs` epoch ends or max_batches batches; appends to s. */
static void run_(clasp_loader *L, stream *s, int epochs, size_t max_batches) {
    int ends = 0;
    size_t nb = 0;
    while (ends < epochs && nb < max_batches) {
        const clasp_batch *b;
        bool end;
        clasp_status st = clasp_loader_next(L, &b, &end);
        cr_assert_eq(st, CLASP_OK, "%s", clasp_last_error());
        if (end) {
            ends++;
            uint8_t mark[8] = {'E', 'P', 'O', 'C', 'H', 0, 0, 0};
            put_(s, mark, 8);
            continue;
        }
        capture_(s, b);
        nb++;
    }
}

TestSuite(loader, .init = write_shards_);

Test(loader, identical_batches_for_1_2_4_threads) {
    stream ref = {0};
    int threads[3] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        clasp_loader_config c = cfg_(threads[t]);
        clasp_loader *L;
        cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK, "%s", clasp_last_error());
        stream s = {0};
        run_(L, &s, 2, 1000);
        clasp_data_stats *st = clasp_loader_stats(L);
        cr_assert_eq(clasp_data_stats_total_skipped(st), 0);
        clasp_loader_close(L);
        if (t == 0) {
            ref = s;
            cr_assert_gt(ref.n_batches, 20);
        } else {
            cr_assert_eq(s.n, ref.n, "%d threads: %zu bytes vs %zu", threads[t], s.n, ref.n);
            cr_assert_eq(memcmp(s.b, ref.b, s.n), 0, "%d threads: batch bytes differ", threads[t]);
            free(s.b);
        }
    }
    free(ref.b);
}

Test(loader, epochs_shuffle_differently_and_cover_every_sample) {
    clasp_loader_config c = cfg_(2);
    c.batch_size = 53; /* all samples in one batch */
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
    char first[53][32];
    for (int e = 0; e < 2; e++) {
        const clasp_batch *b;
        bool end;
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        cr_assert(!end);
        cr_assert_eq(b->n, 53);
        int seen[5][14] = {{0}};
        size_t same = 0;
        for (size_t i = 0; i < 53; i++) {
            int sh, k;
            cr_assert_eq(sscanf(b->keys[i], "s%d-%d", &sh, &k), 2);
            seen[sh][k]++;
            cr_assert_eq(b->labels[i], (sh * 7 + k) % 10);
            if (e == 0)
                snprintf(first[i], 32, "%s", b->keys[i]);
            else
                same += !strcmp(first[i], b->keys[i]);
        }
        int sizes[5] = {11, 9, 14, 7, 12};
        for (int sh = 0; sh < 5; sh++)
            for (int k = 0; k < sizes[sh]; k++) cr_assert_eq(seen[sh][k], 1);
        if (e == 1) cr_assert_lt(same, 20, "epoch 1 order too close to epoch 0");
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        cr_assert(end);
    }
    clasp_loader_close(L);
}

Test(loader, exact_resume_from_any_batch) {
    clasp_loader_config c = cfg_(2);
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
    stream ref = {0};
    /* Record the uninterrupted stream and the position after every batch. */
    clasp_loader_position pos[64];
    size_t end_off[64];
    size_t nb = 0;
    int ends = 0;
    while (ends < 2) {
        const clasp_batch *b;
        bool end;
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        if (end) {
            ends++;
            uint8_t mark[8] = {'E', 'P', 'O', 'C', 'H', 0, 0, 0};
            put_(&ref, mark, 8);
            continue;
        }
        capture_(&ref, b);
        cr_assert_lt(nb, 64);
        pos[nb] = clasp_loader_get_position(L);
        end_off[nb++] = ref.n;
    }
    clasp_loader_close(L);
    size_t cuts[6] = {0, 1, 4, nb / 2 - 1, nb / 2, nb - 2};
    for (int ci = 0; ci < 6; ci++) {
        size_t k = cuts[ci];
        /* Through JSON, as a checkpoint would. */
        cJSON *j = clasp_loader_position_to_json(&pos[k]);
        char *txt = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        cJSON *j2 = cJSON_Parse(txt);
        free(txt);
        clasp_loader_position p;
        cr_assert_eq(clasp_loader_position_from_json(j2, &p), CLASP_OK, "%s", clasp_last_error());
        cJSON_Delete(j2);
        clasp_loader_config c2 = cfg_(1 + ci % 3);
        clasp_loader *R;
        cr_assert_eq(clasp_loader_open(&c2, &p, &R), CLASP_OK);
        stream s = {0};
        int want_ends = pos[k].epoch == 0 ? 2 : 1;
        run_(R, &s, want_ends, 1000);
        clasp_loader_close(R);
        size_t rest = ref.n - end_off[k];
        cr_assert_eq(s.n, rest, "cut after batch %zu: %zu bytes, want %zu", k, s.n, rest);
        cr_assert_eq(memcmp(s.b, ref.b + end_off[k], rest), 0, "cut after batch %zu differs", k);
        free(s.b);
    }
    free(ref.b);
}

Test(loader, resume_without_shuffle_buffer_and_with_resampling) {
    for (int mode = 0; mode < 2; mode++) {
        clasp_loader_config c = cfg_(2);
        if (mode == 0)
            c.shuffle_buffer = 0;
        else
            c.samples_per_epoch = 23;
        clasp_loader *L;
        cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
        stream ref = {0};
        run_(L, &ref, 1, 3);
        clasp_loader_position p = clasp_loader_get_position(L);
        size_t off = ref.n;
        run_(L, &ref, 2, 1000);
        clasp_loader_close(L);
        clasp_loader *R;
        cr_assert_eq(clasp_loader_open(&c, &p, &R), CLASP_OK);
        stream s = {0};
        run_(R, &s, 2, 1000);
        clasp_loader_close(R);
        cr_assert_eq(s.n, ref.n - off, "mode %d", mode);
        cr_assert_eq(memcmp(s.b, ref.b + off, s.n), 0, "mode %d", mode);
        free(s.b);
        free(ref.b);
    }
}

Test(loader, samples_per_epoch_resamples) {
    clasp_loader_config c = cfg_(2);
    c.samples_per_epoch = 13;
    c.rank = 3;
    c.world = 8; /* more ranks than shards: fine when resampling */
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK, "%s", clasp_last_error());
    size_t rows[4] = {0};
    size_t nb = 0;
    for (;;) {
        const clasp_batch *b;
        bool end;
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        if (end) break;
        cr_assert_lt(nb, 4);
        rows[nb++] = b->n;
    }
    cr_assert_eq(nb, 3);
    cr_assert_eq(rows[0] + rows[1] + rows[2], 13);
    cr_assert_eq(rows[2], 3);
    clasp_loader_close(L);
}

Test(loader, eval_mode_keeps_order_and_last_partial_batch) {
    clasp_loader_config c = cfg_(2);
    c.eval = true;
    c.drop_last = true; /* ignored in eval */
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
    size_t total = 0, last = 0;
    char prev[64] = "";
    for (;;) {
        const clasp_batch *b;
        bool end;
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        if (end) break;
        for (size_t i = 0; i < b->n; i++) {
            cr_assert_gt(strcmp(b->keys[i], prev), 0, "%s after %s", b->keys[i], prev);
            snprintf(prev, sizeof prev, "%s", b->keys[i]);
        }
        total += b->n;
        last = b->n;
    }
    cr_assert_eq(total, 53);
    cr_assert_eq(last, 3);
    clasp_loader_close(L);
    /* Training with drop_last drops the 3. */
    c.eval = false;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
    total = 0;
    for (;;) {
        const clasp_batch *b;
        bool end;
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        if (end) break;
        cr_assert_eq(b->n, 5);
        total += b->n;
    }
    cr_assert_eq(total, 50);
    clasp_loader_close(L);
}

/* A shard with every kind of bad sample, and two good ones. */
static void write_bad_shard_(const char *path) {
    size_t n_ok1, n_ok2, n_bad;
    uint8_t *ok1 = fx_pnm(8, 8, 1, 1, &n_ok1);
    uint8_t *ok2 = fx_pnm(12, 9, 3, 2, &n_ok2); /* RGB, resized to 8x8 gray */
    const char *huge = "P5\n100000 100000\n255\n\x01\x02\x03";
    const char corrupt_png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDRjunkjunkjunk";
    const char bad_utf8[] = "caption \xc3\x28 broken";
    n_bad = strlen(huge);
    fx_member m[] = {
        {"good1.pgm", ok1, n_ok1, 0},
        {"good1.txt", "fine", 4, 0},
        {"dir/good.2.ppm", ok2, n_ok2, 0}, /* key "dir/good", ext "2.ppm" */
        {"dir/good.txt", "also fine", 9, 0},
        {"corrupt.png", corrupt_png, sizeof corrupt_png - 1, 0},
        {"corrupt.txt", "x", 1, 0},
        {"huge.pgm", huge, n_bad, 0},
        {"huge.txt", "x", 1, 0},
        {"empty.pgm", ok1, n_ok1, 0},
        {"empty.txt", "", 0, 0},
        {"utf8.pgm", ok1, n_ok1, 0},
        {"utf8.txt", bad_utf8, sizeof bad_utf8 - 1, 0},
        {"nocap.pgm", ok1, n_ok1, 0},
        {"badjson.pgm", ok1, n_ok1, 0},
        {"badjson.json", "{\"captions\": [", 14, 0},
        {"noimage.txt", "no image", 8, 0},
    };
    cr_assert(fx_write_tar(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, 0, m, sizeof m / sizeof m[0]));
    free(ok1);
    free(ok2);
}

Test(loader, bad_samples_and_shards_are_skipped_and_counted) {
    char bad[1200], garbage[1200], cut[1200], spec[8000];
    snprintf(bad, sizeof bad, "%s/bad.tar", dir_());
    snprintf(garbage, sizeof garbage, "%s/garbage.tar", dir_());
    snprintf(cut, sizeof cut, "%s/cut.tar", dir_());
    write_bad_shard_(bad);
    char junk[2000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 29 + 1);
    fx_write(garbage, junk, sizeof junk);
    size_t n = 0;
    char src[1200];
    snprintf(src, sizeof src, "%s/train-0000.tar", dir_());
    uint8_t *t = fx_read(src, &n);
    cr_assert_gt(n, 17 * 1024 + 600);
    fx_write(cut, t, 15 * 1024 + 512 + 30); /* cut inside sample 5 image data */
    free(t);
    snprintf(spec, sizeof spec, "%s::%s::%s/missing-{1,2}.tar::%s::pipe:cat %s", bad, garbage,
             dir_(), cut, bad);
    clasp_loader_config c = cfg_(2);
    c.spec = spec;
    c.eval = true;
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK, "%s", clasp_last_error());
    size_t total = 0;
    int good = 0;
    for (;;) {
        const clasp_batch *b;
        bool end;
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK, "%s", clasp_last_error());
        if (end) break;
        for (size_t i = 0; i < b->n; i++)
            good += !strncmp(b->keys[i], "good1", 5) || !strcmp(b->keys[i], "dir/good");
        total += b->n;
    }
    clasp_data_stats *st = clasp_loader_stats(L);
    cr_assert_eq(good, 4); /* 2 from bad.tar, 2 from pipe:cat bad.tar */
    cr_assert_eq(st->skipped[CLASP_SKIP_BAD_IMAGE], 4, "bad_image %llu",
                 (unsigned long long)st->skipped[CLASP_SKIP_BAD_IMAGE]);
    cr_assert_eq(st->skipped[CLASP_SKIP_BAD_TEXT], 4);
    cr_assert_eq(st->skipped[CLASP_SKIP_MISSING_FIELD], 4);
    cr_assert_eq(st->skipped[CLASP_SKIP_BAD_JSON], 2);
    cr_assert_eq(st->skipped[CLASP_SKIP_TRUNCATED], 1);
    cr_assert_eq(st->shard_errors[CLASP_SHARD_MISSING], 2);
    cr_assert_eq(st->shard_errors[CLASP_SHARD_UNREADABLE], 1);
    cr_assert_eq(st->shard_errors[CLASP_SHARD_TRUNCATED], 1);
    cr_assert_eq(total, st->samples_ok);
    cr_assert_gt(total, 4); /* plus the good samples before the cut */
    cJSON *j = clasp_data_stats_to_json(st);
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "skipped_by_reason"), "bad_image"));
    cJSON_Delete(j);
    clasp_loader_close(L);
}

Test(loader, missing_shard_fails_under_fail_policy) {
    char spec[2600];
    snprintf(spec, sizeof spec, "%s/train-0000.tar::%s/missing.tar", dir_(), dir_());
    clasp_loader_config c = cfg_(2);
    c.spec = spec;
    c.eval = true;
    c.on_error = CLASP_ON_ERROR_FAIL;
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
    clasp_status st = CLASP_OK;
    for (int i = 0; i < 100 && st == CLASP_OK; i++) {
        const clasp_batch *b;
        bool end;
        st = clasp_loader_next(L, &b, &end);
        cr_assert(!end, "epoch ended despite the fail policy");
    }
    cr_assert_eq(st, CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "missing.tar"), "%s", clasp_last_error());
    clasp_loader_close(L);
}

Test(loader, empty_epoch_is_an_error_not_a_loop) {
    char spec[1400];
    snprintf(spec, sizeof spec, "%s/nothing-{0..3}.tar", dir_());
    for (int resample = 0; resample < 2; resample++) {
        clasp_loader_config c = cfg_(2);
        c.spec = spec;
        c.samples_per_epoch = resample ? 100 : 0;
        clasp_loader *L;
        cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
        const clasp_batch *b;
        bool end;
        clasp_status st = clasp_loader_next(L, &b, &end);
        cr_assert_neq(st, CLASP_OK, "resample %d", resample);
        cr_assert(strstr(clasp_last_error(), "no"), "%s", clasp_last_error());
        clasp_loader_close(L);
    }
}

Test(loader, open_errors) {
    clasp_loader_config c = cfg_(1);
    clasp_loader *L;
    c.spec = "";
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_ERR_ARG);
    c = cfg_(1);
    c.world = 8;
    c.rank = 7;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "no shard"), "%s", clasp_last_error());
    c = cfg_(1);
    c.image.size = 0;
    cr_assert_neq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
}

Test(loader, caption_choice_depends_on_epoch_not_threads) {
    /* Samples with json captions pick one of three per epoch; the pick is keyed by (seed,
     * epoch, key), so over several epochs some sample must change caption. */
    clasp_loader_config c = cfg_(2);
    c.eval = false;
    c.batch_size = 53;
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK);
    uint64_t g[4][5][14];
    memset(g, 0, sizeof g);
    for (int e = 0; e < 4; e++) {
        const clasp_batch *b;
        bool end;
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        for (size_t i = 0; i < b->n; i++) {
            int sh, k;
            sscanf(b->keys[i], "s%d-%d", &sh, &k);
            g[e][sh][k] = b->group_ids[i];
        }
        cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
        cr_assert(end);
    }
    int changed = 0, unchanged_txt = 1;
    for (int sh = 0; sh < 5; sh++)
        for (int k = 0; k < 7; k++) {
            bool json = k % 3 == 2;
            for (int e = 1; e < 4; e++) {
                if (json)
                    changed += g[e][sh][k] != g[0][sh][k];
                else if (g[e][sh][k] != g[0][sh][k])
                    unchanged_txt = 0;
            }
        }
    cr_assert_gt(changed, 0);
    cr_assert(unchanged_txt);
    clasp_loader_close(L);
}

/* The first `nb` batches of cfg c (views, threads, eval as set), captured. */
static stream first_batches_(clasp_loader_config c, size_t nb) {
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK, "%s", clasp_last_error());
    stream s = {0};
    run_(L, &s, 1, nb);
    clasp_loader_close(L);
    return s;
}

Test(loader, two_views_differ_and_are_keyed_by_view_not_threads) {
    clasp_loader_config c = cfg_(1);
    c.views = 2;
    clasp_loader *L;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_OK, "%s", clasp_last_error());
    const clasp_batch *b;
    bool end;
    cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK, "%s", clasp_last_error());
    cr_assert(!end && b->images2 && !b->audio2);
    const size_t img = (size_t)(b->img_c * b->img_h * b->img_w);
    for (size_t i = 0; i < b->n; i++)
        cr_assert(memcmp(b->images + i * img, b->images2 + i * img, img * sizeof(float)) != 0,
                  "row %zu: the two views are equal", i);
    /* view 0 is the one-view batch, byte for byte */
    clasp_loader_config one = cfg_(1);
    clasp_loader *L1;
    cr_assert_eq(clasp_loader_open(&one, NULL, &L1), CLASP_OK);
    const clasp_batch *b1;
    cr_assert_eq(clasp_loader_next(L1, &b1, &end), CLASP_OK);
    cr_assert(!b1->images2);
    cr_assert_eq(memcmp(b->images, b1->images, b->n * img * sizeof(float)), 0);
    clasp_loader_close(L1);
    clasp_loader_close(L);

    /* the same views again, whatever the decode threads */
    stream ref = first_batches_(c, 6);
    cr_assert_eq(ref.n_batches, 6);
    for (int threads = 1; threads <= 3; threads += 2) {
        c.n_threads = threads;
        stream s = first_batches_(c, 6);
        cr_assert_eq(s.n, ref.n);
        cr_assert_eq(memcmp(s.b, ref.b, s.n), 0, "%d threads: the views differ", threads);
        free(s.b);
    }
    free(ref.b);

    /* without augmentation (evaluation) the two views are the same image */
    clasp_loader_config e = cfg_(2);
    e.views = 2;
    clasp_loader_config_eval(&e, e.spec, 5, 2);
    cr_assert_eq(clasp_loader_open(&e, NULL, &L), CLASP_OK);
    cr_assert_eq(clasp_loader_next(L, &b, &end), CLASP_OK);
    cr_assert_eq(memcmp(b->images, b->images2, b->n * img * sizeof(float)), 0);
    clasp_loader_close(L);
    c.views = 3;
    cr_assert_eq(clasp_loader_open(&c, NULL, &L), CLASP_ERR_CONFIG);
}
