/* layers.h: neural-network layers as forward/backward pairs (llm.c style).
 *
 * Conventions, for every layer here:
 * - Row-major float32, NCHW for images, (B, T, C) for sequences. Shapes are in the comment
 *   of each function; dims come last in the signature, outputs first, then caches, then
 *   const inputs and weights.
 * - forward writes its outputs (no accumulation). backward ACCUMULATES (+=) into every
 *   gradient it is given (dinp, dw, db); the trainer zeroes gradients once per step. Any
 *   gradient pointer may be NULL when that gradient is not needed (e.g. dinp of the first
 *   layer), and is then not computed.
 * - Layers never allocate. Scratch memory is passed in (`work`), sized by the matching
 *   *_work_floats() function.
 * - Matrix products go through cblas_sgemm. Results do not depend on thread counts
 *   except through OpenBLAS's own summation order.
 * - Bias pointers may be NULL (no bias).
 */
#ifndef CLASP_ENCODERS_LAYERS_H
#define CLASP_ENCODERS_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* ---- linear: out = inp @ w^T + b ------------------------------------------------------- */
/* out (N, OC), inp (N, C), w (OC, C) [PyTorch nn.Linear layout], b (OC) */
void clasp_linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                          int C, int OC);
/* dinp (N, C), dw (OC, C), db (OC), dout (N, OC) */
void clasp_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, int N, int C, int OC);

/* ---- conv2d, NHWC (channels last) -------------------------------------------------------
 * Images are (B, H, W, C); weights keep PyTorch's (OC, C, KH, KW) order. The backend's direct
 * convolution where it has one (oneDNN), else im2col + clasp_gemm. */
/* OH = (H + 2*pad - KH) / stride + 1, OW likewise. */
int clasp_conv2d_out_size(int in, int k, int stride, int pad);
/* Scratch floats needed by forward and backward for a whole batch. */
size_t clasp_conv2d_work_floats(int B, int C, int H, int W, int KH, int KW, int stride, int pad);
/* out (B, OH, OW, OC), inp (B, H, W, C), w (OC, C, KH, KW), b (OC) */
void clasp_conv2d_forward(float *out, float *work, const float *inp, const float *w, const float *b,
                          int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);
void clasp_conv2d_backward(float *dinp, float *dw, float *db, float *work, const float *dout,
                           const float *inp, const float *w, int B, int C, int H, int W, int OC,
                           int KH, int KW, int stride, int pad);

/* ---- pooling, NHWC ----------------------------------------------------------------------- */
/* max pool k x k, stride s, no padding: out (B, OH, OW, C), idx (B, OH, OW, C) = flat index
 * (ih * W + iw) * C + c into the chosen input's image (first maximum on ties, as PyTorch). */
void clasp_maxpool2d_forward(float *out, int32_t *idx, const float *inp, int B, int C, int H, int W,
                             int k, int s);
void clasp_maxpool2d_backward(float *dinp, const float *dout, const int32_t *idx, int B, int C,
                              int H, int W, int k, int s);
/* ReLU followed by max pool, fused. Forward: max pool of the raw input (out, idx as
 * clasp_maxpool2d_forward), then out = max(out, 0): for finite inputs the same values as
 * pooling relu(inp) (idx may name another element of a window whose max is <= 0).
 * Backward: dinp (B, H, W, C) is WRITTEN (not accumulated): dout at idx where out > 0, 0
 * elsewhere; the same gradient as ReLU backward after max-pool backward (a window whose max
 * is <= 0 has zero gradient through the ReLU whichever element idx names). */
void clasp_relu_maxpool2d_forward(float *out, int32_t *idx, const float *inp, int B, int C, int H,
                                  int W, int k, int s);
void clasp_relu_maxpool2d_backward(float *dinp, const float *dout, const int32_t *idx,
                                   const float *out, int B, int C, int H, int W, int k, int s);
/* average pool k x k, stride s, no padding */
void clasp_avgpool2d_forward(float *out, const float *inp, int B, int C, int H, int W, int k,
                             int s);
void clasp_avgpool2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int k,
                              int s);
/* global average pool: out (B, C) = mean over (H, W) of inp (B, H, W, C) */
void clasp_global_avgpool_forward(float *out, const float *inp, int B, int C, int HW);
void clasp_global_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW);
/* token mean pool: out (B, C) = mean over T of inp (B, T, C) */
void clasp_meanpool_tokens_forward(float *out, const float *inp, int B, int T, int C);
void clasp_meanpool_tokens_backward(float *dinp, const float *dout, int B, int T, int C);
/* token gather: out (B, C) = inp[b, pos[b], :] (EOS or class-token pooling) */
void clasp_gather_tokens_forward(float *out, const float *inp, const int32_t *pos, int B, int T,
                                 int C);
void clasp_gather_tokens_backward(float *dinp, const float *dout, const int32_t *pos, int B, int T,
                                  int C);

/* ---- activations (n elements) ----------------------------------------------------------- */
void clasp_relu_forward(float *out, const float *inp, size_t n);
/* uses the forward OUTPUT (out > 0), so inp may be overwritten in place */
void clasp_relu_backward(float *dinp, const float *dout, const float *out, size_t n);
/* exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)) (PyTorch default) */
void clasp_gelu_forward(float *out, const float *inp, size_t n);
void clasp_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh') */
void clasp_gelu_tanh_forward(float *out, const float *inp, size_t n);
void clasp_gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* QuickGELU (OpenAI CLIP): x * sigmoid(1.702 x) */
void clasp_quick_gelu_forward(float *out, const float *inp, size_t n);
void clasp_quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* ---- layer norm over the last dim -------------------------------------------------------- */
/* out (N, C), mean (N), rstd (N), inp (N, C), w (C), b (C); eps as PyTorch (e.g. 1e-5) */
void clasp_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                             const float *b, int N, int C, float eps);
void clasp_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int N, int C);

/* ---- embeddings --------------------------------------------------------------------------- */
/* out (B, T, C) = wte[tok[b, t]] (+ wpe[t] when wpe != NULL); tok values must be in [0, V) */
void clasp_embedding_forward(float *out, const int32_t *tok, const float *wte, const float *wpe,
                             int B, int T, int C);
void clasp_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                              int B, int T, int C);
/* learned positional embedding added in place: x (B, T, C) += wpe (T, C) */
void clasp_posemb_forward(float *x, const float *wpe, int B, int T, int C);
void clasp_posemb_backward(float *dwpe, const float *dout, int B, int T, int C);

/* ---- multi-head self-attention core (no projections) ------------------------------------- */
/* qkv (B, T, 3C) with q = [:, :, 0:C], k = [:, :, C:2C], v = [:, :, 2C:3C]; head h uses
 * columns h*hs .. h*hs+hs-1 of each (hs = C / NH). att (B, NH, T, T) caches softmax
 * probabilities; out (B, T, C). causal: mask j > i. pad_mask (B, T) or NULL: 1 = key is
 * padding and is masked out (a row whose keys are all masked outputs zeros). Scale 1/sqrt(hs). */
size_t clasp_attention_work_floats(int B, int T, int C, int NH);
void clasp_attention_forward(float *out, float *att, float *work, const float *qkv,
                             const uint8_t *pad_mask, int causal, int B, int T, int C, int NH);
void clasp_attention_backward(float *dqkv, float *work, const float *dout, const float *qkv,
                              const float *att, int B, int T, int C, int NH);

/* ---- L2 normalisation over the last dim --------------------------------------------------- */
/* out (N, D) = inp / max(||inp||, eps) (F.normalize), norm (N) caches max(||inp||, eps) */
void clasp_l2norm_forward(float *out, float *norm, const float *inp, int N, int D, float eps);
void clasp_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                           int N, int D);

/* ---- dropout (counter-based mask: same (seed, step, layer) -> same mask) ----------------- */
/* p = 0 copies. Element i is kept iff philox(seed, DROPOUT, step, layer)[i] >= p; kept
 * values are scaled by 1/(1-p). */
void clasp_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed,
                           uint64_t step, uint64_t layer);
void clasp_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                            uint64_t step, uint64_t layer);

/* ---- residual add ------------------------------------------------------------------------- */
void clasp_add_forward(float *out, const float *a, const float *b, size_t n);

/* ---- pre-LN transformer block -------------------------------------------------------------
 * x_out = x + proj(attn(LN1(x)));  x_out = x_out + fc2(act(fc1(LN2(x_out))))
 * PyTorch names relative to the block: ln1.{weight,bias}, attn.qkv.{weight,bias},
 * attn.proj.{weight,bias}, ln2.{weight,bias}, mlp.fc1.{weight,bias}, mlp.fc2.{weight,bias}.
 * With layer scale (OpenCLIP's LayerScale, dims.layer_scale = 1) each branch is multiplied by
 * a per-channel gamma before its residual add: x + ls1 * proj(...), res1 + ls2 * fc2(...)
 * (ls1.gamma, ls2.gamma). */
typedef struct clasp_block_params {
    float *ln1_w, *ln1_b;   /* (C) */
    float *qkv_w, *qkv_b;   /* (3C, C), (3C) */
    float *proj_w, *proj_b; /* (C, C), (C) */
    float *ln2_w, *ln2_b;   /* (C) */
    float *fc1_w, *fc1_b;   /* (F, C), (F) */
    float *fc2_w, *fc2_b;   /* (C, F), (C) */
    float *ls1, *ls2;       /* (C) layer-scale gammas; NULL without layer scale */
} clasp_block_params;

/* What the forward caches for the backward. The LayerNorm outputs and GELU's output are not
 * kept: the backward recomputes them (bit-identically) into its scratch. */
typedef struct clasp_block_acts {
    float *ln1_mean, *ln1_rstd; /* (B,T), (B,T) */
    float *qkv;                 /* (B,T,3C) */
    float *att;                 /* (B,NH,T,T) */
    float *atty;                /* (B,T,C) attention output before proj */
    float *res1;                /* (B,T,C) x + proj(...) */
    float *ln2_mean, *ln2_rstd; /* (B,T), (B,T) */
    float *fc1;                 /* (B,T,F) pre-activation */
    float *lsq, *lsm;           /* (B,T,C) the attention and MLP branches before their layer scale;
                                   NULL without layer scale */
} clasp_block_acts;

typedef struct clasp_block_dims {
    int B, T, C, NH, F;
    int causal;      /* 1 = causal mask */
    int gelu_tanh;   /* 0 = exact erf GELU, 1 = tanh form, 2 = QuickGELU */
    float ln_eps;    /* 1e-5 */
    int layer_scale; /* 1 = ls1/ls2 gammas (the params must have them) */
} clasp_block_dims;

/* Number of floats of activations for one block (what clasp_block_acts points into). */
size_t clasp_block_acts_floats(const clasp_block_dims *d);
/* Points acts into buf (clasp_block_acts_floats(d) floats). */
void clasp_block_acts_point(clasp_block_acts *a, float *buf, const clasp_block_dims *d);
/* Scratch floats for forward/backward (the recomputed LayerNorm and GELU outputs, the
 * backward's temporaries and the attention work); nothing in it lives from the forward to
 * the backward, so blocks may share one. */
size_t clasp_block_work_floats(const clasp_block_dims *d);
/* out (B,T,C); inp (B,T,C); pad_mask (B,T) or NULL */
void clasp_block_forward(float *out, clasp_block_acts *a, float *work, const float *inp,
                         const clasp_block_params *p, const uint8_t *pad_mask,
                         const clasp_block_dims *d);
/* dinp (B,T,C) accumulates; g holds gradient pointers in the same layout as p */
void clasp_block_backward(float *dinp, clasp_block_params *g, float *work, const float *dout,
                          const float *inp, const clasp_block_acts *a, const clasp_block_params *p,
                          const clasp_block_dims *d);

#endif
