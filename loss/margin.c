/* margin.c: pairwise margin contrastive loss (Hadsell et al. 2006) forward + backward. */
#include "loss/margin.h"

#include <math.h>

clasp_status clasp_margin_contrastive(float *loss, float *dX1, float *dX2, const float *X1,
                                      const float *X2, const int *similar, float margin, size_t P,
                                      size_t D) {
    if (!loss || !X1 || !X2 || !similar || P == 0 || D == 0 || !(margin >= 0.0f) ||
        !isfinite(margin))
        return clasp_set_error(CLASP_ERR_ARG, "margin: bad arguments (P=%zu, D=%zu, m=%g)", P, D,
                               (double)margin);
    const double inv_p = 1.0 / (double)P;
    double sum = 0.0;
    for (size_t k = 0; k < P; k++) {
        const float *a = X1 + k * D, *b = X2 + k * D;
        double ss = 0.0;
        for (size_t j = 0; j < D; j++) {
            double t = (double)a[j] - (double)b[j];
            ss += t * t;
        }
        double d = sqrt(ss), coef; /* coef: dloss/d(a - b) = coef * (a - b) */
        if (similar[k]) {
            sum += ss;
            coef = 2.0 * inv_p;
        } else {
            double h = (double)margin - d;
            if (h > 0.0) sum += h * h;
            coef = h > 0.0 && d > 0.0 ? -2.0 * h / d * inv_p : 0.0;
        }
        for (size_t j = 0; j < D; j++) {
            float g = (float)(coef * ((double)a[j] - (double)b[j]));
            if (dX1) dX1[k * D + j] = g;
            if (dX2) dX2[k * D + j] = -g;
        }
    }
    *loss = (float)(sum * inv_p);
    return CLASP_OK;
}
