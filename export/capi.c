/* capi.c: the public API of include/clasp.h over the embedder of export/export.h. */
#include "include/clasp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "export/export.h"
#include "modalities/audio.h"
#include "modalities/image.h"
#include "train/checkpoint.h"
#include "train/runstate.h"

/* Set by cmake/install.cmake from project(VERSION) and the backend built. */
#ifndef CLASP_LIB_VERSION
#error "CLASP_LIB_VERSION must come from CMake (PROJECT_VERSION)"
#endif
#ifndef CLASP_LIB_PRECISIONS
#error "CLASP_LIB_PRECISIONS must come from CMake"
#endif

struct clasp_handle {
    clasp_embedder em;
};

clasp_handle *clasp_model_open(const char *export_dir, int n_threads) {
    clasp_handle *h = calloc(1, sizeof *h);
    if (!h) {
        clasp_set_error(CLASP_ERR_NOMEM, "clasp_model_open: out of memory");
        return NULL;
    }
    if (clasp_embedder_open_lazy(export_dir, n_threads < 1 ? 1 : n_threads, 64, &h->em) !=
        CLASP_OK) {
        free(h);
        return NULL;
    }
    return h;
}

void clasp_model_close(clasp_handle *h) {
    if (!h) return;
    clasp_embedder_close(&h->em);
    free(h);
}

int clasp_model_dim(const clasp_handle *h) {
    if (!h) clasp_set_error(CLASP_ERR_ARG, "clasp_model_dim: NULL handle");
    return h ? h->em.D : 0;
}

/* The arguments every embedding call checks the same way: a handle, n >= 0, and for n > 0 the
 * inputs and the output. */
static int bad_args_(const clasp_handle *h, int n, const void *in, const float *out,
                     const char *fn) {
    if (h && n >= 0 && (n == 0 || (in && out))) return 0;
    return clasp_set_error(CLASP_ERR_ARG, "%s: bad arguments (handle %s, n %d, %s inputs, %s out)",
                           fn, h ? "set" : "NULL", n, in ? "some" : "NULL", out ? "an" : "NULL");
}

int clasp_model_embed_images(clasp_handle *h, const void *const *data, const size_t *nbytes, int n,
                             float *out) {
    int s = bad_args_(h, n, data, out, __func__);
    return s ? s : clasp_embedder_images(&h->em, data, nbytes, NULL, n, out);
}

int clasp_model_embed_image_files(clasp_handle *h, const char *const *paths, int n, float *out) {
    int s = bad_args_(h, n, paths, out, __func__);
    return s ? s : clasp_embedder_image_files(&h->em, paths, n, out);
}

int clasp_model_embed_texts(clasp_handle *h, const char *const *texts, int n, float *out) {
    int s = bad_args_(h, n, texts, out, __func__);
    return s ? s : clasp_embedder_texts(&h->em, texts, n, out);
}

int clasp_model_embed_audio(clasp_handle *h, const void *const *data, const size_t *nbytes, int n,
                            float *out) {
    int s = bad_args_(h, n, data, out, __func__);
    return s ? s : clasp_embedder_audio(&h->em, data, nbytes, NULL, n, out);
}

int clasp_model_embed_audio_files(clasp_handle *h, const char *const *paths, int n, float *out) {
    int s = bad_args_(h, n, paths, out, __func__);
    return s ? s : clasp_embedder_audio_files(&h->em, paths, n, out);
}

/* Inputs converted to encoded files in pieces of PIECE, so memory stays bounded. */
enum { PIECE = 64 };

/* PNG-encodes pixel image i (shape[3 i ..]) into *png. */
static clasp_status pixels_png_(const unsigned char *px, const int *shape, int i, uint8_t **png,
                                size_t *n) {
    int H = shape[3 * i], W = shape[3 * i + 1], C = shape[3 * i + 2];
    if (!px || H < 1 || W < 1 || C < 1 || C == 2 || C > 4)
        return clasp_set_error(CLASP_ERR_ARG,
                               "clasp_model_embed_pixels: image %d: %s pixels of shape (%d, %d, %d)"
                               " (want H, W >= 1 and C 1, 3 or 4)",
                               i, px ? "" : "NULL", H, W, C);
    clasp_status s = clasp_image_encode_png(px, W, H, C, png, n);
    return s == CLASP_OK ? s : clasp_wrap_error(s, "clasp_model_embed_pixels: image %d", i);
}

int clasp_model_embed_pixels(clasp_handle *h, const unsigned char *const *pixels, const int *shape,
                             int n, float *out) {
    int s = bad_args_(h, n, pixels && shape ? pixels : NULL, out, __func__);
    if (s) return s;
    uint8_t *png[PIECE] = {0};
    size_t sz[PIECE];
    for (int at = 0; at < n && s == CLASP_OK; at += PIECE) {
        int m = n - at < PIECE ? n - at : PIECE, got = 0;
        for (; got < m && s == CLASP_OK; got++)
            s = pixels_png_(pixels[at + got], shape, at + got, &png[got], &sz[got]);
        if (s == CLASP_OK)
            s = clasp_embedder_images(&h->em, (const void *const *)png, sz, NULL, m,
                                      out + (size_t)at * (size_t)h->em.D);
        for (int i = 0; i < got; i++) free(png[i]), png[i] = NULL;
        /* the embedder names "image I" counting from this piece: say which piece */
        if (s != CLASP_OK && at > 0) s = clasp_wrap_error(s, "images from %d", at);
    }
    return s;
}

int clasp_model_embed_audio_samples(clasp_handle *h, const float *const *samples,
                                    const size_t *n_samples, int sample_rate, int n, float *out) {
    int s = bad_args_(h, n, samples && n_samples ? samples : NULL, out, __func__);
    if (s) return s;
    if (sample_rate <= 0)
        return clasp_set_error(CLASP_ERR_ARG, "%s: sample rate %d (want > 0)", __func__,
                               sample_rate);
    uint8_t *wav[PIECE] = {0};
    size_t sz[PIECE];
    for (int at = 0; at < n && s == CLASP_OK; at += PIECE) {
        int m = n - at < PIECE ? n - at : PIECE, got = 0;
        for (; got < m && s == CLASP_OK; got++) {
            const float *x = samples[at + got];
            size_t len = n_samples[at + got];
            s = !x && len > 0 ? clasp_set_error(CLASP_ERR_ARG, "NULL samples")
                              : clasp_audio_encode_wav(x, len, sample_rate, &wav[got], &sz[got]);
            if (s != CLASP_OK) s = clasp_wrap_error(s, "%s: audio %d", __func__, at + got);
        }
        if (s == CLASP_OK)
            s = clasp_embedder_audio(&h->em, (const void *const *)wav, sz, NULL, m,
                                     out + (size_t)at * (size_t)h->em.D);
        for (int i = 0; i < got; i++) free(wav[i]), wav[i] = NULL;
        if (s != CLASP_OK && at > 0) s = clasp_wrap_error(s, "audio from %d", at);
    }
    return s;
}

int clasp_model_has_modality(const clasp_handle *h, int modality) {
    static const clasp_tower towers[3] = {CLASP_TOWER_IMAGE, CLASP_TOWER_TEXT, CLASP_TOWER_AUDIO};
    if (!h || modality < 0 || modality > 2) return 0;
    return clasp_embedder_has(&h->em, towers[modality]) ? 1 : 0;
}

int clasp_model_set_precision(clasp_handle *h, const char *precision) {
    if (!h) return clasp_set_error(CLASP_ERR_ARG, "clasp_model_set_precision: NULL handle");
    clasp_precision p;
    clasp_status s = clasp_precision_parse(precision, &p);
    return s != CLASP_OK ? s : clasp_embedder_set_precision(&h->em, p);
}

const char *clasp_model_trained_precision(const clasp_handle *h) {
    return h ? clasp_precision_name(h->em.config.precision) : "";
}

const char *clasp_backend(void) {
    return clasp_compute_backend();
}

const char *clasp_precisions(void) {
    return CLASP_LIB_PRECISIONS;
}

const char *clasp_version(void) {
    return CLASP_LIB_VERSION;
}

int clasp_format_version(const char *file) {
    static const struct {
        const char *name;
        int version;
    } formats[] = {{"export", CLASP_EXPORT_FORMAT_VERSION},
                   {"checkpoint", CLASP_CKPT_FORMAT_VERSION},
                   {"run", CLASP_RUN_FORMAT_VERSION}};
    for (size_t i = 0; file && i < sizeof formats / sizeof formats[0]; i++)
        if (!strcmp(file, formats[i].name)) return formats[i].version;
    clasp_set_error(CLASP_ERR_ARG, "clasp_format_version: '%s' is not export, checkpoint or run",
                    file ? file : "(NULL)");
    return -1;
}
