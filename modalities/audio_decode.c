/* audio_decode.c: encoded audio in memory -> fixed-length mono clip at the model's rate.
 *
 * libsndfile reads the bytes through SF_VIRTUAL_IO; frames are read in chunks of
 * CLASP_AUDIO_CHUNK_FRAMES, mixed to mono (mean of channels), checked for NaN/Inf, and streamed
 * through libsamplerate's full API (src_process) straight into the output clip. Only the frames
 * the clip needs are read: the crop offset is reached with sf_seek (or by reading and dropping
 * chunks when the format cannot seek), and reading stops once the clip is full, so a 2-hour
 * file costs what a 10-second one does. Short sources are padded per config.
 * The same virtual IO writes float samples as a WAV file (clasp_audio_encode_wav), so samples
 * given as numbers (clasp.h) take the path of a file.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <samplerate.h>
#include <sndfile.h>

#include "core/sizes.h"
#include "modalities/audio.h"

static const char *const skip_names[CLASP_AUDIO_N_SKIPS] = {
    "ok", "empty", "decode", "truncated", "nan", "format", "too_short", "resample"};

const char *clasp_audio_skip_name(clasp_audio_skip r) {
    if ((unsigned)r >= CLASP_AUDIO_N_SKIPS) return "?";
    return skip_names[r];
}

clasp_audio_config clasp_audio_default_config(void) {
    return (clasp_audio_config){
        .clip_seconds = 10.0,
        .pad_mode = CLASP_AUDIO_PAD_REPEAT,
        .crop_mode = CLASP_AUDIO_CROP_RANDOM,
        .resample_quality = SRC_SINC_FASTEST,
        .min_seconds = 0.0,
        .max_channels = 64,
        .max_source_rate = 768000,
        .min_source_rate = 1000,
        .nonfinite_to_zero = false,
        .mel = clasp_melspec_default_config(),
    };
}

size_t clasp_audio_clip_samples(const clasp_audio_config *c) {
    return (size_t)llround(c->clip_seconds * (double)c->mel.sample_rate);
}

size_t clasp_audio_clip_frames(const clasp_audio_config *c) {
    return clasp_melspec_n_frames(&c->mel, clasp_audio_clip_samples(c));
}

clasp_status clasp_audio_config_check(const clasp_audio_config *c) {
    if (!c) return clasp_set_error(CLASP_ERR_ARG, "audio config: NULL");
    CLASP_TRY(clasp_melspec_config_check(&c->mel));
    if (!(c->clip_seconds > 0.0) || !(c->clip_seconds * c->mel.sample_rate <= 1e8))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio config: clip_seconds %g must be > 0 and give <= 1e8 samples",
                               c->clip_seconds);
    if ((unsigned)c->pad_mode > CLASP_AUDIO_PAD_REPEATPAD)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown pad mode %d",
                               (int)c->pad_mode);
    if ((unsigned)c->crop_mode > CLASP_AUDIO_CROP_RANDOM)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown crop mode %d",
                               (int)c->crop_mode);
    if (!src_get_name(c->resample_quality))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown resample_quality %d",
                               c->resample_quality);
    if (!(c->min_seconds >= 0.0) || !isfinite(c->min_seconds))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: min_seconds %g must be >= 0",
                               c->min_seconds);
    if (c->max_channels < 1 || c->max_channels > 1024)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: max_channels %d out of [1, 1024]",
                               c->max_channels);
    if (c->min_source_rate < 1 || c->max_source_rate < c->min_source_rate)
        return clasp_set_error(
            CLASP_ERR_CONFIG,
            "audio config: need 1 <= min_source_rate (%d) <= max_source_rate (%d)",
            c->min_source_rate, c->max_source_rate);
    size_t clip = clasp_audio_clip_samples(c), p = (size_t)c->mel.n_fft / 2;
    if (c->mel.center && c->mel.pad_mode == CLASP_PAD_REFLECT && clip <= p)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio config: clip of %zu samples too short for reflect padding "
                               "of n_fft/2 = %zu",
                               clip, p);
    if (!c->mel.center && clip < (size_t)c->mel.n_fft)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio config: clip of %zu samples shorter than n_fft %d", clip,
                               c->mel.n_fft);
    return CLASP_OK;
}

/* ---- libsndfile virtual IO over a memory buffer ---------------------------------------- */

/* Reading: data/len. Writing (clasp_audio_encode_wav): out grows by vio_write to cap bytes,
 * data follows it, nomem records a failed growth. */
typedef struct membuf {
    const unsigned char *data;
    sf_count_t len, pos;
    unsigned char *out;
    sf_count_t cap;
    bool nomem;
} membuf;

static sf_count_t vio_len(void *user) {
    return ((membuf *)user)->len;
}
static sf_count_t vio_seek(sf_count_t off, int whence, void *user) {
    membuf *m = user;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
    sf_count_t p = base + off;
    if (p < 0) p = 0;
    if (p > m->len) p = m->len;
    m->pos = p;
    return p;
}
static sf_count_t vio_read(void *ptr, sf_count_t count, void *user) {
    membuf *m = user;
    if (count <= 0 || m->pos >= m->len) return 0;
    sf_count_t n = m->len - m->pos < count ? m->len - m->pos : count;
    memcpy(ptr, m->data + m->pos, (size_t)n);
    m->pos += n;
    return n;
}
static sf_count_t vio_write(const void *ptr, sf_count_t count, void *user) {
    membuf *m = user;
    if (count <= 0 || !m->out) return 0; /* a reader never writes */
    if (m->pos + count > m->cap) {
        sf_count_t cap = m->cap * 2 > m->pos + count ? m->cap * 2 : m->pos + count;
        unsigned char *p = realloc(m->out, (size_t)cap);
        if (!p) {
            m->nomem = true;
            return 0;
        }
        m->data = m->out = p;
        m->cap = cap;
    }
    memcpy(m->out + m->pos, ptr, (size_t)count);
    m->pos += count;
    if (m->pos > m->len) m->len = m->pos;
    return count;
}
static sf_count_t vio_tell(void *user) {
    return ((membuf *)user)->pos;
}

/* Opens `data` for reading; on failure sets *why and the message. */
static SF_VIRTUAL_IO vio = {vio_len, vio_seek, vio_read, vio_write, vio_tell};

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
    membuf b = {.cap = (sf_count_t)(n * sizeof(float) + 4096)};
    b.data = b.out = malloc((size_t)b.cap);
    if (!b.out) return clasp_set_error(CLASP_ERR_NOMEM, "encode wav: out of memory");
    SF_INFO si = {
        .samplerate = sample_rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *sf = sf_open_virtual(&vio, SFM_WRITE, &si, &b);
    if (!sf) {
        free(b.out);
        return clasp_set_error(CLASP_ERR_ARG, "encode wav: libsndfile refused rate %d: %s",
                               sample_rate, sf_strerror(NULL));
    }
    sf_count_t put = n > 0 ? sf_writef_float(sf, x, (sf_count_t)n) : 0;
    int closed = sf_close(sf);
    if (b.nomem || put != (sf_count_t)n || closed != 0) {
        free(b.out);
        return clasp_set_error(b.nomem ? CLASP_ERR_NOMEM : CLASP_ERR_IO,
                               "encode wav: wrote %lld of %zu samples", (long long)put, n);
    }
    *out = b.out;
    *nbytes = (size_t)b.len;
    return CLASP_OK;
}

static clasp_status open_mem(const void *data, size_t nbytes, const char *what, membuf *mb,
                             SF_INFO *si, SNDFILE **out, clasp_audio_skip *why) {
    *out = NULL;
    if (nbytes == 0 || !data) {
        *why = CLASP_AUDIO_EMPTY;
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: empty (0 bytes)", what);
    }
    if (nbytes > (size_t)INT64_MAX / 2) {
        *why = CLASP_AUDIO_DECODE;
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: %zu bytes too large", what, nbytes);
    }
    *mb = (membuf){.data = data, .len = (sf_count_t)nbytes};
    memset(si, 0, sizeof *si);
    SNDFILE *sf = sf_open_virtual(&vio, SFM_READ, si, mb);
    if (!sf) {
        /* sf_strerror(NULL) reads a libsndfile global: best effort under threads. */
        *why = CLASP_AUDIO_DECODE;
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: libsndfile cannot open it: %s", what,
                               sf_strerror(NULL));
    }
    *out = sf;
    return CLASP_OK;
}

static clasp_status check_header(const SF_INFO *si, const clasp_audio_config *c, const char *what,
                                 clasp_audio_skip *why) {
    if (si->channels < 1 || si->channels > c->max_channels) {
        *why = CLASP_AUDIO_FORMAT;
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: %d channels (allowed 1..%d)", what,
                               si->channels, c->max_channels);
    }
    if (si->samplerate < c->min_source_rate || si->samplerate > c->max_source_rate) {
        *why = CLASP_AUDIO_FORMAT;
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: sample rate %d Hz (allowed %d..%d)",
                               what, si->samplerate, c->min_source_rate, c->max_source_rate);
    }
    if (si->frames == 0) {
        *why = CLASP_AUDIO_EMPTY;
        return clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: 0 frames", what);
    }
    return CLASP_OK;
}

clasp_status clasp_audio_probe(const void *data, size_t nbytes, clasp_audio_info *info,
                               clasp_audio_skip *why) {
    clasp_audio_skip dummy;
    if (!why) why = &dummy;
    *why = CLASP_AUDIO_OK;
    if (!info) return clasp_set_error(CLASP_ERR_ARG, "audio_probe: info is NULL");
    memset(info, 0, sizeof *info);
    membuf mb;
    SF_INFO si;
    SNDFILE *sf;
    CLASP_TRY(open_mem(data, nbytes, "audio", &mb, &si, &sf, why));
    info->source_rate = si.samplerate;
    info->channels = si.channels;
    info->source_frames = si.frames < 0 || si.frames == SF_COUNT_MAX ? -1 : (int64_t)si.frames;
    info->sf_format = si.format;
    sf_close(sf);
    if (si.frames == 0) {
        *why = CLASP_AUDIO_EMPTY;
        return clasp_set_error(CLASP_ERR_FORMAT, "audio: 0 frames");
    }
    return CLASP_OK;
}

/* out[valid..clip) from out[0..valid) per pad mode. */
static void pad_clip(float *out, size_t valid, size_t clip, clasp_audio_pad mode) {
    if (valid >= clip) return;
    if (mode == CLASP_AUDIO_PAD_ZERO || valid == 0) {
        memset(out + valid, 0, sizeof(float) * (clip - valid));
    } else if (mode == CLASP_AUDIO_PAD_REPEAT) {
        for (size_t i = valid; i < clip; i++) out[i] = out[i - valid];
    } else { /* REPEATPAD: floor(clip / valid) whole copies, zeros after */
        size_t whole = (clip / valid) * valid, i = valid;
        for (; i < whole; i++) out[i] = out[i - valid];
        for (; i < clip; i++) out[i] = 0.0f;
    }
}

typedef struct decoder {
    membuf mb; /* the encoded bytes, read by libsndfile through vio_* */
    SF_INFO si;
    SNDFILE *sf;
    bool frames_known; /* si.frames is the true length */
    int channels;
    float *inter;   /* (CHUNK, channels) interleaved read buffer */
    float *mono;    /* (CHUNK) mono chunk */
    SRC_STATE *src; /* NULL when rates match */
    double ratio;   /* out rate / in rate */
    int64_t frames_read;
    bool read_error;
} decoder;

/* Reads up to CHUNK frames (but at most `limit`) into d->mono; returns frames (0 at end). */
static sf_count_t read_mono(decoder *d, sf_count_t limit) {
    sf_count_t want = CLASP_AUDIO_CHUNK_FRAMES < limit ? CLASP_AUDIO_CHUNK_FRAMES : limit;
    if (want <= 0) return 0;
    sf_count_t got = sf_readf_float(d->sf, d->inter, want);
    if (got < 0) got = 0;
    if (got < want && sf_error(d->sf) != SF_ERR_NO_ERROR) d->read_error = true;
    int ch = d->channels;
    for (sf_count_t i = 0; i < got; i++) {
        const float *f = d->inter + (size_t)i * (size_t)ch;
        double acc = 0.0;
        for (int k = 0; k < ch; k++) acc += (double)f[k];
        d->mono[i] = (float)(acc / ch);
    }
    d->frames_read += got;
    return got;
}

/* Opens the bytes, checks the header against c and that libsamplerate converts the source
 * rate to the model's; fills info's source fields. Call decoder_close even on failure. */
static clasp_status decoder_open(decoder *d, const void *data, size_t nbytes,
                                 const clasp_audio_config *c, const char *what,
                                 clasp_audio_info *info, clasp_audio_skip *why) {
    memset(d, 0, sizeof *d);
    CLASP_TRY(open_mem(data, nbytes, what, &d->mb, &d->si, &d->sf, why));
    const SF_INFO *si = &d->si;
    info->source_rate = si->samplerate;
    info->channels = si->channels;
    d->frames_known = si->frames > 0 && si->frames != SF_COUNT_MAX;
    info->source_frames = d->frames_known ? (int64_t)si->frames : -1;
    info->sf_format = si->format;
    CLASP_TRY(check_header(si, c, what, why));
    d->channels = si->channels;
    d->ratio = (double)c->mel.sample_rate / (double)si->samplerate;
    if (!src_is_valid_ratio(d->ratio)) {
        *why = CLASP_AUDIO_RESAMPLE;
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "%s: audio: cannot resample %d Hz to %d Hz",
                               what, si->samplerate, c->mel.sample_rate);
    }
    return CLASP_OK;
}

static void decoder_close(decoder *d) {
    if (d->src) src_delete(d->src);
    free(d->inter);
    free(d->mono);
    if (d->sf) sf_close(d->sf);
}

/* The chunk buffers and, when the rates differ, the resampler. */
static clasp_status decoder_alloc(decoder *d, const clasp_audio_config *c, const char *what,
                                  clasp_audio_info *info) {
    size_t inter_n;
    if (!clasp_size_mul((size_t)CLASP_AUDIO_CHUNK_FRAMES, (size_t)d->channels, &inter_n))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "%s: audio: buffer size overflow", what);
    d->inter = malloc(sizeof(float) * inter_n);
    d->mono = malloc(sizeof(float) * CLASP_AUDIO_CHUNK_FRAMES);
    info->peak_alloc_bytes = sizeof(float) * (inter_n + CLASP_AUDIO_CHUNK_FRAMES);
    if (!d->inter || !d->mono)
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: audio: out of memory", what);
    if (d->si.samplerate != c->mel.sample_rate) {
        int err = 0;
        d->src = src_new(c->resample_quality, 1, &err);
        if (!d->src)
            return clasp_set_error(CLASP_ERR_NOMEM, "%s: audio: src_new: %s", what,
                                   src_strerror(err));
    }
    return CLASP_OK;
}

/* Source frames a clip of `clip` samples needs: ceil(clip / ratio) plus a margin so the
 * resampler's look-ahead sees real signal rather than the end-of-input flush. */
static int64_t frames_needed(const decoder *d, size_t clip, int rate) {
    double need_d = ceil((double)clip / d->ratio);
    int64_t margin = d->si.samplerate == rate ? 0 : 64 + (int64_t)ceil(64.0 / d->ratio);
    return (int64_t)need_d + margin;
}

/* First source frame of the clip: with a random crop of a source of known length longer than
 * `need`, crop_u in [0, 1) picks one of the starts that leave `need` frames; else 0. */
static int64_t crop_offset(const decoder *d, const clasp_audio_config *c, int64_t need,
                           double crop_u) {
    int64_t offset = 0;
    if (d->frames_known && d->si.frames > need && crop_u >= 0.0 &&
        c->crop_mode == CLASP_AUDIO_CROP_RANDOM) {
        int64_t span = (int64_t)d->si.frames - need + 1;
        offset = (int64_t)floor((crop_u < 1.0 ? crop_u : 0.0) * (double)span);
        if (offset >= span) offset = span - 1;
    }
    return offset;
}

/* Moves the read position to source frame `offset`: sf_seek, or, when the format cannot seek,
 * reading and dropping chunks (still in chunk-sized pieces). */
static void skip_to(decoder *d, int64_t offset) {
    if (offset <= 0 || sf_seek(d->sf, offset, SEEK_SET) == offset) return;
    sf_seek(d->sf, 0, SEEK_SET);
    int64_t left = offset;
    while (left > 0) {
        sf_count_t got = read_mono(d, left);
        if (got == 0) break;
        left -= got;
    }
    d->frames_read = 0;
}

/* read_mono, then each non-finite sample is zeroed (nonfinite_to_zero) or refused
 * (CLASP_AUDIO_NAN naming its frame; `offset` is where reading started). */
static clasp_status read_finite(decoder *d, sf_count_t limit, const clasp_audio_config *c,
                                int64_t offset, const char *what, sf_count_t *got,
                                clasp_audio_skip *why) {
    sf_count_t n = read_mono(d, limit);
    *got = n;
    for (sf_count_t i = 0; i < n; i++) {
        if (isfinite(d->mono[i])) continue;
        if (!c->nonfinite_to_zero) {
            *why = CLASP_AUDIO_NAN;
            return clasp_set_error(CLASP_ERR_NUMERIC, "%s: audio: non-finite sample at frame %lld",
                                   what, (long long)(offset + d->frames_read - n + i));
        }
        d->mono[i] = 0.0f;
    }
    return CLASP_OK;
}

/* Feeds the `got` frames of d->mono (with eof, also the end-of-input flush) to libsamplerate
 * until it has consumed them or out[0..clip) is full; *valid counts the samples in out. */
static clasp_status resample_chunk(decoder *d, sf_count_t got, bool eof, float *out, size_t clip,
                                   size_t *valid, const char *what, clasp_audio_skip *why) {
    SRC_DATA sd;
    memset(&sd, 0, sizeof sd);
    sd.data_in = d->mono;
    sd.input_frames = (long)got;
    sd.src_ratio = d->ratio;
    sd.end_of_input = eof ? 1 : 0;
    for (;;) {
        sd.data_out = out + *valid;
        sd.output_frames = (long)(clip - *valid);
        int err = src_process(d->src, &sd);
        if (err) {
            *why = CLASP_AUDIO_RESAMPLE;
            return clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: src_process: %s", what,
                                   src_strerror(err));
        }
        *valid += (size_t)sd.output_frames_gen;
        if (sd.input_frames_used == 0 && sd.output_frames_gen == 0 && sd.input_frames > 0)
            break; /* no progress: never spin */
        sd.data_in += sd.input_frames_used;
        sd.input_frames -= sd.input_frames_used;
        if (*valid >= clip) break;
        if (sd.input_frames > 0) continue;
        if (!eof || sd.output_frames_gen == 0) break;
    }
    return CLASP_OK;
}

clasp_status clasp_audio_load_clip(const void *data, size_t nbytes, const clasp_audio_config *c,
                                   double crop_u, const char *what, float *out,
                                   clasp_audio_info *info, clasp_audio_skip *why) {
    clasp_audio_skip dummy_why;
    clasp_audio_info dummy_info;
    if (!why) why = &dummy_why;
    if (!info) info = &dummy_info;
    *why = CLASP_AUDIO_OK;
    memset(info, 0, sizeof *info);
    if (!what) what = "audio";
    if (!c || !out)
        return clasp_set_error(CLASP_ERR_ARG, "%s: audio_load_clip: NULL argument", what);
    CLASP_TRY(clasp_audio_config_check(c));
    const size_t clip = clasp_audio_clip_samples(c);
    const int rate = c->mel.sample_rate;

    decoder d;
    clasp_status st = decoder_open(&d, data, nbytes, c, what, info, why);
    const int64_t need = st == CLASP_OK ? frames_needed(&d, clip, rate) : 0;
    const int64_t offset = st == CLASP_OK ? crop_offset(&d, c, need, crop_u) : 0;
    info->crop_offset = offset;
    if (st == CLASP_OK) st = decoder_alloc(&d, c, what, info);
    if (st != CLASP_OK) goto done;
    skip_to(&d, offset);

    size_t valid = 0;
    int64_t remaining = need; /* source frames still wanted */
    bool eof = false;
    while (valid < clip) {
        sf_count_t got = 0;
        if (!eof) {
            st = read_finite(&d, remaining, c, offset, what, &got, why);
            if (st != CLASP_OK) goto done;
            remaining -= got;
            if (got == 0 || remaining <= 0) eof = true;
        }
        if (d.src) {
            st = resample_chunk(&d, got, eof, out, clip, &valid, what, why);
            if (st != CLASP_OK) goto done;
        } else {
            size_t take = (size_t)got < clip - valid ? (size_t)got : clip - valid;
            memcpy(out + valid, d.mono, sizeof(float) * take);
            valid += take;
        }
        if (eof) break;
    }
    info->valid_samples = valid;
    if (d.read_error ||
        (d.frames_known && eof && d.frames_read < (int64_t)d.si.frames - offset && remaining > 0))
        info->truncated = true;
    if (d.frames_read == 0) {
        *why = d.read_error ? CLASP_AUDIO_TRUNCATED : CLASP_AUDIO_EMPTY;
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: no frame could be decoded (%s)", what,
                             d.read_error ? sf_strerror(d.sf) : "0 frames");
        goto done;
    }
    if (valid == 0) { /* e.g. 1 frame at 48 kHz resampled to 8 kHz */
        out[0] = d.mono[0];
        valid = 1;
    }
    if ((double)valid < c->min_seconds * (double)rate) {
        *why = CLASP_AUDIO_TOO_SHORT;
        st = clasp_set_error(CLASP_ERR_FORMAT, "%s: audio: %.3f s shorter than min_seconds %g",
                             what, (double)valid / rate, c->min_seconds);
        goto done;
    }
    info->padded = valid < clip;
    pad_clip(out, valid, clip, c->pad_mode);
done:
    info->frames_read = d.frames_read;
    decoder_close(&d);
    return st;
}
