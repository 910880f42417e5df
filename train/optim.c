/* optim.c: AdamW, cosine schedule, global-norm clipping. */
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sizes.h"

clasp_adamw_config clasp_adamw_default_config(void) {
    return (clasp_adamw_config){
        .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.1};
}

clasp_status clasp_adamw_init(clasp_adamw *o, size_t n, clasp_adamw_config cfg) {
    memset(o, 0, sizeof *o);
    size_t nb;
    if (!clasp_size_mul(n ? n : 1, sizeof(float), &nb))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "adamw: %zu parameters overflow", n);
    float *m = calloc(1, nb), *v = calloc(1, nb);
    if (!m || !v) {
        free(m);
        free(v);
        return clasp_set_error(CLASP_ERR_NOMEM, "adamw: cannot allocate moments for %zu params", n);
    }
    *o = (clasp_adamw){.cfg = cfg, .n = n, .m = m, .v = v};
    return CLASP_OK;
}

void clasp_adamw_free(clasp_adamw *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* One segment's update, vectorised (train/CMakeLists.txt: -O3 -fno-math-errno; no fast-math:
 * each lane runs the same IEEE operations as the scalar loop, so the bits do not change; a
 * decay of 1 multiplies exactly; sqrtf never sees a negative here). */
static void adamw_run_(float *restrict p, const float *restrict g, float *restrict m,
                       float *restrict v, size_t n, float decay, float b1, float omb1, float b2,
                       float omb2, float bc2_sqrt, float eps, float step_size) {
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float mi = m[i] * b1 + g[i] * omb1;
        float vi = v[i] * b2 + (omb2 * g[i]) * g[i];
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + (-step_size * mi) / denom;
    }
}

/* The moments alone (a group whose learning rate is 0), with adamw_run_'s operations. */
static void adam_moments_(const float *restrict g, float *restrict m, float *restrict v, size_t n,
                          float b1, float omb1, float b2, float omb2) {
    for (size_t i = 0; i < n; i++) {
        m[i] = m[i] * b1 + g[i] * omb1;
        v[i] = v[i] * b2 + (omb2 * g[i]) * g[i];
    }
}

void clasp_adamw_step(clasp_adamw *o, float *params, const float *grads,
                      const clasp_param_seg *segs, int n_segs, double lr) {
    o->t++;
    const clasp_adamw_config *c = &o->cfg;
    /* Mirror torch 1.13's float32 op sequence so results match to rounding:
     * p.mul_(1 - lr*wd); m.mul_(b1).add_(g, alpha=1-b1); v.mul_(b2).addcmul_(g, g, value=1-b2);
     * denom = (v.sqrt() / sqrt(bc2)).add_(eps); p.addcdiv_(m, denom, value=-lr/bc1),
     * with torch's CPU kernel association: addcmul = v + (value*g)*g, addcdiv = p + (value*m)/d. */
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const float omb1 = (float)(1.0 - c->beta1), omb2 = (float)(1.0 - c->beta2);
    const double bc1 = 1.0 - pow(c->beta1, (double)o->t);
    const double bc2 = 1.0 - pow(c->beta2, (double)o->t);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)c->eps;
    for (int s = 0; s < n_segs; s++) {
        if (segs[s].frozen) continue;
        const clasp_param_group *grp = segs[s].group;
        /* the group's lr and decay, computed as a direct call with that lr would */
        const double lr_g = grp ? lr * grp->lr_scale : lr;
        const double wd_g = grp ? grp->weight_decay : c->weight_decay;
        float *p = params + segs[s].offset;
        const float *g = grads + segs[s].offset;
        float *m = o->m + segs[s].offset, *v = o->v + segs[s].offset;
        const size_t n = segs[s].numel;
        if (lr_g == 0.0) {
            /* p + (-0 * m) / d would turn a -0 parameter into +0: leave p alone */
            adam_moments_(g, m, v, n, b1, omb1, b2, omb2);
            continue;
        }
        const float step_size = (float)(lr_g / bc1);
        const float dec = segs[s].decay && wd_g != 0.0 ? (float)(1.0 - lr_g * wd_g) : 1.0f;
        adamw_run_(p, g, m, v, n, dec, b1, omb1, b2, omb2, bc2_sqrt, eps, step_size);
    }
}

double clasp_lr_cosine(int64_t step, int64_t warmup, int64_t total, double peak) {
    if (step < warmup) return peak * (double)(step + 1) / (double)warmup;
    int64_t span = total - warmup;
    if (span < 1) span = 1;
    double e = (double)(step - warmup) / (double)span;
    if (e > 1.0) e = 1.0;
    return 0.5 * (1.0 + cos(M_PI * e)) * peak;
}

double clasp_clip_grad_norm(float *grads, const clasp_param_seg *segs, int n_segs,
                            double max_norm) {
    double ss = 0.0;
    for (int s = 0; s < n_segs; s++) {
        if (segs[s].frozen) continue;
        const float *g = grads + segs[s].offset;
        for (size_t i = 0; i < segs[s].numel; i++) ss += (double)g[i] * (double)g[i];
    }
    double norm = sqrt(ss);
    if (max_norm > 0.0 && isfinite(norm) && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (int s = 0; s < n_segs; s++) {
            if (segs[s].frozen) continue;
            float *g = grads + segs[s].offset;
            for (size_t i = 0; i < segs[s].numel; i++) g[i] *= scale;
        }
    }
    return norm;
}
