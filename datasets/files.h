/* files.h: shards from the user's own files: a folder of files paired by basename, or a
 * TSV/CSV table of local paths and captions (img2dataset-style columns).
 *
 * folder: every regular file under `source` (recursively; names starting with '.' are
 *   ignored) is split by WebDataset's rule into key = relative path up to the first dot of the
 *   file name, ext = the rest, lower-cased ("a/x.jpg" + "a/x.txt" -> key "a/x", fields jpg and
 *   txt). Keys are written in byte order. A sample must have a caption (txt) and one media
 *   field (image or audio extension, see DESIGN.md); json/cls fields are carried along.
 * tsv: `source` is a .tsv (tab-separated, no quoting) or .csv (comma-separated, RFC 4180
 *   quoting) file with a header row. Column `url_col` names a local file (absolute, or relative
 *   to the table's folder; "scheme://" URLs are refused: local paths only), `caption_col` its
 *   caption. Sample i (0-based data row) gets key %09zu and fields EXT (the file's last
 *   extension, lower-cased) + txt.
 *
 * Bad items are skipped, counted and listed in the manifest under these reasons:
 *   missing_file   the file does not exist            unreadable     open/read failed
 *   empty_file     0 bytes                            too_large      over CLASP_FILES_MAX_BYTES
 *   bad_image      the image decoder refused it       bad_audio      libsndfile refused it
 *   empty_audio    0 audio frames                     bad_utf8       caption is not UTF-8
 *   empty_caption  caption empty or only spaces       unpaired       no caption or no media
 *   bad_name       key not UTF-8 / unusable           not_local      a URL, not a path
 *   bad_row        row with too few columns           unknown_type   extension not media
 *
 * Output: PREFIX-000000.tar ... in out_dir and manifest.json (one split named PREFIX).
 */
#ifndef CLASP_DATASETS_FILES_H
#define CLASP_DATASETS_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "datasets/build.h"
#include "datasets/manifest.h"

#define CLASP_FILES_MAX_BYTES ((size_t)256 << 20)

typedef struct clasp_files_options {
    const char *source;          /* folder (folder builder) or table file (tsv builder) */
    const char *prefix;          /* shard prefix and split name; default "shard" */
    const char *url_col;         /* tsv: default "url" */
    const char *caption_col;     /* tsv: default "caption" */
    clasp_shards_options shards; /* maxcount default 1000; limit: samples written */
} clasp_files_options;

clasp_files_options clasp_files_default_options(void);

/* Both return CLASP_OK with a filled manifest *m (caller frees) even when items were skipped;
 * errors (unreadable source, missing column, write failure) free *m and name the file. */
clasp_status clasp_folder_build(const clasp_files_options *o, clasp_manifest *m);
clasp_status clasp_tsv_build(const clasp_files_options *o, clasp_manifest *m);

/* True for the media extensions the pipeline decodes (lower-case input). */
bool clasp_files_is_image_ext(const char *ext);
bool clasp_files_is_audio_ext(const char *ext);

#endif
