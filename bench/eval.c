/* bench/eval.c: evaluation throughput of fmnist-small (configs/fmnist-small.json, random
 * weights): images/s and texts/s embedded by the engine (train/engine.h) with 1 and 2
 * threads, and the ranking time of retrieval metrics (eval/retrieval.h) for 10k x 10k,
 * each against the time of the sgemm calls it needs, measured in the same run:
 *   - embedding: the model's sgemm calls with the same shapes as encoders/layers.c makes them
 *     (conv as per-image (OC, OH*OW, C*K*K) products, linear layers (rows, out, in), attention
 *     as (T, T, head_dim) products per sequence and head), run on the same number of threads
 *     (each thread its share of the rows, OpenBLAS single-threaded as in the engine);
 *   - ranking: the two blockwise (256 x 10k x D) sgemm passes clasp_retrieval_metrics makes.
 * Also images/s from PNG bytes through clasp_embedder_images (decode + preprocess on the calling
 * thread, then the engine).
 *
 *     ./build/bench/bench_eval [n=4096] [ranking_n=10000] [config.json]
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/compute.h"
#include "core/rng.h"
#include "modalities/image.h"
#include "modalities/tokenizer.h"
#include "train/engine.h"
#include "export/export.h"
#include "eval/retrieval.h"

static double now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the sgemm calls of one tower, for `rows` inputs ---- */

typedef struct gemm {
    int M, N, K;
    int per_row; /* repeated once per input row (conv per image, attention per sequence) */
    int reps;    /* repetitions per row (heads) or per call */
} gemm;

typedef struct floor_job {
    const gemm *g;
    int ng, rows;
    float *A, *B, *C;
} floor_job;

static void *floor_run_(void *arg) {
    floor_job *j = arg;
    for (int i = 0; i < j->ng; i++) {
        const gemm *g = &j->g[i];
        int calls = g->per_row ? j->rows * g->reps : g->reps;
        int M = g->per_row ? g->M : g->M * j->rows;
        for (int c = 0; c < calls; c++)
            clasp_gemm(0, 0, M, g->N, g->K, 1.0f, j->A, g->K, j->B, g->N, 0.0f, j->C, g->N);
    }
    return NULL;
}

/* Seconds for the gemm list over `rows` inputs split across `threads` threads. */
static double floor_time_(const gemm *g, int ng, int rows, int threads) {
    size_t amax = 0, bmax = 0, cmax = 0;
    int share = (rows + threads - 1) / threads;
    for (int i = 0; i < ng; i++) {
        size_t M = (size_t)(g[i].per_row ? g[i].M : g[i].M * share);
        amax = M * g[i].K > amax ? M * g[i].K : amax;
        bmax = (size_t)g[i].K * g[i].N > bmax ? (size_t)g[i].K * g[i].N : bmax;
        cmax = M * g[i].N > cmax ? M * g[i].N : cmax;
    }
    floor_job jobs[16];
    pthread_t th[16];
    for (int t = 0; t < threads; t++) {
        jobs[t].g = g;
        jobs[t].ng = ng;
        jobs[t].rows = rows / threads + (t < rows % threads);
        jobs[t].A = calloc(amax, sizeof(float));
        jobs[t].B = calloc(bmax, sizeof(float));
        jobs[t].C = calloc(cmax, sizeof(float));
    }
    floor_run_(&jobs[0]); /* warm-up */
    double t0 = now_();
    for (int t = 1; t < threads; t++) pthread_create(&th[t], NULL, floor_run_, &jobs[t]);
    floor_run_(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(th[t], NULL);
    double dt = now_() - t0;
    for (int t = 0; t < threads; t++) free(jobs[t].A), free(jobs[t].B), free(jobs[t].C);
    return dt;
}

static int image_gemms_(const clasp_model_config *c, gemm *g) {
    int n = 0, ch = c->image.channels, h = c->image.size, w = c->image.size;
    for (int i = 0; i < c->image.n_conv; i++) {
        const clasp_conv_block *b = &c->image.conv[i];
        int oh = (h + 2 * b->padding - b->kernel) / b->stride + 1;
        int ow = (w + 2 * b->padding - b->kernel) / b->stride + 1;
        g[n++] = (gemm){b->channels, oh * ow, ch * b->kernel * b->kernel, 1, 1};
        ch = b->channels;
        h = b->pool > 0 ? oh / b->pool : oh;
        w = b->pool > 0 ? ow / b->pool : ow;
    }
    int in = ch * h * w;
    for (int j = 0; j <= c->image.n_fc; j++) {
        int out = j < c->image.n_fc ? c->image.fc[j] : c->embed_dim;
        g[n++] = (gemm){1, out, in, 0, 1};
        in = out;
    }
    return n;
}

static int text_gemms_(const clasp_model_config *c, gemm *g) {
    const clasp_text_tower_config *t = &c->text;
    int n = 0, T = t->context_length, W = t->width, hd = W / t->heads;
    for (int l = 0; l < t->layers; l++) {
        g[n++] = (gemm){T, 3 * W, W, 0, 1};
        g[n++] = (gemm){T, T, hd, 1, t->heads}; /* q k^T */
        g[n++] = (gemm){T, hd, T, 1, t->heads}; /* att v */
        g[n++] = (gemm){T, W, W, 0, 1};
        g[n++] = (gemm){T, t->mlp_width, W, 0, 1};
        g[n++] = (gemm){T, W, t->mlp_width, 0, 1};
    }
    g[n++] = (gemm){1, c->embed_dim, W, 0, 1};
    return n;
}

static double embed_time_(clasp_engine *e, clasp_tower t, const void *in, int n, float *out) {
    clasp_engine_embed(e, t, in, n < 256 ? n : 256, out); /* warm-up */
    double t0 = now_();
    if (clasp_engine_embed(e, t, in, n, out) != CLASP_OK) {
        fprintf(stderr, "embed: %s\n", clasp_last_error());
        exit(1);
    }
    return now_() - t0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4096;
    int R = argc > 2 ? atoi(argv[2]) : 10000;
    /* configs/fmnist-small.json next to this source file (CMake passes absolute paths), or
     * argv[3] */
    char cfgp[4096];
    if (argc > 3) {
        snprintf(cfgp, sizeof cfgp, "%s", argv[3]);
    } else {
        const char *src = __FILE__, *cut = strstr(src, "bench/eval.c");
        snprintf(cfgp, sizeof cfgp, "%.*sconfigs/fmnist-small.json", (int)(cut ? cut - src : 0),
                 src);
    }
    clasp_model_config cfg;
    if (clasp_model_config_load(cfgp, &cfg) != CLASP_OK) {
        fprintf(stderr, "%s\n", clasp_last_error());
        return 1;
    }
    const int D = cfg.embed_dim, S = cfg.image.size, C = cfg.image.channels,
              T = cfg.text.context_length;
    float *pix = malloc((size_t)n * C * S * S * sizeof(float));
    int32_t *tok = malloc((size_t)n * T * sizeof(int32_t));
    float *out = malloc((size_t)n * D * sizeof(float));
    clasp_rng r;
    clasp_rng_init(&r, 1, 0, 0, 0);
    for (size_t i = 0; i < (size_t)n * C * S * S; i++) pix[i] = clasp_rng_normal(&r);
    clasp_tokenizer *tk;
    clasp_tokenizer_new_bytes(&tk);
    const char *caps[4] = {"a photo of a bag", "a low resolution photo of a ankle boot",
                           "a t-shirt/top on a white background", "an image showing a trouser"};
    for (int i = 0; i < n; i++) clasp_tokenizer_encode(tk, caps[i % 4], tok + (size_t)i * T, T);
    clasp_tokenizer_free(tk);
    gemm gi[32], gt[64];
    int ngi = image_gemms_(&cfg, gi), ngt = text_gemms_(&cfg, gt);

    printf("bench_eval: %s (random weights), %d inputs per measurement, batch 256\n", cfgp, n);
    printf("%-28s %7s %12s %12s %10s\n", "", "threads", "items/s", "sgemm-only/s", "ratio");
    for (int th = 1; th <= 2; th++) {
        clasp_engine e;
        clasp_engine_options eo = {
            .batch_size = 256, .accum_steps = 1, .chunks = th, .threads = th};
        if (clasp_engine_init(&e, &cfg, &eo) != CLASP_OK) {
            fprintf(stderr, "%s\n", clasp_last_error());
            return 1;
        }
        clasp_model_init_weights(&e.models[0], 0);
        clasp_engine_sync_params(&e);
        double ti = embed_time_(&e, CLASP_TOWER_IMAGE, pix, n, out);
        double tt = embed_time_(&e, CLASP_TOWER_TEXT, tok, n, out);
        clasp_engine_free(&e);
        clasp_compute_set_threads(1);
        double fi = floor_time_(gi, ngi, n, th), ft = floor_time_(gt, ngt, n, th);
        printf("%-28s %7d %12.0f %12.0f %10.2f\n", "images embedded (engine)", th, n / ti, n / fi,
               ti / fi);
        printf("%-28s %7d %12.0f %12.0f %10.2f\n", "texts embedded (engine)", th, n / tt, n / ft,
               tt / ft);
    }
    /* end to end from PNG bytes (decode + preprocess on one thread, then the engine) */
    {
        char dir[256];
        snprintf(dir, sizeof dir, "/tmp/bench_eval_export_%ld", (long)getpid());
        clasp_model m;
        clasp_preprocess pre;
        clasp_model_init(&m, &cfg);
        clasp_model_init_weights(&m, 0);
        if (clasp_preprocess_load(cfgp, &pre) != CLASP_OK ||
            clasp_export_model(&m, &pre, dir) != CLASP_OK) {
            fprintf(stderr, "%s\n", clasp_last_error());
            return 1;
        }
        clasp_model_free(&m);
        clasp_preprocess_free(&pre);
        int np = n < 2048 ? n : 2048;
        void **png = calloc((size_t)np, sizeof *png);
        size_t *sz = calloc((size_t)np, sizeof *sz);
        uint8_t *px = malloc((size_t)S * S * C);
        for (int i = 0; i < np; i++) {
            for (int p = 0; p < S * S * C; p++) px[p] = (uint8_t)(clasp_rng_u32(&r) & 0xff);
            uint8_t *b;
            clasp_image_encode_png(px, S, S, C, &b, &sz[i]);
            png[i] = b;
        }
        for (int th = 1; th <= 2; th++) {
            clasp_embedder em;
            if (clasp_embedder_open(dir, th, 256, &em) != CLASP_OK) {
                fprintf(stderr, "%s\n", clasp_last_error());
                return 1;
            }
            clasp_embedder_images(&em, (const void *const *)png, sz, NULL, 256, out);
            double t0 = now_();
            clasp_embedder_images(&em, (const void *const *)png, sz, NULL, np, out);
            double dt = now_() - t0;
            printf("%-28s %7d %12.0f\n", "images from PNG (embedder)", th, np / dt);
            clasp_embedder_close(&em);
        }
        for (int i = 0; i < np; i++) free(png[i]);
        free(png), free(sz), free(px);
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    /* ranking R x R */
    {
        clasp_compute_set_threads(1);
        float *img = malloc((size_t)R * D * sizeof(float)),
              *txt = malloc((size_t)R * D * sizeof(float));
        int64_t *owner = malloc((size_t)R * sizeof(int64_t));
        for (size_t i = 0; i < (size_t)R * D; i++) img[i] = clasp_rng_normal(&r);
        for (size_t i = 0; i < (size_t)R * D; i++) txt[i] = img[i] + (float)clasp_rng_normal(&r);
        for (int i = 0; i < R; i++) {
            owner[i] = i;
            for (int k = 0; k < 2; k++) {
                float *x = (k ? txt : img) + (size_t)i * D;
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)x[d] * (double)x[d];
                for (int d = 0; d < D; d++) x[d] = (float)((double)x[d] / sqrt(s));
            }
        }
        clasp_retrieval_result rr;
        double t0 = now_();
        clasp_retrieval_metrics(img, R, txt, owner, R, D, &rr);
        double tr = now_() - t0;
        float *Sb = malloc((size_t)256 * R * sizeof(float));
        t0 = now_();
        for (int pass = 0; pass < 2; pass++)
            for (int i0 = 0; i0 < R; i0 += 256) {
                int b = R - i0 < 256 ? R - i0 : 256;
                clasp_gemm(0, 1, b, R, D, 1.0f, (pass ? txt : img) + (size_t)i0 * D, D,
                           pass ? img : txt, D, 0.0f, Sb, R);
            }
        double tg = now_() - t0;
        printf("ranking %d x %d (D %d, 1 thread): %.3f s, its sgemm %.3f s (ratio %.2f); "
               "i2t R@1 %.3f\n",
               R, R, D, tr, tg, tr / tg, rr.i2t.r1);
        free(img), free(txt), free(owner), free(Sb);
    }
    printf("ratio = measured time / time of the sgemm calls alone (same shapes, same threads)\n");
    free(pix), free(tok), free(out);
    return 0;
}
