/* checkpoint.h: atomic training checkpoints.
 *
 * A checkpoint is a directory RUN/checkpoints/step-NNNNNNNN/ holding
 *   model.safetensors  parameters by PyTorch-style name
 *   optim.safetensors  AdamW moments ("m.<name>", "v.<name>")
 *   state.json         what the caller gives (train/runstate.h lists the fields), plus
 *                      "format_version" (CLASP_CKPT_FORMAT_VERSION), "step" and the xxh64
 *                      "checksums" of the two safetensors files
 * It is written under a temporary name (step-NNNNNNNN.tmp), every file fsynced, the folder
 * renamed into place and the parent fsynced; then RUN/checkpoints/latest (a one-line text
 * file naming the folder) is replaced atomically. A crash at any point leaves either the old
 * or the new checkpoint complete, never a half-written one under a final name.
 * Opening a checkpoint whose state.json has a newer "format_version" than this clasp reads is
 * refused (CLASP_ERR_FORMAT naming the file and both versions); no field means version 1.
 */
#ifndef CLASP_TRAIN_CHECKPOINT_H
#define CLASP_TRAIN_CHECKPOINT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/safetensors.h"
#include "core/status.h"

#define CLASP_CKPT_FORMAT_VERSION 1

typedef struct clasp_named_tensor {
    const char *name;
    int ndim;
    int64_t shape[4];
    float *data; /* borrowed */
} clasp_named_tensor;

/* Writes a checkpoint for `step` under run_dir/checkpoints. `state` is copied into
 * state.json with "checksums" added ("step" too, and "format_version" when absent). Keeps the
 * newest `keep` checkpoints (keep <= 0: all). On success writes the checkpoint folder path into
 * out_dir (may be NULL). */
clasp_status clasp_ckpt_save(const char *run_dir, int64_t step, const clasp_named_tensor *model,
                             int n_model, const clasp_named_tensor *optim, int n_optim,
                             const cJSON *state, int keep, char *out_dir, size_t out_cap);

/* Resolves `which` ("latest", a checkpoint folder, or a run folder) to a checkpoint folder. */
clasp_status clasp_ckpt_resolve(const char *run_dir_or_ckpt, char *out, size_t cap);

/* Opens a checkpoint folder: verifies checksums, loads state.json and the two files.
 * Errors name the file (and the tensor) that is wrong. Caller frees with clasp_ckpt_close. */
typedef struct clasp_ckpt {
    char dir[4096];
    cJSON *state;
    clasp_safetensors *model;
    clasp_safetensors *optim;
} clasp_ckpt;

clasp_status clasp_ckpt_open(const char *ckpt_dir, clasp_ckpt *out);
/* Copies each named tensor from the checkpoint's model (which = 0) or optim (which = 1) file
 * into the given buffers; a missing tensor or a shape mismatch is an error naming both. */
clasp_status clasp_ckpt_load_tensors(clasp_ckpt *c, int which, const clasp_named_tensor *t, int n);
void clasp_ckpt_close(clasp_ckpt *c);

#endif
