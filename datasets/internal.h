/* internal.h: helpers shared by the dataset builders (private to datasets/). */
#ifndef CLASP_DATASETS_INTERNAL_H
#define CLASP_DATASETS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "datasets/manifest.h"

/* Reads a whole file, decompressing it when libarchive recognises a filter (gzip, xz, bzip2,
 * zstd, ...), into a NUL-terminated malloc'd buffer *out of *n bytes (NUL not counted).
 * Fails with CLASP_ERR_OVERFLOW beyond `limit` bytes, CLASP_ERR_NOT_FOUND if the file does not
 * exist, CLASP_ERR_IO / CLASP_ERR_FORMAT otherwise; the message names the file. */
clasp_status clasp__read_decompressed(const char *path, size_t limit, uint8_t **out, size_t *n);

/* Writes `text` to DIR/NAME atomically. */
clasp_status clasp__write_text(const char *dir, const char *name, const char *text);

/* Runs `argv[0]` (looked up in PATH) with the argument vector `argv` (NULL-terminated; never a
 * shell string), stdin from /dev/null, stdout to `out_path` and stderr to `err_path` (NULL:
 * /dev/null; files are truncated), and waits for it. *exit_code is the exit status, or 128 +
 * signal number. Returns CLASP_ERR_NOT_FOUND when the program cannot be started (message
 * names it), CLASP_ERR_IO on other spawn/wait failures. A non-zero exit is not an error here. */
clasp_status clasp__run(char *const argv[], const char *out_path, const char *err_path,
                        int *exit_code);

/* A list of transcripts to speak: key (the sample key of the source, UTF-8, no '.' in its last
 * component), text, and the split id whose hash decides train/validation. */
typedef struct clasp__transcript {
    char *key, *text, *split_id;
} clasp__transcript;
typedef struct clasp__transcripts {
    clasp__transcript *v;
    size_t n, cap;
} clasp__transcripts;

void clasp__transcripts_free(clasp__transcripts *l);
/* Appends copies of the strings (split_id NULL = key). */
clasp_status clasp__transcripts_push(clasp__transcripts *l, const char *key, const char *text,
                                     const char *split_id);

/* The speakable transcripts of Asterisk language `lang` under `root` ("" = the installed
 * packages), in the asterisk builder's order and with its key rule ("en/name", '.' -> '_') and
 * its skip rules (duplicate_name, silence, empty_transcript, nonspeech, bad_utf8, bad_line:
 * counted in m when m is not NULL). No audio is read. CLASP_ERR_NOT_FOUND when the
 * transcript file is missing. */
clasp_status clasp__asterisk_transcripts(const char *root, const char *lang, clasp_manifest *m,
                                         clasp__transcripts *out);

/* The split id of an emoji code point sequence ("1F44D-1F3FB", "2764-FE0F"): upper case, the
 * variation selector FE0F components removed, so the fully- and non-qualified spellings of one
 * emoji (emoji-datasource vs emojibase) hash alike. Writes into out[cap]. */
void clasp__emoji_split_id(const char *hex, char *out, size_t cap);

/* English labels of emojibase-data (en/data.json in the package .tgz at `tgz`): one transcript
 * per base emoji, key "emoji/HEXCODE", text = label, split_id = clasp__emoji_split_id(hex).
 * Sorted by key. CLASP_ERR_NOT_FOUND / CLASP_ERR_FORMAT name the file. */
clasp_status clasp__emojibase_en_labels(const char *tgz, clasp__transcripts *out);

/* Reads members of a (compressed) tar whose path satisfies `want(path, user)` into memory;
 * calls `got(path, data, n, user)` for each (data is only valid during the call). Members
 * larger than `limit` bytes are an error (CLASP_ERR_OVERFLOW). */
typedef int (*clasp__tar_want_fn)(const char *path, void *user);
typedef clasp_status (*clasp__tar_got_fn)(const char *path, const uint8_t *data, size_t n,
                                          void *user);
clasp_status clasp__tar_each(const char *tgz, size_t limit, clasp__tar_want_fn want,
                             clasp__tar_got_fn got, void *user);

#endif
