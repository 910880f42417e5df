/* retrieval.c: retrieval metrics, exact top-k search and NPY files. See retrieval.h. */
#include "core/compute.h"
#include "eval/retrieval.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"

/* Rows of scores computed per sgemm block. */
#define BLOCK_ROWS 256

int64_t clasp_rank_of(const float *scores, int64_t n, int64_t truth) {
    const float t = scores[truth];
    int64_t better = 0;
    for (int64_t j = 0; j < truth; j++) better += scores[j] >= t;
    for (int64_t j = truth + 1; j < n; j++) better += scores[j] > t;
    return better + 1;
}

static int cmp_i64_(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

clasp_rank_stats clasp_rank_summary(int64_t *ranks, int64_t n) {
    clasp_rank_stats r;
    memset(&r, 0, sizeof r);
    r.n = n;
    if (n <= 0) return r;
    int64_t h1 = 0, h5 = 0, h10 = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        h1 += ranks[i] <= 1;
        h5 += ranks[i] <= 5;
        h10 += ranks[i] <= 10;
        sum += (double)ranks[i];
    }
    r.r1 = (double)h1 / (double)n;
    r.r5 = (double)h5 / (double)n;
    r.r10 = (double)h10 / (double)n;
    r.mean_rank = sum / (double)n;
    qsort(ranks, (size_t)n, sizeof *ranks, cmp_i64_);
    /* numpy median of the 0-based ranks, floored, plus one */
    double med0 = (n % 2) ? (double)(ranks[n / 2] - 1)
                          : 0.5 * (double)(ranks[n / 2 - 1] - 1 + ranks[n / 2] - 1);
    r.median_rank = floor(med0) + 1.0;
    return r;
}

clasp_status clasp_retrieval_metrics(const float *img, int64_t N, const float *txt,
                                     const int64_t *owner, int64_t M, int D,
                                     clasp_retrieval_result *out) {
    memset(out, 0, sizeof *out);
    if (N < 1 || M < 1 || D < 1 || !img || !txt || !owner)
        return clasp_set_error(CLASP_ERR_ARG, "retrieval: needs at least one image and one text");
    for (int64_t j = 0; j < M; j++)
        if (owner[j] < 0 || owner[j] >= N)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "retrieval: text %lld belongs to image %lld of %lld",
                                   (long long)j, (long long)owner[j], (long long)N);
    int64_t maxc = N > M ? N : M;
    float *S = malloc((size_t)BLOCK_ROWS * (size_t)maxc * sizeof(float));
    int64_t *best = malloc((size_t)N * sizeof(int64_t));
    int64_t *t2i = malloc((size_t)M * sizeof(int64_t));
    /* texts of each image, as a CSR list */
    int64_t *start = calloc((size_t)N + 1, sizeof(int64_t));
    int64_t *list = malloc((size_t)M * sizeof(int64_t));
    if (!S || !best || !t2i || !start || !list) {
        free(S), free(best), free(t2i), free(start), free(list);
        return clasp_set_error(CLASP_ERR_NOMEM, "retrieval: out of memory (%lld x %lld)",
                               (long long)N, (long long)M);
    }
    for (int64_t j = 0; j < M; j++) start[owner[j] + 1]++;
    for (int64_t i = 0; i < N; i++) start[i + 1] += start[i];
    {
        int64_t *fill = malloc((size_t)N * sizeof(int64_t));
        if (!fill) {
            free(S), free(best), free(t2i), free(start), free(list);
            return clasp_set_error(CLASP_ERR_NOMEM, "retrieval: out of memory");
        }
        memcpy(fill, start, (size_t)N * sizeof(int64_t));
        for (int64_t j = 0; j < M; j++) list[fill[owner[j]]++] = j;
        free(fill);
    }
    /* image -> text: rows of img against all texts */
    int64_t n_i2t = 0;
    for (int64_t i0 = 0; i0 < N; i0 += BLOCK_ROWS) {
        int b = (int)(N - i0 < BLOCK_ROWS ? N - i0 : BLOCK_ROWS);
        clasp_gemm(0, 1, b, (int)M, D, 1.0f, img + (size_t)i0 * D, D, txt, D, 0.0f, S, (int)M);
        for (int r = 0; r < b; r++) {
            int64_t i = i0 + r;
            if (start[i] == start[i + 1]) continue;
            int64_t bst = INT64_MAX;
            for (int64_t q = start[i]; q < start[i + 1]; q++) {
                int64_t rk = clasp_rank_of(S + (size_t)r * M, M, list[q]);
                if (rk < bst) bst = rk;
            }
            best[n_i2t++] = bst;
        }
    }
    /* text -> image */
    for (int64_t j0 = 0; j0 < M; j0 += BLOCK_ROWS) {
        int b = (int)(M - j0 < BLOCK_ROWS ? M - j0 : BLOCK_ROWS);
        clasp_gemm(0, 1, b, (int)N, D, 1.0f, txt + (size_t)j0 * D, D, img, D, 0.0f, S, (int)N);
        for (int r = 0; r < b; r++)
            t2i[j0 + r] = clasp_rank_of(S + (size_t)r * N, N, owner[j0 + r]);
    }
    out->n_images = N;
    out->n_texts = M;
    out->i2t = clasp_rank_summary(best, n_i2t);
    out->t2i = clasp_rank_summary(t2i, M);
    free(S), free(best), free(t2i), free(start), free(list);
    return CLASP_OK;
}

/* Inserts (j, v) into the sorted top list (best first; equal scores keep the earlier row). */
static void topk_push_(int64_t *idx, float *sc, int k, int64_t j, float v) {
    if (!(v > sc[k - 1])) return; /* also drops NaN */
    int p = k - 1;
    while (p > 0 && v > sc[p - 1]) {
        sc[p] = sc[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    sc[p] = v;
    idx[p] = j;
}

clasp_status clasp_search_topk(const float *index, int64_t N, int D, const float *q, int Q, int k,
                               int64_t *idx, float *score) {
    if (N < 0 || D < 1 || Q < 1 || k < 1 || !q || !idx || !score || (N > 0 && !index))
        return clasp_set_error(CLASP_ERR_ARG, "search: bad arguments");
    for (size_t i = 0; i < (size_t)Q * (size_t)k; i++) {
        idx[i] = -1;
        score[i] = -INFINITY;
    }
    if (N == 0) return CLASP_OK;
    const int64_t blk = Q == 1 ? (N < 1 << 20 ? N : 1 << 20) : (N < 16384 ? N : 16384);
    float *S = malloc((size_t)blk * (size_t)Q * sizeof(float));
    if (!S) return clasp_set_error(CLASP_ERR_NOMEM, "search: out of memory");
    for (int64_t r0 = 0; r0 < N; r0 += blk) {
        int b = (int)(N - r0 < blk ? N - r0 : blk);
        const float *X = index + (size_t)r0 * D;
        if (Q == 1) {
            clasp_gemm(0, 0, b, 1, D, 1.0f, X, D, q, 1, 0.0f, S, 1);
        } else {
            /* S (Q, b) = q (Q, D) . X^T */
            clasp_gemm(0, 1, Q, b, D, 1.0f, q, D, X, D, 0.0f, S, b);
        }
        for (int qi = 0; qi < Q; qi++) {
            const float *s = S + (size_t)qi * b;
            int64_t *ix = idx + (size_t)qi * k;
            float *sc = score + (size_t)qi * k;
            for (int j = 0; j < b; j++) topk_push_(ix, sc, k, r0 + j, s[j]);
        }
    }
    free(S);
    return CLASP_OK;
}

/* ---- NPY -------------------------------------------------------------------------------- */

clasp_status clasp_npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0 || (rows * cols > 0 && !data))
        return clasp_set_error(CLASP_ERR_ARG, "%s: bad array", path);
    char dict[160];
    int dn = snprintf(dict, sizeof dict,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)rows, (long long)cols);
    /* magic(6) + version(2) + len(2) + dict + padding + '\n' is a multiple of 64 */
    size_t total = 10 + (size_t)dn + 1;
    size_t pad = (64 - total % 64) % 64;
    uint16_t hlen = (uint16_t)((size_t)dn + pad + 1);
    unsigned char head[10 + 256];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (unsigned char)(hlen & 0xff);
    head[9] = (unsigned char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)dn);
    memset(head + 10 + dn, ' ', pad);
    head[10 + dn + pad] = '\n';
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return clasp_set_error(CLASP_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return clasp_set_error(CLASP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t n = (size_t)rows * (size_t)cols;
    bool ok = fwrite(head, 1, 10 + hlen, f) == 10u + hlen && fwrite(data, sizeof(float), n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return clasp_set_error(CLASP_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return CLASP_OK;
}

clasp_status clasp_npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols) {
    *data = NULL;
    *rows = *cols = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return clasp_set_error(CLASP_ERR_NOT_FOUND, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    clasp_status s = CLASP_OK;
    size_t hlen = 0;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: not an NPY file (bad magic)", path);
    } else if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: truncated header", path);
        else
            hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
                   (size_t)pre[11] << 24;
    } else {
        s = clasp_set_error(CLASP_ERR_UNSUPPORTED, "%s: NPY version %d", path, pre[6]);
    }
    char *h = NULL;
    if (s == CLASP_OK && (hlen == 0 || hlen > 1 << 20))
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: bad header length %zu", path, hlen);
    if (s == CLASP_OK && !(h = calloc(hlen + 1, 1)))
        s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
    if (s == CLASP_OK && fread(h, 1, hlen, f) != hlen)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: truncated header", path);
    long long r = -1, c = -1;
    if (s == CLASP_OK) {
        const char *d = strstr(h, "'descr'"), *fo = strstr(h, "'fortran_order'"),
                   *sh = strstr(h, "'shape'");
        if (!d || !strstr(d, "'<f4'"))
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: dtype is not little-endian float32 ('<f4')",
                                path);
        else if (!fo || !strstr(fo, "False"))
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: fortran_order arrays are not supported",
                                path);
        else if (!sh || !(sh = strchr(sh, '(')) || sscanf(sh, "(%lld, %lld)", &r, &c) != 2 ||
                 r < 0 || c < 1)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: shape is not (rows, cols)", path);
    }
    float *buf = NULL;
    struct stat fs;
    long at = s == CLASP_OK ? ftell(f) : -1;
    /* The data must be in the file before anything is allocated: a 100-byte file declaring
     * (2^40, 2^20) is refused here, not by malloc (found by tests/fuzz/fuzz_npy.c). */
    if (s == CLASP_OK && (at < 0 || fstat(fileno(f), &fs) != 0 || fs.st_size < at ||
                          (r > 0 && (unsigned long long)c > (unsigned long long)(fs.st_size - at) /
                                                                4u / (unsigned long long)r)))
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: data shorter than shape (%lld, %lld)", path, r,
                            c);
    if (s == CLASP_OK) {
        size_t n = (size_t)r * (size_t)c;
        buf = malloc((n ? n : 1) * sizeof(float));
        if (!buf)
            s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory (%lld x %lld)", path, r, c);
        else if (fread(buf, sizeof(float), n, f) != n)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: data shorter than shape (%lld, %lld)", path,
                                r, c);
    }
    fclose(f);
    free(h);
    if (s != CLASP_OK) {
        free(buf);
        return s;
    }
    *data = buf;
    *rows = r;
    *cols = c;
    return CLASP_OK;
}

/* P(at least one of m relevant rows in the top k of a random ranking of n). */
static double chance_at_(int64_t n, int64_t m, int64_t k) {
    if (k >= n) return 1.0;
    double p_none = 1.0;
    for (int64_t i = 0; i < k; i++) p_none *= (double)(n - m - i) / (double)(n - i);
    return 1.0 - (p_none > 0 ? p_none : 0);
}

clasp_status clasp_retrieval_by_relevance(const float *q, int64_t Q, const float *gal, int64_t N,
                                          int D, clasp_relevant_fn relevant, const void *ctx,
                                          clasp_group_retrieval *out) {
    memset(out, 0, sizeof *out);
    if (Q < 1 || N < 1 || D < 1)
        return clasp_set_error(CLASP_ERR_ARG, "group retrieval: %lld queries, %lld gallery rows",
                               (long long)Q, (long long)N);
    out->n_gallery = N;
    const int64_t B = 256;
    float *scores = malloc((size_t)B * (size_t)N * sizeof(float));
    int64_t *ranks = malloc((size_t)Q * sizeof(int64_t));
    if (!scores || !ranks) {
        free(scores), free(ranks);
        return clasp_set_error(CLASP_ERR_NOMEM, "group retrieval: out of memory");
    }
    int64_t n = 0;
    double c1 = 0, c5 = 0, c10 = 0, cm = 0, rel = 0;
    for (int64_t q0 = 0; q0 < Q; q0 += B) {
        int nb = (int)(Q - q0 < B ? Q - q0 : B);
        clasp_gemm(0, 1, nb, (int)N, D, 1.0f, q + (size_t)q0 * (size_t)D, D, gal, D, 0.0f, scores,
                   (int)N);
        for (int i = 0; i < nb; i++) {
            const float *sc = scores + (size_t)i * (size_t)N;
            /* the best-ranked relevant row is the highest-scored one, the lowest index among
             * equals (the order clasp_rank_of ranks by): one rank per query, not one per
             * relevant row */
            int64_t top = -1, m = 0;
            for (int64_t j = 0; j < N; j++) {
                if (!relevant(ctx, q0 + i, j)) continue;
                m++;
                if (top < 0 || sc[j] > sc[top]) top = j;
            }
            if (m == 0) {
                out->unmatched++;
                continue;
            }
            ranks[n++] = clasp_rank_of(sc, N, top);
            c1 += chance_at_(N, m, 1);
            c5 += chance_at_(N, m, 5);
            c10 += chance_at_(N, m, 10);
            cm += (double)(N + 1) / (double)(m + 1);
            rel += (double)m;
        }
    }
    free(scores);
    clasp_status s = CLASP_OK;
    if (n == 0) {
        s = clasp_set_error(CLASP_ERR_FORMAT,
                            "group retrieval: none of the %lld queries has a matching gallery row",
                            (long long)Q);
    } else {
        out->stats = clasp_rank_summary(ranks, n);
        out->chance_r1 = c1 / (double)n;
        out->chance_r5 = c5 / (double)n;
        out->chance_r10 = c10 / (double)n;
        out->chance_mean_rank = cm / (double)n;
        out->mean_relevant = rel / (double)n;
    }
    free(ranks);
    return s;
}

/* The group ids of clasp_retrieval_by_group's queries and gallery. */
typedef struct groups_ {
    const uint64_t *qg, *gg;
} groups_;

static bool same_group_(const void *ctx, int64_t q, int64_t g) {
    const groups_ *c = ctx;
    return c->qg[q] == c->gg[g];
}

clasp_status clasp_retrieval_by_group(const float *q, const uint64_t *qg, int64_t Q,
                                      const float *gal, const uint64_t *gg, int64_t N, int D,
                                      clasp_group_retrieval *out) {
    const groups_ c = {qg, gg};
    return clasp_retrieval_by_relevance(q, Q, gal, N, D, same_group_, &c, out);
}
