/* audio_encode.c: float samples -> a WAV file in memory (libsndfile through SF_VIRTUAL_IO), so
 * samples given as numbers take the exact path of an audio file (clasp_audio_frontend_run). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>

#include "modalities/audio.h"

typedef struct wbuf {
    uint8_t *data;
    sf_count_t len, cap, pos;
    bool nomem;
} wbuf;

static sf_count_t wb_len(void *user) {
    return ((wbuf *)user)->len;
}
static sf_count_t wb_seek(sf_count_t off, int whence, void *user) {
    wbuf *b = user;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? b->pos : b->len;
    sf_count_t p = base + off;
    b->pos = p < 0 ? 0 : p > b->len ? b->len : p;
    return b->pos;
}
static sf_count_t wb_read(void *ptr, sf_count_t count, void *user) {
    wbuf *b = user;
    if (count <= 0 || b->pos >= b->len) return 0;
    sf_count_t n = b->len - b->pos < count ? b->len - b->pos : count;
    memcpy(ptr, b->data + b->pos, (size_t)n);
    b->pos += n;
    return n;
}
static sf_count_t wb_write(const void *ptr, sf_count_t count, void *user) {
    wbuf *b = user;
    if (count <= 0) return 0;
    if (b->pos + count > b->cap) {
        sf_count_t cap = b->cap * 2 > b->pos + count ? b->cap * 2 : b->pos + count;
        uint8_t *p = realloc(b->data, (size_t)cap);
        if (!p) {
            b->nomem = true;
            return 0;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->pos, ptr, (size_t)count);
    b->pos += count;
    if (b->pos > b->len) b->len = b->pos;
    return count;
}
static sf_count_t wb_tell(void *user) {
    return ((wbuf *)user)->pos;
}

clasp_status clasp_audio_encode_wav(const float *x, size_t n, int sample_rate, uint8_t **out,
                                    size_t *nbytes) {
    if (!out || !nbytes || (n > 0 && !x) || sample_rate <= 0)
        return clasp_set_error(CLASP_ERR_ARG, "encode wav: bad arguments (rate %d, %zu samples)",
                               sample_rate, n);
    *out = NULL;
    *nbytes = 0;
    if (n > (size_t)(UINT32_MAX / 4 - 4096))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "encode wav: %zu samples do not fit a WAV file",
                               n);
    static SF_VIRTUAL_IO vio = {wb_len, wb_seek, wb_read, wb_write, wb_tell};
    wbuf b = {.cap = (sf_count_t)(n * sizeof(float) + 4096)};
    b.data = malloc((size_t)b.cap);
    if (!b.data) return clasp_set_error(CLASP_ERR_NOMEM, "encode wav: out of memory");
    SF_INFO si = {
        .samplerate = sample_rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *sf = sf_open_virtual(&vio, SFM_WRITE, &si, &b);
    if (!sf) {
        free(b.data);
        return clasp_set_error(CLASP_ERR_ARG, "encode wav: libsndfile refused rate %d: %s",
                               sample_rate, sf_strerror(NULL));
    }
    sf_count_t put = n > 0 ? sf_writef_float(sf, x, (sf_count_t)n) : 0;
    int closed = sf_close(sf);
    if (b.nomem || put != (sf_count_t)n || closed != 0) {
        free(b.data);
        return clasp_set_error(b.nomem ? CLASP_ERR_NOMEM : CLASP_ERR_IO,
                               "encode wav: wrote %lld of %zu samples", (long long)put, n);
    }
    *out = b.data;
    *nbytes = (size_t)b.len;
    return CLASP_OK;
}
