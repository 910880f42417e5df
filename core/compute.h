/* compute.h: the compute backend: matrix products in fp32 or bf16, on oneDNN or OpenBLAS
 * (chosen at build time: cmake -DCLASP_BACKEND=onednn|openblas).
 *
 * Precision follows PyTorch autocast: in bf16, the two inputs of every product are rounded to
 * bf16 (round to nearest even) and the products are accumulated in fp32 into an fp32 output;
 * everything else (weights, gradients, norms, softmax, the loss) stays fp32. The precision is a
 * setting of the calling thread, so the layers keep their fp32 signatures.
 *
 * Threads: each calling thread runs its products single-threaded unless
 * clasp_compute_set_threads says otherwise. On oneDNN a product's result never depends on that
 * number; OpenBLAS's threaded sgemm may sum in another order for some shapes, which is why the
 * replica engine keeps one thread per product. Results depend on the backend, the precision and
 * the CPU's instruction set, never on timing.
 *
 * oneDNN primitives are created on the first product of each shape and kept per thread; a
 * thread's cache is freed when it exits or calls clasp_compute_thread_release. */
#ifndef CLASP_CORE_COMPUTE_H
#define CLASP_CORE_COMPUTE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum clasp_precision { CLASP_FP32 = 0, CLASP_BF16 = 1 } clasp_precision;

/* "fp32" / "bf16" */
const char *clasp_precision_name(clasp_precision p);
/* "fp32" or "bf16" -> *p; anything else is CLASP_ERR_CONFIG naming the value */
clasp_status clasp_precision_parse(const char *s, clasp_precision *p);

/* "onednn" or "openblas" */
const char *clasp_compute_backend(void);
/* Whether this build and this CPU compute in precision p. bf16 needs the oneDNN backend
 * (CLASP_ERR_UNSUPPORTED naming the backend otherwise). *native (optional) is 1 when oneDNN
 * has bf16 kernels for this CPU, 0 when clasp emulates them exactly (inputs rounded to bf16,
 * fp32 kernels: the same products, slower). */
clasp_status clasp_compute_check(clasp_precision p, int *native);

/* The calling thread's precision (default fp32); setting returns the previous one, so a caller
 * can put it back. */
clasp_precision clasp_compute_set_precision(clasp_precision p);
clasp_precision clasp_compute_precision(void);

/* Threads one product may use, for every thread of the process (default 1; 0 = the backend's
 * own default, all cores). The replica engine keeps 1: its workers are the threading layer. */
void clasp_compute_set_threads(int n);

/* C (M, N) = alpha * op(A) op(B) + beta * C, row-major as cblas_sgemm: op(A) is (M, K), A is
 * read transposed when ta != 0 (stored (K, M) with row stride lda); likewise B. beta = 0 never
 * reads C. In bf16 the products round A and B to bf16. */
void clasp_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* ---- direct 2-D convolution (oneDNN only) ---------------------------------------------------
 * Images are NHWC (B, H, W, C), weights OIHW (OC, C, KH, KW: PyTorch's order), bias (OC);
 * out (B, OH, OW, OC). In bf16 the images, the weights and the output gradient are rounded to
 * bf16, everything is accumulated in fp32. Each returns CLASP_ERR_UNSUPPORTED when the backend
 * has no direct convolution (OpenBLAS) or cannot build this one (the caller then runs its
 * im2col products), CLASP_ERR_NOMEM when scratch cannot be had. */
typedef struct clasp_conv_shape {
    int B, C, H, W, OC, KH, KW, stride, pad;
} clasp_conv_shape;

/* out = conv(inp, w) + b (b may be NULL) */
clasp_status clasp_conv2d_direct_fwd(const clasp_conv_shape *s, float *out, const float *inp,
                                     const float *w, const float *b);
/* dinp += the input gradient of dout (B, OH, OW, OC) */
clasp_status clasp_conv2d_direct_bwd_data(const clasp_conv_shape *s, float *dinp, const float *dout,
                                          const float *w);
/* dw += the weight gradient, db += the bias gradient (db may be NULL) */
clasp_status clasp_conv2d_direct_bwd_weights(const clasp_conv_shape *s, float *dw, float *db,
                                             const float *dout, const float *inp);

/* C = op(A) op(B) + bias, the bias (N) added to every row (on oneDNN inside the product) */
void clasp_gemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                     int ldb, const float *bias, float *C, int ldc);

/* batch x batch2 products of the same shape: product (i, j) reads A + i * sa + j * sa2,
 * B + i * sb + j * sb2 and writes C + i * sc + j * sc2 (strides in floats; batch2 0 means 1);
 * otherwise as clasp_gemm. On oneDNN one call for them all (clasp_compute_batched_native() is
 * 1); OpenBLAS loops. */
typedef struct clasp_gemm_batch {
    int batch, batch2;
    const float *A;
    int lda;
    long long sa, sa2;
    const float *B;
    int ldb;
    long long sb, sb2;
    float *C;
    int ldc;
    long long sc, sc2;
    /* optional, bf16 precision only: A and/or B already converted (clasp_f32_to_bf16_n), laid
     * out as A and B with the same strides; the product reads them instead of converting */
    const uint16_t *Ah, *Bh;
} clasp_gemm_batch;
void clasp_gemm_batched(int ta, int tb, int M, int N, int K, float alpha, float beta,
                        const clasp_gemm_batch *g);
int clasp_compute_batched_native(void);
/* A scratch array of n bf16 elements owned by the calling thread, one per slot (0..5), kept
 * until the slot is asked again (bf16 copies a caller converts once for several products).
 * NULL when out of memory or on a backend without batched products (the products then convert
 * for themselves). */
uint16_t *clasp_compute_bf16_scratch(int slot, size_t n);

/* Primitives the calling thread holds (oneDNN; 0 on OpenBLAS): a step that keeps building new
 * ones is a bug (and memory that grows every step). */
size_t clasp_compute_cached_primitives(void);

/* Frees the calling thread's primitives and scratch (threads that exit free theirs). */
void clasp_compute_thread_release(void);

/* ---- bf16 helpers: round to nearest even, NaN stays NaN (quiet), fp32 denormals become signed
 * zero (as the AVX512-BF16 instruction oneDNN uses does) ------------------------------------- */
uint16_t clasp_f32_to_bf16(float f);
/* the fp32 value of bf16(x), for loops that round one element at a time */
static inline float clasp_bf16_round(float x) {
    union {
        float f;
        uint32_t u;
    } v = {x};
    uint32_t u = (v.u & 0x7f800000u) ? v.u : (v.u & 0x80000000u);
    v.u = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x00400000u)
                                          : ((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
    return v.f;
}
float clasp_bf16_to_f32(uint16_t h);
void clasp_f32_to_bf16_n(uint16_t *out, const float *in, size_t n);
/* x[i] = the fp32 value of bf16(x[i]) */
void clasp_bf16_round_n(float *x, size_t n);

#endif
