/* emoji.h: emoji image/label shards from the npm packages emoji-datasource-google (images:
 * Noto Emoji, Apache-2.0), emoji-datasource-twitter (images: Twemoji, CC-BY-4.0) and
 * emojibase-data (CLDR labels in about 28 locales, MIT).
 *
 * Sources. Each package is a file PACKAGE-VERSION.tgz (the exact file `npm pack` writes) with
 * pinned versions (CLASP_EMOJI_DATASOURCE_VERSION, CLASP_EMOJIBASE_VERSION), so the same
 * command always reads the same bytes. The files are looked up in `src_dir` when given (no
 * network), else in CACHE/npm (see clasp__cache_dir: $CLASP_CACHE, $XDG_CACHE_HOME/clasp or
 * ~/.cache/clasp), where a missing one is fetched with `npm pack PACKAGE@VERSION
 * --pack-destination ...` (argument vector, no shell) into a temporary folder and renamed into
 * place. Nothing is installed (no node_modules). The .tgz files are read with libarchive:
 * package/emoji.json, package/package.json and package/img/VENDOR/64/ *.png from a vendor
 * package; package/LOCALE/data.json and package/package.json from emojibase-data.
 *
 * Vendors. Only vendors whose image licence allows redistribution are built: google and
 * twitter. apple and facebook (whose images emoji-datasource ships under restrictive terms)
 * are refused with CLASP_ERR_ARG and a message saying why.
 *
 * Samples, for each vendor (in the order given) and each emoji of the vendor's emoji.json in
 * byte order of its `unified` code points (with skin-tone variations right after their base
 * when `skins` is set): key "VENDOR/UNIFIED" (e.g. "google/1F44D"), fields
 *   KEY.png   the vendor's 64 px PNG with alpha, bytes as shipped;
 *   KEY.txt   the English CLDR label of emojibase-data ("thumbs up");
 *   KEY.json  {"unified", "vendor", "name" (Unicode name), "short_name", "category",
 *              "subcategory", "labels": {LOCALE: label, ...} (every selected locale that has
 *              one, sorted), "tags" (English), "image_licence", "split_id"}.
 * Emojibase labels are matched by code points with the FE0F variation selectors removed
 * (clasp__emoji_split_id), since the two projects spell fully-qualified sequences differently.
 *
 * Left out and counted, by reason: no_vendor_image (has_img_VENDOR false), missing_image
 * (listed but not in the .tgz), bad_image (not a decodable PNG), no_label (no English label).
 *
 * Split by emoji, never by vendor (the rule of datasets/split.h): a sample goes to "validation"
 * when XXH64(split_id of the BASE emoji, seed 0) % 100 < val_percent, else "train". All vendors'
 * and skin tones' images of one emoji are therefore in the same split, and a model trained on one
 * vendor can be evaluated on the other vendor's images of unseen emoji. The espeak builder
 * splits spoken emoji names by the same rule.
 */
#ifndef CLASP_DATASETS_EMOJI_H
#define CLASP_DATASETS_EMOJI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "datasets/build.h"
#include "datasets/manifest.h"

#define CLASP_EMOJI_DATASOURCE_VERSION "16.0.0"
#define CLASP_EMOJIBASE_VERSION        "17.0.0"

typedef struct clasp_emoji_options {
    const char *src_dir;         /* folder with the PACKAGE-VERSION.tgz files; NULL = cache + npm */
    const char *cache_dir;       /* NULL = clasp__cache_dir() */
    const char *npm;             /* program used for `npm pack`; NULL = "npm" */
    const char *vendors;         /* comma-separated; default "google,twitter" */
    const char *locales;         /* comma-separated emojibase locales; NULL = all in the package
                                    ("en" is always read for KEY.txt) */
    bool skins;                  /* also the skin-tone variations (default false) */
    int val_percent;             /* 0..100, default 10 */
    clasp_shards_options shards; /* maxcount default 1000; limit: samples per vendor */
} clasp_emoji_options;

clasp_emoji_options clasp_emoji_default_options(void);

/* Path of PACKAGE-VERSION.tgz into path[cap]: from src_dir if set (CLASP_ERR_NOT_FOUND when
 * missing there), else from the cache, fetching it with npm when missing. Errors when npm
 * cannot be run (CLASP_ERR_NOT_FOUND: "npm not found ...") or fails (CLASP_ERR_IO, with npm's
 * last stderr line and a hint about the registry). */
clasp_status clasp_emoji_package(const clasp_emoji_options *o, const char *package,
                                 const char *version, char *path, size_t cap);

/* Builds the shards and DIR/manifest.json (sources: each package with version and licence).
 * Errors: CLASP_ERR_ARG for a bad option or a refused vendor; errors of clasp_emoji_package;
 * CLASP_ERR_FORMAT for an unreadable package; CLASP_ERR_IO on write failures. On error *m is
 * freed. */
clasp_status clasp_emoji_build(const clasp_emoji_options *o, clasp_manifest *m);

/* The download cache folder for npm packages: $CLASP_CACHE, else $XDG_CACHE_HOME/clasp, else
 * $HOME/.cache/clasp (created, with parents, when missing). */
clasp_status clasp_datasets_cache_dir(char *out, size_t cap);

#endif
