/* layers.c: forward/backward pairs of the neural-network layers declared in layers.h.
 *
 * Every backward accumulates (+=) into the gradients it is given and skips NULL ones.
 * Nothing here allocates; matrix products use clasp_gemm (core/compute.h: oneDNN or OpenBLAS,
 * in the calling thread's precision). Other loops are single-threaded and run in a fixed
 * order, so results never depend on the thread count.
 * ref: karpathy/llm.c train_gpt2.c (layer structure); PyTorch 1.13 formulas for GELU (tanh
 * form backward), LayerNorm, max_pool2d tie rule and F.normalize.
 */
#include "core/compute.h"
#include "encoders/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* Element-wise loops in this file are written branch-free so that GCC can vectorise them; the
 * project builds with -O2, whose "very cheap" cost model vectorises almost no loop, so these
 * functions ask for it explicitly. no-trapping-math only lets selects be if-converted (FP
 * exception flags are not used); there is no fast-math: every operation stays IEEE-exact and
 * the vector body and the scalar tail give identical results. */
#if defined(__GNUC__) && !defined(__clang__)
#define CLASP_VECTORIZE __attribute__((optimize("O3", "no-trapping-math")))
#else
#define CLASP_VECTORIZE
#endif

/* Hot kernels are compiled three times from one always-inline body: AVX-512 (512-bit vectors),
 * AVX2 and baseline, and picked at run time from the CPU (no -march flag is needed). The two
 * SIMD versions may contract a*b+c into FMAs (fp-contract=fast: each is still a correctly
 * rounded IEEE operation, no reassociation), so results depend on which version the CPU gets,
 * but never on thread counts or on how work is split: the same machine always runs the same
 * code on the same element order. */

/* One compiled version of a kernel: `static void name##suffix(params)` with attributes `attr`,
 * running the always-inline name##_body(args). */
#define SIMD_VERSION(attr, name, suffix, params, args)                                             \
    attr static void name##suffix params {                                                         \
        name##_body args;                                                                          \
    }

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CLASP_SIMD_DISPATCH 1
#define CLASP_BODY          static inline __attribute__((always_inline))
#define CLASP_TGT_AVX512                                                                           \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512"),  \
                   optimize("O3", "no-trapping-math", "fp-contract=fast")))
#define CLASP_TGT_AVX2                                                                             \
    __attribute__((target("avx2,fma"), optimize("O3", "no-trapping-math", "fp-contract=fast")))

/* 2 = AVX-512F/VL/BW/DQ + FMA, 1 = AVX2 + FMA, 0 = baseline; computed once (relaxed atomics:
 * every thread computes the same value). The environment variable CLASP_SIMD=0|1|2 caps it. */
static int g_simd_level = -1;

static int simd_level(void) {
    int l = __atomic_load_n(&g_simd_level, __ATOMIC_RELAXED);
    if (l >= 0) return l;
    __builtin_cpu_init();
    l = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) l = 1;
    if (l == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        l = 2;
    const char *cap = getenv("CLASP_SIMD"); /* "0", "1" or "2": cap the level (tests, benches) */
    if (cap && cap[0] >= '0' && cap[0] <= '2' && cap[0] - '0' < l) l = cap[0] - '0';
    __atomic_store_n(&g_simd_level, l, __ATOMIC_RELAXED);
    return l;
}

/* SIMD_KERNEL(name, (params), (args)) defines `static void name(params)` running
 * name##_body(args) in the best version for the CPU. */
#define SIMD_KERNEL(name, params, args)                                                            \
    SIMD_VERSION(CLASP_TGT_AVX512, name, _avx512, params, args)                                    \
    SIMD_VERSION(CLASP_TGT_AVX2, name, _avx2, params, args)                                        \
    SIMD_VERSION(CLASP_VECTORIZE, name, _base, params, args)                                       \
    static void name params {                                                                      \
        int l_ = simd_level();                                                                     \
        if (l_ == 2)                                                                               \
            name##_avx512 args;                                                                    \
        else if (l_ == 1)                                                                          \
            name##_avx2 args;                                                                      \
        else                                                                                       \
            name##_base args;                                                                      \
    }
/* the same with AVX2 and baseline versions only (kernels that 512-bit vectors make slower) */
#define SIMD_KERNEL_AVX2(name, params, args)                                                       \
    SIMD_VERSION(CLASP_TGT_AVX2, name, _avx2, params, args)                                        \
    SIMD_VERSION(CLASP_VECTORIZE, name, _base, params, args)                                       \
    static void name params {                                                                      \
        if (simd_level() >= 1)                                                                     \
            name##_avx2 args;                                                                      \
        else                                                                                       \
            name##_base args;                                                                      \
    }
#else
#define CLASP_BODY                           static inline
static int simd_level(void) {
    return 0;
}
#define SIMD_KERNEL(name, params, args)      SIMD_VERSION(CLASP_VECTORIZE, name, , params, args)
#define SIMD_KERNEL_AVX2(name, params, args) SIMD_KERNEL(name, params, args)
#endif
/* Reductions in this file run in LN_LANES independent accumulators (element i goes to lane
 * i % LN_LANES, then the lanes are added in order): vectorisable without reassociation, and a
 * fixed order. */
#define LN_LANES 8

/* ---- linear ------------------------------------------------------------------------------ */

void clasp_linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                          int C, int OC) {
    /* out (N, OC) = inp (N, C) @ w^T (C, OC) + b (OC) */
    if (b)
        clasp_gemm_bias(0, 1, N, OC, C, inp, C, w, C, b, out, OC);
    else
        clasp_gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
}

/* A bf16 copy of x (n floats) in the compute thread's scratch `slot` when the thread computes
 * in bf16, for a caller that multiplies x more than once; NULL otherwise (the products then
 * convert x themselves). Slots 0-3 belong to the attention layer, 4 to linear backwards, 5 to
 * the block's GELU output. */
static const uint16_t *bf16_copy_(int slot, const float *x, size_t n) {
    if (clasp_compute_precision() != CLASP_BF16) return NULL;
    uint16_t *h = clasp_compute_bf16_scratch(slot, n);
    if (h) clasp_f32_to_bf16_n(h, x, n);
    return h;
}
#define LINEAR_SLOT 4

/* clasp_gemm whose A and/or B may come as bf16 copies Ah, Bh (then A or B may be NULL) */
static void gemm_h_(int ta, int tb, int M, int N, int K, const float *A, const uint16_t *Ah,
                    int lda, const float *B, const uint16_t *Bh, int ldb, float beta, float *C,
                    int ldc) {
    if (!Ah && !Bh) {
        clasp_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    clasp_gemm_batch g = {.batch = 1,
                          .batch2 = 1,
                          .A = A,
                          .lda = lda,
                          .B = B,
                          .ldb = ldb,
                          .C = C,
                          .ldc = ldc,
                          .Ah = Ah,
                          .Bh = Bh};
    clasp_gemm_batched(ta, tb, M, N, K, 1.0f, beta, &g);
}

/* as clasp_linear_backward; dinp_beta 0 overwrites dinp instead of adding to it; douth: a bf16
 * copy of dout or NULL */
static void linear_backward(float *dinp, float dinp_beta, float *dw, float *db, const float *dout,
                            const uint16_t *douth, const float *inp, const uint16_t *inph,
                            const float *w, int N, int C, int OC) {
    /* dinp (N, C) = dinp_beta * dinp + dout (N, OC) @ w (OC, C) */
    if (dinp) gemm_h_(0, 0, N, C, OC, dout, douth, OC, w, NULL, C, dinp_beta, dinp, C);
    /* dw (OC, C) += dout^T (OC, N) @ inp (N, C) */
    if (dw) gemm_h_(1, 0, OC, C, N, dout, douth, OC, inp, inph, C, 1.0f, dw, C);
    if (db) {
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++) db[o] += d[o];
        }
    }
}

void clasp_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, int N, int C, int OC) {
    /* both products read dout: converted once in bf16 */
    const uint16_t *h = dinp && dw ? bf16_copy_(LINEAR_SLOT, dout, (size_t)N * OC) : NULL;
    linear_backward(dinp, 1.0f, dw, db, dout, h, inp, NULL, w, N, C, OC);
}

/* ---- conv2d, NHWC -------------------------------------------------------------------------- */

int clasp_conv2d_out_size(int in, int k, int stride, int pad) {
    return (in + 2 * pad - k) / stride + 1;
}

size_t clasp_conv2d_work_floats(int B, int C, int H, int W, int KH, int KW, int stride, int pad) {
    (void)B;
    size_t OH = (size_t)clasp_conv2d_out_size(H, KH, stride, pad);
    size_t OW = (size_t)clasp_conv2d_out_size(W, KW, stride, pad);
    /* the im2col path, one image at a time: col (OH*OW, C*KH*KW) and, in backward, dcol */
    return 2 * (size_t)C * (size_t)KH * (size_t)KW * OH * OW;
}

/* col (OH*OW rows, C*KH*KW columns in OIHW's (c, kh, kw) order) of one NHWC image x (H, W, C);
 * out-of-image taps are 0. */
CLASP_BODY void im2col_body(float *restrict col, const float *restrict x, int C, int H, int W,
                            int KH, int KW, int stride, int pad, int OH, int OW) {
    size_t CK = (size_t)C * KH * KW;
    for (int oh = 0; oh < OH; oh++) {
        for (int ow = 0; ow < OW; ow++) {
            float *row = col + ((size_t)oh * OW + ow) * CK;
            for (int kh = 0; kh < KH; kh++) {
                int ih = oh * stride - pad + kh;
                for (int kw = 0; kw < KW; kw++) {
                    int iw = ow * stride - pad + kw;
                    float *r = row + kh * KW + kw;
                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                        for (int c = 0; c < C; c++) r[(size_t)c * KH * KW] = 0.0f;
                        continue;
                    }
                    const float *px = x + ((size_t)ih * W + iw) * C;
                    for (int c = 0; c < C; c++) r[(size_t)c * KH * KW] = px[c];
                }
            }
        }
    }
}
SIMD_KERNEL_AVX2(im2col,
                 (float *restrict col, const float *restrict x, int C, int H, int W, int KH, int KW,
                  int stride, int pad, int OH, int OW),
                 (col, x, C, H, W, KH, KW, stride, pad, OH, OW))

/* dx (H, W, C) += col2im(dcol), the transpose of im2col */
CLASP_BODY void col2im_add_body(float *restrict dx, const float *restrict dcol, int C, int H, int W,
                                int KH, int KW, int stride, int pad, int OH, int OW) {
    size_t CK = (size_t)C * KH * KW;
    for (int oh = 0; oh < OH; oh++) {
        for (int ow = 0; ow < OW; ow++) {
            const float *row = dcol + ((size_t)oh * OW + ow) * CK;
            for (int kh = 0; kh < KH; kh++) {
                int ih = oh * stride - pad + kh;
                if (ih < 0 || ih >= H) continue;
                for (int kw = 0; kw < KW; kw++) {
                    int iw = ow * stride - pad + kw;
                    if (iw < 0 || iw >= W) continue;
                    const float *r = row + kh * KW + kw;
                    float *px = dx + ((size_t)ih * W + iw) * C;
                    for (int c = 0; c < C; c++) px[c] += r[(size_t)c * KH * KW];
                }
            }
        }
    }
}
SIMD_KERNEL_AVX2(col2im_add,
                 (float *restrict dx, const float *restrict dcol, int C, int H, int W, int KH,
                  int KW, int stride, int pad, int OH, int OW),
                 (dx, dcol, C, H, W, KH, KW, stride, pad, OH, OW))

void clasp_conv2d_forward(float *out, float *work, const float *inp, const float *w, const float *b,
                          int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad) {
    clasp_conv_shape sh = {B, C, H, W, OC, KH, KW, stride, pad};
    if (clasp_conv2d_direct_fwd(&sh, out, inp, w, b) == CLASP_OK) return;
    /* im2col: per image out_b (P, OC) = col_b (P, CK) @ w^T (CK, OC) + b, already NHWC */
    int OH = clasp_conv2d_out_size(H, KH, stride, pad);
    int OW = clasp_conv2d_out_size(W, KW, stride, pad);
    int P = OH * OW, CK = C * KH * KW;
    for (int bi = 0; bi < B; bi++) {
        float *y = out + (size_t)bi * P * OC;
        im2col(work, inp + (size_t)bi * H * W * C, C, H, W, KH, KW, stride, pad, OH, OW);
        if (b)
            clasp_gemm_bias(0, 1, P, OC, CK, work, CK, w, CK, b, y, OC);
        else
            clasp_gemm(0, 1, P, OC, CK, 1.0f, work, CK, w, CK, 0.0f, y, OC);
    }
}

/* db[o] += sum over rows of g (n, OC), in row order */
static void conv_bias_grad(float *db, const float *g, int OC, size_t n) {
    for (size_t p = 0; p < n; p++)
        for (int o = 0; o < OC; o++) db[o] += g[p * OC + o];
}

void clasp_conv2d_backward(float *dinp, float *dw, float *db, float *work, const float *dout,
                           const float *inp, const float *w, int B, int C, int H, int W, int OC,
                           int KH, int KW, int stride, int pad) {
    clasp_conv_shape sh = {B, C, H, W, OC, KH, KW, stride, pad};
    int OH = clasp_conv2d_out_size(H, KH, stride, pad);
    int OW = clasp_conv2d_out_size(W, KW, stride, pad);
    int P = OH * OW, CK = C * KH * KW;
    if (dinp && clasp_conv2d_direct_bwd_data(&sh, dinp, dout, w) == CLASP_OK) dinp = NULL;
    if (dw && clasp_conv2d_direct_bwd_weights(&sh, dw, NULL, dout, inp) == CLASP_OK) dw = NULL;
    /* the bias gradient always sums the fp32 output gradient here, as linear's does (oneDNN's
     * bf16 convolution would sum the bf16-rounded one) */
    if (db && !dw && !dinp) {
        conv_bias_grad(db, dout, OC, (size_t)B * P);
        db = NULL;
    }
    float *col = work, *dcol = work + (size_t)CK * P;
    for (int bi = 0; bi < B; bi++) {
        const float *dy = dout + (size_t)bi * P * OC;
        if (db) conv_bias_grad(db, dy, OC, (size_t)P);
        if (dw) {
            /* dw (OC, CK) += dout_b^T (OC, P) @ col_b (P, CK) */
            im2col(col, inp + (size_t)bi * H * W * C, C, H, W, KH, KW, stride, pad, OH, OW);
            clasp_gemm(1, 0, OC, CK, P, 1.0f, dy, OC, col, CK, 1.0f, dw, CK);
        }
        if (dinp) {
            /* dcol (P, CK) = dout_b (P, OC) @ w (OC, CK), then scattered back */
            clasp_gemm(0, 0, P, CK, OC, 1.0f, dy, OC, w, CK, 0.0f, dcol, CK);
            col2im_add(dinp + (size_t)bi * H * W * C, dcol, C, H, W, KH, KW, stride, pad, OH, OW);
        }
    }
}

/* ---- pooling, NHWC ------------------------------------------------------------------------- */

/* One image's max pool: out (OH, OW, C), idx = (ih * W + iw) * C + c of the chosen input.
 * The window is scanned in row-major order and a candidate replaces the best when strictly
 * greater, or when it is NaN and the best is not: the first NaN if any, else the first
 * maximum (PyTorch's rule). Branch-free over the channels, so it vectorises. */
CLASP_BODY void maxpool_image_body(float *restrict y, int32_t *restrict ix, const float *restrict x,
                                   int C, int H, int W, int k, int s) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
    for (int oh = 0; oh < OH; oh++) {
        for (int ow = 0; ow < OW; ow++) {
            float *yr = y + ((size_t)oh * OW + ow) * C;
            int32_t *ir = ix + ((size_t)oh * OW + ow) * C;
            int32_t j0 = (int32_t)(((size_t)oh * s * W + (size_t)ow * s) * C);
            for (int c = 0; c < C; c++) {
                yr[c] = x[j0 + c];
                ir[c] = j0 + c;
            }
            for (int kh = 0; kh < k; kh++) {
                for (int kw = (kh == 0); kw < k; kw++) {
                    int32_t j = (int32_t)((((size_t)oh * s + kh) * W + (size_t)ow * s + kw) * C);
                    const float *xr = x + j;
                    for (int c = 0; c < C; c++) {
                        float v = xr[c], b = yr[c];
                        int t = (v > b) | ((v != v) & (b == b));
                        yr[c] = t ? v : b;
                        ir[c] = t ? j + c : ir[c];
                    }
                }
            }
        }
    }
}
SIMD_KERNEL_AVX2(maxpool_image,
                 (float *restrict y, int32_t *restrict ix, const float *restrict x, int C, int H,
                  int W, int k, int s),
                 (y, ix, x, C, H, W, k, s))

void clasp_maxpool2d_forward(float *out, int32_t *idx, const float *inp, int B, int C, int H, int W,
                             int k, int s) {
    size_t in1 = (size_t)H * W * C, out1 = (size_t)((H - k) / s + 1) * ((W - k) / s + 1) * C;
    for (int b = 0; b < B; b++)
        maxpool_image(out + b * out1, idx + b * out1, inp + b * in1, C, H, W, k, s);
}

void clasp_maxpool2d_backward(float *dinp, const float *dout, const int32_t *idx, int B, int C,
                              int H, int W, int k, int s) {
    size_t in1 = (size_t)H * W * C, out1 = (size_t)((H - k) / s + 1) * ((W - k) / s + 1) * C;
    for (int b = 0; b < B; b++) {
        float *dx = dinp + b * in1;
        const float *dy = dout + b * out1;
        const int32_t *ix = idx + b * out1;
        for (size_t p = 0; p < out1; p++) dx[ix[p]] += dy[p];
    }
}

void clasp_relu_maxpool2d_forward(float *out, int32_t *idx, const float *inp, int B, int C, int H,
                                  int W, int k, int s) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
    clasp_maxpool2d_forward(out, idx, inp, B, C, H, W, k, s);
    clasp_relu_forward(out, out, (size_t)B * C * OH * OW);
}

void clasp_relu_maxpool2d_backward(float *dinp, const float *dout, const int32_t *idx,
                                   const float *out, int B, int C, int H, int W, int k, int s) {
    size_t in1 = (size_t)H * W * C, out1 = (size_t)((H - k) / s + 1) * ((W - k) / s + 1) * C;
    memset(dinp, 0, (size_t)B * in1 * sizeof(float));
    for (int b = 0; b < B; b++) {
        float *dx = dinp + b * in1;
        const float *dy = dout + b * out1, *y = out + b * out1;
        const int32_t *ix = idx + b * out1;
        for (size_t p = 0; p < out1; p++) dx[ix[p]] += y[p] > 0.0f ? dy[p] : 0.0f;
    }
}

void clasp_avgpool2d_forward(float *out, const float *inp, int B, int C, int H, int W, int k,
                             int s) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
    float inv = 1.0f / (float)(k * k);
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * H * W * C;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                float *y = out + (((size_t)b * OH + oh) * OW + ow) * C;
                for (int c = 0; c < C; c++) y[c] = 0.0f;
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        const float *xr = x + ((size_t)(oh * s + kh) * W + ow * s + kw) * C;
                        for (int c = 0; c < C; c++) y[c] += xr[c];
                    }
                for (int c = 0; c < C; c++) y[c] *= inv;
            }
        }
    }
}

void clasp_avgpool2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int k,
                              int s) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
    float inv = 1.0f / (float)(k * k);
    for (int b = 0; b < B; b++) {
        float *dx = dinp + (size_t)b * H * W * C;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                const float *dy = dout + (((size_t)b * OH + oh) * OW + ow) * C;
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        float *dr = dx + ((size_t)(oh * s + kh) * W + ow * s + kw) * C;
                        for (int c = 0; c < C; c++) dr[c] += dy[c] * inv;
                    }
            }
        }
    }
}

void clasp_global_avgpool_forward(float *out, const float *inp, int B, int C, int HW) {
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * HW * C;
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int i = 0; i < HW; i++) acc += (double)x[(size_t)i * C + c];
            out[(size_t)b * C + c] = (float)(acc / HW);
        }
    }
}

void clasp_global_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW) {
    for (int b = 0; b < B; b++) {
        float *dx = dinp + (size_t)b * HW * C;
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < C; c++)
                dx[(size_t)i * C + c] += dout[(size_t)b * C + c] / (float)HW;
    }
}

void clasp_meanpool_tokens_forward(float *out, const float *inp, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        float *y = out + (size_t)b * C;
        const float *x = inp + (size_t)b * T * C;
        for (int c = 0; c < C; c++) y[c] = 0.0f;
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) y[c] += x[(size_t)t * C + c];
        for (int c = 0; c < C; c++) y[c] /= (float)T;
    }
}

void clasp_meanpool_tokens_backward(float *dinp, const float *dout, int B, int T, int C) {
    float inv = 1.0f / (float)T;
    for (int b = 0; b < B; b++) {
        const float *dy = dout + (size_t)b * C;
        for (int t = 0; t < T; t++) {
            float *dx = dinp + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) dx[c] += dy[c] * inv;
        }
    }
}

void clasp_gather_tokens_forward(float *out, const float *inp, const int32_t *pos, int B, int T,
                                 int C) {
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * C, inp + ((size_t)b * T + pos[b]) * C, (size_t)C * sizeof(float));
}

void clasp_gather_tokens_backward(float *dinp, const float *dout, const int32_t *pos, int B, int T,
                                  int C) {
    for (int b = 0; b < B; b++) {
        float *dx = dinp + ((size_t)b * T + pos[b]) * C;
        const float *dy = dout + (size_t)b * C;
        for (int c = 0; c < C; c++) dx[c] += dy[c];
    }
}

/* ---- activations ---------------------------------------------------------------------------- */

CLASP_VECTORIZE void clasp_relu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

CLASP_VECTORIZE void clasp_relu_backward(float *dinp, const float *dout, const float *out,
                                         size_t n) {
    for (size_t i = 0; i < n; i++) {
        float d = dout[i]; /* loaded unconditionally so the select vectorises */
        dinp[i] += out[i] > 0.0f ? d : 0.0f;
    }
}

#define GELU_INV_SQRT2      0.70710678118654752440f
#define GELU_INV_SQRT_2PI   0.39894228040143267794f
#define GELU_SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_KAPPA          0.044715f

/* exp(x) for float, branch-free (vectorisable): Cody-Waite reduction x = n ln2 + r and the
 * Cephes expf polynomial, about 1 ulp. Inputs are clamped to [-87.3, 88.3] (no denormals
 * or infinities; exp(-87.3) = 1.2e-38). ref: Cephes expf.c. */
CLASP_BODY float exp_fast(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* t = 1.5 * 2^23 + round(x / ln2): the rounded integer sits in t's low mantissa bits */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n from t's bits (0x4B400000 + n): unsigned arithmetic, so a NaN input (which the
     * clamps let through) gives a NaN result and no undefined float-to-int conversion */
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t e = (tb - 0x4B400000u + 127u) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

/* Standard normal CDF Phi(x) = 0.5 erfc(-x / sqrt 2), branch-free. erfc(z), z >= 0, by the
 * Chebyshev fit of Numerical Recipes (erfcc: fractional error < 1.2e-7 everywhere), so the
 * left tail keeps its relative accuracy (no 1 + erf(x) cancellation). */
CLASP_BODY float normal_cdf(float x) {
    float z = (x < 0.0f ? -x : x) * GELU_INV_SQRT2;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float half_erfc = 0.5f * t * exp_fast(p - z * z);
    return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

CLASP_BODY float gelu_erf(float x) {
    return x * normal_cdf(x);
}

CLASP_BODY float gelu_erf_grad(float x) {
    return normal_cdf(x) + x * GELU_INV_SQRT_2PI * exp_fast(-0.5f * x * x);
}

/* tanh form through sigmoid: 1 + tanh(u) = 2 s and 1 - tanh(u) = 2 (1 - s) with
 * s = e / (e + 1), e = exp(2u), so neither tail cancels. */
CLASP_BODY float gelu_tanh(float x) {
    float e = exp_fast(2.0f * GELU_SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x));
    return x * (e / (e + 1.0f));
}

/* d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'
 *                           = s + 2 x s (1 - s) u'
 * ref: PyTorch aten/src/ATen/native/cpu/Activation.cpp GeluBackwardKernelImpl (tanh). */
CLASP_BODY float gelu_tanh_grad(float x) {
    float x2 = x * x;
    float e = exp_fast(2.0f * GELU_SQRT_2_OVER_PI * (x + GELU_KAPPA * x2 * x));
    float inv = 1.0f / (e + 1.0f);
    float sg = e * inv;
    float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_KAPPA * x2);
    return sg + 2.0f * x * sg * inv * du;
}

/* QuickGELU (OpenAI CLIP): x sigmoid(1.702 x); d/dx = s + 1.702 x s (1 - s).
 * ref: openai/CLIP clip/model.py QuickGELU, mlfoundations/open_clip transformer.py. */
#define QUICK_GELU_ALPHA 1.702f
CLASP_BODY float quick_gelu(float x) {
    float e = exp_fast(QUICK_GELU_ALPHA * x);
    return x * (e / (e + 1.0f));
}

CLASP_BODY float quick_gelu_grad(float x) {
    float e = exp_fast(QUICK_GELU_ALPHA * x);
    float inv = 1.0f / (e + 1.0f);
    float sg = e * inv;
    return sg + QUICK_GELU_ALPHA * x * sg * inv;
}

/* act (the int passed as tanh_form below): 0 = exact GELU, 1 = tanh GELU, 2 = QuickGELU */
CLASP_BODY void gelu_fwd_body(float *out, const float *inp, size_t n, int tanh_form) {
    if (tanh_form == 2) {
        for (size_t i = 0; i < n; i++) out[i] = quick_gelu(inp[i]);
    } else if (tanh_form) {
        for (size_t i = 0; i < n; i++) out[i] = gelu_tanh(inp[i]);
    } else {
        for (size_t i = 0; i < n; i++) out[i] = gelu_erf(inp[i]);
    }
}
SIMD_KERNEL(gelu_fwd, (float *out, const float *inp, size_t n, int tanh_form),
            (out, inp, n, tanh_form))

CLASP_BODY void gelu_bwd_body(float *dinp, const float *dout, const float *inp, size_t n,
                              int tanh_form) {
    if (tanh_form == 2) {
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * quick_gelu_grad(inp[i]);
    } else if (tanh_form) {
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_tanh_grad(inp[i]);
    } else {
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_erf_grad(inp[i]);
    }
}
SIMD_KERNEL(gelu_bwd, (float *dinp, const float *dout, const float *inp, size_t n, int tanh_form),
            (dinp, dout, inp, n, tanh_form))

/* d[i] *= gelu'(x[i]) in place (the block's backward through its GELU) */
CLASP_BODY void gelu_grad_scale_body(float *d, const float *x, size_t n, int tanh_form) {
    if (tanh_form == 2) {
        for (size_t i = 0; i < n; i++) d[i] *= quick_gelu_grad(x[i]);
    } else if (tanh_form) {
        for (size_t i = 0; i < n; i++) d[i] *= gelu_tanh_grad(x[i]);
    } else {
        for (size_t i = 0; i < n; i++) d[i] *= gelu_erf_grad(x[i]);
    }
}
SIMD_KERNEL(gelu_grad_scale, (float *d, const float *x, size_t n, int tanh_form),
            (d, x, n, tanh_form))

/* y[i] = gelu(x[i]) (the forward's value, bit for bit) and d[i] *= gelu'(x[i]) in one pass:
 * the block's backward recomputing GELU's output. The erf form evaluates Phi(x) once for
 * both (gelu_erf and gelu_erf_grad spelled out with the same operations); the tanh form
 * calls the two functions. */
CLASP_BODY void gelu_recompute_scale_body(float *restrict y, float *restrict d,
                                          const float *restrict x, size_t n, int tanh_form) {
    if (tanh_form == 2) {
        for (size_t i = 0; i < n; i++) {
            y[i] = quick_gelu(x[i]);
            d[i] *= quick_gelu_grad(x[i]);
        }
    } else if (tanh_form) {
        for (size_t i = 0; i < n; i++) {
            y[i] = gelu_tanh(x[i]);
            d[i] *= gelu_tanh_grad(x[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float v = x[i], cdf = normal_cdf(v);
            y[i] = v * cdf;
            d[i] *= cdf + v * GELU_INV_SQRT_2PI * exp_fast(-0.5f * v * v);
        }
    }
}
SIMD_KERNEL(gelu_recompute_scale,
            (float *restrict y, float *restrict d, const float *restrict x, size_t n,
             int tanh_form),
            (y, d, x, n, tanh_form))

/* y (bf16) = gelu(x) and, when d != NULL, d *= gelu'(x): the same values as gelu_fwd /
 * gelu_recompute_scale, converted through a small fp32 tile */
#define GELU_SLOT 5 /* compute thread scratch slot of the block's bf16 GELU output */
static void gelu_bf16_(uint16_t *y, float *d, const float *x, size_t n, int tanh_form) {
    float tile[512];
    for (size_t i = 0; i < n; i += 512) {
        size_t m = n - i < 512 ? n - i : 512;
        if (d)
            gelu_recompute_scale(tile, d + i, x + i, m, tanh_form);
        else
            gelu_fwd(tile, x + i, m, tanh_form);
        clasp_f32_to_bf16_n(y + i, tile, m);
    }
}

void clasp_gelu_forward(float *out, const float *inp, size_t n) {
    gelu_fwd(out, inp, n, 0);
}

void clasp_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    gelu_bwd(dinp, dout, inp, n, 0);
}

void clasp_gelu_tanh_forward(float *out, const float *inp, size_t n) {
    gelu_fwd(out, inp, n, 1);
}

void clasp_gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    gelu_bwd(dinp, dout, inp, n, 1);
}

void clasp_quick_gelu_forward(float *out, const float *inp, size_t n) {
    gelu_fwd(out, inp, n, 2);
}

void clasp_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    gelu_bwd(dinp, dout, inp, n, 2);
}

/* ---- layer norm ------------------------------------------------------------------------------ */

/* Row sums in LN_LANES independent double accumulators (element c goes to lane c % LN_LANES,
 * then the lanes are added in order): vectorisable without reassociation, and a fixed order. */

/* y = (x - mf) * r * w + b for one row: the forward's output, and the transformer block's
 * recomputation of it from the cached mean and rstd (the same code, so the same values). */
CLASP_BODY void ln_apply_row(float *y, const float *x, float mf, float r, const float *w,
                             const float *b, int C) {
    if (w && b) {
        for (int c = 0; c < C; c++) y[c] = (x[c] - mf) * r * w[c] + b[c];
    } else {
        for (int c = 0; c < C; c++) {
            float nx = (x[c] - mf) * r;
            y[c] = nx * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
        }
    }
}

CLASP_BODY void layernorm_fwd_body(float *out, float *mean, float *rstd, const float *inp,
                                   const float *w, const float *b, int N, int C, float eps) {
    int C8 = C - C % LN_LANES;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double acc[LN_LANES] = {0};
        for (int c = 0; c < C8; c += LN_LANES)
            for (int l = 0; l < LN_LANES; l++) acc[l] += (double)x[c + l];
        double s = 0.0;
        for (int l = 0; l < LN_LANES; l++) s += acc[l];
        for (int c = C8; c < C; c++) s += (double)x[c];
        double m = s / C;
        double vac[LN_LANES] = {0};
        for (int c = 0; c < C8; c += LN_LANES)
            for (int l = 0; l < LN_LANES; l++) {
                double d = (double)x[c + l] - m;
                vac[l] += d * d;
            }
        double v = 0.0;
        for (int l = 0; l < LN_LANES; l++) v += vac[l];
        for (int c = C8; c < C; c++) {
            double d = (double)x[c] - m;
            v += d * d;
        }
        v /= C;
        float mf = (float)m;
        float r = (float)(1.0 / sqrt(v + (double)eps));
        ln_apply_row(y, x, mf, r, w, b, C);
        mean[n] = mf;
        rstd[n] = r;
    }
}
SIMD_KERNEL(layernorm_fwd,
            (float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
             int N, int C, float eps),
            (out, mean, rstd, inp, w, b, N, C, eps))

void clasp_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                             const float *b, int N, int C, float eps) {
    layernorm_fwd(out, mean, rstd, inp, w, b, N, C, eps);
}

/* out (N, C) = the layer norm of inp from its cached mean and rstd (bit-identical to what
 * layernorm_fwd wrote: the same row code in the same SIMD version) */
CLASP_BODY void layernorm_apply_body(float *out, const float *inp, const float *mean,
                                     const float *rstd, const float *w, const float *b, int N,
                                     int C) {
    for (int n = 0; n < N; n++)
        ln_apply_row(out + (size_t)n * C, inp + (size_t)n * C, mean[n], rstd[n], w, b, C);
}
SIMD_KERNEL(layernorm_apply,
            (float *out, const float *inp, const float *mean, const float *rstd, const float *w,
             const float *b, int N, int C),
            (out, inp, mean, rstd, w, b, N, C))

CLASP_BODY void layernorm_bwd_body(float *dinp, float *dw, float *db, const float *dout,
                                   const float *inp, const float *w, const float *mean,
                                   const float *rstd, int N, int C) {
    int C8 = C - C % LN_LANES;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        /* dx = r * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w */
        double ag[LN_LANES] = {0}, agx[LN_LANES] = {0};
        for (int c = 0; c < C8; c += LN_LANES)
            for (int l = 0; l < LN_LANES; l++) {
                float xh = (x[c + l] - m) * r;
                float g = dy[c + l] * (w ? w[c + l] : 1.0f);
                ag[l] += (double)g;
                agx[l] += (double)g * (double)xh;
            }
        double sg = 0.0, sgx = 0.0;
        for (int l = 0; l < LN_LANES; l++) sg += ag[l], sgx += agx[l];
        for (int c = C8; c < C; c++) {
            float xh = (x[c] - m) * r;
            float g = dy[c] * (w ? w[c] : 1.0f);
            sg += (double)g;
            sgx += (double)g * (double)xh;
        }
        if (dw)
            for (int c = 0; c < C; c++) dw[c] += dy[c] * ((x[c] - m) * r);
        if (db)
            for (int c = 0; c < C; c++) db[c] += dy[c];
        if (dinp) {
            float mg = (float)(sg / C), mgx = (float)(sgx / C);
            float *dx = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - m) * r;
                float g = dy[c] * (w ? w[c] : 1.0f);
                dx[c] += (g - mg - xh * mgx) * r;
            }
        }
    }
}
SIMD_KERNEL(layernorm_bwd,
            (float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
             const float *mean, const float *rstd, int N, int C),
            (dinp, dw, db, dout, inp, w, mean, rstd, N, C))

void clasp_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int N, int C) {
    layernorm_bwd(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

/* ---- embeddings -------------------------------------------------------------------------------
 */

void clasp_embedding_forward(float *out, const int32_t *tok, const float *wte, const float *wpe,
                             int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            float *y = out + bt * C;
            const float *e = wte + (size_t)tok[bt] * C;
            if (wpe) {
                const float *p = wpe + (size_t)t * C;
                for (int c = 0; c < C; c++) y[c] = e[c] + p[c];
            } else {
                memcpy(y, e, (size_t)C * sizeof(float));
            }
        }
    }
}

void clasp_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                              int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            const float *dy = dout + bt * C;
            if (dwte) {
                float *d = dwte + (size_t)tok[bt] * C;
                for (int c = 0; c < C; c++) d[c] += dy[c];
            }
            if (dwpe) {
                float *d = dwpe + (size_t)t * C;
                for (int c = 0; c < C; c++) d[c] += dy[c];
            }
        }
    }
}

void clasp_posemb_forward(float *x, const float *wpe, int B, int T, int C) {
    size_t TC = (size_t)T * C;
    for (int b = 0; b < B; b++) {
        float *y = x + (size_t)b * TC;
        for (size_t i = 0; i < TC; i++) y[i] += wpe[i];
    }
}

void clasp_posemb_backward(float *dwpe, const float *dout, int B, int T, int C) {
    size_t TC = (size_t)T * C;
    for (int b = 0; b < B; b++) {
        const float *dy = dout + (size_t)b * TC;
        for (size_t i = 0; i < TC; i++) dwpe[i] += dy[i];
    }
}

/* ---- attention ----------------------------------------------------------------------------------
 */

/* The forward of one (batch, head): y (T, hs; rows C apart), a (T, T), q, k, v (T, hs; rows C3
 * apart), pm (T) or NULL; scale = 1/sqrt(hs). */
typedef void attn_fwd_head_fn(float *y, float *a, float *work, const float *q, const float *k,
                              const float *v, const uint8_t *pm, int causal, int T, int hs, int C3,
                              int C, float scale);

/* out (B, T, C), att (B, NH, T, T) from qkv (B, T, 3C) and pad_mask (B, T) or NULL: `head` on
 * every (batch, head) in order. */
static void attention_fwd_heads(attn_fwd_head_fn *head, float *out, float *att, float *work,
                                const float *qkv, const uint8_t *pad_mask, int causal, int B, int T,
                                int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        const uint8_t *pm = pad_mask ? pad_mask + (size_t)b * T : NULL;
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            float *a = att + ((size_t)b * NH + h) * T * T;
            float *y = out + (size_t)b * T * C + (size_t)h * hs;
            head(y, a, work, q, q + C, q + 2 * C, pm, causal, T, hs, C3, C, scale);
        }
    }
}

/* Baseline CPUs (and non-GCC builds) use OpenBLAS for the per-head products: work holds one
 * (T, T) score-gradient tile. */
static void attn_fwd_head_blas(float *y, float *a, float *work, const float *q, const float *k,
                               const float *v, const uint8_t *pm, int causal, int T, int hs, int C3,
                               int C, float scale) {
    (void)work;
    clasp_gemm(0, 1, T, T, hs, scale, q, C3, k, C3, 0.0f, a, T);
    for (int i = 0; i < T; i++) {
        float *r = a + (size_t)i * T;
        int jend = causal ? i + 1 : T;
        float mx = -INFINITY;
        for (int j = 0; j < jend; j++)
            if (!(pm && pm[j]) && r[j] > mx) mx = r[j];
        if (mx == -INFINITY) { /* every key masked: zero row, zero output */
            for (int j = 0; j < T; j++) r[j] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (int j = 0; j < jend; j++) {
            float e = (pm && pm[j]) ? 0.0f : expf(r[j] - mx);
            r[j] = e;
            sum += (double)e;
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < jend; j++) r[j] *= inv;
        for (int j = jend; j < T; j++) r[j] = 0.0f;
    }
    clasp_gemm(0, 0, T, hs, T, 1.0f, a, T, v, C3, 0.0f, y, C);
}

static void attention_bwd_blas(float *dqkv, float *work, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    float *da = work; /* (T, T) */
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            size_t qo = (size_t)b * T * C3 + (size_t)h * hs;
            const float *q = qkv + qo, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + qo, *dk = dq + C, *dv = dq + 2 * C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *dy = dout + (size_t)b * T * C + (size_t)h * hs;
            /* da (T, T) = dy (T, hs) @ v^T (hs, T) */
            clasp_gemm(0, 1, T, T, hs, 1.0f, dy, C, v, C3, 0.0f, da, T);
            /* dv (T, hs) += a^T (T, T) @ dy (T, hs) */
            clasp_gemm(1, 0, T, hs, T, 1.0f, a, T, dy, C, 1.0f, dv, C3);
            /* softmax backward in place: dpre = a * (da - sum(a * da)); masked a = 0 gives 0 */
            for (int i = 0; i < T; i++) {
                const float *ar = a + (size_t)i * T;
                float *dr = da + (size_t)i * T;
                double s = 0.0;
                for (int j = 0; j < T; j++) s += (double)ar[j] * (double)dr[j];
                float sf = (float)s;
                for (int j = 0; j < T; j++) dr[j] = ar[j] * (dr[j] - sf);
            }
            /* dq += scale * dpre @ k;  dk += scale * dpre^T @ q */
            clasp_gemm(0, 0, T, hs, T, scale, da, T, k, C3, 1.0f, dq, C3);
            clasp_gemm(1, 0, T, hs, T, scale, da, T, q, C3, 1.0f, dk, C3);
        }
    }
}

/* Attention runs per (batch, head) on tiles small enough for L1 (OpenBLAS reaches a fraction
 * of its peak on 32 x 32 x 32 products). The tile's K, V (and Q) are copied into zero-padded
 * scratch with T and hs rounded up to VL = 8 floats, so every product is a loop of 8-float
 * vector FMAs (GCC vector extensions; AVX2 and AVX-512 versions, OpenBLAS otherwise) with the
 * accumulators in registers: scores as rows of q_i K^T from a transposed copy of K, the rest
 * as axpy updates of hs-long rows. Softmax sums run in LN_LANES double lanes. Causal rows stop
 * at the diagonal. One code path serves every shape; (T=32, hs=32) is also compiled with
 * constant sizes. */
#define VL 8
typedef float vf8 __attribute__((vector_size(VL * sizeof(float))));
/* unaligned, aliasing view of VL floats: loads and stores through it are plain float accesses */
typedef float vf8u __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));
#define vload(p)     (*(const vf8u *)(p))
#define vstore(p, v) (*(vf8u *)(p) = (v))

static int round_vl(int n) {
    return (n + VL - 1) / VL * VL;
}

size_t clasp_attention_work_floats(int B, int T, int C, int NH) {
    size_t Tp = (size_t)round_vl(T), Hp = (size_t)round_vl(C / NH);
    /* backward: V^T, K, Q, dK, dV tiles, a score row, a dy row (the forward: K^T, V, a score
     * row, an output row, rounded q and a rows); the BLAS path: one (T, T) */
    size_t n = 5 * Tp * Hp + Tp + Hp, nb = (size_t)T * T;
    /* batched products (oneDNN): the score gradients of every (batch, head) */
    if (clasp_compute_batched_native()) nb = (size_t)B * (size_t)NH * (size_t)T * (size_t)T;
    return n > nb ? n : nb;
}

/* dst (R, Cp) = src (r < rows, c < cols; row stride ld), zero elsewhere; transposed: dst (Cp, R)
 */
CLASP_BODY void attn_pack(float *restrict dst, const float *src, int rows, int cols, int ld, int Rp,
                          int Cp, int transpose) {
    if (transpose) {
        for (int c = 0; c < Cp; c++)
            for (int r = 0; r < Rp; r++)
                dst[(size_t)c * Rp + r] = (r < rows && c < cols) ? src[(size_t)r * ld + c] : 0.0f;
    } else {
        for (int r = 0; r < Rp; r++)
            for (int c = 0; c < Cp; c++)
                dst[(size_t)r * Cp + c] = (r < rows && c < cols) ? src[(size_t)r * ld + c] : 0.0f;
    }
}

/* out[0..n_cols) = sum_{k < n_rows} (c[k] * scale) * M[k, 0..n_cols) (M rows `stride` floats
 * apart; n_cols a multiple of VL). Two column tiles and even/odd k in separate accumulators
 * (four independent FMA chains), added at the end. */
CLASP_BODY void attn_row_weighted_sum(float *restrict out, const float *c, float scale,
                                      const float *restrict M, int n_rows, int stride, int n_cols) {
    int j0 = 0;
    for (; j0 + 2 * VL <= n_cols; j0 += 2 * VL) {
        vf8 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
        int k = 0;
        for (; k + 2 <= n_rows; k += 2) {
            const float *m0 = M + (size_t)k * stride + j0, *m1 = m0 + stride;
            float c0 = c[k] * scale, c1 = c[k + 1] * scale;
            a0 += c0 * vload(m0), b0 += c0 * vload(m0 + VL);
            a1 += c1 * vload(m1), b1 += c1 * vload(m1 + VL);
        }
        if (k < n_rows) {
            const float *m0 = M + (size_t)k * stride + j0;
            float c0 = c[k] * scale;
            a0 += c0 * vload(m0), b0 += c0 * vload(m0 + VL);
        }
        vstore(out + j0, a0 + a1);
        vstore(out + j0 + VL, b0 + b1);
    }
    for (; j0 < n_cols; j0 += VL) {
        vf8 a0 = {0}, a1 = {0};
        int k = 0;
        for (; k + 2 <= n_rows; k += 2) {
            a0 += (c[k] * scale) * vload(M + (size_t)k * stride + j0);
            a1 += (c[k + 1] * scale) * vload(M + (size_t)(k + 1) * stride + j0);
        }
        if (k < n_rows) a0 += (c[k] * scale) * vload(M + (size_t)k * stride + j0);
        vstore(out + j0, a0 + a1);
    }
}

/* out[0..Tn) = scale * sum_{d < hs} x[d] * MT[d, 0..Tn) (MT is (Hp, Tp)); out[Tn..Tp) = 0. */
CLASP_BODY void attn_row_times_t(float *restrict out, const float *x, const float *restrict MT,
                                 int hs, int Tp, int Tn, float scale) {
    /* only the first Tn columns (a multiple of VL) are needed; the rest are set to 0 */
    for (int j = Tn; j < Tp; j += VL) vstore(out + j, (vf8){0});
    attn_row_weighted_sum(out, x, scale, MT, hs, Tp, Tn);
}

/* out[0..Hp) = sum_{j < n} w[j] * M[j, 0..Hp) (M is (Tp, Hp)) */
CLASP_BODY void attn_row_combine(float *restrict out, const float *w, const float *restrict M,
                                 int n, int Hp) {
    attn_row_weighted_sum(out, w, 1.0f, M, n, Hp, Hp);
}

/* Keys past jend (causal rows) are masked: the row loops below stop at the first multiple of
 * LN_LANES at or after jend (masked lanes inside it are handled by the masks). */
static inline int attn_row_end(int jend, int T) {
    int e = (jend + LN_LANES - 1) / LN_LANES * LN_LANES;
    return e < T ? e : T;
}

CLASP_BODY float attn_row_max(const float *r, const uint8_t *pm, int jend, int T) {
    float ml[LN_LANES];
    for (int l = 0; l < LN_LANES; l++) ml[l] = -INFINITY;
    T = attn_row_end(jend, T);
    int T8 = T - T % LN_LANES;
    for (int j0 = 0; j0 < T8; j0 += LN_LANES)
        for (int l = 0; l < LN_LANES; l++) {
            int j = j0 + l;
            int ok = (j < jend) & !(pm && pm[j]);
            float v = ok ? r[j] : -INFINITY;
            ml[l] = v > ml[l] ? v : ml[l];
        }
    float mx = -INFINITY;
    for (int l = 0; l < LN_LANES; l++) mx = ml[l] > mx ? ml[l] : mx;
    for (int j = T8; j < T; j++) {
        int ok = (j < jend) & !(pm && pm[j]);
        float v = ok ? r[j] : -INFINITY;
        mx = v > mx ? v : mx;
    }
    return mx;
}

/* softmax of r[0..T) over the unmasked keys, masked entries 0 (r has Tp >= T entries) */
CLASP_BODY void attn_row_softmax(float *r, const uint8_t *pm, int jend, int T, float mx) {
    double sl[LN_LANES] = {0};
    int Tfull = T;
    T = attn_row_end(jend, T);
    for (int j = T; j < Tfull; j++) r[j] = 0.0f;
    int T8 = T - T % LN_LANES;
    for (int j0 = 0; j0 < T8; j0 += LN_LANES)
        for (int l = 0; l < LN_LANES; l++) {
            int j = j0 + l;
            int ok = (j < jend) & !(pm && pm[j]);
            float e = exp_fast(r[j] - mx);
            e = ok ? e : 0.0f;
            r[j] = e;
            sl[l] += (double)e;
        }
    double sum = 0.0;
    for (int l = 0; l < LN_LANES; l++) sum += sl[l];
    for (int j = T8; j < T; j++) {
        int ok = (j < jend) & !(pm && pm[j]);
        float e = exp_fast(r[j] - mx);
        e = ok ? e : 0.0f;
        r[j] = e;
        sum += (double)e;
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < T; j++) r[j] *= inv;
}

CLASP_BODY void attn_fwd_bh(float *restrict y, float *restrict a, float *restrict work,
                            const float *q, const float *k, const float *v, const uint8_t *pm,
                            int causal, int T, int hs, int C3, int C, float scale) {
    int Tp = round_vl(T), Hp = round_vl(hs);
    float *restrict KT = work, *restrict Vp = KT + (size_t)Hp * Tp;
    float *rp = Vp + (size_t)Tp * Hp, *restrict yp = rp + Tp;
    /* bf16 (the thread's precision): both inputs of each product rounded, as clasp_gemm */
    int bf = clasp_compute_precision() == CLASP_BF16;
    float *restrict qr = yp + Hp, *restrict ar = qr + Hp; /* rounded q row and a row */
    attn_pack(KT, k, T, hs, C3, Tp, Hp, 1);
    attn_pack(Vp, v, T, hs, C3, Tp, Hp, 0);
    if (bf) {
        clasp_bf16_round_n(KT, (size_t)Hp * Tp);
        clasp_bf16_round_n(Vp, (size_t)Tp * Hp);
    }
    for (int i = 0; i < T; i++) {
        float *r = a + (size_t)i * T;
        if (T == Tp) rp = r; /* no padding: work in the att row itself */
        int jend = causal ? i + 1 : T;
        const float *qi = q + (size_t)i * C3;
        if (bf) {
            for (int d = 0; d < hs; d++) qr[d] = clasp_bf16_round(qi[d]);
            qi = qr;
        }
        attn_row_times_t(rp, qi, KT, hs, Tp, round_vl(jend), scale);
        float mx = attn_row_max(rp, pm, jend, T);
        float *yi = y + (size_t)i * C;
        if (mx == -INFINITY) { /* every key masked: zero row, zero output */
            for (int j = 0; j < T; j++) r[j] = 0.0f;
            for (int d = 0; d < hs; d++) yi[d] = 0.0f;
            continue;
        }
        attn_row_softmax(rp, pm, jend, T, mx);
        if (rp != r)
            for (int j = 0; j < T; j++) r[j] = rp[j];
        const float *pa = rp;
        if (bf) {
            for (int j = 0; j < jend; j++) ar[j] = clasp_bf16_round(rp[j]);
            pa = ar;
        }
        attn_row_combine(yp, pa, Vp, jend, Hp);
        for (int d = 0; d < hs; d++) yi[d] = yp[d];
    }
}

CLASP_BODY void attn_fwd_head_body(float *y, float *a, float *work, const float *q, const float *k,
                                   const float *v, const uint8_t *pm, int causal, int T, int hs,
                                   int C3, int C, float scale) {
    if (T == 32 && hs == 32)
        attn_fwd_bh(y, a, work, q, k, v, pm, causal, 32, 32, C3, C, scale);
    else
        attn_fwd_bh(y, a, work, q, k, v, pm, causal, T, hs, C3, C, scale);
}
SIMD_KERNEL(attn_fwd_head,
            (float *y, float *a, float *work, const float *q, const float *k, const float *v,
             const uint8_t *pm, int causal, int T, int hs, int C3, int C, float scale),
            (y, a, work, q, k, v, pm, causal, T, hs, C3, C, scale))

/* ---- attention as batched products (backends with native batches: oneDNN) ----------------
 * The four (forward: two) products of every (batch, head) are one clasp_gemm_batched call
 * each, read in place from qkv (B, T, 3C) with strides; softmax and its backward run per row
 * in fp32 with the SIMD row kernels above. */

/* softmax of every score row (B, NH, T, T) in place, masked keys 0 */
CLASP_BODY void attn_softmax_rows_body(float *att, const uint8_t *pad_mask, int causal, int B,
                                       int NH, int T) {
    for (int b = 0; b < B; b++) {
        const uint8_t *pm = pad_mask ? pad_mask + (size_t)b * T : NULL;
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                float *r = att + (((size_t)b * NH + h) * T + i) * T;
                int jend = causal ? i + 1 : T;
                float mx = attn_row_max(r, pm, jend, T);
                if (mx == -INFINITY) { /* every key masked: zero row */
                    for (int j = 0; j < T; j++) r[j] = 0.0f;
                    continue;
                }
                attn_row_softmax(r, pm, jend, T, mx);
            }
    }
}
SIMD_KERNEL(attn_softmax_rows,
            (float *att, const uint8_t *pad_mask, int causal, int B, int NH, int T),
            (att, pad_mask, causal, B, NH, T))

/* ds = a * (da - sum(a * da)) * scale in place over n rows of T */
CLASP_BODY void attn_softmax_bwd_rows_body(float *restrict da, const float *restrict a, size_t n,
                                           int T, float scale) {
    int T8 = T - T % LN_LANES;
    for (size_t r = 0; r < n; r++) {
        const float *ar = a + r * T;
        float *dr = da + r * T;
        double sl[LN_LANES] = {0};
        for (int j0 = 0; j0 < T8; j0 += LN_LANES)
            for (int l = 0; l < LN_LANES; l++) sl[l] += (double)ar[j0 + l] * (double)dr[j0 + l];
        double sd = 0.0;
        for (int l = 0; l < LN_LANES; l++) sd += sl[l];
        for (int j = T8; j < T; j++) sd += (double)ar[j] * (double)dr[j];
        float sf = (float)sd;
        for (int j = 0; j < T; j++) dr[j] = ar[j] * (dr[j] - sf) * scale;
    }
}
SIMD_KERNEL(attn_softmax_bwd_rows,
            (float *restrict da, const float *restrict a, size_t n, int T, float scale),
            (da, a, n, T, scale))

/* (B, NH) products over tiles of x: rows `ld` apart, batch b at b * sb, head h at h * hs */
static clasp_gemm_batch attn_batch_(int B, int NH, const float *A, int lda, long long sa,
                                    long long sa2, const float *Bm, int ldb, long long sb,
                                    long long sb2, float *C, int ldc, long long sc, long long sc2) {
    return (clasp_gemm_batch){.batch = B,
                              .batch2 = NH,
                              .A = A,
                              .lda = lda,
                              .sa = sa,
                              .sa2 = sa2,
                              .B = Bm,
                              .ldb = ldb,
                              .sb = sb,
                              .sb2 = sb2,
                              .C = C,
                              .ldc = ldc,
                              .sc = sc,
                              .sc2 = sc2};
}

static void attention_fwd_batched(float *out, float *att, const float *qkv, const uint8_t *pad_mask,
                                  int causal, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    long long sq = (long long)T * C3, sy = (long long)T * C, sa = (long long)NH * T * T;
    long long tt = (long long)T * T;
    float scale = 1.0f / sqrtf((float)hs);
    const uint16_t *qh = bf16_copy_(0, qkv, (size_t)B * T * C3);
    /* scores (T, T) = scale q k^T */
    clasp_gemm_batch g = attn_batch_(B, NH, qkv, C3, sq, hs, qkv + C, C3, sq, hs, att, T, sa, tt);
    g.Ah = qh, g.Bh = qh ? qh + C : NULL;
    clasp_gemm_batched(0, 1, T, T, hs, scale, 0.0f, &g);
    attn_softmax_rows(att, pad_mask, causal, B, NH, T);
    const uint16_t *ah = bf16_copy_(1, att, (size_t)B * sa);
    /* y (T, hs) = a v, written into out's head columns */
    g = attn_batch_(B, NH, att, T, sa, tt, qkv + 2 * C, C3, sq, hs, out, C, sy, hs);
    g.Ah = ah, g.Bh = qh ? qh + 2 * C : NULL;
    clasp_gemm_batched(0, 0, T, hs, T, 1.0f, 0.0f, &g);
}

/* acc = 0 overwrites dqkv, 1 adds to it */
static void attention_bwd_batched(float *dqkv, float *work, const float *dout, const float *qkv,
                                  const float *att, int B, int T, int C, int NH, int acc) {
    int hs = C / NH, C3 = 3 * C;
    long long sq = (long long)T * C3, sy = (long long)T * C, sa = (long long)NH * T * T;
    long long tt = (long long)T * T;
    float scale = 1.0f / sqrtf((float)hs), beta = acc ? 1.0f : 0.0f;
    float *da = work; /* (B, NH, T, T) */
    const uint16_t *qh = bf16_copy_(0, qkv, (size_t)B * T * C3);
    const uint16_t *dyh = bf16_copy_(2, dout, (size_t)B * T * C);
    const uint16_t *ah = bf16_copy_(1, att, (size_t)B * sa);
    /* da = dy v^T; dv = a^T dy */
    clasp_gemm_batch g =
        attn_batch_(B, NH, dout, C, sy, hs, qkv + 2 * C, C3, sq, hs, da, T, sa, tt);
    g.Ah = dyh, g.Bh = qh ? qh + 2 * C : NULL;
    clasp_gemm_batched(0, 1, T, T, hs, 1.0f, 0.0f, &g);
    g = attn_batch_(B, NH, att, T, sa, tt, dout, C, sy, hs, dqkv + 2 * C, C3, sq, hs);
    g.Ah = ah, g.Bh = dyh;
    clasp_gemm_batched(1, 0, T, hs, T, 1.0f, beta, &g);
    attn_softmax_bwd_rows(da, att, (size_t)B * NH * T, T, scale);
    const uint16_t *dsh = bf16_copy_(3, da, (size_t)B * sa);
    /* dq = ds k; dk = ds^T q */
    g = attn_batch_(B, NH, da, T, sa, tt, qkv + C, C3, sq, hs, dqkv, C3, sq, hs);
    g.Ah = dsh, g.Bh = qh ? qh + C : NULL;
    clasp_gemm_batched(0, 0, T, hs, T, 1.0f, beta, &g);
    g = attn_batch_(B, NH, da, T, sa, tt, qkv, C3, sq, hs, dqkv + C, C3, sq, hs);
    g.Ah = dsh, g.Bh = qh;
    clasp_gemm_batched(1, 0, T, hs, T, 1.0f, beta, &g);
}

void clasp_attention_forward(float *out, float *att, float *work, const float *qkv,
                             const uint8_t *pad_mask, int causal, int B, int T, int C, int NH) {
    /* out (B, T, C), att (B, NH, T, T), qkv (B, T, 3C), pad_mask (B, T) or NULL */
    if (clasp_compute_batched_native()) {
        attention_fwd_batched(out, att, qkv, pad_mask, causal, B, T, C, NH);
        return;
    }
    attention_fwd_heads(simd_level() >= 1 ? attn_fwd_head : attn_fwd_head_blas, out, att, work, qkv,
                        pad_mask, causal, B, T, C, NH);
}

/* One (batch, head): rows of att past the last nonzero entry contribute nothing, so causal
 * rows stop at the diagonal (jend); masked keys have a = 0 and get zero gradients. */
/* acc = 1: dq, dk, dv += gradients; acc = 0: dq, dk, dv = gradients (the same values as
 * adding to zeros) */
CLASP_BODY void attn_bwd_bh(float *dq, float *dk, float *dv, float *restrict work, const float *dy,
                            const float *q, const float *k, const float *v, const float *a,
                            int causal, int T, int hs, int C3, int C, float scale, int acc) {
    int Tp = round_vl(T), Hp = round_vl(hs);
    size_t tile = (size_t)Tp * Hp;
    float *restrict VT = work, *restrict Kp = VT + tile, *restrict Qp = Kp + tile;
    float *restrict dKp = Qp + tile, *restrict dVp = dKp + tile;
    float *restrict da = dVp + tile, *restrict dyp = da + Tp;
    int bf = clasp_compute_precision() == CLASP_BF16; /* as in attn_fwd_bh */
    attn_pack(VT, v, T, hs, C3, Tp, Hp, 1);
    attn_pack(Kp, k, T, hs, C3, Tp, Hp, 0);
    attn_pack(Qp, q, T, hs, C3, Tp, Hp, 0);
    if (bf) clasp_bf16_round_n(VT, 3 * tile);
    memset(dKp, 0, 2 * tile * sizeof(float));
    for (int d = hs; d < Hp; d++) dyp[d] = 0.0f;
    for (int i = 0; i < T; i++) {
        const float *ar = a + (size_t)i * T;
        const float *dyi = dy + (size_t)i * C;
        int jend = causal ? i + 1 : T;
        for (int d = 0; d < hs; d++) dyp[d] = bf ? clasp_bf16_round(dyi[d]) : dyi[d];
        /* da = dy_i V^T */
        attn_row_times_t(da, dyp, VT, hs, Tp, round_vl(jend), 1.0f);
        /* dv_j += a_ij dy_i */
        vf8 g0 = vload(dyp);
        for (int j = 0; j < jend; j++) {
            float aij = bf ? clasp_bf16_round(ar[j]) : ar[j];
            float *dvj = dVp + (size_t)j * Hp;
            vstore(dvj, vload(dvj) + aij * g0);
            for (int d0 = VL; d0 < Hp; d0 += VL)
                vstore(dvj + d0, vload(dvj + d0) + aij * vload(dyp + d0));
        }
        /* softmax backward: ds = a * (da - sum(a * da)), times the score scale */
        double sl[LN_LANES] = {0};
        int T8 = T - T % LN_LANES;
        for (int j0 = 0; j0 < T8; j0 += LN_LANES)
            for (int l = 0; l < LN_LANES; l++) sl[l] += (double)ar[j0 + l] * (double)da[j0 + l];
        double sd = 0.0;
        for (int l = 0; l < LN_LANES; l++) sd += sl[l];
        for (int j = T8; j < T; j++) sd += (double)ar[j] * (double)da[j];
        float sf = (float)sd;
        for (int j = 0; j < T; j++) da[j] = ar[j] * (da[j] - sf) * scale;
        if (bf)
            for (int j = 0; j < T; j++) da[j] = clasp_bf16_round(da[j]);
        /* dk_j += ds_ij q_i */
        const float *qi = Qp + (size_t)i * Hp;
        for (int j = 0; j < jend; j++) {
            float g = da[j];
            float *dkj = dKp + (size_t)j * Hp;
            for (int d0 = 0; d0 < Hp; d0 += VL)
                vstore(dkj + d0, vload(dkj + d0) + g * vload(qi + d0));
        }
        /* dq_i += sum_j ds_ij k_j */
        attn_row_combine(dyp, da, Kp, jend, Hp);
        float *dqi = dq + (size_t)i * C3;
        if (acc)
            for (int d = 0; d < hs; d++) dqi[d] += dyp[d];
        else
            for (int d = 0; d < hs; d++) dqi[d] = dyp[d];
    }
    for (int j = 0; j < T; j++) {
        float *dkj = dk + (size_t)j * C3, *dvj = dv + (size_t)j * C3;
        const float *gk = dKp + (size_t)j * Hp, *gv = dVp + (size_t)j * Hp;
        if (acc) {
            for (int d = 0; d < hs; d++) dkj[d] += gk[d], dvj[d] += gv[d];
        } else {
            for (int d = 0; d < hs; d++) dkj[d] = gk[d], dvj[d] = gv[d];
        }
    }
}

CLASP_BODY void attention_bwd_body(float *dqkv, float *work, const float *dout, const float *qkv,
                                   const float *att, int B, int T, int C, int NH, int acc) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            size_t qo = (size_t)b * T * C3 + (size_t)h * hs;
            const float *q = qkv + qo;
            float *dq = dqkv + qo;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *dy = dout + (size_t)b * T * C + (size_t)h * hs;
            /* causality is read off att: every row is treated as full (zeros cost flops only)
             * unless the upper triangle is zero, checked once per (b, h) */
            int causal = 1;
            for (int i = 0; i < T && causal; i++)
                for (int j = i + 1; j < T; j++)
                    if (a[(size_t)i * T + j] != 0.0f) {
                        causal = 0;
                        break;
                    }
            if (T == 32 && hs == 32)
                attn_bwd_bh(dq, dq + C, dq + 2 * C, work, dy, q, q + C, q + 2 * C, a, causal, 32,
                            32, C3, C, scale, acc);
            else
                attn_bwd_bh(dq, dq + C, dq + 2 * C, work, dy, q, q + C, q + 2 * C, a, causal, T, hs,
                            C3, C, scale, acc);
        }
    }
}
SIMD_KERNEL(attention_bwd,
            (float *dqkv, float *work, const float *dout, const float *qkv, const float *att, int B,
             int T, int C, int NH, int acc),
            (dqkv, work, dout, qkv, att, B, T, C, NH, acc))

/* acc = 0 overwrites dqkv instead of adding to it */
static void attention_backward(float *dqkv, float *work, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH, int acc) {
    if (clasp_compute_batched_native()) {
        attention_bwd_batched(dqkv, work, dout, qkv, att, B, T, C, NH, acc);
    } else if (simd_level() >= 1) {
        attention_bwd(dqkv, work, dout, qkv, att, B, T, C, NH, acc);
    } else {
        if (!acc) memset(dqkv, 0, (size_t)B * T * 3 * C * sizeof(float));
        attention_bwd_blas(dqkv, work, dout, qkv, att, B, T, C, NH);
    }
}

void clasp_attention_backward(float *dqkv, float *work, const float *dout, const float *qkv,
                              const float *att, int B, int T, int C, int NH) {
    if (!dqkv) return;
    attention_backward(dqkv, work, dout, qkv, att, B, T, C, NH, 1);
}

/* ---- L2 normalisation ---------------------------------------------------------------------- */

void clasp_l2norm_forward(float *out, float *norm, const float *inp, int N, int D, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *y = out + (size_t)n * D;
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)x[d] * (double)x[d];
        float nr = (float)sqrt(s);
        if (!(nr > eps)) nr = eps;
        for (int d = 0; d < D; d++) y[d] = x[d] / nr;
        norm[n] = nr;
    }
}

void clasp_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                           int N, int D) {
    /* y = x / n with n = ||x||: dx = (dy - y * (y . dy)) / n. When the norm was clamped to
     * eps, n is a constant: dx = dy / eps. Such rows are recognised by ||y|| < 1, since
     * then y = x / eps with ||x|| < eps (rows within 1e-5 of the boundary count as unclamped). */
    for (int n = 0; n < N; n++) {
        const float *y = out + (size_t)n * D;
        const float *dy = dout + (size_t)n * D;
        float *dx = dinp + (size_t)n * D;
        float nr = norm[n];
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)y[d] * (double)dy[d];
        float sf = (float)s;
        double yy = 0.0;
        for (int d = 0; d < D; d++) yy += (double)y[d] * (double)y[d];
        if (yy < 1.0 - 1e-5) sf = 0.0f;
        for (int d = 0; d < D; d++) dx[d] += (dy[d] - y[d] * sf) / nr;
    }
}

/* ---- dropout ----------------------------------------------------------------------------------
 */

/* Element i is decided by word i % 4 of Philox block i / 4 of the stream keyed by
 * (seed, CLASP_RNG_DROPOUT, step, layer), i.e. the i-th clasp_rng_u32 of that stream, so a
 * decision depends only on i and the key (not on how the loop is split). */
static void dropout_apply(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t step,
                          uint64_t layer, int accumulate) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) y[i] = accumulate ? y[i] + x[i] : x[i];
        return;
    }
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    clasp_rng r;
    clasp_rng_init(&r, seed, CLASP_RNG_DROPOUT, step, layer);
    uint32_t ctr[4] = {0, r.ctr[1], r.ctr[2], r.ctr[3]};
    uint32_t words[4];
    for (size_t base = 0; base < n; base += 4) {
        ctr[0] = (uint32_t)(base / 4);
        clasp_philox4x32(words, ctr, r.key);
        size_t m = n - base < 4 ? n - base : 4;
        for (size_t j = 0; j < m; j++) {
            float u = (float)(words[j] >> 8) * (1.0f / 16777216.0f);
            float v = u >= p ? x[base + j] * scale : 0.0f;
            y[base + j] = accumulate ? y[base + j] + v : v;
        }
    }
}

void clasp_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed,
                           uint64_t step, uint64_t layer) {
    dropout_apply(out, inp, n, p, seed, step, layer, 0);
}

void clasp_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                            uint64_t step, uint64_t layer) {
    dropout_apply(dinp, dout, n, p, seed, step, layer, 1);
}

/* ---- residual ----------------------------------------------------------------------------------
 */

void clasp_add_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* ---- pre-LN transformer block ---------------------------------------------------------------- */

/* The block caches only what cannot be recomputed cheaply: the LayerNorm statistics (not
 * their outputs), qkv, the attention probabilities, the attention output, res1 and the
 * pre-activation fc1 (not GELU's output). The backward recomputes ln1, ln2 and act into its
 * scratch from those, with the forward's own code, so it sees bit-identical values. */

size_t clasp_block_acts_floats(const clasp_block_dims *d) {
    size_t BT = (size_t)d->B * d->T, C = (size_t)d->C, F = (size_t)d->F;
    size_t att = (size_t)d->B * d->NH * d->T * d->T;
    /* ln1 stats, qkv, att, atty, res1, ln2 stats, fc1 (+ the two branches with layer scale) */
    return 2 * BT + 3 * BT * C + att + BT * C + BT * C + 2 * BT + BT * F +
           (d->layer_scale ? 2 * BT * C : 0);
}

void clasp_block_acts_point(clasp_block_acts *a, float *buf, const clasp_block_dims *d) {
    size_t BT = (size_t)d->B * d->T, C = (size_t)d->C, F = (size_t)d->F;
    size_t att = (size_t)d->B * d->NH * d->T * d->T;
    float *p = buf;
    a->ln1_mean = p, p += BT;
    a->ln1_rstd = p, p += BT;
    a->qkv = p, p += 3 * BT * C;
    a->att = p, p += att;
    a->atty = p, p += BT * C;
    a->res1 = p, p += BT * C;
    a->ln2_mean = p, p += BT;
    a->ln2_rstd = p, p += BT;
    a->fc1 = p, p += BT * F;
    a->lsq = a->lsm = NULL;
    if (d->layer_scale) {
        a->lsq = p, p += BT * C;
        a->lsm = p, p += BT * C;
    }
}

/* res (BT, C) = base + gamma * branch, keeping branch in keep (the backward's dgamma input). */
static void layer_scale_add_(float *res, float *keep, const float *base, const float *branch,
                             const float *gamma, int BT, int C) {
    for (size_t r = 0; r < (size_t)BT; r++)
        for (int c = 0; c < C; c++) {
            size_t i = r * (size_t)C + (size_t)c;
            float v = branch[i];
            keep[i] = v;
            res[i] = base[i] + gamma[c] * v;
        }
}

/* dgamma (C) += column sums of dres * branch (when dgamma is not NULL); dbranch = dres * gamma
 * (dbranch may be dres). */
static void layer_scale_backward_(float *dbranch, float *dgamma, const float *dres,
                                  const float *branch, const float *gamma, int BT, int C) {
    for (size_t r = 0; r < (size_t)BT; r++)
        for (int c = 0; c < C; c++) {
            size_t i = r * (size_t)C + (size_t)c;
            if (dgamma) dgamma[c] += dres[i] * branch[i];
            dbranch[i] = dres[i] * gamma[c];
        }
}

/* work layout (forward and backward): [0, nC) dres1 | [nC, nC + big) big (act in the
 * forward; dact, dqkv) | [nC + big, 2 nC + big) tmp (ln1, ln2 and their gradients) | nF floats
 * for the recomputed act (backward) | attention work */
size_t clasp_block_work_floats(const clasp_block_dims *d) {
    size_t BT = (size_t)d->B * d->T, C = (size_t)d->C, F = (size_t)d->F;
    size_t big = BT * F > 3 * BT * C ? BT * F : 3 * BT * C;
    return BT * C + big + BT * C + BT * F + clasp_attention_work_floats(d->B, d->T, d->C, d->NH);
}

void clasp_block_forward(float *out, clasp_block_acts *a, float *work, const float *inp,
                         const clasp_block_params *p, const uint8_t *pad_mask,
                         const clasp_block_dims *d) {
    int BT = d->B * d->T, C = d->C, F = d->F;
    size_t nC = (size_t)BT * C, nF = (size_t)BT * F;
    size_t big = nF > 3 * nC ? nF : 3 * nC;
    float *act = work + nC, *ln = work + nC + big, *awork = ln + nC + nF;
    clasp_layernorm_forward(ln, a->ln1_mean, a->ln1_rstd, inp, p->ln1_w, p->ln1_b, BT, C,
                            d->ln_eps);
    clasp_linear_forward(a->qkv, ln, p->qkv_w, p->qkv_b, BT, C, 3 * C);
    clasp_attention_forward(a->atty, a->att, awork, a->qkv, pad_mask, d->causal, d->B, d->T, C,
                            d->NH);
    clasp_linear_forward(a->res1, a->atty, p->proj_w, p->proj_b, BT, C, C);
    if (d->layer_scale)
        layer_scale_add_(a->res1, a->lsq, inp, a->res1, p->ls1, BT, C);
    else
        for (size_t i = 0; i < nC; i++) a->res1[i] += inp[i];
    clasp_layernorm_forward(ln, a->ln2_mean, a->ln2_rstd, a->res1, p->ln2_w, p->ln2_b, BT, C,
                            d->ln_eps);
    clasp_linear_forward(a->fc1, ln, p->fc1_w, p->fc1_b, BT, C, F);
    /* in bf16 GELU writes fc2's input as bf16 directly (no fp32 copy, no conversion pass); the
     * bias then joins the residual add, in the order the product would add it */
    uint16_t *acth =
        clasp_compute_precision() == CLASP_BF16 ? clasp_compute_bf16_scratch(GELU_SLOT, nF) : NULL;
    if (acth) {
        gelu_bf16_(acth, NULL, a->fc1, nF, d->gelu_tanh);
        gemm_h_(0, 1, BT, C, F, NULL, acth, F, p->fc2_w, NULL, F, 0.0f, out, C);
        if (d->layer_scale) {
            for (size_t r = 0; r < (size_t)BT; r++)
                for (int c = 0; c < C; c++) out[r * C + c] += p->fc2_b[c];
            layer_scale_add_(out, a->lsm, a->res1, out, p->ls2, BT, C);
            return;
        }
        for (size_t r = 0; r < (size_t)BT; r++)
            for (int c = 0; c < C; c++)
                out[r * C + c] = (out[r * C + c] + p->fc2_b[c]) + a->res1[r * C + c];
        return;
    }
    gelu_fwd(act, a->fc1, nF, d->gelu_tanh);
    clasp_linear_forward(out, act, p->fc2_w, p->fc2_b, BT, F, C);
    if (d->layer_scale) {
        layer_scale_add_(out, a->lsm, a->res1, out, p->ls2, BT, C);
        return;
    }
    for (size_t i = 0; i < nC; i++) out[i] += a->res1[i];
}

/* The weight and bias gradients of a linear layer: dw (OC, C) += dout^T inp, db += column
 * sums of dout (what linear_backward adds to them) */
static void linear_backward_params(float *dw, float *db, const float *dout, const uint16_t *douth,
                                   const float *inp, const uint16_t *inph, int N, int C, int OC) {
    linear_backward(NULL, 0.0f, dw, db, dout, douth, inp, inph, NULL, N, C, OC);
}

/* dinp (N, C) = dout (N, OC) @ w (OC, C), overwritten */
static void linear_backward_input(float *dinp, const float *dout, const uint16_t *douth,
                                  const float *w, int N, int C, int OC) {
    linear_backward(dinp, 0.0f, NULL, NULL, dout, douth, NULL, NULL, w, N, C, OC);
}

void clasp_block_backward(float *dinp, clasp_block_params *g, float *work, const float *dout,
                          const float *inp, const clasp_block_acts *a, const clasp_block_params *p,
                          const clasp_block_dims *d) {
    clasp_block_params none = {0};
    if (!g) g = &none; /* no parameter gradients wanted */
    int BT = d->B * d->T, C = d->C, F = d->F;
    size_t nC = (size_t)BT * C, nF = (size_t)BT * F;
    size_t big = nF > 3 * nC ? nF : 3 * nC;
    float *dres1 = work, *dbig = work + nC, *dtmp = work + nC + big, *act = dtmp + nC;
    float *awork = act + nF;

    /* out = res1 + fc2(gelu(fc1(ln2(res1)))); every temporary below is written (beta 0),
     * not accumulated, so nothing needs zeroing first. The recomputed ln2 and ln1 are used
     * for their layer's weight gradient before the input gradient overwrites them; act has
     * its own scratch, filled in the pass that scales dact by GELU's derivative. */
    memcpy(dres1, dout, nC * sizeof(float));
    if (d->layer_scale) { /* the MLP branch's gradient dout * ls2 in dtmp (free until ln2) */
        layer_scale_backward_(dtmp, g->ls2, dout, a->lsm, p->ls2, BT, C);
        dout = dtmp;
    }
    float *dact = dbig;
    /* in bf16 each output gradient is converted once for its layer's two products */
    const uint16_t *h = bf16_copy_(LINEAR_SLOT, dout, nC);
    linear_backward_input(dact, dout, h, p->fc2_w, BT, F, C);
    if (g->fc2_w) {
        /* in bf16 the recomputed GELU output is written as bf16 only (fc2's weight gradient
         * is all that reads it) */
        uint16_t *acth = h ? clasp_compute_bf16_scratch(GELU_SLOT, nF) : NULL;
        if (acth)
            gelu_bf16_(acth, dact, a->fc1, nF, d->gelu_tanh);
        else
            gelu_recompute_scale(act, dact, a->fc1, nF, d->gelu_tanh);
        linear_backward_params(g->fc2_w, g->fc2_b, dout, h, acth ? NULL : act, acth, BT, F, C);
    } else {
        gelu_grad_scale(dact, a->fc1, nF, d->gelu_tanh);
        linear_backward_params(NULL, g->fc2_b, dout, NULL, NULL, NULL, BT, F, C);
    }
    h = g->fc1_w ? bf16_copy_(LINEAR_SLOT, dact, nF) : NULL;
    if (g->fc1_w) {
        float *ln2 = dtmp;
        layernorm_apply(ln2, a->res1, a->ln2_mean, a->ln2_rstd, p->ln2_w, p->ln2_b, BT, C);
        linear_backward_params(g->fc1_w, g->fc1_b, dact, h, ln2, NULL, BT, C, F);
    } else if (g->fc1_b) {
        linear_backward_params(NULL, g->fc1_b, dact, NULL, NULL, NULL, BT, C, F);
    }
    float *dln2 = dtmp;
    linear_backward_input(dln2, dact, h, p->fc1_w, BT, C, F);
    clasp_layernorm_backward(dres1, g->ln2_w, g->ln2_b, dln2, a->res1, p->ln2_w, a->ln2_mean,
                             a->ln2_rstd, BT, C);

    /* res1 = inp + proj(attn(qkv(ln1(inp)))) */
    if (dinp)
        for (size_t i = 0; i < nC; i++) dinp[i] += dres1[i];
    if (d->layer_scale) /* dres1 is now only the attention branch's: scale it in place */
        layer_scale_backward_(dres1, g->ls1, dres1, a->lsq, p->ls1, BT, C);
    float *datty = dtmp;
    h = g->proj_w ? bf16_copy_(LINEAR_SLOT, dres1, nC) : NULL;
    linear_backward(datty, 0.0f, g->proj_w, g->proj_b, dres1, h, a->atty, NULL, p->proj_w, BT, C,
                    C);
    float *dqkv = dbig;
    attention_backward(dqkv, awork, datty, a->qkv, a->att, d->B, d->T, C, d->NH, 0);
    h = g->qkv_w ? bf16_copy_(LINEAR_SLOT, dqkv, 3 * nC) : NULL;
    if (g->qkv_w) {
        float *ln1 = dtmp;
        layernorm_apply(ln1, inp, a->ln1_mean, a->ln1_rstd, p->ln1_w, p->ln1_b, BT, C);
        linear_backward_params(g->qkv_w, g->qkv_b, dqkv, h, ln1, NULL, BT, C, 3 * C);
    } else if (g->qkv_b) {
        linear_backward_params(NULL, g->qkv_b, dqkv, NULL, NULL, NULL, BT, C, 3 * C);
    }
    float *dln1 = dtmp;
    linear_backward_input(dln1, dqkv, h, p->qkv_w, BT, C, 3 * C);
    clasp_layernorm_backward(dinp, g->ln1_w, g->ln1_b, dln1, inp, p->ln1_w, a->ln1_mean,
                             a->ln1_rstd, BT, C);
}
