/* fuzz_tar.c: libFuzzer target: arbitrary bytes -> libarchive (any filter) tar reading ->
 * WebDataset sample assembly -> decoding of every field present (image, caption, audio,
 * label, json captions). Any crash, hang, leak or sanitizer report is a bug; bad input must
 * only ever be counted as a skip.
 *
 * Build (clang): cmake -DCLASP_FUZZ=ON -DCLASP_SANITIZE=address,undefined ... then
 *     ./fuzz_tar -max_total_time=60 -rss_limit_mb=1024 corpus/ */
#include <stddef.h>
#include <stdint.h>

#include "pipeline/loader.h"
#include "pipeline/tar_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static clasp_decoder *g_dec[16];
static clasp_tokenizer *g_tok;

static clasp_decoder *decoder_(unsigned mask) {
    if (!g_tok && clasp_tokenizer_new_bytes(&g_tok) != CLASP_OK) return NULL;
    if (!g_dec[mask]) {
        clasp_loader_config c = clasp_loader_default_config();
        c.eval = true;
        c.required = mask;
        c.image.max_pixels = 1u << 20; /* keep fuzzing fast: 1 Mpx */
        c.audio.clip_seconds = 0.5;
        if (clasp_decoder_new(&c, g_tok, &g_dec[mask]) != CLASP_OK) return NULL;
    }
    return g_dec[mask];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    st.quiet = true;
    clasp_tar_reader *r;
    if (clasp_tar_open_memory(data, size, "fuzz", &st, (size_t)1 << 22, &r) == CLASP_OK) {
        clasp_sample s = {0};
        bool got;
        clasp_field_map fm = clasp_field_map_default();
        int n = 0;
        while (n++ < 1000 && clasp_tar_next(r, true, &s, &got) == CLASP_OK && got) {
            unsigned mask = 0;
            for (size_t i = 0; i < s.n_fields; i++) {
                clasp_field_kind k = clasp_field_map_kind(&fm, s.fields[i].ext);
                if (k < CLASP_FIELD_JSON) mask |= 1u << k;
                if (k == CLASP_FIELD_JSON) mask |= CLASP_NEED_TEXT;
            }
            clasp_decoder *d = decoder_(mask & 15u);
            bool ok;
            clasp_skip_reason why;
            if (d) clasp_decoder_run(d, &s, 0, &st, NULL, &ok, &why);
        }
        clasp_sample_clear(&s);
        clasp_tar_close(r);
    }
    clasp_data_stats_free(&st);
    return 0;
}
