/* clip_bpe.h: OpenAI CLIP's / OpenCLIP's BPE tokenizer (SimpleTokenizer) over the merges file
 * bpe_simple_vocab_16e6.txt.gz, used through the clasp_tokenizer handle ("type": "clip_bpe",
 * tokenizer.h). Internal to modalities/; docs/clip_bpe.md describes the behaviour and where it
 * differs from OpenCLIP (no ftfy).
 *
 * Ids: 0..255 the bytes in bytes_to_unicode order, 256..511 the same with "</w>", 512 + i the
 * token of merge i, then <|startoftext|> (49406) and <|endoftext|> (49407); vocab 49408.
 * Read-only after creation; thread-safe. */
#ifndef CLASP_MODALITIES_CLIP_BPE_H
#define CLASP_MODALITIES_CLIP_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define CLASP_CLIP_BPE_MERGES 48894 /* lines 1 .. 49152 - 256 - 2 of the merges file */
#define CLASP_CLIP_BPE_VOCAB  49408
#define CLASP_CLIP_BPE_SOT    49406
#define CLASP_CLIP_BPE_EOT    49407
/* Longest word (bytes) merged as one; a longer letter run is merged in pieces of this size. */
#define CLASP_CLIP_BPE_MAX_WORD 1024

typedef struct clasp_clip_bpe clasp_clip_bpe;

/* Reads the merges file at `path` (gzip-compressed or plain text, via libarchive). Errors name
 * the file: CLASP_ERR_IO (missing/unreadable), CLASP_ERR_FORMAT (corrupt gzip, invalid UTF-8, a
 * line that is not two symbols, fewer than CLASP_CLIP_BPE_MERGES merges), CLASP_ERR_NOMEM. */
clasp_status clasp_clip_bpe_load(const char *path, clasp_clip_bpe **out);
void clasp_clip_bpe_free(clasp_clip_bpe *t); /* accepts NULL */

/* Cleans (HTML unescape twice, whitespace, lower case) and encodes text[n] (UTF-8; NUL bytes
 * allowed) into the malloc'd *ids[*n_ids], without start/end tokens. Encoding stops after the
 * word that reaches `limit` ids (SIZE_MAX: all). Returns CLASP_ERR_FORMAT for invalid UTF-8
 * (clasp's caption policy, modalities/text.h), CLASP_ERR_NOMEM. */
clasp_status clasp_clip_bpe_encode(const clasp_clip_bpe *t, const char *text, size_t n,
                                   size_t limit, int32_t **ids, size_t *n_ids);

/* Decodes ids[n] as OpenCLIP does ("</w>" -> " "), skipping <|startoftext|> and stopping at
 * <|endoftext|>; *out malloc'd, NUL-terminated, *out_n bytes. CLASP_ERR_ARG for a bad id. */
clasp_status clasp_clip_bpe_decode(const clasp_clip_bpe *t, const int32_t *ids, size_t n,
                                   char **out, size_t *out_n);

#endif
