/* data.c: a loader configured from a model config, running over epochs. See data.h. */
#include "pipeline/data.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "pipeline/shardlist.h"

clasp_data_options clasp_data_default_options(void) {
    return (clasp_data_options){
        .batch_size = 256,
        .workers = 1,
        .shuffle_buffer = 2000,
        .train = true,
        .world = 1,
    };
}

struct clasp_data {
    clasp_data_options opt;
    char *spec;
    clasp_loader_config lc;
    clasp_loader *L;
    int64_t epoch_samples; /* -1 until counted */
    const clasp_batch *last;
    bool slice;       /* CLASP_DATA_SPLIT_SAMPLES with world > 1: return a row range */
    clasp_batch view; /* this rank's rows of the loader's global batch */
};

clasp_status clasp_data_loader_config(const clasp_preprocess *pre, unsigned required,
                                      clasp_loader_config *lc) {
    *lc = clasp_loader_default_config();
    static const struct {
        unsigned need;
        const char *name;
    } fields[3] = {
        {CLASP_NEED_IMAGE, "image"}, {CLASP_NEED_TEXT, "text"}, {CLASP_NEED_AUDIO, "audio"}};
    const bool has[3] = {pre->has_image, pre->has_text, pre->has_audio};
    for (int i = 0; i < 3; i++)
        if ((required & fields[i].need) && !has[i])
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "data: the model config has no %s tower to preprocess for",
                                   fields[i].name);
    if (pre->has_text && clasp_tokenizer_vocab_size(pre->tokenizer) > pre->vocab_size)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "text.vocab_size %d is smaller than the tokenizer's %d",
                               pre->vocab_size, clasp_tokenizer_vocab_size(pre->tokenizer));
    if (pre->has_image) lc->image = pre->image;
    if (pre->has_text) {
        lc->text = pre->text;
        lc->tokenizer = pre->tokenizer;
        lc->context_length = pre->context_length;
    } else {
        lc->context_length = 2; /* [BOS, EOS]: captions decoded for grouping only */
    }
    if (pre->has_audio) lc->audio = pre->audio;
    lc->required = required;
    return CLASP_OK;
}

static clasp_status reopen_(clasp_data *d, const clasp_loader_position *pos) {
    clasp_loader_close(d->L);
    d->L = NULL;
    d->last = NULL;
    return clasp_loader_open(&d->lc, pos, &d->L);
}

clasp_status clasp_data_open(const clasp_data_options *o, const clasp_preprocess *pre,
                             clasp_data **out) {
    *out = NULL;
    clasp_data *d = calloc(1, sizeof *d);
    if (!d) return clasp_set_error(CLASP_ERR_NOMEM, "data: out of memory");
    d->opt = *o;
    d->epoch_samples = -1;
    d->spec = strdup(o->spec ? o->spec : "");
    const unsigned required = o->required ? o->required : CLASP_NEED_IMAGE | CLASP_NEED_TEXT;
    clasp_status s = d->spec ? clasp_data_loader_config(pre, required, &d->lc)
                             : clasp_set_error(CLASP_ERR_NOMEM, "data: out of memory");
    if (s == CLASP_OK) d->lc.on_error = o->on_error;
    if (s == CLASP_OK && o->train && o->image_augment && (d->lc.required & CLASP_NEED_IMAGE))
        d->lc.image_augment = *o->image_augment;
    if (s == CLASP_OK && o->train && (d->lc.required & CLASP_NEED_AUDIO)) {
        clasp_audio_augment_config *aa = &d->lc.audio_augment;
        *aa = clasp_audio_augment_default_config();
        aa->random_crop = true; /* effective only with the front-end's crop "random" */
        if (o->audio_augment) {
            aa->gain_prob = 0.5;
            aa->gain_db_min = -6;
            aa->gain_db_max = 6;
            aa->shift_prob = 0.5;
            aa->shift_max_seconds = 0.2;
            aa->shift_mode = CLASP_AUDIO_SHIFT_ZERO;
            aa->time_masks = 1;
            aa->time_mask_max = 20;
            aa->freq_masks = 1;
            aa->freq_mask_max = 8;
            aa->mask_value = 0;
        }
    }
    if (s == CLASP_OK) {
        d->lc.spec = d->spec;
        d->lc.seed = o->seed;
        int world = o->world > 0 ? o->world : 1;
        d->opt.world = world;
        d->slice = o->split == CLASP_DATA_SPLIT_SAMPLES && world > 1;
        if (o->rank < 0 || o->rank >= world)
            s = clasp_set_error(CLASP_ERR_ARG, "data: rank %d outside 0..%d", o->rank, world - 1);
        d->lc.rank = d->slice ? 0 : o->rank;
        d->lc.world = d->slice ? 1 : world;
        d->lc.n_threads = o->workers > 0 ? o->workers : 1;
        d->lc.batch_size = (size_t)o->batch_size * (size_t)(d->slice ? world : 1);
        d->lc.shuffle_buffer = o->train ? (size_t)o->shuffle_buffer : 0;
        d->lc.shuffle_shards = o->train;
        d->lc.drop_last = o->train;
        d->lc.eval = !o->train;
        d->lc.views = o->views;
        d->lc.samples_per_epoch = o->samples_per_epoch > 0 ? (uint64_t)o->samples_per_epoch : 0;
        /* Let the decoders run a whole batch ahead (the re-order window holds two queues'
         * worth of decoded samples), so a training step never waits for a batch's decoding. */
        d->lc.queue_depth = (size_t)o->batch_size;
        if (s == CLASP_OK) s = reopen_(d, NULL);
    }
    if (s != CLASP_OK) {
        clasp_data_close(d);
        return s;
    }
    *out = d;
    return CLASP_OK;
}

void clasp_data_close(clasp_data *d) {
    if (!d) return;
    clasp_loader_close(d->L);
    free(d->spec);
    free(d);
}

clasp_status clasp_data_epoch_samples(clasp_data *d, int64_t *n) {
    if (d->opt.samples_per_epoch > 0) {
        *n = d->opt.samples_per_epoch;
        return CLASP_OK;
    }
    if (d->epoch_samples >= 0) {
        *n = d->epoch_samples;
        return CLASP_OK;
    }
    /* One pass over this rank's shards reading tar headers only. */
    clasp_shardlist sl;
    clasp_status s = clasp_shardlist_expand(d->spec, &sl);
    if (s != CLASP_OK) {
        clasp_shardlist_free(&sl);
        return s;
    }
    clasp_data_stats stats;
    clasp_data_stats_init(&stats);
    stats.quiet = true;
    int64_t count = 0;
    for (size_t i = 0; i < sl.n && s == CLASP_OK; i++) {
        if (clasp_shard_is_stdin(sl.names[i])) {
            s = clasp_set_error(CLASP_ERR_ARG,
                                "%s: stdin cannot be read twice: give --steps or "
                                "--samples-per-epoch",
                                d->spec);
            break;
        }
        clasp_tar_reader *r = NULL;
        if (clasp_tar_open(sl.names[i], &stats, 0, &r) != CLASP_OK) continue;
        clasp_sample smp;
        memset(&smp, 0, sizeof smp);
        for (;;) {
            bool got = false;
            s = clasp_tar_next(r, false, &smp, &got);
            if (s != CLASP_OK || !got) break;
            bool ok = !smp.truncated && !smp.too_large;
            if (ok && (d->lc.required & CLASP_NEED_IMAGE))
                ok = clasp_sample_find(&smp, &d->lc.fields, CLASP_FIELD_IMAGE) != NULL;
            if (ok && (d->lc.required & CLASP_NEED_AUDIO))
                ok = clasp_sample_find(&smp, &d->lc.fields, CLASP_FIELD_AUDIO) != NULL;
            if (ok && (d->lc.required & CLASP_NEED_TEXT))
                ok = clasp_sample_find(&smp, &d->lc.fields, CLASP_FIELD_TEXT) != NULL ||
                     clasp_sample_find(&smp, &d->lc.fields, CLASP_FIELD_JSON) != NULL;
            count += ok;
        }
        clasp_sample_clear(&smp);
        clasp_tar_close(r);
    }
    clasp_data_stats_free(&stats);
    clasp_shardlist_free(&sl);
    CLASP_TRY(s);
    /* shards (or rows) are dealt to ranks per epoch; a rank's share is count / world */
    count /= d->opt.world;
    d->epoch_samples = count;
    *n = count;
    return CLASP_OK;
}

/* Rows rank*b .. rank*b+b-1 of the global batch x, as a view into x's buffers. */
static const clasp_batch *slice_(clasp_data *d, const clasp_batch *x) {
    size_t b = (size_t)d->opt.batch_size, r0 = (size_t)d->opt.rank * b;
    clasp_batch *v = &d->view;
    *v = *x;
    v->n = b;
    size_t img = (size_t)x->img_c * (size_t)x->img_h * (size_t)x->img_w;
    size_t mel = (size_t)x->n_mels * x->n_frames;
    if (x->images) v->images = x->images + r0 * img;
    if (x->tokens) v->tokens = x->tokens + r0 * (size_t)x->ctx;
    if (x->audio) v->audio = x->audio + r0 * mel;
    if (x->images2) v->images2 = x->images2 + r0 * img;
    if (x->audio2) v->audio2 = x->audio2 + r0 * mel;
    if (x->labels) v->labels = x->labels + r0;
    if (x->group_ids) v->group_ids = x->group_ids + r0;
    if (x->keys) v->keys = x->keys + r0;
    return v;
}

clasp_status clasp_data_next(clasp_data *d, const clasp_batch **b) {
    /* Training crosses epochs; two empty epochs in a row would mean no usable data (the loader
     * itself refuses an epoch without any usable sample). */
    for (int tries = 0; tries < 3; tries++) {
        bool end = false;
        const clasp_batch *x = NULL;
        CLASP_TRY(clasp_loader_next(d->L, &x, &end));
        if (!end) {
            d->last = x;
            *b = d->slice ? slice_(d, x) : x;
            return CLASP_OK;
        }
    }
    return clasp_set_error(CLASP_ERR_FORMAT,
                           "%s: epochs end without a full batch of %zu usable samples", d->spec,
                           d->lc.batch_size);
}

void clasp_data_release(clasp_data *d, const clasp_batch *b) {
    (void)d;
    (void)b;
}

clasp_loader *clasp_data_loader(clasp_data *d) {
    return d->L;
}

uint64_t clasp_data_epoch(const clasp_data *d) {
    return clasp_loader_get_position(d->L).epoch;
}

clasp_status clasp_data_position(clasp_data *d, cJSON **out) {
    clasp_loader_position p = clasp_loader_get_position(d->L);
    *out = clasp_loader_position_to_json(&p);
    if (!*out) return clasp_set_error(CLASP_ERR_NOMEM, "data: out of memory");
    return CLASP_OK;
}

clasp_status clasp_data_restore(clasp_data *d, const cJSON *pos) {
    clasp_loader_position p;
    CLASP_TRY(clasp_loader_position_from_json(pos, &p));
    return reopen_(d, &p);
}

cJSON *clasp_data_skips_json(clasp_data *d) {
    clasp_data_stats *st = clasp_loader_stats(d->L);
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&st->mu);
    for (int r = 0; r < CLASP_SKIP_N; r++)
        if (st->skipped[r])
            cJSON_AddNumberToObject(j, clasp_skip_reason_name((clasp_skip_reason)r),
                                    (double)st->skipped[r]);
    pthread_mutex_unlock(&st->mu);
    return j;
}

int64_t clasp_data_skipped_total(clasp_data *d) {
    clasp_data_stats *st = clasp_loader_stats(d->L);
    int64_t n = 0;
    pthread_mutex_lock(&st->mu);
    for (int r = 0; r < CLASP_SKIP_N; r++) n += (int64_t)st->skipped[r];
    pthread_mutex_unlock(&st->mu);
    return n;
}

double clasp_data_wait_seconds(clasp_data *d) {
    clasp_data_stats *st = clasp_loader_stats(d->L);
    pthread_mutex_lock(&st->mu);
    double w = st->wait_seconds;
    pthread_mutex_unlock(&st->mu);
    return w;
}
