/* openclip.h: importing OpenCLIP / OpenAI CLIP ViT checkpoints as clasp exports
 * (`clasp import openclip`, docs/import.md).
 *
 *     clasp_openclip_arch a;
 *     clasp_openclip_report r;
 *     CLASP_TRY(clasp_openclip_arch_load("configs/openclip/ViT-B-32.json", &a));
 *     CLASP_TRY(clasp_openclip_import("ViT-B-32.safetensors", &a, "bpe_simple_vocab_16e6.txt.gz",
 *                                     "exports/vit-b-32", &r));
 *
 * The architecture is an OpenCLIP model config ({"embed_dim", "vision_cfg", "text_cfg",
 * "quick_gelu"}). The checkpoint is a safetensors state dict in OpenCLIP's names (F32, F16 or
 * BF16; converted to fp32). Every tensor is mapped to a clasp parameter and checked:
 *
 *   visual.conv1.weight (W, 3, P, P)          image.patch_embed.weight (its bias set to zero)
 *   visual.class_embedding (W)                image.cls_token
 *   visual.positional_embedding (T, W)        image.pos_emb
 *   visual.ln_pre.*                           image.ln_pre.*
 *   visual.transformer.resblocks.L.ln_1.*     image.blocks.L.ln1.*   (ln_2: ln2)
 *     .attn.in_proj_weight (3W, W), _bias     .attn.qkv.weight, .bias  (rows q, k, v)
 *     .attn.out_proj.*                        .attn.proj.*
 *     .mlp.c_fc.*, .mlp.c_proj.*              .mlp.fc1.*, .mlp.fc2.*
 *     .ls_1.gamma, .ls_2.gamma (W)            .ls1.gamma, .ls2.gamma (with ls_init_value)
 *   visual.ln_post.*                          image.ln_f.*
 *   visual.proj (W, D)                        image.proj.weight (D, W)  (transposed)
 *   token_embedding.weight (V, W)             text.tok_emb.weight
 *   positional_embedding (T, W)               text.pos_emb
 *   transformer.resblocks.L.*                 text.blocks.L.* (as the image blocks)
 *   ln_final.*                                text.ln_f.*
 *   text_projection (W, D)                    text.proj.weight (D, W)  (transposed)
 *   logit_scale ()                            logit_scale (both hold the log of the scale)
 *
 * The buffers of OpenAI's TorchScript state dicts (`input_resolution`, `context_length`,
 * `vocab_size`, and any `attn_mask`) are ignored and listed in the report. */
#ifndef CLASP_EXPORT_OPENCLIP_H
#define CLASP_EXPORT_OPENCLIP_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "core/status.h"

/* The OpenCLIP architecture fields clasp uses (others are refused or ignored: docs/import.md). */
typedef struct clasp_openclip_arch {
    int embed_dim;
    /* vision_cfg */
    int image_size, patch_size, vision_width, vision_layers, vision_heads, vision_mlp;
    float mean[3], std[3]; /* "image_mean"/"image_std", default OpenAI CLIP's */
    float vision_ls;       /* "ls_init_value": layer scale (ls_1/ls_2 gammas), 0 = none */
    /* text_cfg */
    int context_length, vocab_size, text_width, text_heads, text_layers, text_mlp;
    float text_ls;   /* "ls_init_value" of the text tower, 0 = none */
    bool quick_gelu; /* QuickGELU (OpenAI's released weights) instead of exact GELU */
} clasp_openclip_arch;

/* Parses an OpenCLIP model config; `what` names it in messages. A field clasp does not support
 * with a value other than its default (attentional pooling, a non-ViT vision tower, a
 * Hugging Face text tower, ...) is CLASP_ERR_UNSUPPORTED naming `what` and the field;
 * an unknown field, a missing or ill-typed one is CLASP_ERR_CONFIG. */
clasp_status clasp_openclip_arch_parse(const cJSON *root, const char *what, clasp_openclip_arch *a);
/* The same from a file. */
clasp_status clasp_openclip_arch_load(const char *path, clasp_openclip_arch *a);

/* The clasp model config (towers and preprocessing) of an architecture, with the clip_bpe
 * tokenizer at `merges` (a path) and logit scale bound `max_logit_scale`; the image mean and
 * std are not in it (clasp_openclip_import sets them on the parsed preprocessing). Caller owns
 * *out. */
clasp_status clasp_openclip_model_config(const clasp_openclip_arch *a, const char *merges,
                                         double max_logit_scale, cJSON **out);

/* What an import read. */
typedef struct clasp_openclip_report {
    int n_tensors;            /* tensors mapped to clasp parameters */
    int n_f32, n_f16, n_bf16; /* of them, by dtype */
    int n_ignored;            /* buffers ignored (names below, comma-separated) */
    char ignored[512];
    double logit_scale; /* the imported log scale */
} clasp_openclip_report;

/* Imports the checkpoint `ckpt` (safetensors, OpenCLIP names) of architecture `a` into the
 * export folder out_dir, with the clip_bpe merges file `merges` copied into it. Errors:
 * CLASP_ERR_NOT_FOUND naming a missing tensor, CLASP_ERR_FORMAT naming an extra tensor, a
 * tensor of the wrong shape (with the expected shape) or dtype; CLASP_ERR_IO. rep may be NULL. */
clasp_status clasp_openclip_import(const char *ckpt, const clasp_openclip_arch *a,
                                   const char *merges, const char *out_dir,
                                   clasp_openclip_report *rep);

#endif
