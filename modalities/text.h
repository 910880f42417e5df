/* text.h: caption text checks and Unicode normalisation with utf8proc, before tokenisation
 * (modalities/tokenizer.h).
 *
 *     clasp_text_config tc = clasp_text_default_config();
 *     char *norm; size_t n_norm;
 *     if (clasp_text_normalize(bytes, nbytes, &tc, &norm, &n_norm) != CLASP_OK)
 *         skip_sample(shard, key, clasp_last_error());   // "invalid UTF-8 at byte 7: ..."
 *     clasp_tokenizer_encode(tok, norm, tokens, ctx);
 *     free(norm);
 *
 * All functions are thread-safe (no shared state).
 */
#ifndef CLASP_MODALITIES_TEXT_H
#define CLASP_MODALITIES_TEXT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

/* What clasp_text_normalize does, in this order. */
typedef struct clasp_text_config {
    bool nfkc;                /* Unicode NFKC (compatibility composition): "ﬁ" -> "fi" */
    bool casefold;            /* Unicode case folding ("Straße" -> "strasse"); off by default */
    bool strip_control;       /* drop control characters (Cc: NUL, ESC, DEL, ...); tab, newline,
                                 CR, form feed and other line breaks become one space each */
    bool collapse_whitespace; /* runs of ASCII whitespace (after the step above) -> one space */
    bool trim;                /* remove leading and trailing ASCII whitespace */
    bool reject_empty;        /* an empty result is an error (CLASP_ERR_FORMAT, "empty caption") */
} clasp_text_config;

/* Defaults: everything on except casefold. Pure-ASCII captions without control characters or
 * doubled spaces (such as fmnist-small's) come out byte-identical. */
clasp_text_config clasp_text_default_config(void);

/* Optional boolean fields "nfkc", "casefold", "strip_control", "collapse_whitespace", "trim",
 * "reject_empty" of a JSON object (e.g. a tokenizer's "normalizer"), over the defaults. */
clasp_status clasp_text_config_from_json(const cJSON *obj, const char *file, const char *prefix,
                                         clasp_text_config *out);

/* Checks that s[n] is well-formed UTF-8 (no overlong forms, no surrogates U+D800..DFFF, nothing
 * above U+10FFFF, no truncated sequence). NUL bytes are valid here (strip_control drops them).
 * Returns CLASP_OK or CLASP_ERR_FORMAT with "invalid UTF-8 at byte OFFSET (utf8proc reason)";
 * if bad_offset is not NULL it receives that offset. */
clasp_status clasp_text_validate_utf8(const char *s, size_t n, size_t *bad_offset);

/* Validates, then normalises s[n] per cfg into a new NUL-terminated malloc'd string *out of
 * *out_n bytes (caller frees with free()). Errors: CLASP_ERR_ARG, CLASP_ERR_FORMAT (invalid
 * UTF-8 with its byte offset, or an empty result when cfg->reject_empty), CLASP_ERR_NOMEM. On
 * error *out is NULL. */
clasp_status clasp_text_normalize(const char *s, size_t n, const clasp_text_config *cfg, char **out,
                                  size_t *out_n);

#endif
