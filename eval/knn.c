/* knn.c: k-nearest-neighbour classification of frozen features (eval.h's clasp_knn): cosine
 * similarity by blocks of matrix products, the k most similar reference rows per query kept in
 * a small sorted list, a vote weighted by exp(s / tau) (Wu et al. 2018) or plain. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/compute.h"
#include "eval/eval.h"

enum { KNN_BLOCK = 256 }; /* query rows per matrix product */

/* One neighbour candidate. */
typedef struct knn_nb {
    float s;   /* cosine similarity */
    int64_t i; /* reference row */
} knn_nb;

/* Whether candidate a ranks before b: higher similarity, then the lower reference row. */
static int before_(float sa, int64_t ia, const knn_nb *b) {
    return sa > b->s || (sa == b->s && ia < b->i);
}

/* The k best of one query's similarities sim (nr) into top (k, best first); returns how many. */
static int top_k_(const float *sim, const int64_t *rows, int64_t nr, int k, knn_nb *top) {
    int m = 0;
    for (int64_t j = 0; j < nr; j++) {
        const float s = sim[j];
        if (m == k && !before_(s, rows[j], &top[k - 1])) continue;
        int p = m < k ? m++ : k - 1; /* the slot it takes, then bubbled up */
        while (p > 0 && before_(s, rows[j], &top[p - 1])) {
            top[p] = top[p - 1];
            p--;
        }
        top[p] = (knn_nb){s, rows[j]};
    }
    return m;
}

/* The class of the weighted vote of the m neighbours (ties: the lowest class). */
static int64_t vote_(const knn_nb *top, int m, const int64_t *labels, double tau, double *w,
                     int n_classes) {
    for (int c = 0; c < n_classes; c++) w[c] = 0;
    for (int q = 0; q < m; q++) w[labels[top[q].i]] += tau > 0 ? exp((double)top[q].s / tau) : 1.0;
    int best = 0;
    for (int c = 1; c < n_classes; c++)
        if (w[c] > w[best]) best = c;
    return best;
}

/* The labelled rows of (x, y) packed: features (m, D) and their original row numbers. */
static clasp_status pack_(const float *x, const int64_t *y, int64_t n, int D, float **px,
                          int64_t **rows, int64_t *m) {
    *m = 0;
    for (int64_t i = 0; i < n; i++) *m += y[i] >= 0;
    *px = malloc((size_t)(*m ? *m : 1) * (size_t)D * sizeof(float));
    *rows = malloc((size_t)(*m ? *m : 1) * sizeof(int64_t));
    if (!*px || !*rows) return clasp_set_error(CLASP_ERR_NOMEM, "k-NN: out of memory");
    int64_t r = 0;
    for (int64_t i = 0; i < n; i++)
        if (y[i] >= 0) {
            memcpy(*px + (size_t)r * D, x + (size_t)i * D, (size_t)D * sizeof(float));
            (*rows)[r++] = i;
        }
    return CLASP_OK;
}

clasp_status clasp_knn(const float *xtr, const int64_t *ytr, int64_t ntr, const float *xte,
                       const int64_t *yte, int64_t nte, int D, int k, double tau,
                       clasp_knn_result *r) {
    memset(r, 0, sizeof *r);
    if (D < 1 || ntr < 1 || nte < 0 || !xtr || !ytr || (nte > 0 && (!xte || !yte)))
        return clasp_set_error(CLASP_ERR_ARG, "k-NN: bad arguments");
    if (k < 1) return clasp_set_error(CLASP_ERR_ARG, "--knn %d: k must be at least 1", k);
    int64_t maxy = -1;
    for (int64_t i = 0; i < ntr; i++) maxy = ytr[i] > maxy ? ytr[i] : maxy;
    if (maxy < 0)
        return clasp_set_error(CLASP_ERR_ARG, "k-NN: the reference set has no labelled row (.cls)");
    if (maxy > 100000)
        return clasp_set_error(CLASP_ERR_ARG, "k-NN: label %lld is too large", (long long)maxy);
    const int n_classes = (int)maxy + 1;
    float *ref = NULL, *sim = NULL;
    int64_t *rows = NULL, nr = 0;
    knn_nb *top = NULL;
    double *w = NULL;
    clasp_status s = pack_(xtr, ytr, ntr, D, &ref, &rows, &nr);
    const int kk = (int64_t)k < nr ? k : (int)nr;
    if (s == CLASP_OK) {
        sim = malloc((size_t)KNN_BLOCK * (size_t)nr * sizeof(float));
        top = malloc((size_t)kk * sizeof *top);
        w = malloc((size_t)n_classes * sizeof *w);
        if (!sim || !top || !w) s = clasp_set_error(CLASP_ERR_NOMEM, "k-NN: out of memory");
    }
    int64_t hit = 0, n = 0;
    for (int64_t q0 = 0; s == CLASP_OK && q0 < nte; q0 += KNN_BLOCK) {
        const int nq = (int)(nte - q0 < KNN_BLOCK ? nte - q0 : KNN_BLOCK);
        clasp_gemm(0, 1, nq, (int)nr, D, 1.0f, xte + (size_t)q0 * D, D, ref, D, 0.0f, sim, (int)nr);
        for (int q = 0; q < nq; q++) {
            const int64_t y = yte[q0 + q];
            if (y < 0) continue; /* an unlabelled query is not scored */
            int m = top_k_(sim + (size_t)q * nr, rows, nr, kk, top);
            hit += vote_(top, m, ytr, tau, w, n_classes) == y;
            n++;
        }
    }
    if (s == CLASP_OK) {
        r->k = kk;
        r->tau = tau;
        r->n_classes = n_classes;
        r->n_train = nr;
        r->n_test = n;
        r->accuracy = n ? (double)hit / (double)n : 0;
    }
    free(ref), free(rows), free(sim), free(top), free(w);
    return s;
}
