/* diag.c: collapse detector, alignment/uniformity (Wang & Isola 2020), similarity summaries. */
#include "loss/diag.h"

#include <math.h>
#include <string.h>

void clasp_diag_feature_std(float *std_mean, float *std_min, const float *X, size_t N, size_t D) {
    double sum_std = 0.0, min_std = (double)INFINITY;
    for (size_t k = 0; k < D; k++) {
        double m = 0.0, v = 0.0;
        for (size_t i = 0; i < N; i++) m += (double)X[i * D + k];
        m /= (double)(N ? N : 1);
        for (size_t i = 0; i < N; i++) {
            double t = (double)X[i * D + k] - m;
            v += t * t;
        }
        double s = N ? sqrt(v / (double)N) : 0.0;
        sum_std += s;
        if (s < min_std) min_std = s;
    }
    *std_mean = D ? (float)(sum_std / (double)D) : 0.0f;
    *std_min = D ? (float)min_std : 0.0f;
}

static double sqdist(const float *a, const float *b, size_t D) {
    double s = 0.0;
    for (size_t k = 0; k < D; k++) {
        double t = (double)a[k] - (double)b[k];
        s += t * t;
    }
    return s;
}

static double dot(const float *a, const float *b, size_t D) {
    double s = 0.0;
    for (size_t k = 0; k < D; k++) s += (double)a[k] * (double)b[k];
    return s;
}

float clasp_diag_alignment(const float *A, const float *B, size_t N, size_t D) {
    double s = 0.0;
    for (size_t i = 0; i < N; i++) s += sqdist(A + i * D, B + i * D, D);
    return N ? (float)(s / (double)N) : 0.0f;
}

float clasp_diag_uniformity(const float *X, size_t N, size_t D) {
    if (N < 2) return 0.0f;
    /* log mean exp(-2 d^2): exponents are <= 0 and the largest is found first (stable). */
    double mx = -(double)INFINITY;
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++) {
            double e = -2.0 * sqdist(X + i * D, X + j * D, D);
            if (e > mx) mx = e;
        }
    double s = 0.0;
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++) s += exp(-2.0 * sqdist(X + i * D, X + j * D, D) - mx);
    double pairs = (double)N * (double)(N - 1) / 2.0;
    return (float)(mx + log(s / pairs));
}

void clasp_diag_similarity(float *pos_sim, float *hardneg_sim, const float *A, const float *B,
                           const int *groups, size_t N, size_t D) {
    double ps = 0.0, hs = 0.0;
    size_t rows = 0;
    for (size_t i = 0; i < N; i++) {
        ps += dot(A + i * D, B + i * D, D);
        double best = -(double)INFINITY;
        for (size_t j = 0; j < N; j++) {
            if (groups ? groups[j] == groups[i] : j == i) continue;
            double s = dot(A + i * D, B + j * D, D);
            if (s > best) best = s;
        }
        if (isfinite(best)) {
            hs += best;
            rows++;
        }
    }
    *pos_sim = N ? (float)(ps / (double)N) : 0.0f;
    *hardneg_sim = rows ? (float)(hs / (double)rows) : 0.0f;
}

clasp_status clasp_diag_compute(clasp_diag *out, const float *A, const float *B, const int *groups,
                                size_t N, size_t D) {
    if (!out || !A || !B || N == 0 || D == 0)
        return clasp_set_error(CLASP_ERR_ARG, "diag: bad arguments (N=%zu, D=%zu)", N, D);
    memset(out, 0, sizeof *out);
    clasp_diag_feature_std(&out->std_mean_a, &out->std_min_a, A, N, D);
    clasp_diag_feature_std(&out->std_mean_b, &out->std_min_b, B, N, D);
    out->alignment = clasp_diag_alignment(A, B, N, D);
    out->uniformity_a = clasp_diag_uniformity(A, N, D);
    out->uniformity_b = clasp_diag_uniformity(B, N, D);
    clasp_diag_similarity(&out->pos_sim, &out->hardneg_sim, A, B, groups, N, D);
    return CLASP_OK;
}
