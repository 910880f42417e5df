/* runstate.c: a run's state to and from checkpoint folders; run folder versions. See
 * runstate.h. */
#include "train/runstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "train/dist.h"

#define POS_WORDS 5 /* words of a clasp_loader_position on the wire */

void clasp_runstate_init(clasp_runstate *rs, clasp_model *m, clasp_adamw *opt,
                         const cJSON *config) {
    memset(rs, 0, sizeof *rs);
    rs->model = m;
    rs->opt = opt;
    rs->config = config;
}

clasp_status clasp_runstate_register(clasp_runstate *rs, clasp_ckpt_file file, const char *name,
                                     int ndim, const int64_t *shape, float *data) {
    if (rs->n_registered >= CLASP_RUNSTATE_MAX_REGISTERED)
        return clasp_set_error(CLASP_ERR_ARG, "run state: more than %d registered tensors (%s)",
                               CLASP_RUNSTATE_MAX_REGISTERED, name);
    if (ndim < 0 || ndim > 4 || strlen(name) >= CLASP_RUNSTATE_NAME_MAX)
        return clasp_set_error(CLASP_ERR_ARG, "run state: tensor '%s': bad name or rank %d", name,
                               ndim);
    clasp_runstate_tensor *t = &rs->registered[rs->n_registered++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->file = file;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->data = data;
    return CLASP_OK;
}

void clasp_ckpt_tensors_free(clasp_ckpt_tensors *l) {
    if (!l) return;
    free(l->t[0]);
    free(l->t[1]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* Appends one tensor to file f of the list; its name is `prefix`+name in slot *k of names. */
static void push_(clasp_ckpt_tensors *l, clasp_ckpt_file f, int *k, const char *prefix,
                  const char *name, int ndim, const int64_t *shape, float *data) {
    char *nm = l->names + (size_t)(*k)++ * CLASP_RUNSTATE_NAME_MAX;
    snprintf(nm, CLASP_RUNSTATE_NAME_MAX, "%s%s", prefix, name);
    clasp_named_tensor *t = &l->t[f][l->n[f]++];
    *t = (clasp_named_tensor){.name = nm, .ndim = ndim, .data = data};
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
}

clasp_status clasp_runstate_tensors(const clasp_runstate *rs, clasp_ckpt_tensors *out) {
    memset(out, 0, sizeof *out);
    const clasp_model *m = rs->model;
    size_t n_total = (size_t)m->n_params * (rs->opt ? 3 : 1) + (size_t)rs->n_registered;
    out->t[0] = calloc(n_total, sizeof *out->t[0]);
    out->t[1] = calloc(n_total, sizeof *out->t[1]);
    out->names = calloc(n_total, CLASP_RUNSTATE_NAME_MAX);
    if (!out->t[0] || !out->t[1] || !out->names) {
        clasp_ckpt_tensors_free(out);
        return clasp_set_error(CLASP_ERR_NOMEM, "checkpoint: out of memory");
    }
    int k = 0;
    for (int i = 0; i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        push_(out, CLASP_CKPT_FILE_MODEL, &k, "", p->name, p->ndim, p->shape,
              m->params + p->offset);
    }
    for (int i = 0; rs->opt && i < m->n_params; i++) {
        const clasp_param_info *p = &m->info[i];
        push_(out, CLASP_CKPT_FILE_OPTIM, &k, "m.", p->name, p->ndim, p->shape,
              rs->opt->m + p->offset);
        push_(out, CLASP_CKPT_FILE_OPTIM, &k, "v.", p->name, p->ndim, p->shape,
              rs->opt->v + p->offset);
    }
    for (int i = 0; i < rs->n_registered; i++) {
        const clasp_runstate_tensor *r = &rs->registered[i];
        push_(out, r->file, &k, "", r->name, r->ndim, r->shape, r->data);
    }
    return CLASP_OK;
}

/* ---- saving ------------------------------------------------------------------------------ */

/* The loader positions of rs's sources on every rank: all[(rank * n_sources + k) * POS_WORDS].
 * Collective. Caller frees *all. */
static clasp_status gather_positions_(const clasp_runstate *rs, uint64_t **all) {
    const size_t per = POS_WORDS * (size_t)rs->n_sources; /* words per rank */
    uint64_t mine[POS_WORDS * CLASP_RUNSTATE_MAX_SOURCES];
    *all = malloc((size_t)clasp_dist_world() * per * sizeof **all + 1);
    if (!*all) return clasp_set_error(CLASP_ERR_NOMEM, "checkpoint: out of memory");
    for (int k = 0; k < rs->n_sources; k++) {
        clasp_loader_position p = clasp_loader_get_position(clasp_data_loader(rs->data[k]));
        uint64_t w[POS_WORDS] = {p.epoch, p.consumed, p.emitted, p.batches, p.end_pending};
        memcpy(mine + POS_WORDS * (size_t)k, w, sizeof w);
    }
    return clasp_dist_allgather(*all, mine, per * sizeof *mine);
}

/* [position of source k on rank 0, rank 1, ...] from the gathered words. */
static cJSON *positions_json_(const uint64_t *all, int n_sources, int k, int world) {
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < world && a; r++) {
        const uint64_t *q = all + POS_WORDS * ((size_t)r * (size_t)n_sources + (size_t)k);
        clasp_loader_position p = {q[0], q[1], q[2], q[3], q[4] != 0};
        cJSON_AddItemToArray(a, clasp_loader_position_to_json(&p));
    }
    return a;
}

/* state.json's document (without "step", "checksums": clasp_ckpt_save adds them). */
static clasp_status state_json_(const clasp_runstate *rs, const uint64_t *all, cJSON **out) {
    const int world = clasp_dist_world();
    cJSON *st = cJSON_CreateObject();
    if (!st) return clasp_set_error(CLASP_ERR_NOMEM, "checkpoint: out of memory");
    cJSON_AddNumberToObject(st, "format_version", CLASP_CKPT_FORMAT_VERSION);
    cJSON_AddNumberToObject(st, "world", world);
    if (rs->n_sources > 0)
        cJSON_AddItemToObject(st, "loaders", positions_json_(all, rs->n_sources, 0, world));
    if (rs->n_sources > 1) {
        /* sources[k] = {"pair", "loaders": [per rank]}; source 0 repeats "loaders" */
        cJSON *sa = cJSON_AddArrayToObject(st, "sources");
        for (int k = 0; k < rs->n_sources && sa; k++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "pair", rs->pair[k]);
            cJSON_AddItemToObject(x, "loaders", positions_json_(all, rs->n_sources, k, world));
            cJSON_AddItemToArray(sa, x);
        }
    }
    cJSON_AddNumberToObject(st, "samples", (double)rs->samples);
    cJSON_AddNumberToObject(st, "skipped_steps", (double)rs->skipped_steps);
    if (rs->opt) cJSON_AddNumberToObject(st, "adam_t", (double)rs->opt->t);
    if (rs->resume_key) cJSON_AddItemToObject(st, "resume_key", cJSON_Duplicate(rs->resume_key, 1));
    if (rs->config) cJSON_AddItemToObject(st, "config", cJSON_Duplicate(rs->config, 1));
    clasp_status s = CLASP_OK;
    if (rs->n_sources > 0) {
        cJSON *pos = NULL;
        s = clasp_data_position(rs->data[0], &pos);
        if (s == CLASP_OK) cJSON_AddItemToObject(st, "loader", pos);
    }
    if (s != CLASP_OK) {
        cJSON_Delete(st);
        return s;
    }
    *out = st;
    return CLASP_OK;
}

clasp_status clasp_runstate_save(const clasp_runstate *rs, const char *run_dir, int keep, char *out,
                                 size_t out_cap) {
    uint64_t *all = NULL;
    clasp_status s = gather_positions_(rs, &all);
    if (s != CLASP_OK || clasp_dist_rank() != 0) {
        free(all);
        return s;
    }
    clasp_ckpt_tensors l = {0};
    cJSON *st = NULL;
    s = clasp_runstate_tensors(rs, &l);
    if (s == CLASP_OK) s = state_json_(rs, all, &st);
    if (s == CLASP_OK)
        s = clasp_ckpt_save(run_dir, rs->step, l.t[0], l.n[0], l.t[1], l.n[1], st, keep, out,
                            out_cap);
    cJSON_Delete(st);
    clasp_ckpt_tensors_free(&l);
    free(all);
    return s;
}

clasp_status clasp_runstate_bcast(const clasp_runstate *rs) {
    const size_t nbytes = rs->model->n_floats * sizeof(float);
    CLASP_TRY(clasp_dist_bcast(rs->model->params, nbytes, 0));
    if (rs->opt) {
        CLASP_TRY(clasp_dist_bcast(rs->opt->m, nbytes, 0));
        CLASP_TRY(clasp_dist_bcast(rs->opt->v, nbytes, 0));
    }
    for (int i = 0; i < rs->n_registered; i++) {
        const clasp_runstate_tensor *r = &rs->registered[i];
        size_t numel = 1;
        for (int d = 0; d < r->ndim; d++) numel *= (size_t)r->shape[d];
        CLASP_TRY(clasp_dist_bcast(r->data, numel * sizeof(float), 0));
    }
    return CLASP_OK;
}

/* ---- restoring --------------------------------------------------------------------------- */

/* The rank count, the model config and the resume key of state.json (file sp) must match. */
static clasp_status check_same_run_(const clasp_runstate *rs, const cJSON *state, const char *sp,
                                    const char *model_config) {
    int64_t world = 1;
    const int my_world = clasp_dist_world();
    if (cJSON_GetObjectItemCaseSensitive(state, "world"))
        CLASP_TRY(clasp_json_int(state, "world", sp, "", 1, INT32_MAX, &world));
    if (world != my_world)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'world': the checkpoint was written by %lld rank(s), "
                               "this run has %d; the shard split and the loader positions depend "
                               "on the rank count: resume with mpirun -np %lld",
                               sp, (long long)world, my_world, (long long)world);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(state, "config");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(state, "resume_key");
    /* the options first: a differing --precision also changes the config */
    if (rs->resume_key && (!key || !cJSON_Compare(key, rs->resume_key, 1))) {
        const cJSON *it;
        const char *field = "resume_key";
        cJSON_ArrayForEach(it, rs->resume_key) {
            const cJSON *had = cJSON_GetObjectItemCaseSensitive(key, it->string);
            if (!had || !cJSON_Compare(had, it, 1)) {
                field = it->string;
                break;
            }
        }
        if (key && !strcmp(field, "resume_key")) /* a field only the checkpoint has */
            cJSON_ArrayForEach(it, key) {
                if (!cJSON_GetObjectItemCaseSensitive(rs->resume_key, it->string)) {
                    field = it->string;
                    break;
                }
            }
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'resume_key.%s' differs from this invocation's option: "
                               "an exact resume needs the same value",
                               sp, field);
    }
    if (!cfg || !cJSON_Compare(cfg, rs->config, 1))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "%s: field 'config' differs from %s: the checkpoint belongs to "
                               "another model",
                               sp, model_config);
    return CLASP_OK;
}

static clasp_status read_counters_(clasp_runstate *rs, const cJSON *state, const char *sp) {
    const int64_t hi = INT64_MAX / 2;
    CLASP_TRY(clasp_json_int(state, "step", sp, "", 0, hi, &rs->step));
    CLASP_TRY(clasp_json_int(state, "samples", sp, "", 0, hi, &rs->samples));
    CLASP_TRY(clasp_json_int(state, "skipped_steps", sp, "", 0, hi, &rs->skipped_steps));
    if (rs->opt) CLASP_TRY(clasp_json_int(state, "adam_t", sp, "", 0, hi, &rs->opt->t));
    return CLASP_OK;
}

/* This rank's loader position of every source: loaders[rank] (several ranks) or loader (one)
 * for source 0, sources[k].loaders[rank] for the others. */
static clasp_status restore_loaders_(clasp_runstate *rs, const cJSON *state, const char *sp) {
    const int rank = clasp_dist_rank();
    const bool many = clasp_dist_world() > 1;
    if (rs->n_sources > 0) {
        const cJSON *pos = cJSON_GetObjectItemCaseSensitive(state, "loader");
        if (many)
            pos = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(state, "loaders"), rank);
        const char *field = many ? "loaders" : "loader";
        if (!pos) return clasp_set_error(CLASP_ERR_FORMAT, "%s: field '%s' missing", sp, field);
        clasp_status s = clasp_data_restore(rs->data[0], pos);
        if (s != CLASP_OK) return clasp_wrap_error(s, "%s: field '%s'", sp, field);
    }
    for (int k = 1; k < rs->n_sources; k++) {
        const cJSON *x = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(state, "sources"), k);
        const cJSON *pos = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(x, "loaders"), rank);
        if (!pos)
            return clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'sources[%d].loaders[%d]' missing",
                                   sp, k, rank);
        clasp_status s = clasp_data_restore(rs->data[k], pos);
        if (s != CLASP_OK)
            return clasp_wrap_error(s, "%s: field 'sources[%d].loaders[%d]'", sp, k, rank);
    }
    return CLASP_OK;
}

/* Every tensor of the list from the checkpoint's two files. */
static clasp_status load_tensors_(const clasp_runstate *rs, clasp_ckpt *c) {
    clasp_ckpt_tensors l;
    CLASP_TRY(clasp_runstate_tensors(rs, &l));
    clasp_status s = clasp_ckpt_load_tensors(c, CLASP_CKPT_FILE_MODEL, l.t[0], l.n[0]);
    if (s == CLASP_OK) s = clasp_ckpt_load_tensors(c, CLASP_CKPT_FILE_OPTIM, l.t[1], l.n[1]);
    clasp_ckpt_tensors_free(&l);
    return s;
}

clasp_status clasp_runstate_restore(clasp_runstate *rs, const char *ckpt_dir,
                                    const char *model_config) {
    clasp_ckpt c;
    CLASP_TRY(clasp_ckpt_open(ckpt_dir, &c));
    char sp[4200];
    snprintf(sp, sizeof sp, "%s/state.json", ckpt_dir);
    clasp_status s = check_same_run_(rs, c.state, sp, model_config);
    if (s == CLASP_OK) s = read_counters_(rs, c.state, sp);
    if (s == CLASP_OK) s = load_tensors_(rs, &c);
    if (s == CLASP_OK) s = restore_loaders_(rs, c.state, sp);
    if (s == CLASP_OK) CLASP_INFO("resumed from %s at step %lld", ckpt_dir, (long long)rs->step);
    clasp_ckpt_close(&c);
    return s;
}

clasp_status clasp_runstate_open(const char *ckpt_dir, clasp_ckpt *c, clasp_model_config *cfg,
                                 int64_t *step) {
    CLASP_TRY(clasp_ckpt_open(ckpt_dir, c));
    char sp[4200];
    snprintf(sp, sizeof sp, "%s/state.json", ckpt_dir);
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(c->state, "config");
    clasp_status s = cJSON_IsObject(cj)
                         ? clasp_model_config_parse(cj, sp, cfg)
                         : clasp_set_error(CLASP_ERR_FORMAT, "%s: field 'config' missing", sp);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(c->state, "step");
    *step = cJSON_IsNumber(st) ? (int64_t)st->valuedouble : -1;
    if (s != CLASP_OK) clasp_ckpt_close(c);
    return s;
}

clasp_status clasp_runstate_load_model(clasp_ckpt *c, clasp_model *m) {
    clasp_runstate rs;
    clasp_runstate_init(&rs, m, NULL, NULL);
    return load_tensors_(&rs, c);
}

/* ---- run folders ------------------------------------------------------------------------- */

clasp_status clasp_run_write_options(const char *run_dir, const cJSON *options) {
    char path[4200];
    snprintf(path, sizeof path, "%s/options.json", run_dir);
    /* "format_version" first, then the options */
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "format_version", CLASP_RUN_FORMAT_VERSION);
    const cJSON *it;
    cJSON_ArrayForEach(it, options) {
        if (!ok || !strcmp(it->string, "format_version")) continue;
        cJSON *x = cJSON_Duplicate(it, 1);
        ok = x != NULL;
        if (ok) cJSON_AddItemToObject(o, it->string, x);
    }
    clasp_status s =
        ok ? clasp_json_save(path, o) : clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    cJSON_Delete(o);
    return s;
}

clasp_status clasp_run_check_version(const char *run_dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/options.json", run_dir);
    FILE *f = fopen(path, "rb");
    if (!f) return CLASP_OK; /* runs written before options.json: version 1 */
    fclose(f);
    cJSON *o = NULL;
    CLASP_TRY(clasp_json_load(path, &o));
    int version;
    clasp_status s = clasp_json_format_version(o, path, CLASP_RUN_FORMAT_VERSION, &version);
    cJSON_Delete(o);
    return s;
}

clasp_status clasp_run_lock(const char *run_dir, int *handle) {
    *handle = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/.lock", run_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return clasp_set_error(CLASP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        char pid[32] = {0};
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        if (err != EWOULDBLOCK)
            return clasp_set_error(CLASP_ERR_IO, "%s: cannot lock: %s", path, strerror(err));
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        return clasp_set_error(
            CLASP_ERR_STATE,
            "%s is in use by another clasp (PID %s, lock %s): one writer per run "
            "folder; wait for it to end or use another --out",
            run_dir, pid[0] ? pid : "unknown", path);
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        const int err = errno;
        close(fd);
        return clasp_set_error(CLASP_ERR_IO, "%s: cannot write the PID: %s", path, strerror(err));
    }
    *handle = fd + 1;
    return CLASP_OK;
}

void clasp_run_unlock(int handle) {
    if (handle > 0) close(handle - 1); /* closing the descriptor releases the flock */
}
