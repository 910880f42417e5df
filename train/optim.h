/* optim.h: AdamW with decoupled weight decay (PyTorch semantics), the learning-rate
 * schedule (linear warmup then cosine), gradient clipping by global norm.
 *
 * Parameters live in one contiguous buffer; the caller describes it as segments (one per
 * tensor or per group of tensors) saying whether weight decay applies, whether the
 * segment is frozen (not updated: locked-tower tuning) and, optionally, its parameter group:
 * PyTorch's param_groups with lr = the scheduled lr x lr_scale and their own weight_decay
 * (fine-tuning: a lower learning rate for a pretrained tower).
 * ref: torch/optim/adamw.py (_single_tensor_adamw, torch 1.13), open_clip/scheduler.py. */
#ifndef CLASP_TRAIN_OPTIM_H
#define CLASP_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* A parameter group's settings (timm's "lr_scale" convention): the segment's learning rate is
 * lr_scale x the scheduled lr, its decay lr x lr_scale x weight_decay (on decay segments). */
typedef struct clasp_param_group {
    double lr_scale;     /* >= 0; 0 = the parameters never move, the moments still update */
    double weight_decay; /* >= 0; replaces the config's weight_decay for this group */
} clasp_param_group;

typedef struct clasp_param_seg {
    size_t offset, numel;           /* range in the parameter buffer, in floats */
    bool decay;                     /* apply weight decay */
    bool frozen;                    /* never updated (moments stay zero) */
    const clasp_param_group *group; /* NULL: lr scale 1 and the config's weight decay */
} clasp_param_seg;

typedef struct clasp_adamw_config {
    double lr;           /* peak learning rate (the schedule scales it) */
    double beta1, beta2; /* 0.9, 0.98 as the fmnist reference (OpenCLIP's CLIP recipe) */
    double eps;          /* 1e-6 */
    double weight_decay; /* 0.1, on segments with decay = true */
} clasp_adamw_config;

clasp_adamw_config clasp_adamw_default_config(void);

typedef struct clasp_adamw {
    clasp_adamw_config cfg;
    size_t n;  /* floats */
    float *m;  /* (n) first moment */
    float *v;  /* (n) second moment */
    int64_t t; /* steps taken */
} clasp_adamw;

clasp_status clasp_adamw_init(clasp_adamw *o, size_t n, clasp_adamw_config cfg);
void clasp_adamw_free(clasp_adamw *o);
/* One step with learning rate `lr` (already scheduled): p -= lr*wd*p (decay segments), then
 * the Adam update with bias correction. Frozen segments are untouched. A segment with a group
 * takes exactly the step of a call with lr x group->lr_scale and weight_decay =
 * group->weight_decay; with an effective lr of 0 only its moments update (its parameters keep
 * their bits, as a frozen segment's). */
void clasp_adamw_step(clasp_adamw *o, float *params, const float *grads,
                      const clasp_param_seg *segs, int n_segs, double lr);

/* Learning rate at 0-based `step`: peak*(step+1)/warmup for step < warmup, then
 * 0.5*(1+cos(pi*(step-warmup)/(total-warmup)))*peak (as ../shared/bench/ref_clip_fmnist.py). */
double clasp_lr_cosine(int64_t step, int64_t warmup, int64_t total, double peak);

/* Global L2 norm of grads over the non-frozen segments (double accumulation in a fixed
 * order). If max_norm > 0 and the norm exceeds it, scales the grads by
 * max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_). Returns the norm before
 * clipping (may be inf/nan: the caller's guard checks it). */
double clasp_clip_grad_norm(float *grads, const clasp_param_seg *segs, int n_segs, double max_norm);

#endif
