/* test_train_views.c: `clasp train` with two augmented views of one tower (--pair image-image,
 * SimCLR) and with --positives caption|label|both (the groups of the global batch), end to end
 * on a small Fashion-MNIST subset, and clasp_train_groups on hand-made batches. */
#include <archive.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "train/trainer.h"

static char g_data[4200];

static void build_data_(const char *dir) {
    snprintf(g_data, sizeof g_data, "%s/fmnist", dir);
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    cr_assert_eq(fx_fmnist_shards(g_data), 0, "building %s failed", g_data);
}

/* clasp train on the fmnist shards into `out` (log in out.log); the exit status. */
static int run_(const char *extra, const char *out) {
    return fx_clasp(NULL,
                    "train --model %s/configs/fmnist-small.json --train "
                    "'%s/train-{000000..000004}.tar' --out %s --batch-size 32 --warmup 2 "
                    "--log-every 1 --no-progress --seed 3 %s >%s.log 2>&1",
                    CLASP_SOURCE_DIR, g_data, out, extra, out);
}

static char *losses_(const char *run) {
    char *v = fx_metrics_values(run, "train", "loss");
    cr_assert_not_null(v, "%s/metrics.jsonl", run);
    return v;
}

static char *log_(const char *run) {
    char path[4400];
    snprintf(path, sizeof path, "%s.log", run);
    return fx_read_text(path);
}

Test(train_views, simclr_two_views_are_deterministic_whatever_the_loader_threads) {
    char base[4096], a[FX_PATH], b[FX_PATH], c[FX_PATH], d[FX_PATH];
    build_data_(fx_scratch("views_simclr", base, a, "w1", b, "w2", c, "plain", d, "infonce", NULL));
    const char *x = "--pair image-image --loss ntxent --steps 4";
    char args[FX_PATH + 256];
    snprintf(args, sizeof args, "%s --workers 1", x);
    cr_assert_eq(run_(args, a), 0, "%s", log_(a));
    snprintf(args, sizeof args, "%s --workers 2", x);
    cr_assert_eq(run_(args, b), 0, "%s", log_(b));
    char *la = losses_(a), *lb = losses_(b);
    cr_assert_eq(fx_count_lines(la), 4);
    cr_assert_str_eq(la, lb, "loader threads 1 vs 2:\n%s\nvs\n%s", la, lb);
    char *text = log_(a);
    cr_assert(strstr(text, "default image augmentation"), "%s", text);
    free(text);
    /* the views are augmented: without augmentation the loss would see identical views and
     * differ from these (an explicit augmentation file with everything off) */
    char off[FX_PATH + 16];
    snprintf(off, sizeof off, "%s.json", c);
    cr_assert(fx_write_str(off, "{\"random_resized_crop\": false, \"hflip\": 0}"));
    snprintf(args, sizeof args, "%s --workers 1 --image-augment %s", x, off);
    cr_assert_eq(run_(args, c), 0, "%s", log_(c));
    char *lc = losses_(c);
    cr_assert_str_neq(la, lc, "two augmented views train like two identical ones");
    /* the positive pair's similarity: below 1 for two augmentations, 1 for identical views */
    double pa[8], pc[8];
    cr_assert_eq(fx_metrics_numbers(a, "train", "pos_sim", pa, 8), 4);
    cr_assert_eq(fx_metrics_numbers(c, "train", "pos_sim", pc, 8), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_lt(pa[i], 0.99, "step %d: the b side is not a second view", i + 1);
        cr_assert_gt(pc[i], 0.9999, "step %d: identical views", i + 1);
    }
    free(lc);
    free(la);
    free(lb);
    /* a loss that is not a two-view loss is refused, naming the flags */
    cr_assert_eq(run_("--pair image-image --steps 2", d), 1);
    text = log_(d);
    cr_assert(strstr(text, "--pair image-image") && strstr(text, "not a two-view loss") &&
                  strstr(text, "ntxent"),
              "%s", text);
    free(text);
    cr_assert_eq(run_("--pair text-text --loss ntxent --steps 2", d), 2);
}

Test(train_views, positives_caption_label_both) {
    char base[4096], mp[FX_PATH], cap[FX_PATH], lab[FX_PATH], both[FX_PATH], none[FX_PATH],
        bad[FX_PATH];
    build_data_(fx_scratch("views_positives", base, mp, "mp", cap, "caption", lab, "label", both,
                           "both", none, "none", bad, "bad", NULL));
    cr_assert_eq(run_("--steps 3 --multi-positive", mp), 0, "%s", log_(mp));
    cr_assert_eq(run_("--steps 3 --positives caption", cap), 0, "%s", log_(cap));
    cr_assert_eq(run_("--steps 3 --positives label", lab), 0, "%s", log_(lab));
    cr_assert_eq(run_("--steps 3 --positives both", both), 0, "%s", log_(both));
    cr_assert_eq(run_("--steps 3", none), 0, "%s", log_(none));
    char *lm = losses_(mp), *lc = losses_(cap), *ll = losses_(lab), *lb = losses_(both),
         *ln = losses_(none);
    cr_assert_str_eq(lm, lc, "--multi-positive is --positives caption");
    /* Fashion-MNIST captions are a class name under one of several templates: the same label
     * groups more rows than the same caption, and either-or equals the label's groups */
    cr_assert_str_neq(lc, ll, "label positives train like caption positives");
    cr_assert_str_neq(ln, ll, "label positives train like no groups");
    cr_assert_str_eq(ll, lb, "caption OR label differs from label although captions nest");
    free(lm), free(lc), free(ll), free(lb), free(ln);
    /* the choice is part of the resume key */
    char path[FX_PATH + 32];
    snprintf(path, sizeof path, "%s/options.json", lab);
    char *opt = fx_read_text(path);
    cr_assert(strstr(opt, "\"positives\":\t\"label\""), "%s", opt);
    free(opt);
    cr_assert_eq(run_("--steps 4 --positives caption --resume latest", lab), 1);
    char *text = log_(lab);
    cr_assert(strstr(text, "positives"), "%s", text);
    free(text);
    /* --multi-positive is caption positives: not with label */
    cr_assert_eq(run_("--steps 2 --multi-positive --positives label", bad), 2);
}

/* Eight samples with an image and a caption but no .cls: label positives are refused, naming
 * the flag, the shard spec and the key. */
Test(train_views, label_positives_need_cls) {
    char base[4096], shard[FX_PATH], run[FX_PATH];
    fx_scratch("views_nocls", base, shard, "nocls-000000.tar", run, "run", NULL);
    fx_member m[16];
    uint8_t *png[8];
    char names[16][32];
    for (int i = 0; i < 8; i++) {
        uint8_t *px = fx_random_pixels(28, 28, 1, (uint64_t)i);
        size_t n;
        png[i] = fx_png(px, 28, 28, 1, &n);
        free(px);
        snprintf(names[2 * i], 32, "k%d.png", i);
        snprintf(names[2 * i + 1], 32, "k%d.txt", i);
        m[2 * i] = (fx_member){names[2 * i], png[i], n, 0};
        m[2 * i + 1] = (fx_member){names[2 * i + 1], "a shirt", 7, 0};
    }
    cr_assert(fx_write_tar(shard, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 16));
    for (int i = 0; i < 8; i++) free(png[i]);
    int rc = fx_clasp(NULL,
                      "train --model %s/configs/fmnist-small.json --train %s --out %s "
                      "--batch-size 8 --steps 1 --no-progress --positives label >%s.log 2>&1",
                      CLASP_SOURCE_DIR, shard, run, run);
    char *text = log_(run);
    cr_assert_eq(rc, 2, "%s", text);
    cr_assert(strstr(text, "--positives label") && strstr(text, "nocls-000000.tar") &&
                  strstr(text, "sample 'k"),
              "%s", text);
    free(text);
}

/* Groups of hand-made batches: ids are the lowest row of each group. */
Test(train_views, groups_by_caption_label_and_their_union) {
    /* rows:        0  1  2  3  4  5  6 */
    const uint64_t caption[7] = {10, 10, 20, 30, 40, 30, 50};
    const int64_t label[7] = {0, 1, 1, 2, 3, 4, 3};
    int32_t out[7], scratch[21];
    uint64_t s64[7];
    clasp_train_groups(CLASP_POSITIVES_CAPTION, caption, NULL, 7, out, scratch, s64);
    const int32_t want_cap[7] = {0, 0, 2, 3, 4, 3, 6};
    cr_assert_arr_eq(out, want_cap, sizeof out);
    clasp_train_groups(CLASP_POSITIVES_LABEL, NULL, label, 7, out, scratch, s64);
    const int32_t want_lab[7] = {0, 1, 1, 3, 4, 5, 4};
    cr_assert_arr_eq(out, want_lab, sizeof out);
    /* 0 ~ 1 (caption), 1 ~ 2 (label): 0, 1, 2 one group; 3 ~ 5 (caption); 4 ~ 6 (label) */
    clasp_train_groups(CLASP_POSITIVES_BOTH, caption, label, 7, out, scratch, s64);
    const int32_t want_both[7] = {0, 0, 0, 3, 4, 3, 4};
    cr_assert_arr_eq(out, want_both, sizeof out);
    /* a chain joined from the far end: 3 ~ 4 (label), 2 ~ 3 (caption), 0 ~ 4 (caption) */
    const uint64_t c2[5] = {7, 8, 9, 9, 7};
    const int64_t l2[5] = {0, 1, 2, 5, 5};
    clasp_train_groups(CLASP_POSITIVES_BOTH, c2, l2, 5, out, scratch, s64);
    const int32_t want_chain[5] = {0, 1, 0, 0, 0};
    cr_assert_arr_eq(out, want_chain, 5 * sizeof(int32_t));
    clasp_train_groups(CLASP_POSITIVES_NONE, c2, l2, 5, out, scratch, s64);
    for (int i = 0; i < 5; i++) cr_assert_eq(out[i], i);
}

/* Two views resume exactly: the views are keyed by (seed, view, epoch, key), not by how many
 * samples a loader decoded before. */
Test(train_views, two_views_resume_exactly) {
    char base[4096], a[FX_PATH], b[FX_PATH];
    build_data_(fx_scratch("views_resume", base, a, "straight", b, "stopped", NULL));
    const char *x = "--pair image-image --loss ntxent --positives label --steps 6";
    char args[FX_PATH];
    cr_assert_eq(run_(x, a), 0, "%s", log_(a));
    snprintf(args, sizeof args, "%s --stop-after 3", x);
    cr_assert_eq(run_(args, b), 3, "%s", log_(b));
    snprintf(args, sizeof args, "%s --resume latest", x);
    cr_assert_eq(run_(args, b), 0, "%s", log_(b));
    char *la = losses_(a), *lb = losses_(b);
    cr_assert_eq(fx_count_lines(la), 6);
    cr_assert_str_eq(la, lb, "straight vs stopped + resumed:\n%s\nvs\n%s", la, lb);
    free(la);
    free(lb);
}
