/* probe.c: linear probe: multinomial logistic regression on frozen features, trained by
 * full-batch Nesterov-accelerated gradient descent with adaptive restart. See eval.h.
 *
 * Objective over the n labelled rows x_i (D) with labels y_i in [0, K):
 *     f(W, b) = 1/n sum_i -log softmax(W x_i + b)[y_i] + l2/2 |W|^2
 * Gradient: G = (P - Y)^T [X 1] / n (+ l2 W), P the row-wise softmax, Y one-hot. The Hessian of
 * the mean cross-entropy is at most 1/2 (I - 11^T/K) (x) mean(x~ x~^T) (Boehning 1992), so
 * L = max_i |x~_i|^2 / 2 + l2 bounds its largest eigenvalue and 1/L is a safe step. Two sgemm per
 * iteration (logits, gradient). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/compute.h"
#include "eval/eval.h"

clasp_probe_options clasp_probe_default_options(void) {
    clasp_probe_options o = {.l2 = 1e-4, .max_iter = 1000, .tol = 1e-6};
    return o;
}

typedef struct probe_data {
    float *X;   /* (n, D + 1): features and a constant 1 */
    int64_t *y; /* (n) */
    int64_t n;
    int D1, K;
} probe_data;

/* Copies the labelled rows into (n, D + 1) with a trailing 1. */
static clasp_status pack_(const float *x, const int64_t *y, int64_t n, int D, probe_data *p) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) m += y[i] >= 0;
    p->D1 = D + 1;
    p->n = m;
    p->X = malloc((size_t)(m ? m : 1) * (size_t)p->D1 * sizeof(float));
    p->y = malloc((size_t)(m ? m : 1) * sizeof(int64_t));
    if (!p->X || !p->y) return clasp_set_error(CLASP_ERR_NOMEM, "probe: out of memory");
    int64_t r = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0) continue;
        memcpy(p->X + (size_t)r * p->D1, x + (size_t)i * D, (size_t)D * sizeof(float));
        p->X[(size_t)r * p->D1 + D] = 1.0f;
        p->y[r++] = y[i];
    }
    return CLASP_OK;
}

/* Objective at W (K, D1) and, if G is not NULL, its gradient. Z is (n, K) scratch. */
static double objective_(const probe_data *p, const float *W, float *G, float *Z, double l2) {
    const int K = p->K, D1 = p->D1;
    const int64_t n = p->n;
    clasp_gemm(0, 1, (int)n, K, D1, 1.0f, p->X, D1, W, D1, 0.0f, Z, K);
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        float *z = Z + (size_t)i * K;
        float mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)(z[k] - mx));
        int64_t y = p->y[i];
        loss += log(sum) - (double)(z[y] - mx);
        if (G) {
            for (int k = 0; k < K; k++) z[k] = (float)(exp((double)(z[k] - mx)) / sum);
            z[y] -= 1.0f;
        }
    }
    loss /= (double)n;
    double reg = 0;
    for (int k = 0; k < K; k++)
        for (int d = 0; d < D1 - 1; d++) reg += (double)W[k * D1 + d] * (double)W[k * D1 + d];
    loss += 0.5 * l2 * reg;
    if (G) {
        /* G (K, D1) = Z^T X / n */
        clasp_gemm(1, 0, K, D1, (int)n, 1.0f / (float)n, Z, K, p->X, D1, 0.0f, G, D1);
        for (int k = 0; k < K; k++)
            for (int d = 0; d < D1 - 1; d++) G[k * D1 + d] += (float)l2 * W[k * D1 + d];
    }
    return loss;
}

static double accuracy_(const probe_data *p, const float *W, float *Z) {
    if (p->n == 0) return 0;
    const int K = p->K, D1 = p->D1;
    clasp_gemm(0, 1, (int)p->n, K, D1, 1.0f, p->X, D1, W, D1, 0.0f, Z, K);
    int64_t hit = 0;
    for (int64_t i = 0; i < p->n; i++) {
        const float *z = Z + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[best]) best = k;
        hit += p->y[i] == best;
    }
    return (double)hit / (double)p->n;
}

clasp_status clasp_linear_probe(const float *xtr, const int64_t *ytr, int64_t ntr, const float *xte,
                                const int64_t *yte, int64_t nte, int D,
                                const clasp_probe_options *o, clasp_probe_result *r) {
    memset(r, 0, sizeof *r);
    clasp_probe_options opt = o ? *o : clasp_probe_default_options();
    if (D < 1 || ntr < 1 || nte < 0 || !xtr || !ytr || (nte > 0 && (!xte || !yte)))
        return clasp_set_error(CLASP_ERR_ARG, "probe: bad arguments");
    probe_data tr = {0}, te = {0};
    float *W = NULL, *V = NULL, *Wp = NULL, *G = NULL, *Z = NULL;
    clasp_status s = pack_(xtr, ytr, ntr, D, &tr);
    if (s == CLASP_OK) s = pack_(xte ? xte : xtr, yte ? yte : ytr, nte, D, &te);
    int64_t maxy = -1;
    for (int64_t i = 0; s == CLASP_OK && i < tr.n; i++) maxy = tr.y[i] > maxy ? tr.y[i] : maxy;
    if (s == CLASP_OK && (tr.n == 0 || maxy < 1))
        s = clasp_set_error(CLASP_ERR_ARG,
                            "probe: the training features need labels of at least 2 classes");
    if (s == CLASP_OK && maxy > 100000)
        s = clasp_set_error(CLASP_ERR_ARG, "probe: label %lld is too large", (long long)maxy);
    const int K = (int)(maxy + 1);
    tr.K = te.K = K;
    size_t nw = (size_t)K * (size_t)(D + 1);
    int64_t zn = tr.n > te.n ? tr.n : te.n;
    if (s == CLASP_OK) {
        W = calloc(nw, sizeof(float));
        V = calloc(nw, sizeof(float));
        Wp = calloc(nw, sizeof(float));
        G = calloc(nw, sizeof(float));
        Z = malloc((size_t)(zn ? zn : 1) * (size_t)K * sizeof(float));
        if (!W || !V || !Wp || !G || !Z)
            s = clasp_set_error(CLASP_ERR_NOMEM, "probe: out of memory");
    }
    if (s == CLASP_OK) {
        double xmax = 0;
        for (int64_t i = 0; i < tr.n; i++) {
            double q = 0;
            for (int d = 0; d < D + 1; d++) {
                double v = (double)tr.X[(size_t)i * (D + 1) + d];
                q += v * v;
            }
            xmax = q > xmax ? q : xmax;
        }
        const float step = (float)(1.0 / (0.5 * xmax + opt.l2));
        double f_prev = objective_(&tr, W, NULL, Z, opt.l2);
        double t = 1.0;
        int it = 0;
        for (; it < opt.max_iter; it++) {
            /* gradient at the look-ahead point V */
            objective_(&tr, V, G, Z, opt.l2);
            float gmax = 0;
            for (size_t j = 0; j < nw; j++) gmax = fabsf(G[j]) > gmax ? fabsf(G[j]) : gmax;
            if ((double)gmax < opt.tol) break;
            memcpy(Wp, W, nw * sizeof(float));
            for (size_t j = 0; j < nw; j++) W[j] = V[j] - step * G[j];
            double f = objective_(&tr, W, NULL, Z, opt.l2);
            double tn = 0.5 * (1.0 + sqrt(1.0 + 4.0 * t * t));
            if (f > f_prev) {
                /* adaptive restart: drop the momentum and take a plain step from Wp */
                t = 1.0;
                for (size_t j = 0; j < nw; j++) W[j] = Wp[j];
                memcpy(V, W, nw * sizeof(float));
                continue;
            }
            float beta = (float)((t - 1.0) / tn);
            for (size_t j = 0; j < nw; j++) V[j] = W[j] + beta * (W[j] - Wp[j]);
            t = tn;
            f_prev = f;
        }
        r->iterations = it;
        r->loss = objective_(&tr, W, NULL, Z, opt.l2);
        r->n_classes = K;
        r->n_train = tr.n;
        r->n_test = te.n;
        r->train_accuracy = accuracy_(&tr, W, Z);
        /* test labels outside [0, K) can never be predicted: count them as errors */
        for (int64_t i = 0; i < te.n; i++)
            if (te.y[i] >= K) te.y[i] = -1;
        r->test_accuracy = accuracy_(&te, W, Z);
    }
    free(tr.X), free(tr.y), free(te.X), free(te.y);
    free(W), free(V), free(Wp), free(G), free(Z);
    return s;
}
