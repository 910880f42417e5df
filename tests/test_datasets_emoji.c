/* test_datasets_emoji.c: the emoji builder on fake npm package .tgz files written here with
 * libarchive (label matching across FE0F spellings, skip reasons, skin tones, split by emoji
 * across vendors, refused vendors, byte-identical rebuild, Python tarfile check), the error
 * when npm cannot be run, and, when the real packages are in the cache, a small real build. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/json.h"
#include "datasets/emoji.h"
#include "datasets/espeak.h"
#include "datasets/split.h"
#include "modalities/image.h"
#include "fixtures.h"

/* Writes a gzip-compressed tar with members (name, data) like `npm pack` makes. */
static void write_tgz(const char *path, const char *const *names, const void *const *data,
                      const size_t *sizes, size_t n) {
    fx_member m[16];
    cr_assert_leq(n, 16);
    for (size_t i = 0; i < n; i++) m[i] = (fx_member){names[i], data[i], sizes[i], 0};
    cr_assert(fx_write_tar(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, m, n));
}

static uint8_t *png(int seed, size_t *n) {
    uint8_t px[64 * 64 * 4];
    for (int i = 0; i < 64 * 64 * 4; i++) px[i] = (uint8_t)(i * seed + seed);
    uint8_t *out = fx_png(px, 64, 64, 4, n);
    cr_assert_not_null(out);
    return out;
}

static const char *EMOJI_JSON =
    "[{\"name\":\"GRINNING FACE\",\"unified\":\"1F600\",\"image\":\"1f600.png\","
    "\"short_name\":\"grinning\",\"category\":\"Smileys & Emotion\",\"subcategory\":\"face\","
    "\"has_img_google\":true,\"has_img_twitter\":true},"
    "{\"name\":\"HEAVY BLACK HEART\",\"unified\":\"2764-FE0F\",\"non_qualified\":\"2764\","
    "\"image\":\"2764-fe0f.png\",\"category\":\"Smileys & Emotion\",\"subcategory\":\"heart\","
    "\"has_img_google\":true,\"has_img_twitter\":true},"
    "{\"name\":\"THUMBS UP SIGN\",\"unified\":\"1F44D\",\"image\":\"1f44d.png\","
    "\"category\":\"People & Body\",\"has_img_google\":true,\"has_img_twitter\":true,"
    "\"skin_variations\":{\"1F3FB\":{\"unified\":\"1F44D-1F3FB\",\"image\":\"1f44d-1f3fb.png\","
    "\"has_img_google\":true,\"has_img_twitter\":true}}},"
    "{\"name\":\"PILE OF POO\",\"unified\":\"1F4A9\",\"image\":\"1f4a9.png\","
    "\"has_img_google\":false,\"has_img_twitter\":true},"
    "{\"name\":\"ROCKET\",\"unified\":\"1F680\",\"image\":\"1f680.png\","
    "\"has_img_google\":true,\"has_img_twitter\":true},"
    "{\"name\":\"FIRE\",\"unified\":\"1F525\",\"image\":\"1f525.png\","
    "\"has_img_google\":true,\"has_img_twitter\":true},"
    "{\"name\":\"NAZAR AMULET\",\"unified\":\"1F9FF\",\"image\":\"1f9ff.png\","
    "\"has_img_google\":true,\"has_img_twitter\":true}]";

static const char *EN_JSON =
    "[{\"label\":\"grinning face\",\"hexcode\":\"1F600\",\"tags\":[\"face\",\"grin\"]},"
    "{\"label\":\"red heart\",\"hexcode\":\"2764\",\"tags\":[\"heart\"]},"
    "{\"label\":\"thumbs up\",\"hexcode\":\"1F44D\",\"tags\":[\"+1\"],\"skins\":["
    "{\"label\":\"thumbs up: light skin tone\",\"hexcode\":\"1F44D-1F3FB\"}]},"
    "{\"label\":\"pile of poo\",\"hexcode\":\"1F4A9\"},"
    "{\"label\":\"rocket\",\"hexcode\":\"1F680\"},{\"label\":\"fire\",\"hexcode\":\"1F525\"}]";
static const char *FR_JSON = "[{\"label\":\"visage rieur\",\"hexcode\":\"1F600\"},"
                             "{\"label\":\"cœur rouge\",\"hexcode\":\"2764-FE0F\"}]";

/* Fake packages in dir: google lacks rocket's PNG and has a broken fire PNG. */
static void fake_packages(const char *dir) {
    const char *imgs[] = {"1f600.png", "2764-fe0f.png", "1f44d.png", "1f44d-1f3fb.png",
                          "1f4a9.png", "1f680.png",     "1f525.png", "1f9ff.png"};
    const char *vendors[] = {"google", "twitter"};
    uint8_t *pngs[8];
    size_t png_n[8];
    for (int i = 0; i < 8; i++) pngs[i] = png(i + 1, &png_n[i]);
    for (int v = 0; v < 2; v++) {
        const char *names[12];
        const void *data[12];
        size_t sizes[12], n = 0;
        char nb[12][128];
        const char *pj = "{\"name\":\"emoji-datasource\",\"version\":\"16.0.0\"}";
        names[n] = "package/package.json", data[n] = pj, sizes[n++] = strlen(pj);
        for (int i = 0; i < 8; i++) {
            if (v == 0 && !strcmp(imgs[i], "1f680.png")) continue; /* missing */
            snprintf(nb[i], sizeof nb[i], "package/img/%s/64/%s", vendors[v], imgs[i]);
            names[n] = nb[i];
            bool broken = v == 0 && !strcmp(imgs[i], "1f525.png");
            data[n] = broken ? (const void *)"\x89PNG\r\n\x1a\nnot really" : pngs[i];
            sizes[n++] = broken ? 18 : png_n[i];
        }
        /* emoji.json after the images, as a tar may order them any way. */
        names[n] = "package/emoji.json", data[n] = EMOJI_JSON, sizes[n++] = strlen(EMOJI_JSON);
        char path[1024];
        snprintf(path, sizeof path, "%s/emoji-datasource-%s-%s.tgz", dir, vendors[v],
                 CLASP_EMOJI_DATASOURCE_VERSION);
        write_tgz(path, names, data, sizes, n);
    }
    for (int i = 0; i < 8; i++) free(pngs[i]);
    const char *bj = "{\"name\":\"emojibase-data\",\"version\":\"17.0.0\"}";
    const char *names[] = {"package/package.json", "package/fr/data.json", "package/en/data.json",
                           "package/fr/messages.json"};
    const void *data[] = {bj, FR_JSON, EN_JSON, "{}"};
    size_t sizes[] = {strlen(bj), strlen(FR_JSON), strlen(EN_JSON), 2};
    char path[1024];
    snprintf(path, sizeof path, "%s/emojibase-data-%s.tgz", dir, CLASP_EMOJIBASE_VERSION);
    write_tgz(path, names, data, sizes, 4);
}

/* Every member of every shard of `split` in dir: "KEY.EXT=first bytes of data\n" into out. */
static void read_split(const char *dir, const char *split, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    fx_entry *e = NULL;
    long n = fx_read_shards(dir, split, &e, 0);
    cr_assert_geq(n, 0);
    for (long i = 0; i < n; i++) {
        int len = e[i].n < 4095 ? (int)e[i].n : 4095;
        if (strstr(e[i].name, ".png")) len = len < 4 ? len : 4; /* signature only */
        k += (size_t)snprintf(out + k, cap - k, "%s=%.*s\n", e[i].name, len, e[i].data);
        cr_assert_lt(k, cap);
    }
    fx_entries_free(e, n);
}

static void run_read_shards(const char *dir) {
    int rc = fx_read_shards_py(dir, "--emoji >/dev/null");
    cr_assert(rc == 0 || rc == FX_NO_PYTHON, "read_shards.py %s rc %d", dir, rc);
}

Test(datasets_emoji, fake_packages) {
    char base[512], src[700], out[700], out2[700];
    clasp_manifest m;
    cJSON *man;
    fx_scratch("dse_fake", base, src, "src", out, "out", out2, "out2", NULL);
    cr_assert_eq(clasp_mkdir_p(src), CLASP_OK);
    fake_packages(src);

    clasp_emoji_options o = clasp_emoji_default_options();
    o.src_dir = src;
    o.shards.out_dir = out;
    o.val_percent = 50;
    o.shards.maxcount = 3;
    cr_assert(fx_built(clasp_emoji_build(&o, &m), &m, o.shards.out_dir, &man));
    /* google: grinning, heart, thumbs up (poo: no image; rocket: missing; fire: broken;
     * nazar: no label); twitter: grinning, heart, thumbs up, poo, rocket, fire. */
    cr_assert_eq(fx_manifest_samples(man, NULL), 9);
    cr_assert(fx_manifest_reasons(man, "no_vendor_image", 1, "missing_image", 1, "bad_image", 1,
                                  "no_label", 2, NULL));
    const cJSON *srcs = cJSON_GetObjectItem(man, "sources");
    cr_assert_eq(cJSON_GetArraySize(srcs), 3);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(srcs, 1), "package")->valuestring,
                     "emoji-datasource-twitter");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(srcs, 1), "version")->valuestring,
                     "16.0.0");
    cr_assert(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(srcs, 1), "licence")->valuestring,
                     "CC-BY-4.0"));
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(srcs, 2), "version")->valuestring,
                     "17.0.0");
    cJSON_Delete(man);

    /* Contents and the split: an emoji's images of both vendors are in the same split, and
     * it is the split the hash of its id asks for. */
    static char tr[1 << 16], va[1 << 16];
    read_split(out, "train", tr, sizeof tr);
    read_split(out, "validation", va, sizeof va);
    const char *ids[] = {"1F600", "2764-FE0F", "1F44D"};
    const char *split_ids[] = {"1F600", "2764", "1F44D"};
    for (int i = 0; i < 3; i++) {
        bool want_val = clasp_hash_str(split_ids[i], 0) % 100 < 50;
        for (int v = 0; v < 2; v++) {
            char key[64];
            snprintf(key, sizeof key, "%s/%s.png=", v ? "twitter" : "google", ids[i]);
            cr_assert(strstr(want_val ? va : tr, key), "%s not in %s", key,
                      want_val ? "validation" : "train");
            cr_assert_null(strstr(want_val ? tr : va, key), "%s in both splits", key);
        }
    }
    const char *all = strstr(tr, "google/2764-FE0F.txt=") ? tr : va;
    cr_assert(strstr(all, "google/2764-FE0F.txt=red heart\n"), "%s", all);
    cr_assert(strstr(all, "\"labels\":{\"en\":\"red heart\",\"fr\":\"cœur rouge\"}"), "%s", all);
    cr_assert(strstr(all, "\"split_id\":\"2764\""));
    cr_assert(strstr(all, "google/2764-FE0F.png=\x89PNG"));
    cr_assert_null(strstr(tr, "1F44D-1F3FB"));
    cr_assert_null(strstr(va, "1F44D-1F3FB"));
    run_read_shards(out);

    /* Rebuild: byte-identical shards and manifest. */
    o.shards.out_dir = out2;
    cr_assert(fx_built(clasp_emoji_build(&o, &m), &m, NULL, NULL));
    cr_assert_geq(fx_same_build(out, out2), 3, "the rebuild is not byte-identical");
}

Test(datasets_emoji, vendors_skins_and_refusals) {
    char base[512], src[700], out[700];
    fx_scratch("dse_vend", base, src, "src", out, "out", NULL);
    cr_assert_eq(clasp_mkdir_p(src), CLASP_OK);
    fake_packages(src);
    clasp_emoji_options o = clasp_emoji_default_options();
    o.src_dir = src;
    o.shards.out_dir = out;
    o.vendors = "twitter";
    o.skins = true;
    o.locales = "en";
    o.val_percent = 50;
    clasp_manifest m;
    cr_assert(fx_built(clasp_emoji_build(&o, &m), &m, NULL, NULL));
    static char tr[1 << 16], va[1 << 16];
    read_split(out, "train", tr, sizeof tr);
    read_split(out, "validation", va, sizeof va);
    cr_assert_null(strstr(tr, "google/"));
    cr_assert_null(strstr(va, "google/"));
    /* The skin tone follows its base emoji's split and has its own label. */
    bool val = clasp_hash_str("1F44D", 0) % 100 < 50;
    const char *s = val ? va : tr;
    cr_assert(strstr(s, "twitter/1F44D-1F3FB.txt=thumbs up: light skin tone\n"), "%s", s);
    cr_assert(strstr(s, "\"labels\":{\"en\":\"thumbs up: light skin tone\"}"));
    cr_assert(strstr(s, "twitter/1F44D.txt=thumbs up\n"));

    const char *bad[] = {"apple", "google,facebook", "google,google", "nokia", ""};
    for (int i = 0; i < 5; i++) {
        o.vendors = bad[i];
        cr_assert_eq(clasp_emoji_build(&o, &m), CLASP_ERR_ARG, "%s", bad[i]);
    }
    o.vendors = "apple";
    cr_assert_eq(clasp_emoji_build(&o, &m), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "refused"), "%s", clasp_last_error());
}

Test(datasets_emoji, npm_missing_is_one_clear_error) {
    char base[512], cache[700], out[700];
    fx_scratch("dse_npm", base, cache, "cache", out, "out", NULL);
    clasp_emoji_options o = clasp_emoji_default_options();
    o.cache_dir = cache;
    o.npm = "/nonexistent/npm";
    o.shards.out_dir = out;
    clasp_manifest m;
    cr_assert_eq(clasp_emoji_build(&o, &m), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "apt-get install npm"), "%s", clasp_last_error());
    /* A present source folder without the files names the missing one. */
    o.src_dir = base;
    cr_assert_eq(clasp_emoji_build(&o, &m), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "emojibase-data-" CLASP_EMOJIBASE_VERSION ".tgz"), "%s",
              clasp_last_error());
    /* npm that fails (false exits 1) is an I/O error with the registry hint. */
    o.src_dir = NULL;
    o.npm = "false";
    cr_assert_eq(clasp_emoji_build(&o, &m), CLASP_ERR_IO);
    cr_assert(strstr(clasp_last_error(), "registry"), "%s", clasp_last_error());
}

Test(datasets_emoji, real_packages_from_cache) {
    char cache[3000], path[3200];
    if (clasp_datasets_cache_dir(cache, sizeof cache) != CLASP_OK) cr_skip_test("no cache folder");
    const char *need[] = {"emojibase-data-" CLASP_EMOJIBASE_VERSION,
                          "emoji-datasource-twitter-" CLASP_EMOJI_DATASOURCE_VERSION};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/npm/%s.tgz", cache, need[i]);
        if (access(path, R_OK) != 0)
            cr_skip_test("%s not cached (run `clasp shards build emoji` once)", path);
    }
    char out[512];
    clasp_test_tmpdir("dse_real", out, sizeof out);
    clasp_emoji_options o = clasp_emoji_default_options();
    o.shards.out_dir = out;
    o.vendors = "twitter";
    o.locales = "en,fr,de";
    clasp_manifest m;
    cr_assert_eq(clasp_emoji_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    cJSON *sum = clasp_manifest_summary(&m, out);
    double n = cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "total"), "samples")->valuedouble;
    cr_assert_gt(n, 1500);
    double v = cJSON_GetObjectItem(
                   cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "splits"), "validation"), "samples")
                   ->valuedouble;
    cr_assert(v > 0.05 * n && v < 0.15 * n, "validation %g of %g", v, n);
    cJSON_Delete(sum);
    clasp_manifest_free(&m);
    static char tr[1 << 22];
    read_split(out, "train", tr, sizeof tr);
    read_split(out, "validation", tr, sizeof tr);
    if (clasp_hash_str("1F44D", 0) % 100 >= 10) read_split(out, "train", tr, sizeof tr);
    cr_assert(strstr(tr, "twitter/1F44D.txt=thumbs up\n"));
    run_read_shards(out);
}

/* One split rule: an emoji's images (emoji builder) and its spoken name (espeak, source
 * "emoji") land in the same split, the one datasets/split.h gives its split id. */
Test(datasets_emoji, espeak_speaks_each_emoji_into_the_same_split) {
    if (system("espeak-ng --version >/dev/null 2>&1") != 0)
        cr_skip_test("espeak-ng not installed (apt-get install espeak-ng)");
    char base[512], src[700], img[700], spk[700];
    clasp_test_tmpdir("dse_espeak_split", base, sizeof base);
    snprintf(src, sizeof src, "%s/src", base);
    snprintf(img, sizeof img, "%s/img", base);
    snprintf(spk, sizeof spk, "%s/spk", base);
    cr_assert_eq(clasp_mkdir_p(src), CLASP_OK);
    fake_packages(src);
    clasp_emoji_options o = clasp_emoji_default_options();
    o.src_dir = src;
    o.shards.out_dir = img;
    o.val_percent = 50;
    clasp_manifest m;
    cr_assert_eq(clasp_emoji_build(&o, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);
    clasp_espeak_options e = fx_espeak_once("emoji", spk, 50);
    e.emoji_dir = src;
    cr_assert_eq(clasp_espeak_build(&e, &m), CLASP_OK, "%s", clasp_last_error());
    clasp_manifest_free(&m);

    static char img_tr[1 << 16], img_va[1 << 16], spk_tr[1 << 16], spk_va[1 << 16];
    read_split(img, "train", img_tr, sizeof img_tr);
    read_split(img, "validation", img_va, sizeof img_va);
    read_split(spk, "train", spk_tr, sizeof spk_tr);
    read_split(spk, "validation", spk_va, sizeof spk_va);
    const char *unified[] = {"1F600", "2764-FE0F", "1F44D", "1F4A9", "1F680", "1F525"};
    const char *split_id[] = {"1F600", "2764", "1F44D", "1F4A9", "1F680", "1F525"};
    int n_val = 0;
    for (int i = 0; i < 6; i++) {
        char ik[64], sk[64];
        snprintf(ik, sizeof ik, "twitter/%s.png=", unified[i]);
        snprintf(sk, sizeof sk, "emoji/%s/", split_id[i]);
        bool img_val = strstr(img_va, ik) != NULL, spk_val = strstr(spk_va, sk) != NULL;
        cr_assert(img_val || strstr(img_tr, ik), "%s in no split", ik);
        cr_assert(spk_val || strstr(spk_tr, sk), "%s in no split", sk);
        cr_assert_eq(img_val, spk_val, "%s: image in %s, spoken name in %s", split_id[i],
                     img_val ? "validation" : "train", spk_val ? "validation" : "train");
        cr_assert_eq(img_val, clasp_split_is_validation(split_id[i], 50));
        n_val += img_val;
    }
    cr_assert(n_val > 0 && n_val < 6, "both splits used (%d of 6 in validation)", n_val);
}
