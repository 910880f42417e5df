/* asterisk.h: speech/transcript shards from the Asterisk core sound prompts (Debian packages
 * asterisk-core-sounds-LANG-wav for the 8 kHz 16-bit WAV audio and asterisk-core-sounds-LANG
 * for the transcripts, /usr/share/doc/asterisk-core-sounds-LANG/core-sounds-LANG.txt.gz with
 * `name: transcript` lines and ';' comments).
 *
 * For each language, the audio folder is /usr/share/asterisk/sounds/LANG_* (the first such
 * directory in byte order, e.g. en_US_f_Allison). A transcript name matches the file
 * NAME.wav below it case-insensitively ("dictate/both_help" -> dictate/both_help.wav).
 * Samples are written in order of language (as given) then lower-cased name; the key is
 * "LANG/name" with any '.' replaced by '_'; fields: KEY.wav (the file's bytes), KEY.txt (the
 * transcript), KEY.json {"lang", "name", "voice", "licence"}.
 *
 * Left out and counted in the manifest, by reason:
 *   nonspeech         transcript entirely in brackets or parentheses ("[beep tone]",
 *                     "(1 second of silence)")
 *   silence           names under silence/
 *   empty_transcript  nothing after the colon
 *   no_audio          a transcript line without a WAV file
 *   no_transcript     a WAV file without a transcript line
 *   empty_audio       a WAV with 0 frames;  bad_audio: libsndfile refuses it
 *   bad_utf8          transcript not valid UTF-8;  bad_line: no "name:" on a line
 *   duplicate_name    the same name (case-insensitively) twice in a transcript file
 * A transcript file may start with a UTF-8 BOM and use CRLF line ends.
 *
 * Split (the rule of datasets/split.h, split id = the key): a sample goes to "validation" when
 * XXH64(key, seed 0) % 100 < val_percent, else to "train" (shards validation-000000.tar ...,
 * train-000000.tar ...).
 */
#ifndef CLASP_DATASETS_ASTERISK_H
#define CLASP_DATASETS_ASTERISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "datasets/build.h"
#include "datasets/manifest.h"

typedef struct clasp_asterisk_options {
    const char *src_root;        /* NULL = "/" (packages installed); tests point it at a fake tree
                                    with the same layout below it */
    const char *langs;           /* comma-separated, default "en,es,fr,it,ru" */
    int val_percent;             /* 0..100, default 10 */
    clasp_shards_options shards; /* maxcount default 1000; limit: samples per language */
} clasp_asterisk_options;

clasp_asterisk_options clasp_asterisk_default_options(void);

/* Builds the shards. Errors: CLASP_ERR_NOT_FOUND when a language's transcript file or audio
 * folder is missing (message: `apt-get install asterisk-core-sounds-LANG
 * asterisk-core-sounds-LANG-wav`), CLASP_ERR_IO on write failures. On error *m is freed. */
clasp_status clasp_asterisk_build(const clasp_asterisk_options *o, clasp_manifest *m);

#endif
