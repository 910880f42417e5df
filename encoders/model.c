/* model.c: the model object: parameter table and buffers, PyTorch-default init, activation
 * arenas per tower, encode/backward dispatch, and load/save by name (safetensors). */
#include "encoders/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/hash.h"
#include "core/rng.h"
#include "core/sizes.h"
#include "encoders/towers.h"

static float *alloc_floats(size_t n) {
    size_t nb;
    if (!clasp_size_mul(n ? n : 1, sizeof(float), &nb) || !clasp_size_align(nb, 64, &nb))
        return NULL;
    float *p = aligned_alloc(64, nb);
    if (p) memset(p, 0, nb);
    return p;
}

void clasp_model_free(clasp_model *m) {
    if (!m) return;
    for (int t = 0; t < CLASP_N_TOWERS; t++) clasp__tower_free(m->tower[t]);
    free(m->info);
    if (m->params_mapped)
        munmap(m->params, m->params_mapped);
    else if (!m->borrowed_params)
        free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

static clasp_status declare_all(clasp_model *m, clasp__ptable *pt) {
    const clasp_model_config *cfg = &m->config;
    for (int t = 0; t < CLASP_N_TOWERS; t++) {
        bool present = t != CLASP_TOWER_SHARED && clasp_model_config_has(cfg, (clasp_tower)t);
        m->range[t].first = pt->n;
        m->range[t].offset = pt->total;
        if (present) {
            clasp__tower *tw = calloc(1, sizeof *tw);
            if (!tw) return clasp_set_error(CLASP_ERR_NOMEM, "model: out of memory");
            tw->kind = (clasp_tower)t;
            m->tower[t] = tw;
            CLASP_TRY(clasp__tower_declare(tw, cfg, pt));
        }
        if (t == CLASP_TOWER_SHARED) {
            int i = clasp__ptable_add(pt, CLASP_TOWER_SHARED, "logit_scale", 0, NULL, false,
                                      CLASP_INIT_CONST, (float)cfg->init_logit_scale, 0);
            if (i < 0) return CLASP_ERR_NOMEM;
            m->logit_scale_offset = pt->info[i].offset;
            m->logit_bias_offset = -1;
            if (cfg->has_logit_bias) {
                i = clasp__ptable_add(pt, CLASP_TOWER_SHARED, "logit_bias", 0, NULL, false,
                                      CLASP_INIT_CONST, (float)cfg->init_logit_bias, 0);
                if (i < 0) return CLASP_ERR_NOMEM;
                m->logit_bias_offset = (ptrdiff_t)pt->info[i].offset;
            }
        }
        m->range[t].count = pt->n - m->range[t].first;
        m->range[t].n_floats = pt->total - m->range[t].offset;
    }
    return CLASP_OK;
}

/* The parameter table and towers of cfg into m (buffers left to the caller). */
static clasp_status init_table_(clasp_model *m, const clasp_model_config *cfg) {
    memset(m, 0, sizeof *m);
    if (!cfg || cfg->embed_dim <= 0 ||
        (cfg->image.type == CLASP_IMAGE_NONE && cfg->text.type == CLASP_TEXT_NONE &&
         cfg->audio.type == CLASP_AUDIO_TYPE_NONE))
        return clasp_set_error(CLASP_ERR_CONFIG, "model: config has no tower or no embed_dim");
    m->config = *cfg;
    clasp__ptable pt = {0};
    clasp_status s = declare_all(m, &pt);
    m->info = pt.info;
    m->n_params = pt.n;
    m->n_floats = pt.total;
    if (s != CLASP_OK) clasp_model_free(m);
    return s;
}

clasp_status clasp_model_init(clasp_model *m, const clasp_model_config *cfg) {
    CLASP_TRY(init_table_(m, cfg));
    m->params = alloc_floats(m->n_floats);
    m->grads = alloc_floats(m->n_floats);
    if (!m->params || !m->grads) {
        size_t n = m->n_floats;
        clasp_model_free(m);
        return clasp_set_error(CLASP_ERR_NOMEM, "model: cannot allocate 2 x %zu floats", n);
    }
    return CLASP_OK;
}

/* n zero floats from an anonymous mapping (page aligned): a page costs memory only once
 * written, so the parameters of a tower that is never loaded cost nothing. */
static float *map_floats_(size_t n, size_t *bytes) {
    size_t nb;
    if (!clasp_size_mul(n ? n : 1, sizeof(float), &nb)) return NULL;
    void *p = mmap(NULL, nb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *bytes = nb;
    return p;
}

clasp_status clasp_model_init_inference(clasp_model *m, const clasp_model_config *cfg,
                                        float *shared) {
    CLASP_TRY(init_table_(m, cfg));
    m->borrowed_params = shared != NULL;
    m->params = shared ? shared : map_floats_(m->n_floats, &m->params_mapped);
    if (!m->params) {
        size_t n = m->n_floats;
        clasp_model_free(m);
        return clasp_set_error(CLASP_ERR_NOMEM, "model: cannot allocate %zu floats", n);
    }
    return CLASP_OK;
}

size_t clasp_model_bytes(const clasp_model *m) {
    size_t n = (m->borrowed_params || !m->params ? 0 : m->n_floats * sizeof(float)) +
               (m->grads ? m->n_floats * sizeof(float) : 0);
    for (int t = 0; t < CLASP_N_TOWERS; t++) n += clasp_model_arena_bytes(m, (clasp_tower)t);
    return n;
}

void clasp_model_init_weights(clasp_model *m, uint64_t seed) {
    for (int i = 0; i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        float *w = m->params + p->offset;
        clasp_rng r;
        clasp_rng_init(&r, seed, CLASP_RNG_INIT, clasp_hash_str(p->name, 0), 0);
        switch (p->init) {
        case CLASP_INIT_UNIFORM_FANIN: {
            double bound = 1.0 / sqrt((double)(p->fan_in > 0 ? p->fan_in : 1));
            for (size_t k = 0; k < p->numel; k++)
                w[k] = (float)((2.0 * clasp_rng_uniform_f64(&r) - 1.0) * bound);
            break;
        }
        case CLASP_INIT_NORMAL:
            for (size_t k = 0; k < p->numel; k++)
                w[k] = (float)(clasp_rng_normal(&r) * (double)p->init_scale);
            break;
        case CLASP_INIT_CONST:
            for (size_t k = 0; k < p->numel; k++) w[k] = p->init_scale;
            break;
        }
    }
}

/* Bytes of tower t's arena for B samples (a measuring pass; the next encode re-plans). */
static clasp_status plan_bytes_(clasp_model *m, clasp_tower t, int B, size_t *bytes) {
    clasp__tower *tw = m->tower[t];
    tw->fwd_B = 0;
    clasp_arena meas;
    clasp_arena_init_measure(&meas);
    clasp_status s = clasp__tower_plan(tw, m, &meas, B);
    if (s != CLASP_OK) return clasp_wrap_error(s, "%s tower, batch %d", clasp_tower_name(t), B);
    *bytes = meas.high;
    return CLASP_OK;
}

/* Sizes tower t's arena for batch_cap samples: a measuring pass, then one allocation. */
static clasp_status size_tower_(clasp_model *m, clasp_tower t, int batch_cap) {
    clasp_arena_free(&m->tower[t]->arena);
    size_t bytes = 0;
    CLASP_TRY(plan_bytes_(m, t, batch_cap, &bytes));
    return clasp_arena_init(&m->tower[t]->arena, bytes);
}

clasp_status clasp_model_prepare(clasp_model *m, int batch_cap) {
    if (batch_cap <= 0)
        return clasp_set_error(CLASP_ERR_ARG, "model_prepare: batch size %d must be positive",
                               batch_cap);
    m->batch_cap = 0;
    for (int t = 0; t < CLASP_N_TOWERS; t++) {
        m->tower_cap[t] = 0;
        if (m->tower[t]) CLASP_TRY(size_tower_(m, (clasp_tower)t, batch_cap));
    }
    for (int t = 0; t < CLASP_N_TOWERS; t++) m->tower_cap[t] = m->tower[t] ? batch_cap : 0;
    m->batch_cap = batch_cap;
    return CLASP_OK;
}

clasp_status clasp_model_prepare_tower(clasp_model *m, clasp_tower t, int max_rows, size_t budget) {
    if (t < 0 || t >= CLASP_N_TOWERS || !m->tower[t])
        return clasp_set_error(CLASP_ERR_ARG, "model_prepare: the model has no %s tower",
                               clasp_tower_name(t));
    if (max_rows <= 0)
        return clasp_set_error(CLASP_ERR_ARG, "model_prepare: batch size %d must be positive",
                               max_rows);
    int rows = max_rows;
    if (budget > 0) { /* the largest B in [1, max_rows] whose arena fits (bytes grow with B) */
        int lo = 1, hi = max_rows;
        while (lo < hi) {
            int mid = lo + (hi - lo + 1) / 2;
            size_t b = 0;
            CLASP_TRY(plan_bytes_(m, t, mid, &b));
            if (b <= budget)
                lo = mid;
            else
                hi = mid - 1;
        }
        rows = lo;
    }
    if (m->tower_cap[t] == rows) return CLASP_OK;
    m->tower_cap[t] = 0;
    CLASP_TRY(size_tower_(m, t, rows));
    m->tower_cap[t] = rows;
    if (rows > m->batch_cap) m->batch_cap = rows;
    return CLASP_OK;
}

int clasp_model_tower_cap(const clasp_model *m, clasp_tower t) {
    return t < 0 || t >= CLASP_N_TOWERS ? 0 : m->tower_cap[t];
}

size_t clasp_model_arena_bytes(const clasp_model *m, clasp_tower t) {
    if (t < 0 || t >= CLASP_N_TOWERS || !m->tower[t]) return 0;
    return m->tower[t]->arena.cap;
}

size_t clasp_model_arena_high(const clasp_model *m, clasp_tower t) {
    if (t < 0 || t >= CLASP_N_TOWERS || !m->tower[t]) return 0;
    return m->tower[t]->arena.high;
}

static clasp_status get_tower(clasp_model *m, clasp_tower t, const char *what, clasp__tower **out) {
    if (t < 0 || t >= CLASP_N_TOWERS || !m->tower[t])
        return clasp_set_error(CLASP_ERR_ARG, "%s: the model has no %s tower", what,
                               clasp_tower_name(t));
    if (m->tower_cap[t] <= 0)
        return clasp_set_error(CLASP_ERR_STATE, "%s %s: call clasp_model_prepare first", what,
                               clasp_tower_name(t));
    if (!m->grads && !strcmp(what, "backward"))
        return clasp_set_error(CLASP_ERR_STATE, "backward %s: an inference model has no gradients",
                               clasp_tower_name(t));
    *out = m->tower[t];
    return CLASP_OK;
}

clasp_status clasp_model_encode(clasp_model *m, clasp_tower t, const void *input, int B,
                                float *feat) {
    clasp__tower *tw = NULL;
    CLASP_TRY(get_tower(m, t, "encode", &tw));
    if (B <= 0 || B > m->tower_cap[t])
        return clasp_set_error(CLASP_ERR_ARG, "encode %s: batch %d outside [1, %d] (prepared)",
                               clasp_tower_name(t), B, m->tower_cap[t]);
    if (!input || !feat) return clasp_set_error(CLASP_ERR_ARG, "encode: NULL buffer");
    tw->fwd_B = 0;
    /* Re-plan for this B: only pointer bumps inside the arena sized for batch_cap (every
     * buffer grows with B, so a smaller batch fits). */
    clasp_status s = clasp__tower_plan(tw, m, &tw->arena, B);
    if (s != CLASP_OK) return clasp_wrap_error(s, "encode %s", clasp_tower_name(t));
    CLASP_TRY(clasp__tower_forward(tw, m, input, B, feat));
    tw->fwd_B = B;
    return CLASP_OK;
}

clasp_status clasp_model_encode_rows(clasp_model *m, clasp_tower t, const void *input, int B,
                                     float *feat) {
    clasp__tower *tw = NULL;
    CLASP_TRY(get_tower(m, t, "encode", &tw));
    if (B <= 0 || !input || !feat)
        return clasp_set_error(CLASP_ERR_ARG, "encode %s: bad arguments", clasp_tower_name(t));
    size_t row_bytes = clasp_model_input_elems(&m->config, t) *
                       (t == CLASP_TOWER_TEXT ? sizeof(int32_t) : sizeof(float));
    size_t D = (size_t)m->config.embed_dim;
    for (int at = 0; at < B; at += m->tower_cap[t]) {
        int n = B - at < m->tower_cap[t] ? B - at : m->tower_cap[t];
        CLASP_TRY(clasp_model_encode(m, t, (const char *)input + (size_t)at * row_bytes, n,
                                     feat + (size_t)at * D));
    }
    return CLASP_OK;
}

clasp_status clasp_model_backward(clasp_model *m, clasp_tower t, const float *dfeat) {
    clasp__tower *tw = NULL;
    CLASP_TRY(get_tower(m, t, "backward", &tw));
    if (tw->fwd_B <= 0)
        return clasp_set_error(CLASP_ERR_STATE, "backward %s: no forward pass to go back through",
                               clasp_tower_name(t));
    if (!dfeat) return clasp_set_error(CLASP_ERR_ARG, "backward: NULL dfeat");
    clasp__tower_backward(tw, m, dfeat);
    return CLASP_OK;
}

clasp_status clasp_model_encode_image(clasp_model *m, const float *pixels, int B, float *feat) {
    return clasp_model_encode(m, CLASP_TOWER_IMAGE, pixels, B, feat);
}

clasp_status clasp_model_encode_text(clasp_model *m, const int32_t *tokens, int B, float *feat) {
    return clasp_model_encode(m, CLASP_TOWER_TEXT, tokens, B, feat);
}

clasp_status clasp_model_backward_image(clasp_model *m, const float *dfeat) {
    return clasp_model_backward(m, CLASP_TOWER_IMAGE, dfeat);
}

clasp_status clasp_model_backward_text(clasp_model *m, const float *dfeat) {
    return clasp_model_backward(m, CLASP_TOWER_TEXT, dfeat);
}

clasp_status clasp_model_encode_audio(clasp_model *m, const float *mel, int B, float *feat) {
    return clasp_model_encode(m, CLASP_TOWER_AUDIO, mel, B, feat);
}

clasp_status clasp_model_backward_audio(clasp_model *m, const float *dfeat) {
    return clasp_model_backward(m, CLASP_TOWER_AUDIO, dfeat);
}

void clasp_model_zero_grad(clasp_model *m) {
    if (!m->grads) return; /* an inference model */
    memset(m->grads, 0, m->n_floats * sizeof(float));
}

int clasp_model_find(const clasp_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->info[i].name, name)) return i;
    return -1;
}

float *clasp_model_param(clasp_model *m, const char *name) {
    int i = clasp_model_find(m, name);
    return i < 0 ? NULL : m->params + m->info[i].offset;
}

/* ---- safetensors ------------------------------------------------------------------------ */

static clasp_status prefixed(char *buf, size_t cap, const char *prefix, const char *name) {
    if ((size_t)snprintf(buf, cap, "%s%s", prefix ? prefix : "", name) >= cap)
        return clasp_set_error(CLASP_ERR_ARG, "tensor name '%s%s' too long", prefix, name);
    return CLASP_OK;
}

/* Reads (dst) or only checks (dst NULL) parameters info[first .. first+count-1]. */
static clasp_status read_range_(const clasp_model *m, clasp_safetensors *st, const char *prefix,
                                float *dst, int first, int count) {
    for (int i = first; i < first + count; i++) {
        const clasp_param_info *p = &m->info[i];
        char name[256];
        const clasp_st_tensor *t = NULL;
        CLASP_TRY(prefixed(name, sizeof name, prefix, p->name));
        CLASP_TRY(clasp_st_check_f32(st, name, p->ndim, p->shape, &t));
        if (!dst) continue;
        memcpy(dst + p->offset, t->data, t->numel * sizeof(float));
        clasp_st_release(st, t); /* a mapped file: drop the copied pages */
    }
    return CLASP_OK;
}

clasp_status clasp_model_read_tensors(const clasp_model *m, clasp_safetensors *st,
                                      const char *prefix, float *dst) {
    return read_range_(m, st, prefix, dst, 0, m->n_params);
}

clasp_status clasp_model_check_tensors(const clasp_model *m, const clasp_safetensors *st,
                                       const char *prefix) {
    return read_range_(m, (clasp_safetensors *)st, prefix, NULL, 0, m->n_params);
}

clasp_status clasp_model_read_tower_tensors(const clasp_model *m, clasp_safetensors *st,
                                            const char *prefix, clasp_tower t, float *dst) {
    if (t < 0 || t >= CLASP_N_TOWERS || !dst)
        return clasp_set_error(CLASP_ERR_ARG, "read tensors: bad tower or buffer");
    return read_range_(m, st, prefix, dst, m->range[t].first, m->range[t].count);
}

clasp_status clasp_model_add_tensors(const clasp_model *m, clasp_st_writer *w, const char *prefix,
                                     const float *src) {
    for (int i = 0; i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        char name[256];
        CLASP_TRY(prefixed(name, sizeof name, prefix, p->name));
        CLASP_TRY(
            clasp_st_writer_add(w, name, CLASP_DTYPE_F32, p->ndim, p->shape, src + p->offset));
    }
    return CLASP_OK;
}

/* "2, 3" for a shape of rank ndim (a scalar: ""). */
static void shape_text(char *out, size_t cap, int ndim, const int64_t *shape) {
    out[0] = '\0';
    for (int d = 0; d < ndim; d++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%lld", d ? ", " : "",
                 (long long)shape[d]);
}

clasp_status clasp_model_load_matching(clasp_model *m, clasp_safetensors *st, const char *what,
                                       int *n_loaded, int *n_kept) {
    int loaded = 0, kept = 0;
    for (int i = 0; i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        const clasp_st_tensor *t = clasp_st_find(st, p->name);
        if (!t) {
            kept++;
            continue;
        }
        bool same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char a[96], b[96];
            shape_text(a, sizeof a, t->ndim, t->shape);
            shape_text(b, sizeof b, p->ndim, p->shape);
            return clasp_set_error(CLASP_ERR_CONFIG,
                                   "%s: tensor '%s' has shape [%s] but this model's is [%s] "
                                   "(incompatible configs)",
                                   what, p->name, a, b);
        }
        CLASP_TRY(clasp_st_read_f32(st, p->name, p->ndim, p->shape, m->params + p->offset));
        loaded++;
    }
    if (loaded == 0)
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: holds no tensor of this model", what);
    if (n_loaded) *n_loaded = loaded;
    if (n_kept) *n_kept = kept;
    return CLASP_OK;
}

clasp_status clasp_model_load(clasp_model *m, const char *path) {
    clasp_safetensors *st;
    CLASP_TRY(clasp_st_open(path, &st));
    /* read into a scratch copy so a failed load leaves the model unchanged */
    float *tmp = alloc_floats(m->n_floats);
    if (!tmp) {
        clasp_st_free(st);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    }
    clasp_status s = clasp_model_read_tensors(m, st, "", tmp);
    if (s == CLASP_OK) memcpy(m->params, tmp, m->n_floats * sizeof(float));
    free(tmp);
    clasp_st_free(st);
    return s;
}

clasp_status clasp_model_save(const clasp_model *m, const char *path) {
    cJSON *cj;
    CLASP_TRY(clasp_model_config_to_json(&m->config, &cj));
    char *text = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);
    clasp_st_writer *w = clasp_st_writer_new();
    if (!text || !w) {
        free(text);
        clasp_st_writer_free(w);
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    }
    clasp_status s = clasp_st_writer_meta(w, "format", "clasp-model");
    if (s == CLASP_OK) s = clasp_st_writer_meta(w, "config", text);
    if (s == CLASP_OK) s = clasp_model_add_tensors(m, w, "", m->params);
    if (s == CLASP_OK) s = clasp_st_writer_write(w, path);
    free(text);
    clasp_st_writer_free(w);
    return s;
}
