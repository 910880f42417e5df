/* loader.c: reader thread + shuffle buffer, decode threads, re-ordering collator, exact
 * resume (see loader.h for the design and its guarantees). */
#include "pipeline/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "core/json.h"
#include "core/sizes.h"
#include "pipeline/shardlist.h"

enum { ITEM_SAMPLE = 0, ITEM_END = 1, ITEM_ERROR = 2 };

typedef struct item {
    int kind;
    uint64_t j; /* emission index in the epoch */
    uint64_t p; /* shard position in the epoch order */
    clasp_sample s;
    bool ok;
    clasp_decoded dec; /* buffers owned by the item */
    clasp_status err;
    char msg[1024];
} item;

struct clasp_loader {
    clasp_loader_config cfg;
    char *spec;
    clasp_shardlist list;
    clasp_tokenizer *own_tok;
    const clasp_tokenizer *tok;
    size_t img_numel, mel_numel;
    clasp_data_stats stats;

    /* threads and queues, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* work queue changed */
    pthread_cond_t cv_res;  /* result window changed */
    item **work;
    size_t wq_head, wq_n, wq_cap;
    item **res; /* (res_cap) slot j % res_cap */
    size_t res_cap;
    uint64_t next_j; /* next emission index the collator takes */
    bool stop;
    bool running;
    pthread_t reader;
    pthread_t *workers;
    clasp_decoder **decoders;
    int n_workers_started;
    bool reader_started;
    clasp_shard_order order; /* of the running epoch, read only by the reader thread */

    /* position */
    clasp_loader_position pos;
    bool failed;
    clasp_batch batch;
};

clasp_loader_config clasp_loader_default_config(void) {
    clasp_loader_config c = {
        .world = 1,
        .n_threads = 1,
        .batch_size = 32,
        .shuffle_buffer = 1000,
        .shuffle_shards = true,
        .drop_last = true,
        .on_error = CLASP_ON_ERROR_SKIP,
        .required = CLASP_NEED_IMAGE | CLASP_NEED_TEXT,
        .fields = clasp_field_map_default(),
        .image = clasp_image_default_config(),
        .text = clasp_text_default_config(),
        .context_length = 32,
        .audio = clasp_audio_default_config(),
        .audio_augment = clasp_audio_augment_default_config(),
        .image_augment = clasp_image_augment_default_config(),
    };
    c.image_augment.enabled = false;
    return c;
}

cJSON *clasp_loader_position_to_json(const clasp_loader_position *p) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "epoch", (double)p->epoch);
    cJSON_AddNumberToObject(o, "consumed", (double)p->consumed);
    cJSON_AddNumberToObject(o, "emitted", (double)p->emitted);
    cJSON_AddNumberToObject(o, "batches", (double)p->batches);
    cJSON_AddBoolToObject(o, "end_pending", p->end_pending);
    return o;
}

clasp_status clasp_loader_position_from_json(const cJSON *obj, clasp_loader_position *p) {
    memset(p, 0, sizeof *p);
    int64_t v;
    const int64_t big = (int64_t)1 << 52;
    CLASP_TRY(clasp_json_int(obj, "version", "loader position", "loader", 1, 1, &v));
    CLASP_TRY(clasp_json_int(obj, "epoch", "loader position", "loader", 0, big, &v));
    p->epoch = (uint64_t)v;
    CLASP_TRY(clasp_json_int(obj, "consumed", "loader position", "loader", 0, big, &v));
    p->consumed = (uint64_t)v;
    CLASP_TRY(clasp_json_int(obj, "emitted", "loader position", "loader", 0, big, &v));
    p->emitted = (uint64_t)v;
    CLASP_TRY(clasp_json_int(obj, "batches", "loader position", "loader", 0, big, &v));
    p->batches = (uint64_t)v;
    CLASP_TRY(clasp_json_bool_opt(obj, "end_pending", "loader position", "loader", false,
                                  &p->end_pending));
    return CLASP_OK;
}

/* ---------------------------------------------------------------- items */

static void item_free_(item *it) {
    if (!it) return;
    clasp_sample_clear(&it->s);
    free(it->dec.image);
    free(it->dec.tokens);
    free(it->dec.mel);
    free(it->dec.image2);
    free(it->dec.mel2);
    free(it);
}

static item *item_new_(int kind) {
    item *it = calloc(1, sizeof *it);
    if (it) it->kind = kind;
    return it;
}

/* ---------------------------------------------------------------- queues */

/* Reader side: blocks while the work queue is full. Returns false when stopping. */
static bool push_work_(clasp_loader *L, item *it) {
    pthread_mutex_lock(&L->mu);
    while (L->wq_n == L->wq_cap && !L->stop) pthread_cond_wait(&L->cv_work, &L->mu);
    if (L->stop) {
        pthread_mutex_unlock(&L->mu);
        item_free_(it);
        return false;
    }
    L->work[(L->wq_head + L->wq_n) % L->wq_cap] = it;
    L->wq_n++;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    return true;
}

/* Worker side: puts a finished item into its re-order slot (waits while it is beyond the
 * window). */
static void put_result_(clasp_loader *L, item *it) {
    pthread_mutex_lock(&L->mu);
    while (!L->stop && it->j >= L->next_j + L->res_cap) pthread_cond_wait(&L->cv_res, &L->mu);
    if (L->stop) {
        pthread_mutex_unlock(&L->mu);
        item_free_(it);
        return;
    }
    L->res[it->j % L->res_cap] = it;
    pthread_cond_broadcast(&L->cv_res);
    pthread_mutex_unlock(&L->mu);
}

static void post_error_(clasp_loader *L, uint64_t j, clasp_status st, const char *msg) {
    item *it = item_new_(ITEM_ERROR);
    if (!it) return; /* the collator then waits for stop; cannot happen without memory */
    it->j = j;
    it->err = st;
    snprintf(it->msg, sizeof it->msg, "%s", msg);
    push_work_(L, it);
}

/* ---------------------------------------------------------------- reader thread */

typedef struct reader_state {
    clasp_loader *L;
    item **buf; /* shuffle buffer */
    size_t n_buf, cap_buf;
    clasp_rng rng;
    uint64_t j;      /* next emission index */
    uint64_t resume; /* emissions below this are replayed, not sent */
    bool payload;    /* false while replaying */
    clasp_status err;
} reader_state;

static int cmp_item_(const void *a, const void *b) {
    const item *x = *(item *const *)a, *y = *(item *const *)b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return x->s.ordinal < y->s.ordinal ? -1 : x->s.ordinal > y->s.ordinal;
}

/* Reads the payloads of samples seen only by their headers (sorted by shard position and
 * ordinal): one pass over each shard involved. A sample that cannot be found again is
 * marked truncated (a skip). */
static clasp_status refill_(reader_state *rs, item **v, size_t n) {
    clasp_loader *L = rs->L;
    qsort(v, n, sizeof *v, cmp_item_);
    size_t i = 0;
    while (i < n) {
        uint64_t p = v[i]->p;
        const char *name = clasp_shard_order_get(&L->order, p);
        clasp_tar_reader *r = NULL;
        if (name && !clasp_shard_is_stdin(name) &&
            clasp_tar_open(name, NULL, L->cfg.max_member_bytes, &r) != CLASP_OK)
            r = NULL;
        clasp_sample s = {0};
        bool got = r != NULL;
        uint64_t next_ord = 0; /* ordinal of the sample clasp_tar_next returns next */
        while (i < n && v[i]->p == p) {
            uint64_t want = v[i]->s.ordinal;
            while (got) {
                /* Payload only for the wanted sample: the data of the others is skipped. */
                clasp_status st = clasp_tar_next(r, next_ord == want, &s, &got);
                if (st != CLASP_OK) {
                    clasp_sample_clear(&s);
                    clasp_tar_close(r);
                    return st;
                }
                next_ord++;
                if (!got || s.ordinal >= want) break;
            }
            if (got && s.ordinal == want && !strcmp(s.key, v[i]->s.key)) {
                clasp_sample_move(&v[i]->s, &s);
            } else {
                v[i]->s.truncated = true; /* the shard changed under us: skip, counted */
                v[i]->s.has_payload = true;
            }
            i++;
        }
        clasp_sample_clear(&s);
        clasp_tar_close(r);
    }
    return CLASP_OK;
}

/* Sends (or, while replaying, drops) the next emitted sample. */
static bool emit_(reader_state *rs, item *it) {
    clasp_loader *L = rs->L;
    it->j = rs->j++;
    if (it->j < rs->resume) {
        item_free_(it);
        if (rs->j == rs->resume) {
            /* Replay done: fetch the payloads of what the buffer holds, read on with data. */
            rs->payload = true;
            item **h = malloc((rs->n_buf + 1) * sizeof *h);
            if (!h) {
                rs->err = clasp_set_error(CLASP_ERR_NOMEM, "loader: out of memory");
                return false;
            }
            size_t nh = 0;
            for (size_t k = 0; k < rs->n_buf; k++)
                if (!rs->buf[k]->s.has_payload) h[nh++] = rs->buf[k];
            clasp_status st = refill_(rs, h, nh);
            free(h);
            if (st != CLASP_OK) {
                rs->err = st;
                return false;
            }
        }
        return true;
    }
    if (!it->s.has_payload) {
        item *one[1] = {it};
        clasp_status st = refill_(rs, one, 1);
        if (st != CLASP_OK) {
            item_free_(it);
            rs->err = st;
            return false;
        }
    }
    return push_work_(L, it);
}

static bool insert_(reader_state *rs, item *it) {
    if (rs->cap_buf == 0) return emit_(rs, it);
    if (rs->n_buf < rs->cap_buf) {
        rs->buf[rs->n_buf++] = it;
        return true;
    }
    size_t k = (size_t)clasp_rng_below(&rs->rng, rs->cap_buf);
    item *out = rs->buf[k];
    rs->buf[k] = it;
    return emit_(rs, out);
}

static void *reader_main_(void *arg) {
    clasp_loader *L = arg;
    const clasp_loader_config *c = &L->cfg;
    reader_state rs;
    memset(&rs, 0, sizeof rs);
    rs.L = L;
    rs.cap_buf = c->eval ? 0 : c->shuffle_buffer;
    rs.resume = L->pos.consumed;
    rs.payload = rs.resume == 0;
    clasp_rng_init(&rs.rng, c->seed, CLASP_RNG_SHUFFLE, L->pos.epoch, 0x42554646ull /* BUFF */);
    if (rs.cap_buf) {
        rs.buf = malloc(rs.cap_buf * sizeof *rs.buf);
        if (!rs.buf) {
            post_error_(L, rs.resume, CLASP_ERR_NOMEM, "loader: out of memory");
            return NULL;
        }
    }
    bool go = true;
    uint64_t empty_run = 0; /* consecutive shards without a sample (resampling) */
    uint64_t limit_empty = 2 * (uint64_t)L->list.n + 16;
    for (uint64_t p = 0; go; p++) {
        pthread_mutex_lock(&L->mu);
        bool stop = L->stop;
        pthread_mutex_unlock(&L->mu);
        if (stop) {
            go = false;
            break;
        }
        const char *name = clasp_shard_order_get(&L->order, p);
        if (!name) break;
        if (c->samples_per_epoch && empty_run > limit_empty) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "%llu shards in a row gave no sample: all shards missing, unreadable or "
                     "empty? (spec %s)",
                     (unsigned long long)empty_run, L->spec);
            post_error_(L, rs.j > rs.resume ? rs.j : rs.resume, CLASP_ERR_FORMAT, msg);
            go = false;
            break;
        }
        if (!rs.payload && clasp_shard_is_stdin(name)) {
            post_error_(L, rs.resume, CLASP_ERR_UNSUPPORTED,
                        "cannot resume mid-epoch from stdin ('-'): it cannot be read again");
            go = false;
            break;
        }
        clasp_tar_reader *r;
        clasp_data_stats *st = rs.payload ? &L->stats : NULL;
        clasp_status os = clasp_tar_open(name, st, c->max_member_bytes, &r);
        if (os == CLASP_ERR_NOMEM) {
            rs.err = os;
            break;
        }
        if (os != CLASP_OK) {
            empty_run++;
            if (c->on_error == CLASP_ON_ERROR_FAIL) {
                post_error_(L, rs.j > rs.resume ? rs.j : rs.resume, os, clasp_last_error());
                go = false;
            }
            continue;
        }
        uint64_t got_any = 0;
        for (;;) {
            item *it = item_new_(ITEM_SAMPLE);
            if (!it) {
                rs.err = clasp_set_error(CLASP_ERR_NOMEM, "loader: out of memory");
                break;
            }
            bool got;
            clasp_status ns = clasp_tar_next(r, rs.payload, &it->s, &got);
            if (ns != CLASP_OK || !got) {
                item_free_(it);
                if (ns != CLASP_OK) rs.err = ns;
                break;
            }
            it->p = p;
            got_any++;
            if (!insert_(&rs, it)) {
                go = false;
                break;
            }
        }
        bool unreadable = clasp_tar_failed(r) && got_any == 0;
        clasp_tar_close(r);
        if (rs.err != CLASP_OK) break;
        empty_run = got_any ? 0 : empty_run + 1;
        if (go && unreadable && c->on_error == CLASP_ON_ERROR_FAIL) {
            char msg[600];
            snprintf(msg, sizeof msg, "shard %s: not a readable tar", name);
            post_error_(L, rs.j > rs.resume ? rs.j : rs.resume, CLASP_ERR_FORMAT, msg);
            go = false;
        }
    }
    /* Drain the buffer in random order, then mark the end of the epoch. */
    while (go && rs.err == CLASP_OK && rs.n_buf > 0) {
        size_t k = (size_t)clasp_rng_below(&rs.rng, rs.n_buf);
        item *out = rs.buf[k];
        rs.buf[k] = rs.buf[--rs.n_buf];
        if (!emit_(&rs, out)) go = false;
    }
    uint64_t jend = rs.j > rs.resume ? rs.j : rs.resume;
    if (rs.err != CLASP_OK) {
        post_error_(L, jend, rs.err, clasp_last_error());
    } else if (go) {
        item *end = item_new_(ITEM_END);
        if (end) {
            end->j = jend;
            push_work_(L, end);
        }
    }
    for (size_t k = 0; k < rs.n_buf; k++) item_free_(rs.buf[k]);
    free(rs.buf);
    return NULL;
}

/* ---------------------------------------------------------------- decode threads */

typedef struct worker_arg {
    clasp_loader *L;
    int id;
} worker_arg;

static void *worker_main_(void *arg) {
    clasp_loader *L = ((worker_arg *)arg)->L;
    clasp_decoder *d = L->decoders[((worker_arg *)arg)->id];
    free(arg);
    for (;;) {
        pthread_mutex_lock(&L->mu);
        while (L->wq_n == 0 && !L->stop) pthread_cond_wait(&L->cv_work, &L->mu);
        if (L->stop) {
            pthread_mutex_unlock(&L->mu);
            return NULL;
        }
        item *it = L->work[L->wq_head];
        L->wq_head = (L->wq_head + 1) % L->wq_cap;
        L->wq_n--;
        pthread_cond_broadcast(&L->cv_work);
        pthread_mutex_unlock(&L->mu);
        if (it->kind == ITEM_SAMPLE) {
            const clasp_loader_config *c = &L->cfg;
            if (c->required & CLASP_NEED_IMAGE)
                it->dec.image = malloc(L->img_numel * sizeof(float));
            if (c->required & CLASP_NEED_TEXT)
                it->dec.tokens = malloc((size_t)c->context_length * sizeof(int32_t));
            if (c->required & CLASP_NEED_AUDIO) it->dec.mel = malloc(L->mel_numel * sizeof(float));
            const bool two = c->views == 2;
            if (two && (c->required & CLASP_NEED_IMAGE))
                it->dec.image2 = malloc(L->img_numel * sizeof(float));
            if (two && (c->required & CLASP_NEED_AUDIO))
                it->dec.mel2 = malloc(L->mel_numel * sizeof(float));
            clasp_status st = CLASP_ERR_NOMEM;
            clasp_skip_reason why;
            if ((!(c->required & CLASP_NEED_IMAGE) ||
                 (it->dec.image && (!two || it->dec.image2))) &&
                (!(c->required & CLASP_NEED_TEXT) || it->dec.tokens) &&
                (!(c->required & CLASP_NEED_AUDIO) || (it->dec.mel && (!two || it->dec.mel2))))
                st = clasp_decoder_run(d, &it->s, L->pos.epoch, &L->stats, &it->dec, &it->ok, &why);
            if (st != CLASP_OK) {
                it->kind = ITEM_ERROR;
                it->err = st;
                snprintf(it->msg, sizeof it->msg, "%s", clasp_last_error());
            }
            /* The raw bytes are not needed any more; keep only the key. */
            for (size_t k = 0; k < it->s.n_fields; k++) {
                free(it->s.fields[k].data);
                it->s.fields[k].data = NULL;
            }
        }
        put_result_(L, it);
    }
}

/* ---------------------------------------------------------------- lifecycle */

static void stop_threads_(clasp_loader *L) {
    if (!L->running) return;
    pthread_mutex_lock(&L->mu);
    L->stop = true;
    pthread_cond_broadcast(&L->cv_work);
    pthread_cond_broadcast(&L->cv_res);
    pthread_mutex_unlock(&L->mu);
    if (L->reader_started) pthread_join(L->reader, NULL);
    for (int i = 0; i < L->n_workers_started; i++) pthread_join(L->workers[i], NULL);
    L->reader_started = false;
    L->n_workers_started = 0;
    for (size_t i = 0; i < L->wq_n; i++) item_free_(L->work[(L->wq_head + i) % L->wq_cap]);
    L->wq_n = 0;
    L->wq_head = 0;
    for (size_t i = 0; i < L->res_cap; i++) {
        item_free_(L->res[i]);
        L->res[i] = NULL;
    }
    clasp_shard_order_free(&L->order);
    L->stop = false;
    L->running = false;
}

static clasp_status start_threads_(clasp_loader *L) {
    const clasp_loader_config *c = &L->cfg;
    bool shuffle = !c->eval && c->shuffle_shards;
    CLASP_TRY(clasp_shard_order_init(&L->order, &L->list, c->seed, L->pos.epoch, c->rank, c->world,
                                     shuffle, c->samples_per_epoch > 0));
    L->next_j = L->pos.consumed;
    L->stop = false;
    L->running = true;
    if (pthread_create(&L->reader, NULL, reader_main_, L) != 0) {
        stop_threads_(L);
        return clasp_set_error(CLASP_ERR_NOMEM, "loader: cannot start the reader thread");
    }
    L->reader_started = true;
    for (int i = 0; i < c->n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) {
            stop_threads_(L);
            return clasp_set_error(CLASP_ERR_NOMEM, "loader: out of memory");
        }
        a->L = L;
        a->id = i;
        if (pthread_create(&L->workers[i], NULL, worker_main_, a) != 0) {
            free(a);
            stop_threads_(L);
            return clasp_set_error(CLASP_ERR_NOMEM, "loader: cannot start decode thread %d", i);
        }
        L->n_workers_started++;
    }
    return CLASP_OK;
}

void clasp_loader_close(clasp_loader *L) {
    if (!L) return;
    stop_threads_(L);
    if (L->decoders)
        for (int i = 0; i < L->cfg.n_threads; i++) clasp_decoder_free(L->decoders[i]);
    free(L->decoders);
    free(L->workers);
    free(L->work);
    free(L->res);
    clasp_batch *b = &L->batch;
    if (b->keys)
        for (size_t i = 0; i < L->cfg.batch_size; i++) free(b->keys[i]);
    free(b->keys);
    free(b->images);
    free(b->tokens);
    free(b->audio);
    free(b->images2);
    free(b->audio2);
    free(b->labels);
    free(b->group_ids);
    clasp_tokenizer_free(L->own_tok);
    clasp_shardlist_free(&L->list);
    free(L->spec);
    clasp_data_stats_free(&L->stats);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_res);
    free(L);
}

clasp_status clasp_loader_open(const clasp_loader_config *cfg, const clasp_loader_position *pos,
                               clasp_loader **out) {
    *out = NULL;
    if (!cfg || !cfg->spec) return clasp_set_error(CLASP_ERR_ARG, "loader: no shard spec");
    if (cfg->batch_size < 1 || cfg->n_threads < 1 || cfg->n_threads > 256)
        return clasp_set_error(CLASP_ERR_CONFIG, "loader: batch_size %zu / n_threads %d invalid",
                               cfg->batch_size, cfg->n_threads);
    if ((cfg->required & CLASP_NEED_IMAGE) && cfg->image.size <= 0)
        return clasp_set_error(CLASP_ERR_CONFIG, "loader: image.size must be > 0 to batch images");
    if (cfg->required & CLASP_NEED_IMAGE) CLASP_TRY(clasp_image_config_check(&cfg->image));
    if ((cfg->required & CLASP_NEED_IMAGE) && cfg->image_augment.enabled)
        CLASP_TRY(clasp_image_augment_config_check(&cfg->image_augment));
    if (cfg->required & CLASP_NEED_AUDIO) CLASP_TRY(clasp_audio_config_check(&cfg->audio));
    if (cfg->views < 0 || cfg->views > 2)
        return clasp_set_error(CLASP_ERR_CONFIG, "loader: views %d: expected 1 or 2", cfg->views);
    clasp_loader *L = calloc(1, sizeof *L);
    if (!L) return clasp_set_error(CLASP_ERR_NOMEM, "loader: out of memory");
    L->cfg = *cfg;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_res, NULL);
    clasp_data_stats_init(&L->stats);
    L->stats.quiet = cfg->quiet;
    clasp_status st = CLASP_OK;
    L->spec = strdup(cfg->spec);
    L->cfg.spec = L->spec;
    if (!L->spec) st = clasp_set_error(CLASP_ERR_NOMEM, "loader: out of memory");
    if (st == CLASP_OK) st = clasp_shardlist_expand(cfg->spec, &L->list);
    if (st == CLASP_OK) {
        /* Check the rank split now, so a bad split fails at open, not at the first batch. */
        clasp_shard_order o;
        st = clasp_shard_order_init(&o, &L->list, cfg->seed, 0, cfg->rank, cfg->world, false,
                                    cfg->samples_per_epoch > 0);
        clasp_shard_order_free(&o);
    }
    L->tok = cfg->tokenizer;
    if (st == CLASP_OK && !L->tok) {
        st = clasp_tokenizer_new_bytes(&L->own_tok);
        L->tok = L->own_tok;
    }
    if (st == CLASP_OK) {
        L->img_numel = clasp_image_tensor_numel(&cfg->image);
        L->mel_numel = (size_t)cfg->audio.mel.n_mels * clasp_audio_clip_frames(&cfg->audio);
        L->wq_cap = cfg->queue_depth ? cfg->queue_depth : 4 * (size_t)cfg->n_threads;
        L->res_cap = 2 * L->wq_cap + (size_t)cfg->n_threads;
        L->work = calloc(L->wq_cap, sizeof *L->work);
        L->res = calloc(L->res_cap, sizeof *L->res);
        L->workers = calloc((size_t)cfg->n_threads, sizeof *L->workers);
        L->decoders = calloc((size_t)cfg->n_threads, sizeof *L->decoders);
        clasp_batch *b = &L->batch;
        size_t B = cfg->batch_size, ni = 0, nm = 0;
        b->keys = calloc(B, sizeof *b->keys);
        b->labels = malloc(B * sizeof *b->labels);
        b->group_ids = malloc(B * sizeof *b->group_ids);
        bool ok = L->work && L->res && L->workers && L->decoders && b->keys && b->labels &&
                  b->group_ids && clasp_size_mul(B, L->img_numel, &ni) &&
                  clasp_size_mul(B, L->mel_numel, &nm);
        if (ok && (cfg->required & CLASP_NEED_IMAGE)) {
            ok = (b->images = malloc(ni * sizeof(float))) != NULL &&
                 (cfg->views != 2 || (b->images2 = malloc(ni * sizeof(float))) != NULL);
            b->img_c = cfg->image.channels;
            b->img_h = b->img_w = cfg->image.size;
        }
        if (ok && (cfg->required & CLASP_NEED_TEXT)) {
            ok = (b->tokens = malloc(B * (size_t)cfg->context_length * sizeof(int32_t))) != NULL;
            b->ctx = cfg->context_length;
        }
        if (ok && (cfg->required & CLASP_NEED_AUDIO)) {
            ok = (b->audio = malloc(nm * sizeof(float))) != NULL &&
                 (cfg->views != 2 || (b->audio2 = malloc(nm * sizeof(float))) != NULL);
            b->n_mels = cfg->audio.mel.n_mels;
            b->n_frames = clasp_audio_clip_frames(&cfg->audio);
        }
        if (!ok) st = clasp_set_error(CLASP_ERR_NOMEM, "loader: out of memory for batch buffers");
        for (int i = 0; st == CLASP_OK && i < cfg->n_threads; i++)
            st = clasp_decoder_new(&L->cfg, L->tok, &L->decoders[i]);
    }
    if (st != CLASP_OK) {
        clasp_loader_close(L);
        return st;
    }
    if (pos) L->pos = *pos;
    *out = L;
    return CLASP_OK;
}

/* ---------------------------------------------------------------- collator */

static double now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Takes the item with emission index next_j (waiting for it). */
static item *take_(clasp_loader *L) {
    pthread_mutex_lock(&L->mu);
    item *it = L->res[L->next_j % L->res_cap];
    if (!it || it->j != L->next_j) {
        double t0 = now_();
        while (!(it = L->res[L->next_j % L->res_cap]) || it->j != L->next_j)
            pthread_cond_wait(&L->cv_res, &L->mu);
        L->stats.wait_seconds += now_() - t0;
    }
    L->res[L->next_j % L->res_cap] = NULL;
    L->next_j++;
    pthread_cond_broadcast(&L->cv_res);
    pthread_mutex_unlock(&L->mu);
    return it;
}

static void finish_epoch_(clasp_loader *L) {
    stop_threads_(L);
    L->pos.epoch++;
    L->pos.consumed = 0;
    L->pos.emitted = 0;
    L->pos.batches = 0;
    L->pos.end_pending = false;
}

static clasp_status fail_(clasp_loader *L, clasp_status st) {
    L->failed = true;
    stop_threads_(L);
    return st;
}

clasp_status clasp_loader_next(clasp_loader *L, const clasp_batch **out, bool *end) {
    *out = NULL;
    *end = false;
    if (L->failed) return clasp_set_error(CLASP_ERR_STATE, "loader: used after an error");
    if (L->pos.end_pending) {
        finish_epoch_(L);
        *end = true;
        return CLASP_OK;
    }
    if (!L->running) {
        clasp_status st = start_threads_(L);
        if (st != CLASP_OK) return fail_(L, st);
    }
    const clasp_loader_config *c = &L->cfg;
    clasp_batch *b = &L->batch;
    b->n = 0;
    b->epoch = L->pos.epoch;
    b->index = L->pos.batches;
    for (;;) {
        item *it = take_(L);
        bool quota = c->samples_per_epoch && L->pos.emitted >= c->samples_per_epoch;
        if (it->kind == ITEM_ERROR) {
            clasp_status st = clasp_set_error(it->err, "%s", it->msg);
            item_free_(it);
            return fail_(L, st);
        }
        if (it->kind == ITEM_END || quota) {
            item_free_(it);
            if (L->pos.emitted == 0) {
                uint64_t e = L->pos.epoch;
                clasp_status st = clasp_set_error(
                    CLASP_ERR_FORMAT,
                    "epoch %llu of '%s' produced no usable sample (%zu shard(s); %llu shard "
                    "error(s), %llu sample(s) skipped: see the loader stats)",
                    (unsigned long long)e, L->spec, L->list.n,
                    (unsigned long long)clasp_data_stats_total_shard_errors(&L->stats),
                    (unsigned long long)clasp_data_stats_total_skipped(&L->stats));
                return fail_(L, st);
            }
            if (b->n > 0 && (c->eval || !c->drop_last)) {
                L->pos.end_pending = true;
                L->pos.batches++;
                *out = b;
                return CLASP_OK;
            }
            finish_epoch_(L);
            *end = true;
            return CLASP_OK;
        }
        L->pos.consumed = it->j + 1;
        if (it->ok) {
            size_t r = b->n++;
            if (b->images)
                memcpy(b->images + r * L->img_numel, it->dec.image, L->img_numel * sizeof(float));
            if (b->tokens)
                memcpy(b->tokens + r * (size_t)b->ctx, it->dec.tokens,
                       (size_t)b->ctx * sizeof(int32_t));
            if (b->audio)
                memcpy(b->audio + r * L->mel_numel, it->dec.mel, L->mel_numel * sizeof(float));
            if (b->images2)
                memcpy(b->images2 + r * L->img_numel, it->dec.image2, L->img_numel * sizeof(float));
            if (b->audio2)
                memcpy(b->audio2 + r * L->mel_numel, it->dec.mel2, L->mel_numel * sizeof(float));
            b->labels[r] = it->dec.label;
            b->group_ids[r] = it->dec.group_id;
            free(b->keys[r]);
            b->keys[r] = it->s.key;
            it->s.key = NULL;
            L->pos.emitted++;
            clasp_data_stats_add(&L->stats, &L->stats.samples_ok, 1);
        }
        item_free_(it);
        if (b->n == c->batch_size) {
            L->pos.batches++;
            *out = b;
            return CLASP_OK;
        }
    }
}

clasp_loader_position clasp_loader_get_position(const clasp_loader *L) {
    return L->pos;
}

clasp_data_stats *clasp_loader_stats(clasp_loader *L) {
    return &L->stats;
}

size_t clasp_loader_n_shards(const clasp_loader *L) {
    return L->list.n;
}

void clasp_loader_config_eval(clasp_loader_config *cfg, const char *spec, size_t batch,
                              int workers) {
    cfg->spec = spec;
    cfg->eval = true;
    cfg->drop_last = false;
    cfg->shuffle_buffer = 0;
    cfg->shuffle_shards = false;
    cfg->batch_size = batch;
    cfg->n_threads = workers > 0 ? workers : 1;
}
