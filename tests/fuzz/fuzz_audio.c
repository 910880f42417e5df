/* fuzz_audio.c: libFuzzer target: arbitrary bytes -> the audio front end (libsndfile decode of
 * WAV/FLAC/OGG/Opus/MP3 from memory, mono mix, libsamplerate resampling, crop/pad, log-mel),
 * header probe first as the loader does. Clips are short to keep executions fast. */
#include "fuzz.h"
#include "modalities/audio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static clasp_audio_frontend *fe;
    static float *out;
    if (!fe) {
        fuzz_quiet();
        clasp_audio_config c = clasp_audio_default_config();
        c.clip_seconds = 0.25;
        if (clasp_audio_frontend_new(&c, &fe) != CLASP_OK) abort();
        out = malloc(clasp_audio_frontend_numel(fe) * sizeof *out);
        if (!out) abort();
    }
    clasp_audio_info info;
    clasp_audio_skip why;
    if (clasp_audio_probe(data, size, &info, &why) != CLASP_OK) return 0;
    (void)clasp_audio_frontend_run(fe, data, size, NULL, 0, 0, "fuzz", out, &info, &why);
    return 0;
}
