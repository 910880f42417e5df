/* captions.h: the caption rule, the one place that says which captions a sample carries.
 * Training (pipeline/decode.c), evaluation (eval/eval.c) and `clasp tokenizer train`
 * (cli/cmd_tokenizer.c) all read captions through it, so they see the same caption set.
 *
 * The rule, for a sample and a field map (tar_reader.h):
 *   1. the sample's text field (the first one clasp_sample_find returns: an exact extension
 *      match first, e.g. "txt", then a match by last dot, e.g. "en.txt"), its bytes as they
 *      are; other text fields of the sample are not captions;
 *   2. then, if the sample's json field (found the same way) parses, its "captions" member and
 *      then its "text" member, each either a string or an array whose string elements count
 *      (other elements are ignored);
 *   3. at most CLASP_MAX_CAPTIONS captions, the first ones in the order above.
 * A sample without a caption is a skip: no text and no json field ("missing_field"), a json
 * that does not parse and no text field ("bad_json"), or nothing found ("missing_field").
 *
 * Each caption is then normalised by modalities/text.h (clasp_text_normalize: NFKC, control
 * characters, whitespace collapse and trim, invalid UTF-8 and empty captions refused). Which
 * caption is used (clasp_captions_pick): evaluation takes the first; training draws one per
 * (seed, epoch, key) among all of them, so over epochs every caption that normalises is
 * trained on; a drawn caption that fails normalisation skips the sample for that epoch
 * ("bad_text"). Passes over every caption (multi-caption retrieval, tokenizer training) drop
 * the captions that fail normalisation and count them. */
#ifndef CLASP_PIPELINE_CAPTIONS_H
#define CLASP_PIPELINE_CAPTIONS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/stats.h"
#include "pipeline/tar_reader.h"

#define CLASP_MAX_CAPTIONS 64

/* One caption's raw bytes (not NUL-terminated for a text field; may contain NUL bytes). */
typedef struct clasp_caption {
    const char *p;
    size_t n;
} clasp_caption;

typedef struct clasp_captions {
    size_t n;                            /* captions found, <= CLASP_MAX_CAPTIONS */
    clasp_caption c[CLASP_MAX_CAPTIONS]; /* (n) pointing into the sample and json_ */
    clasp_skip_reason skip;              /* CLASP_SKIP_N when n > 0, else why there is none */
    const char *detail;                  /* static text for the skip, NULL when n > 0 */
    cJSON *json_;                        /* the parsed json the captions point into (owned) */
} clasp_captions;

/* Applies the rule above to sample s (read with its payload). Returns true when it found at
 * least one caption; false with out->skip and out->detail set otherwise. The captions point
 * into s and into out, which must outlive them; release with clasp_captions_free (also after
 * false). */
bool clasp_captions_of(const clasp_sample *s, const clasp_field_map *fields, clasp_captions *out);

/* Frees the parsed json (the captions are then gone: n = 0); accepts NULL. */
void clasp_captions_free(clasp_captions *c);

/* Index of the caption a pass uses: 0 in evaluation, else the (seed, epoch, key) draw of
 * modalities/augment.h's clasp_caption_choose among c->n. */
size_t clasp_captions_pick(const clasp_captions *c, bool eval, uint64_t seed, uint64_t epoch,
                           const char *key);

#endif
