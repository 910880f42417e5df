/* espeak.h: synthetic speech shards: espeak-ng (Debian package espeak-ng) speaks transcripts
 * with several voices, speeds and pitches, for audio-text training beyond one speaker.
 *
 * Transcripts (`from`, comma-separated list of sources):
 *   asterisk  the English Asterisk prompts (asterisk-core-sounds-en), with the asterisk
 *             builder's parsing and skip rules; source key "en/NAME" as that builder's keys
 *   emoji     the English CLDR names of emojibase-data (package .tgz from `emoji_dir`, else
 *             the cache; fetched with npm when asked for explicitly); source key "emoji/HEX"
 *   FILE      a UTF-8 text file of "key<TAB>text" lines (optional BOM, CRLF, '#' comments,
 *             blank lines); source key "file/KEY" ('.' in KEY replaced by '_')
 * Default (from = NULL): asterisk when its package is installed, plus emoji when emojibase-data
 * is already in `emoji_dir` or the cache; an error when neither is there.
 *
 * Speech. For every transcript, `variants` distinct cells of the grid voices x speeds x
 * pitches are drawn with the counter RNG keyed by (seed, CLASP_RNG_DATASET, XXH64(source key))
 * (0 = every cell), in grid order. Each is spoken by running
 *     espeak-ng -v VOICE -s SPEED -p PITCH -w TMP/out.wav -f TMP/in.txt
 * through posix_spawnp with an argument vector (the text goes through a file: no shell, no
 * option injection) and the WAV (22050 Hz mono 16-bit, as espeak-ng writes it; not resampled)
 * is read back. espeak-ng 1.51 writes identical bytes for identical arguments, so a rebuild
 * gives byte-identical shards (tested).
 *
 * Samples: key "SOURCEKEY/VOICE_sSPEED_pPITCH" (e.g. "asterisk/en/vm-intro/en-us_s150_p35"),
 * fields KEY.wav, KEY.txt (the transcript), KEY.json {"voice", "speed", "pitch", "language",
 * "source", "source_key", "split_id"}. Sorted by source key, then grid order.
 *
 * Left out and counted: the source's skips (asterisk reasons; for FILE: bad_line, bad_utf8,
 * empty_transcript, duplicate_key), empty_audio (espeak-ng wrote no frames), speak_failed
 * (espeak-ng exited non-zero on one text).
 *
 * Split by transcript, never by voice, with the rule of datasets/split.h that the asterisk and
 * emoji builders call too: "validation" when XXH64(split_id, 0) % 100 <
 * val_percent, where split_id is the asterisk builder's key ("en/NAME"), the emoji builder's
 * split id (code points without FE0F), or the FILE key. All voices of one transcript land in
 * one split, and the same transcript is in the same split as in the asterisk/emoji sets.
 */
#ifndef CLASP_DATASETS_ESPEAK_H
#define CLASP_DATASETS_ESPEAK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "datasets/build.h"
#include "datasets/manifest.h"

#define CLASP_ESPEAK_DEFAULT_VOICES  "en-us,en-gb,en-gb-scotland,en-us+f3"
#define CLASP_ESPEAK_DEFAULT_SPEEDS  "140,175,210"
#define CLASP_ESPEAK_DEFAULT_PITCHES "35,50,70"

typedef struct clasp_espeak_options {
    const char *from;            /* see above; NULL = default */
    const char *src_root;        /* root of the asterisk package tree; NULL = "/" */
    const char *emoji_dir;       /* folder with emojibase-data-VERSION.tgz; NULL = the cache */
    const char *espeak;          /* program; NULL = "espeak-ng" */
    const char *voices;          /* comma-separated espeak-ng voice names ([A-Za-z0-9_+-]) */
    const char *speeds;          /* comma-separated words per minute, 80..450 */
    const char *pitches;         /* comma-separated, 0..99 */
    size_t variants;             /* cells per transcript, default 4; 0 = all */
    uint64_t seed;               /* variant draw, default 0 */
    int val_percent;             /* 0..100, default 10 */
    clasp_shards_options shards; /* maxcount default 1000; limit: transcripts per source */
} clasp_espeak_options;

clasp_espeak_options clasp_espeak_default_options(void);

/* Builds the shards and DIR/manifest.json. Errors: CLASP_ERR_ARG for bad options or a voice
 * espeak-ng does not have; CLASP_ERR_NOT_FOUND when espeak-ng cannot be run (`apt-get install
 * espeak-ng`) or a source is missing; CLASP_ERR_IO on write failures. On error *m is freed. */
clasp_status clasp_espeak_build(const clasp_espeak_options *o, clasp_manifest *m);

#endif
