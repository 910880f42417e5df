/* decode.c: one sample's fields -> model inputs (image tensor, caption tokens, log-mel,
 * label), with every bad field turned into a counted skip (see clasp_decoder_run in loader.h).
 * Random choices (caption among several, image and audio augmentation) are keyed by (seed,
 * epoch, sample key), and a second view's augmentation by its view seed
 * (clasp_augment_view_seed), so a sample decodes the same on any thread. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rng.h"
#include "pipeline/captions.h"
#include "pipeline/loader.h"

struct clasp_decoder {
    clasp_loader_config cfg;
    const clasp_tokenizer *tok;
    clasp_audio_frontend *fe;
    float *mel_scratch;   /* when the caller passes no mel buffer */
    int32_t *tok_scratch; /* when the caller passes no token buffer */
};

clasp_status clasp_decoder_new(const clasp_loader_config *cfg, const clasp_tokenizer *tok,
                               clasp_decoder **out) {
    *out = NULL;
    clasp_decoder *d = calloc(1, sizeof *d);
    if (!d) return clasp_set_error(CLASP_ERR_NOMEM, "decoder: out of memory");
    d->cfg = *cfg;
    d->cfg.spec = NULL;
    d->tok = tok;
    if (cfg->context_length < 2) {
        free(d);
        return clasp_set_error(CLASP_ERR_CONFIG, "context_length %d: must be >= 2",
                               cfg->context_length);
    }
    d->tok_scratch = malloc((size_t)cfg->context_length * sizeof(int32_t));
    if (!d->tok_scratch) {
        clasp_decoder_free(d);
        return clasp_set_error(CLASP_ERR_NOMEM, "decoder: out of memory");
    }
    if (cfg->required & CLASP_NEED_AUDIO) {
        clasp_status st = clasp_audio_frontend_new(&cfg->audio, &d->fe);
        if (st != CLASP_OK) {
            clasp_decoder_free(d);
            return st;
        }
        d->mel_scratch = malloc(clasp_audio_frontend_numel(d->fe) * sizeof(float));
        if (!d->mel_scratch) {
            clasp_decoder_free(d);
            return clasp_set_error(CLASP_ERR_NOMEM, "decoder: out of memory");
        }
    }
    *out = d;
    return CLASP_OK;
}

void clasp_decoder_free(clasp_decoder *d) {
    if (!d) return;
    clasp_audio_frontend_free(d->fe);
    free(d->mel_scratch);
    free(d->tok_scratch);
    free(d);
}

/* Parses a "cls" payload: optional whitespace, a decimal integer, optional whitespace. */
static bool parse_label_(const clasp_field *f, int64_t *out) {
    if (!f->data || f->n == 0 || f->n > 32) return false;
    char buf[40];
    memcpy(buf, f->data, f->n);
    buf[f->n] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (end == buf || errno) return false;
    while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t') end++;
    if (*end) return false;
    *out = (int64_t)v;
    return true;
}

static clasp_status skip_(clasp_data_stats *stats, const clasp_sample *s, clasp_skip_reason r,
                          const char *detail, bool *ok, clasp_skip_reason *why) {
    *ok = false;
    *why = r;
    if (stats) clasp_data_stats_skip(stats, r, s->shard, s->key, detail);
    return CLASP_OK;
}

/* The image field into out->image (and its second view into out->image2 when asked): the
 * training augmentation keyed by (view seed, epoch, key) when on, else the plain preprocessing
 * (the two views then equal); only decoded (checked) when out has no image buffer. */
static clasp_status decode_image_(const clasp_loader_config *c, const clasp_field *img,
                                  uint64_t epoch, const char *key, const clasp_decoded *out) {
    clasp_status st;
    if (out && out->image && !c->eval && c->image_augment.enabled) {
        clasp_image im;
        int w = 0, h = 0, region = 0;
        if (c->image.jpeg_dct_scaling && clasp_image_jpeg_size(img->data, img->n, &w, &h)) {
            /* the smaller of the views' crops decides the DCT scale (image.h) */
            region = clasp_image_augment_region_px(&c->image, &c->image_augment, c->seed, epoch,
                                                   key, w, h);
            const int r2 = out->image2
                               ? clasp_image_augment_region_px(&c->image, &c->image_augment,
                                                               clasp_augment_view_seed(c->seed, 1),
                                                               epoch, key, w, h)
                               : region;
            if (r2 < region) region = r2;
        }
        st = clasp_image_decode_scaled(img->data, img->n, c->image.channels, c->image.max_pixels,
                                       c->image.size, region, &im);
        if (st == CLASP_OK)
            st = clasp_image_augment(&im, &c->image, &c->image_augment, c->seed, epoch, key,
                                     out->image);
        if (st == CLASP_OK && out->image2)
            st = clasp_image_augment(&im, &c->image, &c->image_augment,
                                     clasp_augment_view_seed(c->seed, 1), epoch, key, out->image2);
        clasp_image_free(&im);
    } else if (out && out->image) {
        st = clasp_image_load(img->data, img->n, &c->image, out->image);
        if (st == CLASP_OK && out->image2)
            memcpy(out->image2, out->image, clasp_image_tensor_numel(&c->image) * sizeof(float));
    } else {
        clasp_image im;
        st = clasp_image_decode(img->data, img->n, c->image.channels, c->image.max_pixels, &im);
        clasp_image_free(&im);
    }
    return st;
}

clasp_status clasp_decoder_run(clasp_decoder *d, const clasp_sample *s, uint64_t epoch,
                               clasp_data_stats *stats, clasp_decoded *out, bool *ok,
                               clasp_skip_reason *why) {
    const clasp_loader_config *c = &d->cfg;
    *ok = false;
    *why = CLASP_SKIP_N;
    if (s->truncated) return skip_(stats, s, CLASP_SKIP_TRUNCATED, "member data cut", ok, why);
    if (s->too_large)
        return skip_(stats, s, CLASP_SKIP_TOO_LARGE, "member above size limit", ok, why);
    if (!s->has_payload) return clasp_set_error(CLASP_ERR_STATE, "sample %s: no payload", s->key);
    const clasp_field *img = clasp_sample_find(s, &c->fields, CLASP_FIELD_IMAGE);
    const clasp_field *txt = clasp_sample_find(s, &c->fields, CLASP_FIELD_TEXT);
    const clasp_field *aud = clasp_sample_find(s, &c->fields, CLASP_FIELD_AUDIO);
    const clasp_field *lab = clasp_sample_find(s, &c->fields, CLASP_FIELD_LABEL);
    const clasp_field *js = clasp_sample_find(s, &c->fields, CLASP_FIELD_JSON);
    unsigned need = c->required;
    if ((need & CLASP_NEED_IMAGE) && !img)
        return skip_(stats, s, CLASP_SKIP_MISSING_FIELD, "no image field", ok, why);
    if ((need & CLASP_NEED_AUDIO) && !aud)
        return skip_(stats, s, CLASP_SKIP_MISSING_FIELD, "no audio field", ok, why);
    if ((need & CLASP_NEED_LABEL) && !lab)
        return skip_(stats, s, CLASP_SKIP_MISSING_FIELD, "no label field", ok, why);
    if ((need & CLASP_NEED_TEXT) && !txt && !js)
        return skip_(stats, s, CLASP_SKIP_MISSING_FIELD, "no text or json field", ok, why);

    int64_t label = -1;
    if (lab && !parse_label_(lab, &label)) {
        if (need & CLASP_NEED_LABEL)
            return skip_(stats, s, CLASP_SKIP_BAD_LABEL, "cls is not a decimal integer", ok, why);
        label = -1;
    }
    uint64_t group = label >= 0 ? (uint64_t)label : clasp_hash_str(s->key, 0);

    if (need & CLASP_NEED_TEXT) {
        clasp_captions caps;
        if (!clasp_captions_of(s, &c->fields, &caps)) {
            clasp_skip_reason r = caps.skip;
            const char *detail = caps.detail;
            clasp_captions_free(&caps);
            return skip_(stats, s, r, detail, ok, why);
        }
        /* Evaluation uses the first caption; training draws one per (seed, epoch, key). */
        const clasp_caption *cap =
            &caps.c[clasp_captions_pick(&caps, c->eval, c->seed, epoch, s->key)];
        char *norm = NULL;
        size_t nn = 0;
        clasp_status st = clasp_text_normalize(cap->p, cap->n, &c->text, &norm, &nn);
        clasp_captions_free(&caps);
        if (st == CLASP_ERR_NOMEM) return st;
        if (st != CLASP_OK)
            return skip_(stats, s, CLASP_SKIP_BAD_TEXT, clasp_last_error(), ok, why);
        int32_t *tokens = out && out->tokens ? out->tokens : d->tok_scratch;
        st = clasp_tokenizer_encode_n(d->tok, norm, nn, tokens, c->context_length, NULL);
        free(norm);
        if (st != CLASP_OK) return st;
        group = clasp_hash64(tokens, (size_t)c->context_length * sizeof(int32_t), 0);
    }

    if (need & CLASP_NEED_IMAGE) {
        clasp_status st = decode_image_(c, img, epoch, s->key, out);
        if (st == CLASP_ERR_NOMEM) return st;
        if (st != CLASP_OK)
            return skip_(stats, s, CLASP_SKIP_BAD_IMAGE, clasp_last_error(), ok, why);
    }

    if (need & CLASP_NEED_AUDIO) {
        float *mel = out && out->mel ? out->mel : d->mel_scratch;
        const int n_views = out && out->mel2 ? 2 : 1;
        for (int v = 0; v < n_views; v++) {
            clasp_audio_skip aw = CLASP_AUDIO_OK;
            clasp_status st = clasp_audio_frontend_run(
                d->fe, aud->data, aud->n, c->eval ? NULL : &c->audio_augment,
                clasp_augment_view_seed(c->seed, v), epoch, s->key, v ? out->mel2 : mel, NULL, &aw);
            if (st != CLASP_OK) {
                if (aw == CLASP_AUDIO_OK) return st;
                char detail[300];
                snprintf(detail, sizeof detail, "%s: %s", clasp_audio_skip_name(aw),
                         clasp_last_error());
                return skip_(stats, s, CLASP_SKIP_BAD_AUDIO, detail, ok, why);
            }
        }
    }
    if (out) {
        out->label = label;
        out->group_id = group;
    }
    *ok = true;
    return CLASP_OK;
}
