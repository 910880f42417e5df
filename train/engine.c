/* engine.c: replicas, a small worker pool, the contrastive loss on the whole batch, and
 * exact gradient accumulation. See engine.h. */
#include "train/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/compute.h"
#include "core/sizes.h"
#include "encoders/layers.h"
#include "loss/diag.h"
#include "loss/queue.h"
#include "train/dist.h"

#define L2_EPS 1e-12f

/* ---- worker pool: job i runs on thread i % nthreads; thread 0 is the caller ------------- */

typedef void (*job_fn)(clasp_engine *e, int job, void *arg);

typedef struct clasp__engine_pool {
    int nthreads;
    pthread_t th[CLASP_ENGINE_MAX_CHUNKS];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;
    int running; /* workers still busy with the current generation */
    int stop;
    job_fn fn;
    void *arg;
    int njobs;
    clasp_engine *e;
    clasp_status status[CLASP_ENGINE_MAX_CHUNKS];
    char error[CLASP_ENGINE_MAX_CHUNKS][256];
} clasp__engine_pool;

typedef struct worker_arg {
    clasp__engine_pool *p;
    int id;
} worker_arg;

static void run_share_(clasp__engine_pool *p, int id) {
    clasp_precision was = clasp_compute_set_precision(p->e->opt.precision);
    for (int j = id; j < p->njobs; j += p->nthreads) {
        p->fn(p->e, j, p->arg);
    }
    clasp_compute_set_precision(was);
}

static void *worker_main_(void *argp) {
    worker_arg *wa = argp;
    clasp__engine_pool *p = wa->p;
    int id = wa->id;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_share_(p, id);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Runs fn(e, j, arg) for j in [0, njobs); returns the first failing job's status. */
static clasp_status run_jobs_(clasp_engine *e, job_fn fn, void *arg, int njobs) {
    clasp__engine_pool *p = e->pool;
    for (int j = 0; j < njobs; j++) p->status[j] = CLASP_OK;
    p->fn = fn;
    p->arg = arg;
    p->njobs = njobs;
    if (p->nthreads > 1) {
        pthread_mutex_lock(&p->mu);
        p->running = p->nthreads - 1;
        p->gen++;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    run_share_(p, 0);
    if (p->nthreads > 1) {
        pthread_mutex_lock(&p->mu);
        while (p->running > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    for (int j = 0; j < njobs; j++)
        if (p->status[j] != CLASP_OK) return clasp_set_error(p->status[j], "%s", p->error[j]);
    return CLASP_OK;
}

static void job_fail_(clasp_engine *e, int job, clasp_status s) {
    e->pool->status[job] = s;
    snprintf(e->pool->error[job], sizeof e->pool->error[job], "%s", clasp_last_error());
}

/* ---- setup ------------------------------------------------------------------------------ */

static size_t input_elems_(const clasp_model_config *c, clasp_tower t) {
    return clasp_model_input_elems(c, t);
}

/* Row `row` of tower t's input (int32 tokens for text, floats otherwise). */
static const void *input_row_(const clasp_model_config *c, clasp_tower t, const void *in,
                              size_t row) {
    size_t off = row * input_elems_(c, t);
    if (t == CLASP_TOWER_TEXT) return (const int32_t *)in + off;
    return (const float *)in + off;
}

static bool is_input_tower_(clasp_tower t) {
    return t == CLASP_TOWER_IMAGE || t == CLASP_TOWER_TEXT || t == CLASP_TOWER_AUDIO;
}

clasp_status clasp_pair_parse(const char *str, clasp_tower *ta, clasp_tower *tb) {
    static const char *const names[3] = {"image", "text", "audio"};
    static const clasp_tower towers[3] = {CLASP_TOWER_IMAGE, CLASP_TOWER_TEXT, CLASP_TOWER_AUDIO};
    const char *dash = str ? strchr(str, '-') : NULL;
    int a = -1, b = -1;
    for (int i = 0; dash && i < 3; i++) {
        size_t n = strlen(names[i]);
        if ((size_t)(dash - str) == n && !strncmp(str, names[i], n)) a = i;
        if (!strcmp(dash + 1, names[i])) b = i;
    }
    if (a < 0 || b < 0 || (a == b && towers[a] == CLASP_TOWER_TEXT))
        return clasp_set_error(CLASP_ERR_ARG,
                               "pairing '%s': expected two towers of image, text, audio joined by "
                               "'-' (image-text, audio-text, audio-image; image-image and "
                               "audio-audio pair two augmented views of one tower)",
                               str ? str : "(null)");
    *ta = towers[a];
    *tb = towers[b];
    return CLASP_OK;
}

/* The momentum copies that encode the keys (CLASP_LOSS_NEEDS_MOMENTUM_KEYS), one per replica;
 * their parameters are set by the first sync. */
static clasp_status key_models_init_(clasp_engine *e, const clasp_model_config *cfg) {
    int mi = clasp_loss_option_index(e->loss, "momentum");
    e->momentum = mi >= 0 ? (float)clasp_loss_config_get(&e->opt.loss, mi) : 0.999f;
    e->key_models = calloc((size_t)e->n_rep, sizeof *e->key_models);
    if (!e->key_models) return clasp_set_error(CLASP_ERR_NOMEM, "engine: out of memory");
    for (int r = 0; r < e->n_rep; r++) {
        CLASP_TRY(clasp_model_init(&e->key_models[r], cfg));
        CLASP_TRY(clasp_model_prepare(&e->key_models[r], e->crows));
    }
    return CLASP_OK;
}

clasp_status clasp_engine_init(clasp_engine *e, const clasp_model_config *cfg,
                               const clasp_engine_options *opt) {
    memset(e, 0, sizeof *e);
    e->opt = *opt;
    clasp_engine_options *o = &e->opt;
    if (o->accum_steps < 1) o->accum_steps = 1;
    if (o->threads < 1) o->threads = 1;
    if (o->chunks < 1) o->chunks = o->threads;
    if (o->chunks > CLASP_ENGINE_MAX_CHUNKS) o->chunks = CLASP_ENGINE_MAX_CHUNKS;
    if (o->threads > o->chunks) o->threads = o->chunks;
    if (o->world < 1) o->world = 1;
    CLASP_TRY(clasp_compute_check(o->precision, NULL));
    if (o->rank < 0 || o->rank >= o->world)
        return clasp_set_error(CLASP_ERR_ARG, "engine: rank %d outside 0..%d", o->rank,
                               o->world - 1);
    if (o->batch_size < 1 || o->batch_size % o->accum_steps != 0)
        return clasp_set_error(CLASP_ERR_ARG,
                               "batch size %d is not a positive multiple of accum steps %d",
                               o->batch_size, o->accum_steps);
    e->micro = o->batch_size / o->accum_steps;
    if (e->micro % o->chunks != 0)
        return clasp_set_error(CLASP_ERR_ARG,
                               "micro-batch %d (batch %d / accum %d) is not divisible into %d "
                               "chunks",
                               e->micro, o->batch_size, o->accum_steps, o->chunks);
    clasp_tower present[3];
    int n_present = 0;
    for (int t = CLASP_TOWER_IMAGE; t <= CLASP_TOWER_AUDIO; t++)
        if (clasp_model_config_has(cfg, (clasp_tower)t)) present[n_present++] = (clasp_tower)t;
    if (n_present < 2)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "the model needs two towers to pair (image, text, audio)");
    e->loss = clasp_loss_config_def(&o->loss);
    for (int k = 0; k < e->loss->n_scalars; k++)
        if (e->loss->scalars[k] == CLASP_LOSS_SCALAR_LOGIT_BIAS && !cfg->has_logit_bias)
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "loss %s needs 'init_logit_bias' in the model config",
                                   e->loss->name);
    e->crows = e->micro / o->chunks;
    e->D = cfg->embed_dim;
    /* image-text when both exist (image < text < audio in the enum), else the first two */
    e->ta = present[0];
    e->tb = present[1];
    if (e->ta == CLASP_TOWER_TEXT) { /* text-audio: audio is the "image" side */
        e->ta = present[1];
        e->tb = present[0];
    }
    e->n_rep = o->chunks;
    e->models = calloc((size_t)e->n_rep, sizeof *e->models);
    if (!e->models) return clasp_set_error(CLASP_ERR_NOMEM, "engine: out of memory");
    for (int r = 0; r < e->n_rep; r++) {
        clasp_status s = o->inference ? clasp_model_init_inference(&e->models[r], cfg,
                                                                   r ? e->models[0].params : NULL)
                                      : clasp_model_init(&e->models[r], cfg);
        if (s == CLASP_OK && !o->inference) s = clasp_model_prepare(&e->models[r], e->crows);
        if (s != CLASP_OK) {
            clasp_engine_free(e);
            return s;
        }
    }
    if (clasp_loss_config_needs(&o->loss) & CLASP_LOSS_NEEDS_MOMENTUM_KEYS) {
        clasp_status s = key_models_init_(e, cfg);
        if (s != CLASP_OK) {
            clasp_engine_free(e);
            return s;
        }
    }
    size_t B = (size_t)o->batch_size, D = (size_t)e->D;
    size_t N = 0;
    if (!clasp_size_mul(B, (size_t)o->world, &N) || N > (size_t)INT32_MAX) {
        clasp_engine_free(e);
        return clasp_set_error(CLASP_ERR_OVERFLOW, "engine: global batch %zu x %d too large", B,
                               o->world);
    }
    e->N = (int)N;
    for (int k = 0; k < e->loss->n_scalars; k++)
        e->scalar_offset[k] = e->loss->scalars[k] == CLASP_LOSS_SCALAR_LOGIT_BIAS
                                  ? e->models[0].logit_bias_offset
                                  : (ptrdiff_t)e->models[0].logit_scale_offset;
    clasp_loss_setup setup = {
        .n = B, .N = N, .D = D, .rank = o->rank, .world = o->world, .cfg = &o->loss};
    size_t lw = e->loss->work_floats(&setup);
    e->fa = malloc(B * D * sizeof(float));
    e->fb = malloc(B * D * sizeof(float));
    e->za = malloc(B * D * sizeof(float));
    e->zb = malloc(B * D * sizeof(float));
    e->dza = malloc(B * D * sizeof(float));
    e->dzb = malloc(B * D * sizeof(float));
    e->dfa = malloc(B * D * sizeof(float));
    e->dfb = malloc(B * D * sizeof(float));
    e->na = malloc(B * sizeof(float));
    e->nb = malloc(B * sizeof(float));
    e->groups = malloc(N * sizeof(int));
    bool dist = o->world > 1;
    e->za_all = dist ? malloc(N * D * sizeof(float)) : e->za;
    e->zb_all = dist ? malloc(N * D * sizeof(float)) : e->zb;
    e->dza_all = dist ? malloc(N * D * sizeof(float)) : NULL;
    e->dzb_all = dist ? malloc(N * D * sizeof(float)) : NULL;
    e->loss_work = malloc((lw ? lw : 1) * sizeof(float));
    e->pool = calloc(1, sizeof *e->pool);
    bool keys_ok = true;
    if (e->key_models) {
        e->ka = malloc(B * D * sizeof(float));
        e->kb = malloc(B * D * sizeof(float));
        e->kn = malloc(B * sizeof(float));
        e->ka_all = dist ? malloc(N * D * sizeof(float)) : e->ka;
        e->kb_all = dist ? malloc(N * D * sizeof(float)) : e->kb;
        keys_ok = e->ka && e->kb && e->kn && e->ka_all && e->kb_all;
    }
    if (!e->fa || !e->fb || !e->za || !e->zb || !e->dza || !e->dzb || !e->dfa || !e->dfb ||
        !e->na || !e->nb || !e->groups || !e->loss_work || !e->pool || lw == 0 || !e->za_all ||
        !e->zb_all || (dist && (!e->dza_all || !e->dzb_all)) || !keys_ok) {
        clasp_engine_free(e);
        return clasp_set_error(CLASP_ERR_NOMEM, "engine: cannot allocate batch buffers (B=%zu)", B);
    }
    if (e->loss->state_init) {
        clasp_status s = e->loss->state_init(&e->loss_state, &setup);
        if (s != CLASP_OK) {
            clasp_engine_free(e);
            return s;
        }
    }
    clasp__engine_pool *p = e->pool;
    p->e = e;
    p->nthreads = o->threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    /* One threading layer: our workers; OpenBLAS runs single-threaded inside each. */
    clasp_compute_set_threads(1);
    for (int t = 1; t < p->nthreads; t++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || pthread_create(&p->th[t], NULL, worker_main_, (wa->p = p, wa->id = t, wa))) {
            free(wa);
            p->nthreads = t;
            clasp_engine_free(e);
            return clasp_set_error(CLASP_ERR_NOMEM, "engine: cannot start thread %d", t);
        }
    }
    return CLASP_OK;
}

void clasp_engine_free(clasp_engine *e) {
    if (!e) return;
    clasp__engine_pool *p = e->pool;
    if (p) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (int t = 1; t < p->nthreads; t++) pthread_join(p->th[t], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
        free(p);
    }
    if (e->loss && e->loss->state_free) e->loss->state_free(e->loss_state);
    if (e->models)
        for (int r = 0; r < e->n_rep; r++) clasp_model_free(&e->models[r]);
    if (e->key_models)
        for (int r = 0; r < e->n_rep; r++) clasp_model_free(&e->key_models[r]);
    free(e->key_models);
    if (e->ka_all != e->ka) free(e->ka_all);
    if (e->kb_all != e->kb) free(e->kb_all);
    free(e->ka), free(e->kb), free(e->kn);
    if (e->za_all != e->za) free(e->za_all);
    if (e->zb_all != e->zb) free(e->zb_all);
    free(e->dza_all), free(e->dzb_all);
    free(e->models);
    free(e->fa), free(e->fb), free(e->za), free(e->zb), free(e->dza), free(e->dzb);
    free(e->dfa), free(e->dfb), free(e->na), free(e->nb), free(e->groups), free(e->loss_work);
    memset(e, 0, sizeof *e);
}

void clasp_engine_sync_params(clasp_engine *e) {
    const size_t nb = e->models[0].n_floats * sizeof(float);
    for (int r = 1; r < e->n_rep; r++)
        if (e->models[r].params != e->models[0].params)
            memcpy(e->models[r].params, e->models[0].params, nb);
    if (e->key_models && e->momentum_ready == 0.0f) {
        memcpy(e->key_models[0].params, e->models[0].params, nb);
        e->momentum_ready = 1.0f;
    }
}

void clasp_engine_momentum_update(clasp_engine *e) {
    if (!e->key_models) return;
    clasp_momentum_update(e->key_models[0].params, e->models[0].params, e->models[0].n_floats,
                          e->momentum);
}

/* ---- step ------------------------------------------------------------------------------- */

typedef struct step_ctx {
    const void *a;   /* tower e->ta's input */
    const void *b;   /* tower e->tb's input */
    int micro_index; /* which micro-batch */
    int forward;     /* run the forward (features and activations) */
    int keys;        /* with the forward: also encode the momentum keys (first pass only) */
    int backward;    /* run the backward from e->dza / e->dzb */
} step_ctx;

static clasp_status chunk_fwd_(clasp_engine *e, int r, size_t row, int n, const void *a,
                               const void *b, bool keys) {
    clasp_model *m = &e->models[r];
    const clasp_model_config *c = &m->config;
    size_t D = (size_t)e->D;
    const void *ia = input_row_(c, e->ta, a, row), *ib = input_row_(c, e->tb, b, row);
    if (keys && e->key_models) { /* keys of both sides: the momentum copy, no backward */
        clasp_model *mk = &e->key_models[r];
        float *ka = e->ka + row * D, *kb = e->kb + row * D;
        CLASP_TRY(clasp_model_encode(mk, e->ta, ia, n, ka));
        CLASP_TRY(clasp_model_encode(mk, e->tb, ib, n, kb));
        clasp_l2norm_forward(ka, e->kn + row, ka, n, e->D, L2_EPS);
        clasp_l2norm_forward(kb, e->kn + row, kb, n, e->D, L2_EPS);
    }
    CLASP_TRY(clasp_model_encode(m, e->ta, ia, n, e->fa + row * D));
    CLASP_TRY(clasp_model_encode(m, e->tb, ib, n, e->fb + row * D));
    clasp_l2norm_forward(e->za + row * D, e->na + row, e->fa + row * D, n, e->D, L2_EPS);
    clasp_l2norm_forward(e->zb + row * D, e->nb + row, e->fb + row * D, n, e->D, L2_EPS);
    return CLASP_OK;
}

/* One side's backward for the chunk's rows [row, row + crows): dz -> df through the
 * normalisation, then into tower t (skipped when frozen). reencode: first re-run the tower's
 * forward on `in`: two views of one tower share its activation arena, so each view's
 * activations are rebuilt before its backward (the features come out the same). */
static clasp_status side_backward_(clasp_engine *e, clasp_model *m, clasp_tower t, const void *in,
                                   bool reencode, size_t row, float *f, float *df, const float *dz,
                                   const float *z, const float *nrm) {
    if (e->opt.frozen[t]) return CLASP_OK;
    const size_t D = (size_t)e->D;
    if (reencode)
        CLASP_TRY(
            clasp_model_encode(m, t, input_row_(&m->config, t, in, row), e->crows, f + row * D));
    memset(df + row * D, 0, (size_t)e->crows * D * sizeof(float));
    clasp_l2norm_backward(df + row * D, dz + row * D, z + row * D, nrm + row, e->crows, e->D);
    return clasp_model_backward(m, t, df + row * D);
}

static void step_job_(clasp_engine *e, int r, void *argp) {
    step_ctx *a = argp;
    size_t row = (size_t)a->micro_index * (size_t)e->micro + (size_t)r * (size_t)e->crows;
    clasp_model *m = &e->models[r];
    /* two views of one tower: forwards re-run per side */
    const bool same = e->ta == e->tb;
    clasp_status s = CLASP_OK;
    if (a->forward && !(same && a->backward))
        s = chunk_fwd_(e, r, row, e->crows, a->a, a->b, a->keys);
    if (s != CLASP_OK) {
        job_fail_(e, r, s);
        return;
    }
    if (!a->backward) return;
    s = side_backward_(e, m, e->ta, a->a, same, row, e->fa, e->dfa, e->dza, e->za, e->na);
    if (s == CLASP_OK)
        s = side_backward_(e, m, e->tb, a->b, same, row, e->fb, e->dfb, e->dzb, e->zb, e->nb);
    if (s != CLASP_OK) job_fail_(e, r, s);
}

static void sum_grads_job_(clasp_engine *e, int j, void *argp) {
    /* Thread j sums slice j of the gradient buffer over replicas, in replica order. */
    (void)argp;
    int nj = e->pool->nthreads;
    size_t n = e->models[0].n_floats;
    size_t lo = n * (size_t)j / (size_t)nj, hi = n * (size_t)(j + 1) / (size_t)nj;
    float *g0 = e->models[0].grads;
    for (int r = 1; r < e->n_rep; r++) {
        clasp_add_forward(g0 + lo, g0 + lo, e->models[r].grads + lo, hi - lo);
    }
}

/* The one place a loss is called (loss/registry.h): this rank's part of the loss on its rows
 * against all N, leaving the full gradient of the global loss w.r.t. this rank's normalised
 * features in dza / dzb and the scalars' gradient parts in ds. dfa / dfb serve as scratch for
 * the reduce-scattered gathered-row gradients (the backward overwrites them). */
static clasp_status loss_step_(clasp_engine *e, const int *g, float *loss, float *ds) {
    const size_t n = (size_t)e->opt.batch_size, N = (size_t)e->N, D = (size_t)e->D;
    const bool dist = e->opt.world > 1;
    if (dist) {
        CLASP_TRY(clasp_dist_allgather(e->za_all, e->za, n * D * sizeof(float)));
        CLASP_TRY(clasp_dist_allgather(e->zb_all, e->zb, n * D * sizeof(float)));
        if (e->key_models) { /* keys all-gathered before the loss enqueues them */
            CLASP_TRY(clasp_dist_allgather(e->ka_all, e->ka, n * D * sizeof(float)));
            CLASP_TRY(clasp_dist_allgather(e->kb_all, e->kb, n * D * sizeof(float)));
        }
    }
    const clasp_model *m0 = &e->models[0];
    float scalars[CLASP_LOSS_MAX_SCALARS];
    for (int k = 0; k < e->loss->n_scalars; k++) scalars[k] = m0->params[e->scalar_offset[k]];
    clasp_loss_batch in = {.a = e->za,
                           .b = e->zb,
                           .a_all = e->za_all,
                           .b_all = e->zb_all,
                           .ka_all = e->ka_all,
                           .kb_all = e->kb_all,
                           .groups = g,
                           .n = n,
                           .offset = (size_t)e->opt.rank * n,
                           .N = N,
                           .D = D,
                           .rank = e->opt.rank,
                           .world = e->opt.world,
                           .scalars = scalars,
                           .cfg = &e->opt.loss,
                           .state = e->loss_state,
                           .work = e->loss_work};
    clasp_loss_grads out = {.da = e->dza,
                            .db = e->dzb,
                            .da_all = dist ? e->dza_all : NULL,
                            .db_all = dist ? e->dzb_all : NULL,
                            .dscalars = ds};
    clasp_precision was = clasp_compute_set_precision(e->opt.precision);
    clasp_status st = e->loss->compute(&in, &out);
    clasp_compute_set_precision(was);
    CLASP_TRY(st);
    *loss = out.loss;
    /* per side: local part, gathered-rows part summed over ranks, both, or none */
    float *dz[2] = {e->dza, e->dzb}, *dz_all[2] = {e->dza_all, e->dzb_all},
          *tmp[2] = {e->dfa, e->dfb};
    const unsigned loc[2] = {CLASP_LOSS_WROTE_A, CLASP_LOSS_WROTE_B};
    const unsigned all[2] = {CLASP_LOSS_WROTE_A_ALL, CLASP_LOSS_WROTE_B_ALL};
    for (int x = 0; x < 2; x++) {
        bool has_loc = out.wrote & loc[x], has_all = dist && (out.wrote & all[x]);
        if (has_all)
            CLASP_TRY(
                clasp_dist_reduce_scatter_sum_f32(has_loc ? tmp[x] : dz[x], dz_all[x], n * D));
        if (has_all && has_loc)
            for (size_t i = 0; i < n * D; i++) dz[x][i] += tmp[x][i];
        if (!has_all && !has_loc) memset(dz[x], 0, n * D * sizeof(float));
    }
    return CLASP_OK;
}

clasp_status clasp_engine_grads(clasp_engine *e, const float *images, const int32_t *tokens,
                                const int32_t *groups, int B, clasp_step_stats *stats) {
    return clasp_engine_grads_pair(e, CLASP_TOWER_IMAGE, images, CLASP_TOWER_TEXT, tokens, groups,
                                   B, stats);
}

clasp_status clasp_engine_grads_pair(clasp_engine *e, clasp_tower ta, const void *a, clasp_tower tb,
                                     const void *b, const int32_t *groups, int B,
                                     clasp_step_stats *stats) {
    const clasp_model_config *mc = &e->models[0].config;
    if (e->opt.inference)
        return clasp_set_error(CLASP_ERR_STATE, "engine: an inference engine has no gradients");
    const unsigned needs = clasp_loss_config_needs(&e->opt.loss);
    const bool views = needs & CLASP_LOSS_NEEDS_TWO_VIEWS;
    if (!is_input_tower_(ta) || !is_input_tower_(tb) || (ta == tb && !views) ||
        !clasp_model_config_has(mc, ta) || !clasp_model_config_has(mc, tb))
        return clasp_set_error(CLASP_ERR_ARG,
                               "engine: cannot pair towers %s and %s of this model%s",
                               clasp_tower_name(ta), clasp_tower_name(tb),
                               ta == tb ? " (one tower with itself needs a two-view loss)" : "");
    if (!a || !b)
        return clasp_set_error(CLASP_ERR_ARG, "engine: no %s input for the %s-%s pair",
                               !a ? clasp_tower_name(ta) : clasp_tower_name(tb),
                               clasp_tower_name(ta), clasp_tower_name(tb));
    e->ta = ta;
    e->tb = tb;
    if (B != e->opt.batch_size)
        return clasp_set_error(CLASP_ERR_ARG, "engine: batch of %d rows, expected %d", B,
                               e->opt.batch_size);
    const bool needs_groups = needs & CLASP_LOSS_NEEDS_GROUPS;
    if (needs_groups && !groups)
        return clasp_set_error(CLASP_ERR_ARG, "engine: loss %s needs group ids (labels)",
                               e->loss->name);
    for (int r = 0; r < e->n_rep; r++) clasp_model_zero_grad(&e->models[r]);
    if (e->key_models) {
        if (e->momentum_ready == 0.0f) clasp_engine_sync_params(e);
        for (int r = 1; r < e->n_rep; r++)
            memcpy(e->key_models[r].params, e->key_models[0].params,
                   e->models[0].n_floats * sizeof(float));
    }
    const int K = e->opt.accum_steps;
    step_ctx ctx = {.a = a, .b = b};
    /* 1. features of the whole batch (with K = 1 the activations are kept for backward) */
    for (int k = 0; k < K; k++) {
        ctx.micro_index = k;
        ctx.forward = 1;
        ctx.keys = 1;
        ctx.backward = 0;
        CLASP_TRY(run_jobs_(e, step_job_, &ctx, e->n_rep));
    }
    /* 2. the loss on all B rows (all N rows of the global batch across ranks) */
    const int *g = NULL;
    /* a key queue stores every key's group (a caption's queued keys are masked) */
    if ((e->opt.multi_positive || needs_groups || e->key_models) && groups) {
        for (int i = 0; i < e->N; i++) e->groups[i] = groups[i];
        g = e->groups;
    }
    clasp_model *m0 = &e->models[0];
    float loss = 0, ds[CLASP_LOSS_MAX_SCALARS] = {0};
    CLASP_TRY(loss_step_(e, g, &loss, ds));
    /* 3. backward per micro-batch (re-running the forward when K > 1); nothing to do when
     * both towers are frozen */
    bool both_frozen = e->opt.frozen[ta] && e->opt.frozen[tb];
    for (int k = 0; k < K && !both_frozen; k++) {
        ctx.micro_index = k;
        ctx.forward = K > 1; /* with K = 1 the activations of pass 1 are still in the arenas */
        ctx.keys = 0;
        ctx.backward = 1;
        CLASP_TRY(run_jobs_(e, step_job_, &ctx, e->n_rep));
    }
    CLASP_TRY(run_jobs_(e, sum_grads_job_, NULL, e->pool->nthreads));
    for (int k = 0; k < e->loss->n_scalars; k++) m0->grads[e->scalar_offset[k]] += ds[k];
    if (e->opt.world > 1) {
        /* 4. sum the ranks' gradients (each rank's loss part is already divided by N); the
         * scalar gradients and the loss are sums of the ranks' parts too */
        CLASP_TRY(clasp_dist_allreduce_sum_f32(m0->grads, m0->n_floats));
        for (int k = 0; k < e->loss->n_scalars; k++) ds[k] = m0->grads[e->scalar_offset[k]];
        double lsum = (double)loss;
        CLASP_TRY(clasp_dist_allreduce_sum_f64(&lsum, 1));
        loss = (float)lsum;
    }
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->loss = loss;
        for (int k = 0; k < e->loss->n_scalars; k++)
            if (e->loss->scalars[k] == CLASP_LOSS_SCALAR_LOGIT_SCALE) stats->dlog_scale = ds[k];
    }
    return CLASP_OK;
}

typedef struct embed_ctx {
    clasp_tower t;
    const void *input;
    int n;     /* rows in this piece */
    size_t at; /* first row of the piece */
    float *out;
} embed_ctx;

static void embed_job_(clasp_engine *e, int r, void *argp) {
    embed_ctx *a = argp;
    int per = (a->n + e->n_rep - 1) / e->n_rep;
    int lo = r * per, hi = lo + per > a->n ? a->n : lo + per;
    if (hi <= lo) return;
    clasp_model *m = &e->models[r];
    size_t D = (size_t)e->D;
    size_t row = a->at + (size_t)lo;
    const void *in = input_row_(&m->config, a->t, a->input, row);
    float *f = a->out + row * D;
    clasp_status s = clasp_model_encode_rows(m, a->t, in, hi - lo, f);
    if (s != CLASP_OK) {
        job_fail_(e, r, s);
        return;
    }
    /* normalise exactly as in training; e->na rows [r*per, r*per + per) are this job's */
    clasp_l2norm_forward(f, e->na + (size_t)r * (size_t)per, f, hi - lo, e->D, L2_EPS);
}

clasp_status clasp_engine_embed(clasp_engine *e, clasp_tower t, const void *input, int n,
                                float *out) {
    if (!is_input_tower_(t) || !clasp_model_config_has(&e->models[0].config, t))
        return clasp_set_error(CLASP_ERR_ARG, "engine: cannot embed tower %s", clasp_tower_name(t));
    for (int r = 0; r < e->n_rep && e->opt.inference; r++)
        CLASP_TRY(clasp_model_prepare_tower(&e->models[r], t, e->crows,
                                            e->opt.precision == CLASP_FP32
                                                ? CLASP_ENGINE_INFER_ARENA_BYTES / (size_t)e->n_rep
                                                : 0));
    int piece = e->crows * e->n_rep;
    for (int at = 0; at < n; at += piece) {
        embed_ctx a = {.t = t,
                       .input = input,
                       .n = n - at < piece ? n - at : piece,
                       .at = (size_t)at,
                       .out = out};
        CLASP_TRY(run_jobs_(e, embed_job_, &a, e->n_rep));
    }
    return CLASP_OK;
}

clasp_status clasp_engine_diag(clasp_engine *e, clasp_step_stats *st) {
    clasp_diag d;
    CLASP_TRY(clasp_diag_compute(&d, e->za_all, e->zb_all, e->opt.multi_positive ? e->groups : NULL,
                                 (size_t)e->N, (size_t)e->D));
    st->feat_std_a = d.std_mean_a;
    st->feat_std_b = d.std_mean_b;
    st->alignment = d.alignment;
    st->uniformity = d.uniformity_a;
    st->pos_sim = d.pos_sim;
    st->hardneg_sim = d.hardneg_sim;
    return CLASP_OK;
}

int clasp_engine_loss_tensors(clasp_engine *e, clasp_loss_tensor *out, int max) {
    int n = 0;
    if (e->loss && e->loss->state_tensors && e->loss_state)
        n = e->loss->state_tensors(e->loss_state, out, max);
    if (e->key_models && n + 2 <= max) {
        out[n++] = (clasp_loss_tensor){.name = "momentum.params",
                                       .ndim = 1,
                                       .shape = {(int64_t)e->models[0].n_floats},
                                       .data = e->key_models[0].params};
        out[n++] = (clasp_loss_tensor){
            .name = "momentum.ready", .ndim = 1, .shape = {1}, .data = &e->momentum_ready};
    }
    return n;
}
