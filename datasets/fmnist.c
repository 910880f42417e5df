/* fmnist.c: the Fashion-MNIST shard builder (see fmnist.h). */
#include "datasets/fmnist.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/rng.h"
#include "datasets/internal.h"
#include "datasets/shard_writer.h"
#include "modalities/image.h"

/* ref: ../shared/bench/ref_clip_fmnist.py CLASS_NAMES and TEMPLATES. */
const char *const clasp_fmnist_classnames[CLASP_FMNIST_N_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const char *const clasp_fmnist_templates[CLASP_FMNIST_N_TEMPLATES] = {
    "a photo of a {}",
    "a picture of a {}",
    "a {} on a white background",
    "a product photo of a {}",
    "an image showing a {}",
    "a low resolution photo of a {}",
    "a grayscale photo of a {}",
    "a {}"};

#define IDX_LIMIT ((size_t)256 << 20)

clasp_fmnist_options clasp_fmnist_default_options(void) {
    return (clasp_fmnist_options){.shards = {.maxcount = 10000}};
}

int clasp_fmnist_template_index(uint64_t seed, uint64_t i) {
    return (int)((clasp_splitmix64(seed + i) >> 32) % CLASP_FMNIST_N_TEMPLATES);
}

size_t clasp_fmnist_caption(int cls, int tmpl, char *out, size_t cap) {
    if (cls < 0 || cls >= CLASP_FMNIST_N_CLASSES || tmpl < 0 || tmpl >= CLASP_FMNIST_N_TEMPLATES ||
        !out || cap == 0)
        return 0;
    char name[32];
    size_t k = 0;
    for (const char *p = clasp_fmnist_classnames[cls]; *p && k + 1 < sizeof name; p++)
        name[k++] = (char)tolower((unsigned char)*p);
    name[k] = 0;
    const char *t = clasp_fmnist_templates[tmpl];
    const char *ph = strstr(t, "{}");
    int n = snprintf(out, cap, "%.*s%s%s", (int)(ph - t), t, name, ph + 2);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = 0;
        return 0;
    }
    return (size_t)n;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

clasp_status clasp_idx_load(const char *path, uint8_t **data, size_t *ndim, uint32_t dims[4]) {
    *data = NULL;
    uint8_t *buf;
    size_t n;
    CLASP_TRY(clasp__read_decompressed(path, IDX_LIMIT, &buf, &n));
    clasp_status st = CLASP_OK;
    if (n < 4 || buf[0] != 0 || buf[1] != 0) {
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: not an IDX file (bad magic)", path);
        goto fail;
    }
    if (buf[2] != 0x08) {
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: IDX type 0x%02x, expected 0x08 (ubyte)", path,
                             buf[2]);
        goto fail;
    }
    size_t nd = buf[3];
    if (nd < 1 || nd > 4 || n < 4 + 4 * nd) {
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: IDX with %zu dimensions or short header", path,
                             nd);
        goto fail;
    }
    uint64_t total = 1;
    for (size_t d = 0; d < nd; d++) {
        dims[d] = be32(buf + 4 + 4 * d);
        total *= dims[d];
        if (total > IDX_LIMIT) {
            st = clasp_set_error(CLASP_ERR_FORMAT, "%s: IDX dimensions too large", path);
            goto fail;
        }
    }
    size_t hdr = 4 + 4 * nd;
    if (n - hdr != total) {
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: IDX payload %zu bytes, dimensions say %llu",
                             path, n - hdr, (unsigned long long)total);
        goto fail;
    }
    memmove(buf, buf + hdr, n - hdr);
    *data = buf;
    *ndim = nd;
    return CLASP_OK;
fail:
    free(buf);
    return st;
}

static clasp_status load_split(const char *dir, const char *prefix, uint8_t **images,
                               uint8_t **labels, size_t *count) {
    char ip[4096], lp[4096];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    if (!clasp_is_file(ip) || !clasp_is_file(lp))
        return clasp_set_error(CLASP_ERR_NOT_FOUND,
                               "%s not found: install the Fashion-MNIST files with "
                               "`apt-get install %s`",
                               clasp_is_file(ip) ? lp : ip, CLASP_FMNIST_PACKAGE);
    size_t nd;
    uint32_t di[4], dl[4];
    CLASP_TRY(clasp_idx_load(ip, images, &nd, di));
    if (nd != 3 || di[1] != CLASP_FMNIST_SIDE || di[2] != CLASP_FMNIST_SIDE) {
        free(*images);
        *images = NULL;
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: expected N x 28 x 28 images", ip);
    }
    clasp_status st = clasp_idx_load(lp, labels, &nd, dl);
    if (st == CLASP_OK && (nd != 1 || dl[0] != di[0]))
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: %u labels for %u images in %s", lp, dl[0],
                             di[0], ip);
    if (st != CLASP_OK) {
        free(*images);
        free(*labels);
        *images = *labels = NULL;
        return st;
    }
    *count = di[0];
    return CLASP_OK;
}

static clasp_status build_split(const clasp_fmnist_options *o, const char *src, const char *split,
                                const char *idx_prefix, uint64_t seed, clasp_manifest *m) {
    uint8_t *images = NULL, *labels = NULL;
    size_t count = 0;
    CLASP_TRY(load_split(src, idx_prefix, &images, &labels, &count));
    if (o->shards.limit && o->shards.limit < count) count = o->shards.limit;

    clasp_shard_writer_config wc = clasp_shards_writer_config(&o->shards, split);
    clasp_shard_writer *w = NULL;
    clasp_status st = clasp_shard_writer_open(&wc, &w);
    const size_t px = (size_t)CLASP_FMNIST_SIDE * CLASP_FMNIST_SIDE;
    for (size_t i = 0; st == CLASP_OK && i < count; i++) {
        int cls = labels[i];
        if (cls >= CLASP_FMNIST_N_CLASSES) {
            char item[64];
            snprintf(item, sizeof item, "%s_%06zu", split, i);
            st = clasp_manifest_skip(m, "bad_label", item, NULL);
            continue;
        }
        char key[64], cls_txt[8], cap[128], json[1024];
        snprintf(key, sizeof key, "%s_%06zu", split, i);
        snprintf(cls_txt, sizeof cls_txt, "%d", cls);
        size_t cap_n =
            clasp_fmnist_caption(cls, clasp_fmnist_template_index(seed, i), cap, sizeof cap);
        uint8_t *png = NULL;
        size_t png_n = 0;
        st = clasp_image_encode_png(images + i * px, CLASP_FMNIST_SIDE, CLASP_FMNIST_SIDE, 1, &png,
                                    &png_n);
        if (st != CLASP_OK) {
            st = clasp_wrap_error(st, "%s: PNG", key);
            break;
        }
        clasp_shard_field f[4] = {{"cls", cls_txt, strlen(cls_txt)},
                                  {"png", png, png_n},
                                  {"txt", cap, cap_n},
                                  {"json", json, 0}};
        size_t nf = 3;
        if (o->all_captions) {
            cJSON *j = cJSON_CreateObject();
            cJSON *arr = cJSON_AddArrayToObject(j, "captions");
            for (int t = 0; t < CLASP_FMNIST_N_TEMPLATES; t++) {
                char c[128];
                clasp_fmnist_caption(cls, t, c, sizeof c);
                cJSON_AddItemToArray(arr, cJSON_CreateString(c));
            }
            cJSON_AddNumberToObject(j, "label", cls);
            cJSON_AddStringToObject(j, "classname", clasp_fmnist_classnames[cls]);
            int ok = cJSON_PrintPreallocated(j, json, (int)sizeof json, 0);
            cJSON_Delete(j);
            if (!ok) {
                free(png);
                st = clasp_set_error(CLASP_ERR_NOMEM, "%s: json caption", key);
                break;
            }
            f[3].nbytes = strlen(json);
            nf = 4;
        }
        st = clasp_shard_writer_add(w, key, f, nf);
        free(png);
        if (o->shards.progress && (i + 1) % 10000 == 0)
            fprintf(stderr, "fmnist %s: %zu/%zu samples\n", split, i + 1, count);
    }
    if (st == CLASP_OK) st = clasp_shard_writer_close(w);
    if (st == CLASP_OK) st = clasp_manifest_add_split(m, split, w);
    clasp_shard_writer_free(w);
    free(images);
    free(labels);
    return st;
}

static clasp_status write_side_files(const char *dir) {
    char buf[2048];
    size_t k = 0;
    for (int c = 0; c < CLASP_FMNIST_N_CLASSES; c++) {
        for (const char *p = clasp_fmnist_classnames[c]; *p; p++)
            buf[k++] = (char)tolower((unsigned char)*p);
        buf[k++] = '\n';
    }
    buf[k] = 0;
    CLASP_TRY(clasp__write_text(dir, "classnames.txt", buf));
    k = 0;
    for (int c = 0; c < CLASP_FMNIST_N_CLASSES; c++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s\n", clasp_fmnist_classnames[c]);
    CLASP_TRY(clasp__write_text(dir, "classnames_official.txt", buf));
    k = 0;
    for (int t = 0; t < CLASP_FMNIST_N_TEMPLATES; t++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s\n", clasp_fmnist_templates[t]);
    return clasp__write_text(dir, "templates.txt", buf);
}

clasp_status clasp_fmnist_build(const clasp_fmnist_options *o, clasp_manifest *m) {
    if (!o || !o->shards.out_dir || !m)
        return clasp_set_error(CLASP_ERR_ARG, "fmnist: NULL argument");
    const char *src = o->src_dir ? o->src_dir : CLASP_FMNIST_DIR;
    CLASP_TRY(clasp_manifest_init(m, "fmnist"));
    clasp_status st = clasp_mkdir_p(o->shards.out_dir);
    cJSON *opt = clasp_manifest_options(m);
    cJSON_AddStringToObject(opt, "source_dir", src);
    clasp_shards_options_to_json(opt, &o->shards);
    cJSON_AddBoolToObject(opt, "all_captions", o->all_captions);
    cJSON_AddStringToObject(opt, "train_caption_seed", "0x5EED0000");
    cJSON_AddStringToObject(opt, "test_caption_seed", "0x7E570000");
    static const char *const exts[] = {"cls", "json", "png", "txt"};
    static const char *const exts3[] = {"cls", "png", "txt"};
    if (st == CLASP_OK)
        st = o->all_captions ? clasp_manifest_set_fields(m, exts, 4)
                             : clasp_manifest_set_fields(m, exts3, 3);
    if (st == CLASP_OK)
        st = build_split(o, src, "train", "train", CLASP_FMNIST_TRAIN_CAPTION_SEED, m);
    if (st == CLASP_OK) st = build_split(o, src, "test", "t10k", CLASP_FMNIST_TEST_CAPTION_SEED, m);
    if (st == CLASP_OK) st = write_side_files(o->shards.out_dir);
    if (st == CLASP_OK)
        st = clasp_manifest_add_package(m, CLASP_FMNIST_PACKAGE,
                                        "Expat (MIT), Copyright 2017 Zalando SE");
    if (st == CLASP_OK) st = clasp_manifest_save(m, o->shards.out_dir);
    if (st != CLASP_OK) clasp_manifest_free(m);
    return st;
}
