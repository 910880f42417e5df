/* compute.c: the compute backend of compute.h.
 *
 * oneDNN (CLASP_ONEDNN): every product is a matmul primitive built once per (shape, strides,
 * alpha, beta, precision, threads) and kept in the calling thread's cache, with memory objects
 * whose data handles are re-pointed per call and a user scratchpad owned by the thread. bf16
 * products convert A and B into the thread's bf16 buffers (compact, same orientation) and
 * accumulate into the fp32 C. oneDNN runs on OpenMP; each calling thread sets its own OpenMP
 * thread count (an OpenMP setting is per thread), so replica workers each run single-threaded.
 * When oneDNN has no bf16 matmul for the CPU (e.g. ONEDNN_MAX_CPU_ISA=AVX2), the inputs are
 * rounded to bf16 in fp32 buffers and multiplied by the fp32 primitive: the same products,
 * summed in fp32.
 *
 * OpenBLAS: cblas_sgemm; bf16 (which clasp_compute_check refuses on this backend) is
 * emulated by rounding if a caller sets it anyway.
 * ref: oneDNN 2.6 C API (dnnl.h: matmul, primitive attributes, user scratchpad). */
#include "core/compute.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/log.h"

#if defined(__GNUC__) && !defined(__clang__)
#define CLASP_VECTORIZE __attribute__((optimize("O3", "no-trapping-math")))
#else
#define CLASP_VECTORIZE
#endif

/* ---- shared -------------------------------------------------------------------------------- */

const char *clasp_precision_name(clasp_precision p) {
    return p == CLASP_BF16 ? "bf16" : "fp32";
}

clasp_status clasp_precision_parse(const char *s, clasp_precision *p) {
    if (s && !strcmp(s, "fp32")) return *p = CLASP_FP32, CLASP_OK;
    if (s && !strcmp(s, "bf16")) return *p = CLASP_BF16, CLASP_OK;
    return clasp_set_error(CLASP_ERR_CONFIG, "precision '%s': expected fp32 or bf16",
                           s ? s : "(null)");
}

/* bits of the fp32 value of bf16(f) (clasp_bf16_round: the one rounding rule) */
static inline uint32_t bf16_bits_(float f) {
    float r = clasp_bf16_round(f);
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return u;
}

uint16_t clasp_f32_to_bf16(float f) {
    return (uint16_t)(bf16_bits_(f) >> 16);
}

float clasp_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

CLASP_VECTORIZE static void f32_to_bf16_scalar_(uint16_t *restrict out, const float *restrict in,
                                                size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (uint16_t)(bf16_bits_(in[i]) >> 16);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
/* AVX512-BF16's VCVTNEPS2BF16: the same rounding as the scalar code, denormal inputs
 * included (both flush them to signed zero) */
__attribute__((target("avx512f,avx512bf16,avx512vl"))) static void
f32_to_bf16_avx512bf16_(uint16_t *restrict out, const float *restrict in, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
        _mm256_storeu_si256((__m256i *)(out + i), (__m256i)h);
    }
    f32_to_bf16_scalar_(out + i, in + i, n - i);
}

static int has_avx512bf16_(void) {
    static int have = -1; /* relaxed: every thread computes the same value */
    int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vl");
        __atomic_store_n(&have, h, __ATOMIC_RELAXED);
    }
    return h;
}
#endif

void clasp_f32_to_bf16_n(uint16_t *restrict out, const float *restrict in, size_t n) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    if (has_avx512bf16_()) {
        f32_to_bf16_avx512bf16_(out, in, n);
        return;
    }
#endif
    f32_to_bf16_scalar_(out, in, n);
}

CLASP_VECTORIZE void clasp_bf16_round_n(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = clasp_bf16_round(x[i]);
}

static _Thread_local clasp_precision tl_precision = CLASP_FP32;
static int g_threads = 1; /* relaxed atomics */

clasp_precision clasp_compute_set_precision(clasp_precision p) {
    clasp_precision was = tl_precision;
    tl_precision = p;
    return was;
}

clasp_precision clasp_compute_precision(void) {
    return tl_precision;
}

/* rows x cols of src (row stride ld) -> compact fp32 copy rounded to bf16 */
static void round_copy(float *dst, const float *src, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++) {
        memcpy(dst + (size_t)r * cols, src + (size_t)r * ld, (size_t)cols * sizeof(float));
        clasp_bf16_round_n(dst + (size_t)r * cols, (size_t)cols);
    }
}

/* bf16 without bf16 kernels: A and B become malloc'd compact copies rounded to bf16 (*ra, *rb:
 * the caller frees them); if they cannot be allocated the inputs stay as they are, logged. */
static void round_inputs_(float **ra, float **rb, int ta, int tb, int M, int N, int K,
                          const float **A, int *lda, const float **B, int *ldb) {
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    *ra = malloc((size_t)ar * ac * sizeof(float));
    *rb = malloc((size_t)br * bc * sizeof(float));
    if (!*ra || !*rb) {
        CLASP_WARN("bf16 product %dx%dx%d: out of memory, computed in fp32", M, N, K);
        return;
    }
    round_copy(*ra, *A, ar, ac, *lda);
    round_copy(*rb, *B, br, bc, *ldb);
    *A = *ra, *lda = ac, *B = *rb, *ldb = bc;
}

/* every row of C (M, N) = bias */
static void bias_rows_(float *C, const float *bias, int M, int N, int ldc) {
    for (int m = 0; m < M; m++) memcpy(C + (size_t)m * ldc, bias, (size_t)N * sizeof(float));
}

/* C = beta * C for K = 0 products */
static void scale_c(int M, int N, float beta, float *C, int ldc) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            C[(size_t)m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[(size_t)m * ldc + n];
}

#ifdef CLASP_ONEDNN
/* ==== oneDNN ================================================================================ */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

const char *clasp_compute_backend(void) {
    return "onednn";
}

static dnnl_engine_t g_engine;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
static dnnl_status_t g_engine_status;

static void engine_init_(void) {
    g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
}

/* A cached product: the key is every number the primitive was built from. */
typedef struct mm_key {
    int ta, tb, M, N, K, lda, ldb, ldc, bf16, threads, bias;
    int batch, batch2, pad_; /* products in one call: batch x batch2 (1 x 1: a plain product) */
    long long sa, sb, sc;    /* their strides in A, B and C (floats or bf16 elements) */
    long long sa2, sb2, sc2;
    uint32_t alpha, beta; /* float bits; alpha != 1 is ALPHA_RUNTIME (given per call) */
} mm_key;
/* A product's alpha other than 1 (the loss's logit scale changes every step) is a runtime
 * output scale: one primitive serves every value. */
#define ALPHA_RUNTIME 0x7fc000d0u
static uint32_t key_alpha_(float alpha) {
    return alpha == 1.0f ? 0x3f800000u : ALPHA_RUNTIME;
}

/* keys are compared bytewise: no padding */
_Static_assert(sizeof(mm_key) == 14 * sizeof(int) + 6 * sizeof(long long) + 2 * sizeof(uint32_t),
               "mm_key has padding");

typedef struct mm_entry {
    mm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, bias, scale, scratch;
    size_t scratch_bytes;
} mm_entry;

typedef struct compute_tl {
    mm_entry *e;
    size_t n, cap;
    size_t last; /* index of the last hit */
    dnnl_stream_t stream;
    void *scratch;
    size_t scratch_cap;
    uint16_t *abf, *bbf; /* bf16 copies of A and B */
    size_t abf_cap, bbf_cap;
    float *ar, *br; /* rounded fp32 copies (emulated bf16) */
    size_t ar_cap, br_cap;
    int omp_threads; /* what this thread last gave omp_set_num_threads, 0 = never */
    struct conv_entry *cv;
    size_t ncv, cvcap;
    float *ftmp; /* fp32 scratch of the convolutions (gradients before they are added) */
    size_t ftmp_cap;
    uint16_t *hslot[6]; /* clasp_compute_bf16_scratch */
    size_t hslot_cap[6];
} compute_tl;

static void conv_entries_free_(compute_tl *t);

static _Thread_local compute_tl *tl_state;
static pthread_key_t g_tl_key;
static pthread_once_t g_tl_once = PTHREAD_ONCE_INIT;
static int g_bf16_emulated; /* set once oneDNN refused a bf16 matmul (relaxed atomics) */
static pthread_once_t g_bf16_once = PTHREAD_ONCE_INIT;

/* Does oneDNN have bf16 kernels here? It builds bf16 matmuls on CPUs without AVX512-BF16 too,
 * with emulated kernels several times slower than its fp32 ones (measured under
 * ONEDNN_MAX_CPU_ISA=AVX512_CORE); those, like a refusal, send bf16 products to clasp's own
 * emulation (fp32 kernels on bf16-rounded inputs: the same numbers). Decided once, from the
 * implementation oneDNN picks for a small bf16 matmul. */
static void bf16_probe_(void) {
    pthread_once(&g_engine_once, engine_init_);
    int native = 0;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t d = {64, 64}, st = {64, 1};
    dnnl_memory_desc_init_by_strides(&a, 2, d, dnnl_bf16, st);
    dnnl_memory_desc_init_by_strides(&b, 2, d, dnnl_bf16, st);
    dnnl_memory_desc_init_by_strides(&c, 2, d, dnnl_f32, st);
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    if (g_engine_status == dnnl_success &&
        dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) == dnnl_success &&
        dnnl_primitive_desc_create(&pd, &md, NULL, g_engine, NULL) == dnnl_success) {
        const char *impl = NULL;
        if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
            impl)
            native = strstr(impl, "bf16") != NULL || strstr(impl, "amx") != NULL;
        dnnl_primitive_desc_destroy(pd);
    }
    if (!native && g_engine_status == dnnl_success) {
        __atomic_store_n(&g_bf16_emulated, 1, __ATOMIC_RELAXED);
        CLASP_WARN("oneDNN has no bf16 kernels for this CPU: bf16 products run as fp32 products "
                   "of bf16-rounded inputs (the same numbers, no faster than fp32)");
    }
}

static int bf16_emulated_(void) {
    pthread_once(&g_bf16_once, bf16_probe_);
    return __atomic_load_n(&g_bf16_emulated, __ATOMIC_RELAXED);
}

static void mm_entry_free_(mm_entry *e) {
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->a);
    dnnl_memory_destroy(e->b);
    dnnl_memory_destroy(e->c);
    dnnl_memory_destroy(e->bias);
    dnnl_memory_destroy(e->scale);
    dnnl_memory_destroy(e->scratch);
}

/* drops every cached primitive of the thread */
static void tl_flush_(compute_tl *t) {
    for (size_t i = 0; i < t->n; i++) mm_entry_free_(&t->e[i]);
    t->n = 0;
    t->last = 0;
    conv_entries_free_(t);
}

static void tl_free_(void *p) {
    compute_tl *t = p;
    if (!t) return;
    tl_flush_(t);
    free(t->e);
    free(t->cv);
    free(t->ftmp);
    for (int i = 0; i < 6; i++) free(t->hslot[i]);
    if (t->stream) dnnl_stream_destroy(t->stream);
    free(t->scratch);
    free(t->abf);
    free(t->bbf);
    free(t->ar);
    free(t->br);
    free(t);
}

static void tl_key_init_(void) {
    pthread_key_create(&g_tl_key, tl_free_);
}

size_t clasp_compute_cached_primitives(void) {
    return tl_state ? tl_state->n + tl_state->ncv : 0;
}

void clasp_compute_thread_release(void) {
    if (!tl_state) return;
    pthread_once(&g_tl_once, tl_key_init_);
    pthread_setspecific(g_tl_key, NULL);
    tl_free_(tl_state);
    tl_state = NULL;
}

/* the calling thread's state, created on first use; NULL when out of memory or oneDNN fails */
static compute_tl *tl_get_(void) {
    if (tl_state) return tl_state;
    pthread_once(&g_engine_once, engine_init_);
    if (g_engine_status != dnnl_success) return NULL;
    pthread_once(&g_tl_once, tl_key_init_);
    compute_tl *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (dnnl_stream_create(&t->stream, g_engine, dnnl_stream_default_flags) != dnnl_success) {
        free(t);
        return NULL;
    }
    pthread_setspecific(g_tl_key, t);
    tl_state = t;
    return t;
}

void clasp_compute_set_threads(int n) {
    __atomic_store_n(&g_threads, n < 0 ? 0 : n, __ATOMIC_RELAXED);
}

/* the OpenMP thread count this thread must run with; re-applied (and the cache flushed: a
 * primitive is built for a thread count) when the process-wide setting changed */
static int tl_threads_(compute_tl *t) {
    int want = __atomic_load_n(&g_threads, __ATOMIC_RELAXED);
    if (want == 0) want = omp_get_num_procs();
    if (t->omp_threads != want) {
        omp_set_num_threads(want);
        if (t->omp_threads) tl_flush_(t);
        t->omp_threads = want;
    }
    return want;
}

static int grow_bytes_(void **p, size_t *cap, size_t bytes) {
    if (*cap >= bytes) return 0;
    void *q = realloc(*p, bytes);
    if (!q) return -1;
    *p = q;
    *cap = bytes;
    return 0;
}

/* 2-D memory descriptor of an (R, Cc) operand, transposed when t (stored (Cc, R), stride ld) */
static void md2_(dnnl_memory_desc_t *md, int R, int Cc, int t, int ld, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {R, Cc}, strides;
    if (t) {
        strides[0] = 1;
        strides[1] = ld;
    } else {
        strides[0] = ld;
        strides[1] = 1;
    }
    dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

/* md2_ with two leading batch dimensions (batch, batch2) of strides s, s2 */
static void md4_(dnnl_memory_desc_t *md, int batch, long long s, int batch2, long long s2, int R,
                 int Cc, int t, int ld, dnnl_data_type_t dt) {
    if (batch <= 1 && batch2 <= 1) {
        md2_(md, R, Cc, t, ld, dt);
        return;
    }
    dnnl_dims_t dims = {batch, batch2, R, Cc}, strides = {s, s2, t ? 1 : ld, t ? ld : 1};
    dnnl_memory_desc_init_by_strides(md, 4, dims, dt, strides);
}

static dnnl_status_t mm_build_(mm_entry *e, const mm_key *k) {
    dnnl_data_type_t in = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a, b, c;
    md4_(&a, k->batch, k->sa, k->batch2, k->sa2, k->M, k->K, k->ta, k->lda, in);
    md4_(&b, k->batch, k->sb, k->batch2, k->sb2, k->K, k->N, k->tb, k->ldb, in);
    md4_(&c, k->batch, k->sc, k->batch2, k->sc2, k->M, k->N, 0, k->ldc, dnnl_f32);
    dnnl_memory_desc_t bias;
    md2_(&bias, 1, k->N, 0, k->N, dnnl_f32);
    dnnl_matmul_desc_t d;
    dnnl_status_t s = dnnl_matmul_desc_init(&d, &a, &b, k->bias ? &bias : NULL, &c);
    if (s != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) return s;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    float beta;
    memcpy(&beta, &k->beta, sizeof beta);
    if (k->alpha == ALPHA_RUNTIME)
        dnnl_primitive_attr_set_output_scales(attr, 1, 0, &DNNL_RUNTIME_F32_VAL);
    if (beta != 0.0f) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, beta);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &d, attr, g_engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return s;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    s = dnnl_primitive_create(&e->prim, pd);
    if (s == dnnl_success) s = dnnl_memory_create(&e->a, &a, g_engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success) s = dnnl_memory_create(&e->b, &b, g_engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success) s = dnnl_memory_create(&e->c, &c, g_engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success && k->bias)
        s = dnnl_memory_create(&e->bias, &bias, g_engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success && k->alpha == ALPHA_RUNTIME) {
        dnnl_memory_desc_t sm;
        dnnl_dims_t one = {1};
        dnnl_memory_desc_init_by_tag(&sm, 1, one, dnnl_f32, dnnl_a);
        s = dnnl_memory_create(&e->scale, &sm, g_engine, DNNL_MEMORY_NONE);
    }
    if (s == dnnl_success && smd && e->scratch_bytes)
        s = dnnl_memory_create(&e->scratch, smd, g_engine, DNNL_MEMORY_NONE);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* the cached primitive for k, built on first use; NULL when oneDNN cannot build it */
static mm_entry *mm_get_(compute_tl *t, const mm_key *k) {
    if (t->last < t->n && !memcmp(&t->e[t->last].key, k, sizeof *k)) return &t->e[t->last];
    for (size_t i = 0; i < t->n; i++)
        if (!memcmp(&t->e[i].key, k, sizeof *k)) return &t->e[t->last = i];
    mm_entry *grown = clasp_grow(t->e, t->n, &t->cap, sizeof *grown, 32);
    if (!grown) return NULL;
    t->e = grown;
    mm_entry *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    e->key = *k;
    if (mm_build_(e, k) != dnnl_success) {
        mm_entry_free_(e);
        return NULL;
    }
    t->last = t->n;
    return &t->e[t->n++];
}

static int mm_run_(compute_tl *t, mm_entry *e, const void *A, const void *B, float *C,
                   const float *bias, float alpha) {
    if (e->scratch_bytes && grow_bytes_(&t->scratch, &t->scratch_cap, e->scratch_bytes)) return -1;
    dnnl_memory_set_data_handle(e->a, (void *)A);
    dnnl_memory_set_data_handle(e->b, (void *)B);
    dnnl_memory_set_data_handle(e->c, C);
    dnnl_exec_arg_t args[6] = {
        {DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    int nargs = 3;
    if (e->scale) {
        dnnl_memory_set_data_handle(e->scale, &alpha);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_OUTPUT_SCALES, e->scale};
    }
    if (e->bias) {
        dnnl_memory_set_data_handle(e->bias, (void *)bias);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    }
    if (e->scratch) {
        dnnl_memory_set_data_handle(e->scratch, t->scratch);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    }
    if (dnnl_primitive_execute(e->prim, t->stream, nargs, args) != dnnl_success) return -1;
    return dnnl_stream_wait(t->stream) == dnnl_success ? 0 : -1;
}

/* rows x cols of src (row stride ld) -> compact bf16 */
static void bf16_copy_(uint16_t *dst, const float *src, int rows, int cols, int ld) {
    if (ld == cols) {
        clasp_f32_to_bf16_n(dst, src, (size_t)rows * cols);
        return;
    }
    for (int r = 0; r < rows; r++)
        clasp_f32_to_bf16_n(dst + (size_t)r * cols, src + (size_t)r * ld, (size_t)cols);
}

static int gemm_fp32_(compute_tl *t, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc, int threads, const float *bias) {
    mm_key k = {.ta = ta,
                .tb = tb,
                .M = M,
                .N = N,
                .K = K,
                .lda = lda,
                .ldb = ldb,
                .ldc = ldc,
                .threads = threads,
                .bias = bias != NULL,
                .batch = 1,
                .batch2 = 1};
    k.alpha = key_alpha_(alpha);
    memcpy(&k.beta, &beta, sizeof beta);
    mm_entry *e = mm_get_(t, &k);
    return e ? mm_run_(t, e, A, B, C, bias, alpha) : -1;
}

static int gemm_bf16_(compute_tl *t, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc, int threads, const float *bias) {
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    size_t an = (size_t)ar * ac, bn = (size_t)br * bc;
    if (!bf16_emulated_()) {
        mm_key k = {.ta = ta,
                    .tb = tb,
                    .M = M,
                    .N = N,
                    .K = K,
                    .lda = ac,
                    .ldb = bc,
                    .ldc = ldc,
                    .bf16 = 1,
                    .threads = threads,
                    .bias = bias != NULL,
                    .batch = 1,
                    .batch2 = 1};
        k.alpha = key_alpha_(alpha);
        memcpy(&k.beta, &beta, sizeof beta);
        mm_entry *e = mm_get_(t, &k);
        if (e) {
            if (grow_bytes_((void **)&t->abf, &t->abf_cap, an * 2) ||
                grow_bytes_((void **)&t->bbf, &t->bbf_cap, bn * 2))
                return -1;
            bf16_copy_(t->abf, A, ar, ac, lda);
            bf16_copy_(t->bbf, B, br, bc, ldb);
            return mm_run_(t, e, t->abf, t->bbf, C, bias, alpha);
        }
        if (!__atomic_exchange_n(&g_bf16_emulated, 1, __ATOMIC_RELAXED))
            CLASP_WARN("oneDNN has no bf16 matmul for this CPU: bf16 products run as fp32 "
                       "products of bf16-rounded inputs (same results, slower)");
    }
    if (grow_bytes_((void **)&t->ar, &t->ar_cap, an * sizeof(float)) ||
        grow_bytes_((void **)&t->br, &t->br_cap, bn * sizeof(float)))
        return -1;
    round_copy(t->ar, A, ar, ac, lda);
    round_copy(t->br, B, br, bc, ldb);
    return gemm_fp32_(t, ta, tb, M, N, K, alpha, t->ar, ac, t->br, bc, beta, C, ldc, threads, bias);
}

/* clasp_gemm, plus a bias row added to every row of C when bias != NULL (then alpha = 1 and
 * beta = 0) */
static void gemm_(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, const float *bias) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        if (bias) bias_rows_(C, bias, M, N, ldc);
        return;
    }
    compute_tl *t = tl_get_();
    int rc = -1;
    if (t) {
        int threads = tl_threads_(t);
        rc = tl_precision == CLASP_BF16 ? gemm_bf16_(t, ta, tb, M, N, K, alpha, A, lda, B, ldb,
                                                     beta, C, ldc, threads, bias)
                                        : gemm_fp32_(t, ta, tb, M, N, K, alpha, A, lda, B, ldb,
                                                     beta, C, ldc, threads, bias);
    }
    if (rc == 0) return;
    /* Out of memory or a shape oneDNN refuses: its plain GEMM (no primitive, no scratch) is
     * always there; in bf16 it multiplies rounded copies (the inputs as they were if even
     * those cannot be allocated, which is logged). */
    float *ra = NULL, *rb = NULL;
    if (tl_precision == CLASP_BF16) round_inputs_(&ra, &rb, ta, tb, M, N, K, &A, &lda, &B, &ldb);
    if (bias) {
        bias_rows_(C, bias, M, N, ldc);
        beta = 1.0f;
    }
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    free(ra);
    free(rb);
}

void clasp_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

void clasp_gemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                     int ldb, const float *bias, float *C, int ldc) {
    gemm_(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, bias);
}

/* The fp32 values of a bf16 operand laid out as (batch, batch2, rows, cols with row stride ld):
 * malloc'd with the same strides; NULL when out of memory. */
static float *widen_(const uint16_t *h, int batch, int batch2, long long s, long long s2, int rows,
                     int cols, int ld) {
    size_t n = (size_t)((batch - 1) * s + (batch2 - 1) * s2 + (long long)(rows - 1) * ld + cols);
    float *f = malloc(n * sizeof(float));
    if (!f) return NULL;
    for (size_t i = 0; i < n; i++) f[i] = clasp_bf16_to_f32(h[i]);
    return f;
}

/* One oneDNN call for the whole batch; -1 when it cannot (the caller loops instead). In bf16
 * the operands are converted into compact batches first. */
static int gemm_batched_(compute_tl *t, const clasp_gemm_batch *g, int ta, int tb, int M, int N,
                         int K, float alpha, float beta) {
    int bf = tl_precision == CLASP_BF16;
    if (bf && bf16_emulated_()) return -1;
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int n2 = g->batch2 > 0 ? g->batch2 : 1;
    mm_key k = {.ta = ta,
                .tb = tb,
                .M = M,
                .N = N,
                .K = K,
                .lda = g->lda,
                .ldb = g->ldb,
                .ldc = g->ldc,
                .bf16 = bf,
                .threads = tl_threads_(t),
                .batch = g->batch,
                .batch2 = n2,
                .sa = g->sa,
                .sb = g->sb,
                .sc = g->sc,
                .sa2 = g->sa2,
                .sb2 = g->sb2,
                .sc2 = g->sc2};
    size_t an = (size_t)ar * ac, bn = (size_t)br * bc, nb = (size_t)g->batch * n2;
    /* bf16: an operand the caller converted is read in place, the other is converted into a
     * compact batch (batch, batch2, rows, cols) */
    int conv_a = bf && !g->Ah, conv_b = bf && !g->Bh;
    if (conv_a) k.lda = ac, k.sa2 = (long long)an, k.sa = (long long)(an * n2);
    if (conv_b) k.ldb = bc, k.sb2 = (long long)bn, k.sb = (long long)(bn * n2);
    k.alpha = key_alpha_(alpha);
    memcpy(&k.beta, &beta, sizeof beta);
    mm_entry *e = mm_get_(t, &k);
    if (!e) return -1;
    if (!bf) return mm_run_(t, e, g->A, g->B, g->C, NULL, alpha);
    if ((conv_a && grow_bytes_((void **)&t->abf, &t->abf_cap, nb * an * 2)) ||
        (conv_b && grow_bytes_((void **)&t->bbf, &t->bbf_cap, nb * bn * 2)))
        return -1;
    for (int i = 0; i < g->batch; i++)
        for (int j = 0; j < n2; j++) {
            size_t o = (size_t)i * n2 + (size_t)j;
            if (conv_a) bf16_copy_(t->abf + o * an, g->A + i * g->sa + j * g->sa2, ar, ac, g->lda);
            if (conv_b) bf16_copy_(t->bbf + o * bn, g->B + i * g->sb + j * g->sb2, br, bc, g->ldb);
        }
    return mm_run_(t, e, conv_a ? t->abf : g->Ah, conv_b ? t->bbf : g->Bh, g->C, NULL, alpha);
}

void clasp_gemm_batched(int ta, int tb, int M, int N, int K, float alpha, float beta,
                        const clasp_gemm_batch *g) {
    if (M <= 0 || N <= 0 || g->batch <= 0) return;
    compute_tl *t = K > 0 ? tl_get_() : NULL;
    if (t && gemm_batched_(t, g, ta, tb, M, N, K, alpha, beta) == 0) return;
    int n2 = g->batch2 > 0 ? g->batch2 : 1;
    /* an operand given only as bf16 is widened back (its values are bf16 already) */
    float *wa = NULL, *wb = NULL;
    const float *A = g->A, *B = g->B;
    if (!A && g->Ah)
        A = wa = widen_(g->Ah, g->batch, n2, g->sa, g->sa2, ta ? K : M, ta ? M : K, g->lda);
    if (!B && g->Bh)
        B = wb = widen_(g->Bh, g->batch, n2, g->sb, g->sb2, tb ? N : K, tb ? K : N, g->ldb);
    if (A && B)
        for (int i = 0; i < g->batch; i++)
            for (int j = 0; j < n2; j++)
                gemm_(ta, tb, M, N, K, alpha, A + i * g->sa + j * g->sa2, g->lda,
                      B + i * g->sb + j * g->sb2, g->ldb, beta, g->C + i * g->sc + j * g->sc2,
                      g->ldc, NULL);
    else
        CLASP_WARN("batched product %dx%dx%d: out of memory, not computed", M, N, K);
    free(wa);
    free(wb);
}

int clasp_compute_batched_native(void) {
    return 1;
}

uint16_t *clasp_compute_bf16_scratch(int slot, size_t n) {
    compute_tl *t = slot >= 0 && slot < 6 ? tl_get_() : NULL;
    if (!t || grow_bytes_((void **)&t->hslot[slot], &t->hslot_cap[slot], n * sizeof(uint16_t)))
        return NULL;
    return t->hslot[slot];
}

/* ---- direct convolution -------------------------------------------------------------------- */

enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS };

typedef struct conv_key {
    clasp_conv_shape s;
    int kind, bf16, bias, threads;
} conv_key;

/* A cached convolution: the primitive, the weights' reorder (user OIHW fp32 -> the primitive's
 * blocked weights, or its blocked fp32 weight gradient -> OIHW), and memory objects. */
typedef struct conv_entry {
    conv_key key;
    dnnl_primitive_t prim, reorder;
    dnnl_memory_t src, dst, wuser, wprim, bias, scratch; /* src/dst: the two image-side tensors */
    size_t scratch_bytes;
} conv_entry;

static void conv_entry_free_(conv_entry *c) {
    dnnl_primitive_destroy(c->prim);
    dnnl_primitive_destroy(c->reorder);
    dnnl_memory_destroy(c->src);
    dnnl_memory_destroy(c->dst);
    dnnl_memory_destroy(c->wuser);
    dnnl_memory_destroy(c->wprim);
    dnnl_memory_destroy(c->bias);
    dnnl_memory_destroy(c->scratch);
}

static void conv_entries_free_(compute_tl *t) {
    for (size_t i = 0; i < t->ncv; i++) conv_entry_free_(&t->cv[i]);
    t->ncv = 0;
}

/* NHWC images (n, c, h, w as oneDNN's logical dims) */
static void md_nhwc_(dnnl_memory_desc_t *md, int n, int c, int h, int w, dnnl_data_type_t dt) {
    dnnl_dims_t d = {n, c, h, w};
    dnnl_memory_desc_init_by_tag(md, 4, d, dt, dnnl_nhwc);
}

static dnnl_status_t conv_build_(conv_entry *c) {
    const conv_key *k = &c->key;
    const clasp_conv_shape *s = &k->s;
    int OH = (s->H + 2 * s->pad - s->KH) / s->stride + 1;
    int OW = (s->W + 2 * s->pad - s->KW) / s->stride + 1;
    dnnl_data_type_t lo = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src, src_lo, dst, dst_lo, wany, wany_f32, wuser, bias;
    md_nhwc_(&src, s->B, s->C, s->H, s->W, dnnl_f32);
    md_nhwc_(&src_lo, s->B, s->C, s->H, s->W, lo);
    md_nhwc_(&dst, s->B, s->OC, OH, OW, dnnl_f32);
    md_nhwc_(&dst_lo, s->B, s->OC, OH, OW, lo);
    dnnl_dims_t wd = {s->OC, s->C, s->KH, s->KW}, bd = {s->OC};
    dnnl_memory_desc_init_by_tag(&wany, 4, wd, lo, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wany_f32, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wuser, 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_a);
    dnnl_dims_t st = {s->stride, s->stride}, pad = {s->pad, s->pad};
    const dnnl_memory_desc_t *bmd = k->bias ? &bias : NULL;
    dnnl_primitive_attr_t attr;
    dnnl_status_t r = dnnl_primitive_attr_create(&attr);
    if (r != dnnl_success) return r;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_convolution_desc_t fd, bd_;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    r = dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                           &src_lo, &wany, k->kind == CONV_FWD ? bmd : NULL, &dst,
                                           st, pad, pad);
    if (r == dnnl_success)
        r = dnnl_primitive_desc_create(&fpd, &fd, k->kind == CONV_FWD ? attr : NULL, g_engine,
                                       NULL);
    if (r == dnnl_success && k->kind == CONV_BWD_DATA) {
        r = dnnl_convolution_backward_data_desc_init(&bd_, dnnl_convolution_direct, &src, &wany,
                                                     &dst_lo, st, pad, pad);
        if (r == dnnl_success) r = dnnl_primitive_desc_create(&pd, &bd_, attr, g_engine, fpd);
    } else if (r == dnnl_success && k->kind == CONV_BWD_WEIGHTS) {
        r = dnnl_convolution_backward_weights_desc_init(&bd_, dnnl_convolution_direct, &src_lo,
                                                        &wany_f32, bmd, &dst_lo, st, pad, pad);
        if (r == dnnl_success) r = dnnl_primitive_desc_create(&pd, &bd_, attr, g_engine, fpd);
    } else if (r == dnnl_success) {
        pd = fpd;
        fpd = NULL;
    }
    dnnl_primitive_attr_destroy(attr);
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (r != dnnl_success) return r;
    /* the primitive's own weights layout, and the reorder to or from OIHW */
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(
        pd, k->kind == CONV_BWD_WEIGHTS ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    c->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    dnnl_primitive_desc_t rpd = NULL;
    r = dnnl_primitive_create(&c->prim, pd);
    if (r == dnnl_success)
        r = k->kind == CONV_BWD_WEIGHTS
                ? dnnl_reorder_primitive_desc_create(&rpd, wmd, g_engine, &wuser, g_engine, NULL)
                : dnnl_reorder_primitive_desc_create(&rpd, &wuser, g_engine, wmd, g_engine, NULL);
    if (r == dnnl_success) r = dnnl_primitive_create(&c->reorder, rpd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    /* image-side tensors: fwd src -> dst; bwd data diff_dst -> diff_src; bwd weights src and
     * diff_dst */
    const dnnl_memory_desc_t *a = k->kind == CONV_BWD_DATA ? &dst_lo : &src_lo;
    const dnnl_memory_desc_t *b = k->kind == CONV_FWD        ? &dst
                                  : k->kind == CONV_BWD_DATA ? &src
                                                             : &dst_lo;
    if (r == dnnl_success) r = dnnl_memory_create(&c->src, a, g_engine, DNNL_MEMORY_NONE);
    if (r == dnnl_success) r = dnnl_memory_create(&c->dst, b, g_engine, DNNL_MEMORY_NONE);
    if (r == dnnl_success) r = dnnl_memory_create(&c->wuser, &wuser, g_engine, DNNL_MEMORY_NONE);
    if (r == dnnl_success) r = dnnl_memory_create(&c->wprim, wmd, g_engine, DNNL_MEMORY_ALLOCATE);
    if (r == dnnl_success && bmd) r = dnnl_memory_create(&c->bias, bmd, g_engine, DNNL_MEMORY_NONE);
    if (r == dnnl_success && c->scratch_bytes)
        r = dnnl_memory_create(&c->scratch, smd, g_engine, DNNL_MEMORY_NONE);
    dnnl_primitive_desc_destroy(pd);
    return r;
}

/* the cached convolution for k; NULL when oneDNN cannot build it (or out of memory) */
static conv_entry *conv_get_(compute_tl *t, const conv_key *k) {
    for (size_t i = 0; i < t->ncv; i++)
        if (!memcmp(&t->cv[i].key, k, sizeof *k)) return &t->cv[i];
    conv_entry *grown = clasp_grow(t->cv, t->ncv, &t->cvcap, sizeof *grown, 16);
    if (!grown) return NULL;
    t->cv = grown;
    conv_entry *c = &t->cv[t->ncv];
    memset(c, 0, sizeof *c);
    c->key = *k;
    if (conv_build_(c) != dnnl_success) {
        conv_entry_free_(c);
        return NULL;
    }
    return &t->cv[t->ncv++];
}

static int exec_(compute_tl *t, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args) {
    if (dnnl_primitive_execute(p, t->stream, n, args) != dnnl_success) return -1;
    return dnnl_stream_wait(t->stream) == dnnl_success ? 0 : -1;
}

/* The entry for (s, kind) in the thread's precision, with its image-side tensor `x` (n floats)
 * converted to bf16 in *lo when the precision is bf16 (else *lo = x). */
static clasp_status conv_prepare_(const clasp_conv_shape *s, int kind, int bias, const float *x,
                                  size_t n, compute_tl **tp, conv_entry **cp, const void **lo) {
    compute_tl *t = tl_get_();
    if (!t) return clasp_set_error(CLASP_ERR_NOMEM, "oneDNN: no stream for this thread");
    if (tl_precision == CLASP_BF16 && bf16_emulated_())
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "oneDNN: no bf16 convolution kernels");
    conv_key k;
    memset(&k, 0, sizeof k); /* the key is compared bytewise */
    k.s = *s;
    k.kind = kind;
    k.bf16 = tl_precision == CLASP_BF16;
    k.bias = bias;
    k.threads = tl_threads_(t);
    conv_entry *c = conv_get_(t, &k);
    if (!c)
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "oneDNN: no %s convolution for this shape",
                               clasp_precision_name(tl_precision));
    if (c->scratch_bytes && grow_bytes_(&t->scratch, &t->scratch_cap, c->scratch_bytes))
        return clasp_set_error(CLASP_ERR_NOMEM, "oneDNN: out of memory for scratch");
    *lo = x;
    if (k.bf16) {
        if (grow_bytes_((void **)&t->abf, &t->abf_cap, n * sizeof(uint16_t)))
            return clasp_set_error(CLASP_ERR_NOMEM, "oneDNN: out of memory for bf16 copies");
        clasp_f32_to_bf16_n(t->abf, x, n);
        *lo = t->abf;
    }
    if (c->scratch) dnnl_memory_set_data_handle(c->scratch, t->scratch);
    *tp = t;
    *cp = c;
    return CLASP_OK;
}

static size_t conv_out_elems_(const clasp_conv_shape *s) {
    size_t OH = (size_t)((s->H + 2 * s->pad - s->KH) / s->stride + 1);
    size_t OW = (size_t)((s->W + 2 * s->pad - s->KW) / s->stride + 1);
    return (size_t)s->B * OH * OW * (size_t)s->OC;
}

/* the weights into the primitive's layout (and precision) */
static int conv_weights_in_(compute_tl *t, conv_entry *c, const float *w) {
    dnnl_memory_set_data_handle(c->wuser, (void *)w);
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, c->wuser}, {DNNL_ARG_TO, c->wprim}};
    return exec_(t, c->reorder, 2, a);
}

static void add_(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

clasp_status clasp_conv2d_direct_fwd(const clasp_conv_shape *s, float *out, const float *inp,
                                     const float *w, const float *b) {
    compute_tl *t;
    conv_entry *c;
    const void *x;
    size_t nin = (size_t)s->B * s->H * s->W * s->C;
    CLASP_TRY(conv_prepare_(s, CONV_FWD, b != NULL, inp, nin, &t, &c, &x));
    if (conv_weights_in_(t, c, w))
        return clasp_set_error(CLASP_ERR_STATE, "oneDNN: reorder failed");
    dnnl_memory_set_data_handle(c->src, (void *)x);
    dnnl_memory_set_data_handle(c->dst, out);
    dnnl_exec_arg_t a[5] = {
        {DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wprim}, {DNNL_ARG_DST, c->dst}};
    int n = 3;
    if (b) {
        dnnl_memory_set_data_handle(c->bias, (void *)b);
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, c->bias};
    }
    if (c->scratch) a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, c->scratch};
    if (exec_(t, c->prim, n, a))
        return clasp_set_error(CLASP_ERR_STATE, "oneDNN: convolution failed");
    return CLASP_OK;
}

clasp_status clasp_conv2d_direct_bwd_data(const clasp_conv_shape *s, float *dinp, const float *dout,
                                          const float *w) {
    compute_tl *t;
    conv_entry *c;
    const void *dy;
    size_t nin = (size_t)s->B * s->H * s->W * s->C;
    CLASP_TRY(conv_prepare_(s, CONV_BWD_DATA, 0, dout, conv_out_elems_(s), &t, &c, &dy));
    if (grow_bytes_((void **)&t->ftmp, &t->ftmp_cap, nin * sizeof(float)))
        return clasp_set_error(CLASP_ERR_NOMEM, "oneDNN: out of memory");
    if (conv_weights_in_(t, c, w))
        return clasp_set_error(CLASP_ERR_STATE, "oneDNN: reorder failed");
    dnnl_memory_set_data_handle(c->src, (void *)dy);
    dnnl_memory_set_data_handle(c->dst, t->ftmp);
    dnnl_exec_arg_t a[4] = {
        {DNNL_ARG_DIFF_DST, c->src}, {DNNL_ARG_WEIGHTS, c->wprim}, {DNNL_ARG_DIFF_SRC, c->dst}};
    int n = 3;
    if (c->scratch) a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, c->scratch};
    if (exec_(t, c->prim, n, a))
        return clasp_set_error(CLASP_ERR_STATE, "oneDNN: convolution failed");
    add_(dinp, t->ftmp, nin);
    return CLASP_OK;
}

clasp_status clasp_conv2d_direct_bwd_weights(const clasp_conv_shape *s, float *dw, float *db,
                                             const float *dout, const float *inp) {
    compute_tl *t;
    conv_entry *c;
    const void *x;
    size_t nin = (size_t)s->B * s->H * s->W * s->C, nout = conv_out_elems_(s);
    size_t nw = (size_t)s->OC * s->C * s->KH * s->KW;
    CLASP_TRY(conv_prepare_(s, CONV_BWD_WEIGHTS, db != NULL, inp, nin, &t, &c, &x));
    const void *dy = dout;
    if (c->key.bf16) { /* the image went to abf; the output gradient goes to bbf */
        if (grow_bytes_((void **)&t->bbf, &t->bbf_cap, nout * sizeof(uint16_t)))
            return clasp_set_error(CLASP_ERR_NOMEM, "oneDNN: out of memory for bf16 copies");
        clasp_f32_to_bf16_n(t->bbf, dout, nout);
        dy = t->bbf;
    }
    if (grow_bytes_((void **)&t->ftmp, &t->ftmp_cap, (nw + (size_t)s->OC) * sizeof(float)))
        return clasp_set_error(CLASP_ERR_NOMEM, "oneDNN: out of memory");
    dnnl_memory_set_data_handle(c->src, (void *)x);
    dnnl_memory_set_data_handle(c->dst, (void *)dy);
    dnnl_exec_arg_t a[5] = {
        {DNNL_ARG_SRC, c->src}, {DNNL_ARG_DIFF_DST, c->dst}, {DNNL_ARG_DIFF_WEIGHTS, c->wprim}};
    int n = 3;
    if (db) {
        dnnl_memory_set_data_handle(c->bias, t->ftmp + nw);
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, c->bias};
    }
    if (c->scratch) a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, c->scratch};
    if (exec_(t, c->prim, n, a))
        return clasp_set_error(CLASP_ERR_STATE, "oneDNN: convolution failed");
    dnnl_memory_set_data_handle(c->wuser, t->ftmp);
    dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, c->wprim}, {DNNL_ARG_TO, c->wuser}};
    if (exec_(t, c->reorder, 2, r))
        return clasp_set_error(CLASP_ERR_STATE, "oneDNN: reorder failed");
    add_(dw, t->ftmp, nw);
    if (db) add_(db, t->ftmp + nw, (size_t)s->OC);
    return CLASP_OK;
}

clasp_status clasp_compute_check(clasp_precision p, int *native) {
    if (native) *native = 1;
    pthread_once(&g_engine_once, engine_init_);
    if (g_engine_status != dnnl_success)
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "oneDNN: cannot create a CPU engine");
    if (p != CLASP_BF16) return CLASP_OK;
    if (native) *native = !bf16_emulated_();
    return CLASP_OK;
}

#else
/* ==== OpenBLAS ============================================================================== */
#include <cblas.h>

const char *clasp_compute_backend(void) {
    return "openblas";
}

void clasp_compute_set_threads(int n) {
    __atomic_store_n(&g_threads, n < 0 ? 0 : n, __ATOMIC_RELAXED);
    /* OpenBLAS's thread count is process-wide; 0 = its own default */
    if (n > 0) openblas_set_num_threads(n);
}

void clasp_compute_thread_release(void) {}

size_t clasp_compute_cached_primitives(void) {
    return 0;
}

void clasp_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    float *ra = NULL, *rb = NULL;
    if (tl_precision == CLASP_BF16) round_inputs_(&ra, &rb, ta, tb, M, N, K, &A, &lda, &B, &ldb);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
    free(ra);
    free(rb);
}

void clasp_gemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                     int ldb, const float *bias, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    bias_rows_(C, bias, M, N, ldc);
    clasp_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
}

void clasp_gemm_batched(int ta, int tb, int M, int N, int K, float alpha, float beta,
                        const clasp_gemm_batch *g) {
    int n2 = g->batch2 > 0 ? g->batch2 : 1;
    for (int i = 0; i < g->batch; i++)
        for (int j = 0; j < n2; j++)
            clasp_gemm(ta, tb, M, N, K, alpha, g->A + i * g->sa + j * g->sa2, g->lda,
                       g->B + i * g->sb + j * g->sb2, g->ldb, beta, g->C + i * g->sc + j * g->sc2,
                       g->ldc);
}

int clasp_compute_batched_native(void) {
    return 0;
}

uint16_t *clasp_compute_bf16_scratch(int slot, size_t n) {
    (void)slot, (void)n;
    return NULL;
}

static clasp_status no_direct_conv_(void) {
    return clasp_set_error(CLASP_ERR_UNSUPPORTED, "backend openblas has no direct convolution");
}

clasp_status clasp_conv2d_direct_fwd(const clasp_conv_shape *s, float *out, const float *inp,
                                     const float *w, const float *b) {
    (void)s, (void)out, (void)inp, (void)w, (void)b;
    return no_direct_conv_();
}

clasp_status clasp_conv2d_direct_bwd_data(const clasp_conv_shape *s, float *dinp, const float *dout,
                                          const float *w) {
    (void)s, (void)dinp, (void)dout, (void)w;
    return no_direct_conv_();
}

clasp_status clasp_conv2d_direct_bwd_weights(const clasp_conv_shape *s, float *dw, float *db,
                                             const float *dout, const float *inp) {
    (void)s, (void)dw, (void)db, (void)dout, (void)inp;
    return no_direct_conv_();
}

clasp_status clasp_compute_check(clasp_precision p, int *native) {
    if (native) *native = 1;
    if (p == CLASP_BF16)
        return clasp_set_error(CLASP_ERR_UNSUPPORTED,
                               "precision bf16 needs the onednn backend; this clasp was built "
                               "with backend openblas (cmake -DCLASP_BACKEND=onednn)");
    return CLASP_OK;
}
#endif
