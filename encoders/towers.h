/* towers.h: private interface between encoders/model.c and the tower implementations in
 * encoders/towers.c (image CNN and ViT, text transformer, audio CNN and AST). Not part of the
 * public API.
 *
 * A tower declares its parameters into a table (clasp__ptable_add), keeps the indices of its
 * parameters, and plans its activations into an arena: clasp__tower_plan is run once against a
 * measuring arena (sizing) and again before every forward against the real arena, where it
 * only bumps pointers. Forward and backward then touch nothing but the arena and the model's
 * params/grads. The CNN code serves the image CNN and the audio CNN (non-square input, global
 * average pooling before the fc layers); the patch-transformer code serves the ViT and the
 * AST (non-square patches over a non-square input). */
#ifndef CLASP_ENCODERS_TOWERS_H
#define CLASP_ENCODERS_TOWERS_H

#include "core/arena.h"
#include "encoders/layers.h"
#include "encoders/model.h"

typedef struct clasp__ptable {
    clasp_param_info *info;
    int n;
    size_t cap;
    size_t total; /* floats so far */
} clasp__ptable;

/* Appends a parameter; returns its index or -1 (error set). */
int clasp__ptable_add(clasp__ptable *pt, clasp_tower t, const char *name, int ndim,
                      const int64_t *shape, bool decay, clasp_init_kind init, float scale,
                      int fan_in);

/* Indices of one pre-LN block's parameters, in clasp_block_params field order (the last two,
 * the layer-scale gammas, -1 without layer scale). */
enum { CLASP__BLK_N = 14 };

/* A stack of pre-LN blocks followed by a final LayerNorm (shared by ViT and text). */
typedef struct clasp__stack {
    int L, C, NH, F;
    bool causal;
    int gelu_tanh; /* clasp_act */
    float eps;
    float ls_init; /* layer scale's initial gamma ("ls_init_value"), 0 = no layer scale */
    int (*blk)[CLASP__BLK_N]; /* (L) parameter indices */
    int lnf_w, lnf_b;
    /* activations for the current batch (arena) */
    clasp_block_acts *acts; /* (L), pointing into the arena */
    float **xs;             /* (L+1) block inputs/outputs, each (B,T,C); xs[0] = stack input */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T), (B,T) */
    float *work;
    float *dx_a, *dx_b, *dlnf; /* (B,T,C) backward scratch */
} clasp__stack;

typedef struct clasp__tower {
    clasp_tower kind;
    clasp_arena arena;
    int fwd_B;            /* batch of the last forward, 0 = none */
    bool is_cnn;          /* CNN (image cnn, audio_cnn) or patch transformer / text */
    int in_c, in_h, in_w; /* CNN, ViT/AST: input c x h x w */
    /* CNN: blocks, fc layers; gap = global average pooling of the last block's output (B, OC)
     * feeds the fc layers instead of the flattened map */
    int n_conv, n_fc;
    bool gap;
    clasp_conv_block cb[CLASP_MAX_CONV_BLOCKS];
    int conv_w[CLASP_MAX_CONV_BLOCKS], conv_b[CLASP_MAX_CONV_BLOCKS];
    int fc_w[CLASP_MAX_FC_LAYERS + 1], fc_b[CLASP_MAX_FC_LAYERS + 1];
    int cin[CLASP_MAX_CONV_BLOCKS], hin[CLASP_MAX_CONV_BLOCKS]; /* block input C, H */
    int win[CLASP_MAX_CONV_BLOCKS];                             /* block input W */
    int hconv[CLASP_MAX_CONV_BLOCKS], hout[CLASP_MAX_CONV_BLOCKS];
    int wconv[CLASP_MAX_CONV_BLOCKS], wout[CLASP_MAX_CONV_BLOCKS];
    int fc_in[CLASP_MAX_FC_LAYERS + 1], fc_out[CLASP_MAX_FC_LAYERS + 1];
    /* The conv blocks run channels-last (NHWC, encoders/layers.h); the input arrives NCHW and
     * the fc layers read the flattened map in NCHW order (PyTorch's, so exports load there). */
    float *x;            /* input copy: (B,H,W,C) with conv blocks, else (B,C,H,W) */
    float *gapv, *dgap;  /* (B, OC) with gap, else NULL */
    float *flat, *dflat; /* (B, OC*PH*PW) the last block's map in NCHW order and its gradient,
                            when it feeds the fc layers (conv blocks, no gap), else NULL */
    float *conv[CLASP_MAX_CONV_BLOCKS];       /* (B,OH,OW,OC) after ReLU; with pool: one image's raw
                                                 conv output (OH,OW,OC), scratch */
    float *pool[CLASP_MAX_CONV_BLOCKS];       /* (B,PH,PW,OC) or NULL (no pool) */
    int32_t *pidx[CLASP_MAX_CONV_BLOCKS];     /* argmax of each pool output */
    float *fc[CLASP_MAX_FC_LAYERS];           /* hidden fc outputs after ReLU (B,OUT) */
    float *dconv_out[CLASP_MAX_CONV_BLOCKS];  /* grad of the block output */
    float *dconv_post[CLASP_MAX_CONV_BLOCKS]; /* grad after ReLU (== dconv_out w/o pool,
                                                 NULL with pool: fused ReLU + pool backward) */
    float *dconv_pre[CLASP_MAX_CONV_BLOCKS];  /* grad before ReLU (shares conv[i] with pool) */
    float *dfc_post[CLASP_MAX_FC_LAYERS], *dfc_pre[CLASP_MAX_FC_LAYERS];
    float *cwork_blk[CLASP_MAX_CONV_BLOCKS]; /* conv scratch, one per block */
    /* transformer towers (ViT, AST, text) */
    clasp__stack st;
    int T;                     /* tokens per sample */
    int tok_emb, pos_emb;      /* text; pos_emb also ViT/AST */
    int patch_w, patch_b, cls; /* ViT/AST (cls = -1 without class token) */
    /* ViT/AST: patches PH x PW of the input, grid GH x GW (leftover rows and columns that do
     * not fill a patch are ignored), width W, pooling */
    int PH, PW, GH, GW, pwidth;
    clasp_pool ppool;
    int proj_w, proj_b;
    int32_t *tokens;      /* text (B,T) copy */
    uint8_t *padm;        /* text (B,T) 1 = PAD, or NULL */
    int32_t *pos;         /* (B) gathered row (EOS / class token) */
    float *patches;       /* ViT/AST (B*N, C*PH*PW) */
    float *pe;            /* ViT/AST (B*N, W) patch embeddings, reused as their gradient */
    int lnpre_w, lnpre_b; /* ViT "ln_pre" LayerNorm, -1 = none */
    float *lnpre_in, *lnpre_mean, *lnpre_rstd; /* (B,T,W), (B,T), (B,T) */
    float *pooled, *dpooled;                   /* (B, W) */
} clasp__tower;

/* Declares the tower's parameters and fills its indices. */
clasp_status clasp__tower_declare(clasp__tower *tw, const clasp_model_config *cfg,
                                  clasp__ptable *pt);
/* Carves the activations for batch B out of `a` (measuring or real). */
clasp_status clasp__tower_plan(clasp__tower *tw, const clasp_model *m, clasp_arena *a, int B);
clasp_status clasp__tower_forward(clasp__tower *tw, const clasp_model *m, const void *input, int B,
                                  float *feat);
void clasp__tower_backward(clasp__tower *tw, clasp_model *m, const float *dfeat);
void clasp__tower_free(clasp__tower *tw);

#endif
