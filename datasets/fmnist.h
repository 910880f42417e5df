/* fmnist.h: builds Fashion-MNIST WebDataset shards from the Debian package
 * dataset-fashion-mnist (gzip IDX files in /usr/share/datasets/fashion-mnist).
 *
 * Output in opts->out_dir:
 *   train-000000.tar ...  60,000 samples train_000000 ... train_059999 in dataset order
 *   test-000000.tar ...   10,000 samples test_000000 ... test_009999
 *   each sample: KEY.cls (decimal label 0..9), KEY.png (28x28 8-bit gray PNG), KEY.txt (one
 *   caption), and with all_captions KEY.json {"captions": [8 captions], "label": c,
 *   "classname": "..."}
 *   classnames.txt        the 10 class names as used in the prompts: the official names
 *                         lower-cased ("t-shirt/top", ..., "ankle boot"), one per line
 *   classnames_official.txt  the official spelling ("T-shirt/top", ..., "Ankle boot")
 *   templates.txt         the 8 caption templates with a "{}" placeholder, one per line
 *   manifest.json         see datasets/manifest.h
 *
 * Captions follow ../shared/bench/ref_clip_fmnist.py exactly: caption(i) =
 * TEMPLATES[t].format(name.lower()) with t = (splitmix64(seed + i) >> 32) % 8, seed
 * CLASP_FMNIST_TRAIN_CAPTION_SEED for train image i and CLASP_FMNIST_TEST_CAPTION_SEED for test
 * image i. No grammar fixing ("a ankle boot"), as in the reference.
 */
#ifndef CLASP_DATASETS_FMNIST_H
#define CLASP_DATASETS_FMNIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "datasets/build.h"
#include "datasets/manifest.h"

#define CLASP_FMNIST_DIR                "/usr/share/datasets/fashion-mnist"
#define CLASP_FMNIST_PACKAGE            "dataset-fashion-mnist"
#define CLASP_FMNIST_TRAIN_CAPTION_SEED 0x5EED0000ull
#define CLASP_FMNIST_TEST_CAPTION_SEED  0x7E570000ull
#define CLASP_FMNIST_N_CLASSES          10
#define CLASP_FMNIST_N_TEMPLATES        8
#define CLASP_FMNIST_SIDE               28

extern const char *const clasp_fmnist_classnames[CLASP_FMNIST_N_CLASSES];  /* official case */
extern const char *const clasp_fmnist_templates[CLASP_FMNIST_N_TEMPLATES]; /* with "{}" */

typedef struct clasp_fmnist_options {
    const char *src_dir;         /* NULL = CLASP_FMNIST_DIR */
    bool all_captions;           /* also write KEY.json with all 8 captions */
    clasp_shards_options shards; /* maxcount default 10000; limit: samples per split */
} clasp_fmnist_options;

clasp_fmnist_options clasp_fmnist_default_options(void);

/* Template index of image i for `seed` (one of the two CAPTION_SEEDs). */
int clasp_fmnist_template_index(uint64_t seed, uint64_t i);
/* Writes caption(cls, tmpl) into out[cap]; returns its length (excluding NUL), or 0 when
 * cls/tmpl are out of range or the buffer is too small. */
size_t clasp_fmnist_caption(int cls, int tmpl, char *out, size_t cap);

/* Builds both splits and writes manifest.json. On success *m holds the manifest (caller calls
 * clasp_manifest_free). Errors: CLASP_ERR_NOT_FOUND when the IDX files are missing (message
 * says to `apt-get install dataset-fashion-mnist`), CLASP_ERR_FORMAT for a malformed IDX file
 * (message names the file), CLASP_ERR_IO for write failures. On error *m is freed. */
clasp_status clasp_fmnist_build(const clasp_fmnist_options *opts, clasp_manifest *m);

/* Reads a gzip-compressed (or plain) IDX file of unsigned bytes via libarchive. On success
 * *data (malloc'd, caller frees) holds the payload after the header, dims[0..*ndim-1] the
 * sizes. Rejects type codes other than 0x08 (ubyte), more than 4 dims, and size mismatches. */
clasp_status clasp_idx_load(const char *path, uint8_t **data, size_t *ndim, uint32_t dims[4]);

#endif
