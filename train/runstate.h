/* runstate.h: a training run's state and its checkpoint form, in one place.
 *
 * A checkpoint folder (checkpoint.h writes it atomically with checksums) holds
 *   model.safetensors  the model's parameters by name              (CLASP_CKPT_FILE_MODEL)
 *   optim.safetensors  AdamW moments "m.<name>" and "v.<name>"     (CLASP_CKPT_FILE_OPTIM)
 *   state.json         "format_version" (CLASP_CKPT_FORMAT_VERSION), "step", "samples",
 *                      "skipped_steps", "adam_t" (AdamW steps), "world" (ranks), "loaders"
 *                      (source 0's loader position per rank), "sources" (several sources:
 *                      [{"pair", "loaders": [per rank]}]), "loader" (rank 0's data state of
 *                      source 0: position and RNG keys, pipeline/data.h), "resume_key" (the
 *                      options an exact resume needs equal), "config" (the model config JSON),
 *                      "checksums"
 * Save and restore walk one list of tensors, clasp_runstate_tensors: the parameters, the AdamW
 * moments (m and v of each parameter in turn), then the tensors registered with
 * clasp_runstate_register in registration order. A new piece of state (a loss's queue of keys,
 * momentum copies of towers) is one register call where it is allocated: saving, restoring and
 * the ranks' broadcast (clasp_runstate_bcast) follow. It changes the checkpoint format, so bump
 * CLASP_CKPT_FORMAT_VERSION and decide how an older checkpoint (without the tensor) is read.
 *
 * A run folder (trainer.h) is marked by options.json, which carries "format_version"
 * (CLASP_RUN_FORMAT_VERSION). Every reader refuses a newer version than it knows, naming the
 * file and both versions; a file without the field is version 1.
 */
#ifndef CLASP_TRAIN_RUNSTATE_H
#define CLASP_TRAIN_RUNSTATE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/status.h"
#include "encoders/model.h"
#include "pipeline/data.h"
#include "train/checkpoint.h"
#include "train/optim.h"

#define CLASP_RUN_FORMAT_VERSION      1
#define CLASP_RUNSTATE_MAX_SOURCES    8
#define CLASP_RUNSTATE_MAX_REGISTERED 32
#define CLASP_RUNSTATE_NAME_MAX       (CLASP_PARAM_NAME_MAX + 16)

typedef enum clasp_ckpt_file {
    CLASP_CKPT_FILE_MODEL = 0, /* model.safetensors */
    CLASP_CKPT_FILE_OPTIM = 1  /* optim.safetensors */
} clasp_ckpt_file;

/* A registered piece of state: a float tensor saved into `file` under `name`. */
typedef struct clasp_runstate_tensor {
    char name[CLASP_RUNSTATE_NAME_MAX];
    clasp_ckpt_file file;
    int ndim;
    int64_t shape[4];
    float *data; /* borrowed: read on save, written on restore */
} clasp_runstate_tensor;

/* The state of a run. The pointers are borrowed; counters are the run's own. Fill it with
 * clasp_runstate_init, then set what the run has (opt, sources, resume key). */
typedef struct clasp_runstate {
    clasp_model *model;      /* parameters */
    clasp_adamw *opt;        /* moments and step count; NULL: no optimiser state (a checkpoint
                                of parameters alone, e.g. for tests of export) */
    const cJSON *config;     /* the model config JSON (clasp_model_config_to_json) */
    const cJSON *resume_key; /* options an exact resume needs equal; NULL: none saved */
    int n_sources;           /* training sources whose loader positions are saved */
    clasp_data *data[CLASP_RUNSTATE_MAX_SOURCES];
    const char *pair[CLASP_RUNSTATE_MAX_SOURCES]; /* "image-text" */
    int64_t step;                                 /* optimiser steps done */
    int64_t samples;                              /* samples consumed */
    int64_t skipped_steps;                        /* non-finite steps skipped */
    int n_registered;
    clasp_runstate_tensor registered[CLASP_RUNSTATE_MAX_REGISTERED];
} clasp_runstate;

void clasp_runstate_init(clasp_runstate *rs, clasp_model *m, clasp_adamw *opt, const cJSON *config);

/* Adds a tensor to the checkpoint (copied into state on save, restored on resume). `name` must
 * not collide with another tensor of the same file. CLASP_ERR_ARG when the name is too long,
 * ndim > 4 or the registry is full (CLASP_RUNSTATE_MAX_REGISTERED). */
clasp_status clasp_runstate_register(clasp_runstate *rs, clasp_ckpt_file file, const char *name,
                                     int ndim, const int64_t *shape, float *data);

/* The checkpoint's tensors per file, names owned by the list. Free with
 * clasp_ckpt_tensors_free (accepts a zeroed list). */
typedef struct clasp_ckpt_tensors {
    clasp_named_tensor *t[2]; /* [file] (n[file]) */
    int n[2];
    char *names; /* storage of the names */
} clasp_ckpt_tensors;

/* Every tensor of the run's checkpoint, in file order (see the top of this file). */
clasp_status clasp_runstate_tensors(const clasp_runstate *rs, clasp_ckpt_tensors *out);
void clasp_ckpt_tensors_free(clasp_ckpt_tensors *l);

/* Writes a checkpoint of rs->step under run_dir/checkpoints, keeping `keep` (checkpoint.h).
 * Collective over the ranks (train/dist.h): every rank's loader positions are gathered, rank
 * 0 writes alone; other ranks return CLASP_OK without writing. out (may be NULL) receives the
 * checkpoint folder on rank 0. */
clasp_status clasp_runstate_save(const clasp_runstate *rs, const char *run_dir, int keep, char *out,
                                 size_t out_cap);

/* Every rank takes rank 0's parameters, moments and registered tensors. Collective. */
clasp_status clasp_runstate_bcast(const clasp_runstate *rs);

/* Restores rs from the checkpoint folder ckpt_dir: counters, every tensor of
 * clasp_runstate_tensors and this rank's loader positions. Refused (CLASP_ERR_CONFIG naming
 * state.json and the field) when the rank count, the model config (`model_config` names it in
 * the message) or a resume_key field differs. */
clasp_status clasp_runstate_restore(clasp_runstate *rs, const char *ckpt_dir,
                                    const char *model_config);

/* Readers of a checkpoint's model alone (export, embedder): opens ckpt_dir (checksums and
 * format version checked), parses its "config" into *cfg and its step into *step (-1 when
 * absent). The caller then builds the model from *cfg, calls clasp_runstate_load_model and
 * closes c with clasp_ckpt_close. */
clasp_status clasp_runstate_open(const char *ckpt_dir, clasp_ckpt *c, clasp_model_config *cfg,
                                 int64_t *step);
/* Copies the model's parameters from an opened checkpoint. */
clasp_status clasp_runstate_load_model(clasp_ckpt *c, clasp_model *m);

/* Run folders: writes run_dir/options.json = `options` (may be NULL) with "format_version"
 * set; checks run_dir/options.json (absent: fine) is not newer than this clasp reads. */
clasp_status clasp_run_write_options(const char *run_dir, const cJSON *options);
clasp_status clasp_run_check_version(const char *run_dir);

/* One writer per run folder: an advisory lock (flock) on run_dir/.lock, which holds the
 * holder's PID. The kernel releases it when the process exits, however it exits (a SIGKILL
 * included), so a stale .lock file never blocks a later run. *handle receives a value > 0 for
 * clasp_run_unlock (0 = nothing to release). A folder in use is CLASP_ERR_STATE naming the
 * holder's PID. Only one rank of an MPI job takes it. */
clasp_status clasp_run_lock(const char *run_dir, int *handle);
void clasp_run_unlock(int handle);

#endif
