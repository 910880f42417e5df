/* capi.c: the public API of include/clasp.h over the embedder of export/export.h. */
#include "include/clasp.h"

#include <stdlib.h>

#include "core/status.h"
#include "export/export.h"

struct clasp_handle {
    clasp_embedder em;
};

clasp_handle *clasp_model_open(const char *export_dir, int n_threads) {
    clasp_handle *h = calloc(1, sizeof *h);
    if (!h) {
        clasp_set_error(CLASP_ERR_NOMEM, "clasp_model_open: out of memory");
        return NULL;
    }
    if (clasp_embedder_open(export_dir, n_threads < 1 ? 1 : n_threads, 64, &h->em) != CLASP_OK) {
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
