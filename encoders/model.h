/* model.h: model configs (configs/NAME.json, OpenCLIP-style) and the encoders built from them.
 *
 * A clasp_model holds one tower per modality present in its config (image: "cnn" or "vit";
 * text: "transformer"; audio: "audio_cnn" or "ast"), the logit scale (and logit bias for
 * SigLIP), and three things that mirror each other:
 *
 *   info[]   the parameter table: PyTorch-style name, shape, offset into `params`, weight-decay
 *            flag, tower, init rule, in a fixed order (image, text, audio, shared);
 *   params   ONE contiguous float buffer with every parameter;
 *   grads    ONE contiguous float buffer with the same layout (AdamW moments are the trainer's,
 *            in the same layout again).
 *
 * Activations of each tower live in that tower's own arena, sized once by
 * clasp_model_prepare(m, B) with a measuring pass; encode/backward then never call malloc, and
 * any batch size 1..B can be run without reallocating (last partial batch, evaluation). The
 * towers' arenas are separate, so the encode and backward calls of different towers can run in
 * any order after their forward. A config may hold any two or all three towers (image+text,
 * audio+text, image+audio+text for binding); which towers a loss pairs is the engine's choice.
 *
 *     clasp_model_config cfg;
 *     clasp_model m;
 *     if (clasp_model_config_load("configs/fmnist-small.json", &cfg) ||
 *         clasp_model_init(&m, &cfg) || clasp_model_prepare(&m, 256)) { ...clasp_last_error()... }
 *     clasp_model_init_weights(&m, seed);          // or clasp_model_load(&m, "model.safetensors")
 *     clasp_model_zero_grad(&m);
 *     clasp_model_encode_image(&m, pixels, B, zi); // zi (B, embed_dim), not normalised
 *     clasp_model_encode_text(&m, tokens, B, zt);
 *     ... loss: dzi, dzt ...
 *     clasp_model_backward_image(&m, dzi);         // accumulates into m.grads
 *     clasp_model_backward_text(&m, dzt);
 *     clasp_model_free(&m);
 *
 * Parameter names (tensor names in model.safetensors; tools/clasp_torch.py builds modules with
 * the same names):
 *   CNN   image.conv{i}.weight (OC, C, K, K), .bias (OC), i = 1..n_conv;
 *         image.fc{j}.weight (OUT, IN), .bias (OUT), j = 1..n_fc+1 (the last fc maps to
 *         embed_dim and is the tower output; no separate projection). In
 *         ../shared/bench/ref_clip_fmnist.py the module is `visual`: visual.conv1.weight is our
 *         image.conv1.weight, and so on.
 *   ViT   image.patch_embed.weight (W, C, P, P) (a conv with kernel = stride = P, computed as a
 *         linear map of flattened (c, y, x) patches), .bias (W); image.cls_token (W) (only with
 *         pool "cls"); image.pos_emb (T, W), T = patches (+1 with a class token, which comes
 *         first); image.blocks.{l}.* as the text blocks; image.ln_f.{weight,bias} (W);
 *         image.proj.weight (D, W), .bias (D).
 *   text  text.tok_emb.weight (V, W); text.pos_emb (T, W); text.blocks.{l}.ln1.{weight,bias},
 *         .attn.qkv.{weight,bias} (3W, W) rows [q; k; v], .attn.proj.{weight,bias} (W, W),
 *         .ln2.{weight,bias}, .mlp.fc1.{weight,bias} (F, W), .mlp.fc2.{weight,bias} (W, F),
 *         with "ls_init_value" also .ls1.gamma, .ls2.gamma (W) (layer scale of the attention
 *         and MLP branches, OpenCLIP's ls_1/ls_2);
 *         text.ln_f.{weight,bias}; text.proj.weight (D, W), .bias (D). In ref_clip_fmnist.py
 *         the block's qkv/proj/fc1/fc2 sit directly under blocks.N (no attn./mlp.).
 *   audio_cnn  audio.conv{i}.weight (OC, C, K, K), .bias (OC), i = 1..n_conv (C = 1 for the
 *         first block: the log-mel is a 1-channel image, frequency = rows, time = columns);
 *         then a global average over frequency and time of the last block's output (B, OC);
 *         audio.fc{j}.weight (OUT, IN), .bias (OUT), j = 1..n_fc+1 (ReLU between, the last
 *         maps to embed_dim). PyTorch: x = mel.unsqueeze(1); per block maxpool(relu(conv(x)));
 *         x.mean((2, 3)); fc layers.
 *   ast   audio.patch_embed.weight (W, 1, PF, PT) (a conv with kernel = stride = (PF, PT) over
 *         the (n_mels, n_frames) log-mel; frequency rows or time frames that do not fill a
 *         whole patch are dropped, as Conv2d does), .bias (W); audio.cls_token (W) (pool
 *         "cls"); audio.pos_emb (T, W), T = (n_mels/PF) * (n_frames/PT) (+1 for the class
 *         token, first), patches in (frequency, time) row-major order as Conv2d's
 *         flatten(2); audio.blocks.{l}.* as the text blocks; audio.ln_f.{weight,bias};
 *         audio.proj.weight (D, W), .bias (D).
 *   shared logit_scale (scalar, shape []), logit_bias (scalar, only with init_logit_bias).
 *
 * Not thread-safe: one model per thread, or external locking.
 */
#ifndef CLASP_ENCODERS_MODEL_H
#define CLASP_ENCODERS_MODEL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compute.h"
#include "core/arena.h"
#include "core/safetensors.h"
#include "core/status.h"

#define CLASP_MAX_CONV_BLOCKS    8
#define CLASP_MAX_FC_LAYERS      8
#define CLASP_MAX_IMAGE_CHANNELS 4
#define CLASP_PARAM_NAME_MAX     64

/* ---- config ---------------------------------------------------------------------------- */

/* Towers. SHARED holds logit_scale and logit_bias. */
typedef enum clasp_tower {
    CLASP_TOWER_IMAGE = 0,
    CLASP_TOWER_TEXT = 1,
    CLASP_TOWER_AUDIO = 2,
    CLASP_TOWER_SHARED = 3,
    CLASP_N_TOWERS = 4
} clasp_tower;

const char *clasp_tower_name(clasp_tower t); /* "image", "text", "audio", "shared" */

typedef enum clasp_pool {
    CLASP_POOL_CLS = 0, /* ViT: the class token's row */
    CLASP_POOL_MEAN,    /* mean over tokens (text: non-PAD tokens when pad_id >= 0) */
    CLASP_POOL_EOS      /* text: row at the first eos_id token (last row if none) */
} clasp_pool;

typedef enum clasp_image_type {
    CLASP_IMAGE_NONE = 0,
    CLASP_IMAGE_CNN,
    CLASP_IMAGE_VIT
} clasp_image_type;
typedef enum clasp_text_type { CLASP_TEXT_NONE = 0, CLASP_TEXT_TRANSFORMER } clasp_text_type;
typedef enum clasp_audio_type {
    CLASP_AUDIO_TYPE_NONE = 0,
    CLASP_AUDIO_TYPE_CNN, /* "audio_cnn" */
    CLASP_AUDIO_TYPE_AST  /* "ast": audio spectrogram transformer */
} clasp_audio_type;

/* One CNN block: conv(k, stride, padding) -> ReLU -> maxpool(pool) when pool > 0. JSON:
 * {"channels": OC, "kernel": K, "stride": 1, "padding": 0, "pool": 0}. */
typedef struct clasp_conv_block {
    int channels, kernel, stride, padding, pool;
} clasp_conv_block;

/* A transformer block's MLP activation (clasp_block_dims.gelu_tanh takes these values) */
typedef enum clasp_act {
    CLASP_ACT_GELU = 0,       /* exact erf GELU */
    CLASP_ACT_GELU_TANH = 1,  /* tanh approximation */
    CLASP_ACT_QUICK_GELU = 2, /* x sigmoid(1.702 x) (OpenAI CLIP) */
} clasp_act;

typedef struct clasp_image_tower_config {
    clasp_image_type type; /* "type": "cnn" | "vit"; NONE = no image tower */
    int channels;          /* "channels" (1..4) */
    int size;              /* "size": input H = W in pixels */
    /* cnn */
    int n_conv;
    clasp_conv_block conv[CLASP_MAX_CONV_BLOCKS]; /* "conv": [...] */
    int n_fc;
    int fc[CLASP_MAX_FC_LAYERS]; /* "fc": hidden widths (ReLU after each); then fc to embed */
    /* vit */
    int patch_size, width, layers, heads, mlp_width; /* "patch_size", "width", ... */
    clasp_pool pool;                                 /* "pool": "cls" | "mean" */
    float ln_eps;                                    /* "ln_eps", default 1e-5 */
    clasp_act act;      /* "act": "gelu" (default) | "gelu_tanh" | "quick_gelu" */
    bool ln_pre;        /* "ln_pre": LayerNorm after patch + position embedding (OpenCLIP); false */
    bool no_proj_bias;  /* ViT "proj_bias": false = projection without bias (OpenCLIP) */
    bool no_patch_bias; /* ViT "patch_bias": false = patch embedding without bias (OpenCLIP's
                           conv1); "image.patch_embed.bias" then does not exist */
    float ls_init;      /* ViT "ls_init_value": layer scale (OpenCLIP's LayerScale) with gammas
                           ls1/ls2 starting at this value; 0 (default) = none */
} clasp_image_tower_config;

typedef struct clasp_text_tower_config {
    clasp_text_type type; /* "type": "transformer"; NONE = no text tower */
    int vocab_size;       /* "vocab_size" */
    int context_length;   /* "context_length": tokens per sequence T */
    int width, layers, heads, mlp_width;
    bool causal;       /* "causal", default true */
    clasp_pool pool;   /* "pool": "eos" (default) | "mean" */
    int eos_id;        /* "eos_id", default "tokenizer": {"eos"}; required for pool "eos" */
    int pad_id;        /* "pad_id", default "tokenizer": {"pad"}, -1 = none. PAD keys are masked
                          out of attention and out of mean pooling. */
    float ln_eps;      /* default 1e-5 */
    clasp_act act;     /* "act": "gelu" (default, exact erf) | "gelu_tanh" | "quick_gelu" */
    bool no_proj_bias; /* "proj_bias": false = projection without bias (OpenCLIP) */
    float ls_init;     /* "ls_init_value": layer scale as the ViT's; 0 (default) = none */
} clasp_text_tower_config;

/* The "audio" object of a model config. It holds two kinds of fields:
 *
 * Encoder fields (parsed here): "type": "audio_cnn" | "ast", "output_dim"; audio_cnn: "conv"
 * (blocks as the image CNN's), "fc"; ast: "patch_freq", "patch_time", "width", "layers",
 * "heads", "mlp_width", "pool" ("cls" default | "mean"), "ln_eps", "act".
 *
 * Front-end fields (the log-mel chain of modalities/audio.h, composed by
 * modalities/preprocess.h): sample_rate, clip_seconds, pad, crop, resample_quality,
 * min_seconds, n_fft, win_length, hop_length, window, center, pad_mode, n_mels, fmin, fmax,
 * mel_scale, mel_norm, power, log, log_floor, norm_mean, norm_std, nonfinite. This parser
 * accepts them by name and reads only the ones that fix the tower's input size, which must be
 * given explicitly: "sample_rate", "clip_seconds", "hop_length", "n_mels" (and "n_fft" when
 * "center" is false; "center" defaults to true as in modalities). From them:
 *     clip_samples = llround(clip_seconds * sample_rate)
 *     n_frames = center ? 1 + clip_samples / hop_length : 1 + (clip_samples - n_fft) / hop_length
 * which is clasp_audio_clip_frames() of the same fields (tests/test_config.c checks that).
 * The tower's input is the normalised log-mel (B, n_mels, n_frames). */
typedef struct clasp_audio_tower_config {
    clasp_audio_type type; /* NONE = no audio tower */
    int n_mels;            /* input rows (frequency) */
    int n_frames;          /* input columns (time), derived as above */
    int sample_rate;       /* Hz, copy of the front-end field */
    double clip_seconds;   /* copy of the front-end field */
    int n_fft, hop_length; /* copies (n_fft 0 when absent and center is true) */
    bool center;           /* copy, default true */
    /* audio_cnn */
    int n_conv;
    clasp_conv_block conv[CLASP_MAX_CONV_BLOCKS]; /* "conv": [...], at least one block */
    int n_fc;
    int fc[CLASP_MAX_FC_LAYERS]; /* "fc": hidden widths (ReLU after each); then fc to embed */
    /* ast */
    int patch_freq, patch_time;          /* "patch_freq", "patch_time" */
    int width, layers, heads, mlp_width; /* as the ViT's */
    clasp_pool pool;                     /* "pool": "cls" | "mean" */
    float ln_eps;                        /* default 1e-5 */
    clasp_act act;                       /* "act" */
} clasp_audio_tower_config;

typedef struct clasp_model_config {
    int embed_dim;           /* "embed_dim" */
    double init_logit_scale; /* default ln(1/0.07) */
    double max_logit_scale;  /* default ln(100) */
    bool has_logit_bias;     /* true when "init_logit_bias" is given (SigLIP) */
    double init_logit_bias;
    clasp_precision precision; /* "precision": the products' precision the model trains in by
                                  default and was trained in (an export records it); embedding
                                  may use either (core/compute.h) */
    clasp_image_tower_config image;
    clasp_text_tower_config text;
    clasp_audio_tower_config audio;
} clasp_model_config;

/* Reads the towers of configs/NAME.json (its preprocessing fields: modalities/preprocess.h,
 * whose keys this parser knows by name). Unknown keys (except ones starting with '_', for
 * comments), a missing field, a wrong type, an unknown tower type, a non-positive size, heads not
 * dividing width, spatial sizes that vanish, an output_dim differing from embed_dim... are
 * CLASP_ERR_CONFIG with a message naming the file and the field path ("image.conv[1].kernel",
 * "audio.patch_time"). */
clasp_status clasp_model_config_load(const char *path, clasp_model_config *cfg);
/* Same from a parsed document; `what` names it in messages. */
clasp_status clasp_model_config_parse(const cJSON *root, const char *what, clasp_model_config *cfg);
/* Serialises every tower field (defaults made explicit) so that parsing the result gives the
 * same config; clasp_preprocess_add_json adds the preprocessing fields to the same document.
 * Caller owns *out (cJSON_Delete). */
clasp_status clasp_model_config_to_json(const clasp_model_config *cfg, cJSON **out);

/* ---- model ----------------------------------------------------------------------------- */

typedef enum clasp_init_kind {
    CLASP_INIT_UNIFORM_FANIN = 0, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch default */
    CLASP_INIT_NORMAL,            /* N(0, init_scale^2) */
    CLASP_INIT_CONST              /* every element = init_scale */
} clasp_init_kind;

typedef struct clasp_param_info {
    char name[CLASP_PARAM_NAME_MAX]; /* "text.blocks.0.attn.qkv.weight" */
    int ndim;                        /* 0 for a scalar */
    int64_t shape[4];
    size_t numel;
    size_t offset; /* in floats, into params / grads */
    bool decay;    /* AdamW weight decay: conv/linear weights only */
    clasp_tower tower;
    clasp_init_kind init;
    float init_scale; /* std for NORMAL, value for CONST */
    int fan_in;       /* for UNIFORM_FANIN */
} clasp_param_info;

/* Parameters of one tower: info[first .. first+count-1], params[offset .. offset+n_floats-1]. */
typedef struct clasp_param_range {
    int first, count;
    size_t offset, n_floats;
} clasp_param_range;

struct clasp__tower; /* private: per-tower layout and activations (encoders/towers.h) */

typedef struct clasp_model {
    clasp_model_config config;
    int n_params;
    clasp_param_info *info; /* (n_params) */
    size_t n_floats;
    float *params; /* (n_floats), 64-byte aligned */
    float *grads;  /* (n_floats) */
    clasp_param_range range[CLASP_N_TOWERS];
    size_t logit_scale_offset;
    ptrdiff_t logit_bias_offset;                /* -1 without logit bias */
    int batch_cap;                              /* 0 until clasp_model_prepare */
    struct clasp__tower *tower[CLASP_N_TOWERS]; /* NULL when absent; SHARED always NULL */
    int tower_cap[CLASP_N_TOWERS];              /* rows each tower's arena is sized for (0: none) */
    bool borrowed_params; /* inference models: params belong to another model (not freed) */
    size_t params_mapped; /* inference models owning params: bytes of their anonymous mapping */
} clasp_model;

/* Builds the parameter table and allocates params and grads (both zero). Returns
 * CLASP_ERR_CONFIG for a config that fails validation, CLASP_ERR_NOMEM/OVERFLOW. On error the
 * model is left freed. */
clasp_status clasp_model_init(clasp_model *m, const clasp_model_config *cfg);
/* An inference-only model (embedding): the parameter table and params, but NO gradient
 * buffer (grads NULL: clasp_model_backward and clasp_model_zero_grad must not be called) and
 * no activation arena until clasp_model_prepare_tower. With `shared` non-NULL the model reads
 * that buffer (another model's params, n_floats floats, which must outlive this model) instead
 * of allocating its own: replicas embedding on several threads share one read-only copy.
 * Owned params are zero pages of an anonymous mapping: memory is taken as they are written, so
 * a tower whose parameters are never loaded costs none. Errors as clasp_model_init. */
clasp_status clasp_model_init_inference(clasp_model *m, const clasp_model_config *cfg,
                                        float *shared);
/* Frees everything; accepts NULL and a zeroed struct. */
void clasp_model_free(clasp_model *m);
/* Bytes the model holds for parameters (0 when borrowed), gradients and activation arenas. */
size_t clasp_model_bytes(const clasp_model *m);

/* PyTorch-default init. Parameter i draws from the counter RNG keyed by (seed, CLASP_RNG_INIT,
 * xxh64(name)), so a parameter's values do not depend on the others. Rules: conv/linear weight
 * and bias U(+-1/sqrt(fan_in)); LayerNorm weight 1, bias 0; text tok_emb N(0, 0.02^2), text
 * pos_emb N(0, 0.01^2); ViT and AST cls_token and pos_emb N(0, 0.02^2); logit_scale =
 * init_logit_scale, logit_bias = init_logit_bias. */
void clasp_model_init_weights(clasp_model *m, uint64_t seed);

/* Sizes every tower's activation arena for batches of up to `batch_cap` samples (one
 * measuring pass, then one allocation per tower). May be called again to resize. */
clasp_status clasp_model_prepare(clasp_model *m, int batch_cap);
/* Sizes tower t's activation arena only (as clasp_model_prepare does for every tower) for
 * the largest batch of at most max_rows samples whose arena fits in `budget` bytes (0: no
 * limit; at least 1 sample whatever the budget); a no-op when the tower's arena already has
 * that size.
 * Other towers keep their arenas (or none: encoding them is CLASP_ERR_STATE). Inference
 * models (clasp_model_init_inference) use it to bound their activation memory, then encode
 * larger batches piecewise with clasp_model_encode_rows. */
clasp_status clasp_model_prepare_tower(clasp_model *m, clasp_tower t, int max_rows, size_t budget);
/* Rows tower t's arena is sized for (0 for an absent or unprepared tower). */
int clasp_model_tower_cap(const clasp_model *m, clasp_tower t);
/* clasp_model_encode of any number B >= 1 of rows, in consecutive pieces of at most the
 * tower's cap (each sample's features do not depend on the piece it runs in). */
clasp_status clasp_model_encode_rows(clasp_model *m, clasp_tower t, const void *input, int B,
                                     float *feat);
/* Bytes of the tower's activation arena (0 for an absent tower or before prepare). */
size_t clasp_model_arena_bytes(const clasp_model *m, clasp_tower t);
/* High-water mark of the tower's arena (equals arena_bytes after a full-size batch). */
size_t clasp_model_arena_high(const clasp_model *m, clasp_tower t);

/* Forward pass of one tower on B <= batch_cap samples; writes feat (B, embed_dim) (projection
 * output, not normalised) and keeps the activations for clasp_model_backward. Inputs:
 *   IMAGE: const float pixels (B, C, H, W), already normalised;
 *   TEXT:  const int32_t tokens (B, context_length), each in [0, vocab_size);
 *   AUDIO: const float log-mel (B, n_mels, n_frames), already normalised (the front-end's
 *          output layout, one clip after another).
 * Returns CLASP_ERR_STATE before prepare, CLASP_ERR_ARG for an absent tower, B out of range or
 * a token out of range (message names row and position). */
clasp_status clasp_model_encode(clasp_model *m, clasp_tower t, const void *input, int B,
                                float *feat);
/* Backward of the tower's last forward: dfeat (B, embed_dim) with that forward's B.
 * ACCUMULATES into m->grads (zero them with clasp_model_zero_grad). CLASP_ERR_STATE without a
 * forward. */
clasp_status clasp_model_backward(clasp_model *m, clasp_tower t, const float *dfeat);

clasp_status clasp_model_encode_image(clasp_model *m, const float *pixels, int B, float *feat);
clasp_status clasp_model_encode_text(clasp_model *m, const int32_t *tokens, int B, float *feat);
clasp_status clasp_model_backward_image(clasp_model *m, const float *dfeat);
clasp_status clasp_model_backward_text(clasp_model *m, const float *dfeat);
clasp_status clasp_model_encode_audio(clasp_model *m, const float *mel, int B, float *feat);
clasp_status clasp_model_backward_audio(clasp_model *m, const float *dfeat);

/* Whether the config has tower t (SHARED: always true). */
bool clasp_model_config_has(const clasp_model_config *c, clasp_tower t);
/* Elements of one sample's input to tower t: C*H*W floats (image), context_length int32
 * tokens (text), n_mels*n_frames floats (audio); 0 for an absent tower. */
size_t clasp_model_input_elems(const clasp_model_config *c, clasp_tower t);
/* Multiply-accumulates of one sample's forward pass through tower t (convolutions, linear
 * layers and attention matmuls; elementwise work ignored); 0 for an absent tower. Training
 * costs about 3x this per sample. */
double clasp_model_forward_macs(const clasp_model_config *c, clasp_tower t);

void clasp_model_zero_grad(clasp_model *m);

/* Index of a parameter by name, or -1. */
int clasp_model_find(const clasp_model *m, const char *name);
/* Pointer to a parameter's values (NULL if absent). */
float *clasp_model_param(clasp_model *m, const char *name);

/* Copies every parameter `prefix`+name from st into dst (a buffer in the params layout, e.g.
 * m->params or an AdamW moment), checking dtype F32 and shape. Errors name the file and the
 * tensor (missing: CLASP_ERR_NOT_FOUND, wrong shape/dtype: CLASP_ERR_FORMAT). Extra tensors in
 * the file are ignored. From a mapped file (clasp_st_open_mapped) each tensor's pages are
 * released once copied, so loading holds about one copy of the parameters, not two. */
clasp_status clasp_model_read_tensors(const clasp_model *m, clasp_safetensors *st,
                                      const char *prefix, float *dst);
/* The same checks as clasp_model_read_tensors (every parameter present with its shape, F32),
 * copying nothing. */
clasp_status clasp_model_check_tensors(const clasp_model *m, const clasp_safetensors *st,
                                       const char *prefix);
/* clasp_model_read_tensors for tower t's parameters only (CLASP_TOWER_SHARED: logit scale and
 * bias): an embedder loads a tower when it is first used. */
clasp_status clasp_model_read_tower_tensors(const clasp_model *m, clasp_safetensors *st,
                                            const char *prefix, clasp_tower t, float *dst);
/* Adds every parameter of src (params layout) to a writer as `prefix`+name. src is borrowed
 * until the writer writes. */
clasp_status clasp_model_add_tensors(const clasp_model *m, clasp_st_writer *w, const char *prefix,
                                     const float *src);
/* Starting from another model's parameters (`clasp train --init`): copies every parameter of m
 * that st holds under the same name; parameters st lacks keep their values (e.g. a new tower's
 * fresh init) and tensors of st that m lacks are ignored. A shared name with another shape is
 * CLASP_ERR_CONFIG naming `what` (the source, e.g. "--init runs/a/model.safetensors"), the
 * tensor and both shapes; st holding no parameter of m is CLASP_ERR_CONFIG. On error some
 * parameters may already be copied. *n_loaded and *n_kept (may be NULL) count the parameters
 * copied and kept. */
clasp_status clasp_model_load_matching(clasp_model *m, clasp_safetensors *st, const char *what,
                                       int *n_loaded, int *n_kept);
/* Loads params from a safetensors file by name. */
clasp_status clasp_model_load(clasp_model *m, const char *path);
/* Saves params (plus metadata "format": "clasp-model", "config": the config JSON). */
clasp_status clasp_model_save(const clasp_model *m, const char *path);

#endif
