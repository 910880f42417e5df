/* towers.c: the encoder towers built from a model config: CNN and ViT image towers, the
 * text transformer, and the audio CNN and audio spectrogram transformer (AST), each as
 * parameter declaration, activation plan, forward and backward, composed from
 * encoders/layers.h. Backward runs the layers in reverse and accumulates into the model's
 * grads. The audio towers reuse the image code: the log-mel (n_mels, n_frames) is a
 * 1-channel image with frequency as rows and time as columns.
 *
 * ref: ../shared/bench/ref_clip_fmnist.py (ImageEncoder, TextEncoder, Block);
 * ref: Gong et al. 2021, AST (patches of the log-mel, class token, ViT blocks). */
#include "encoders/towers.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/sizes.h"

/* ---- parameter table ------------------------------------------------------------------- */

int clasp__ptable_add(clasp__ptable *pt, clasp_tower t, const char *name, int ndim,
                      const int64_t *shape, bool decay, clasp_init_kind init, float scale,
                      int fan_in) {
    if (strlen(name) >= CLASP_PARAM_NAME_MAX) {
        clasp_set_error(CLASP_ERR_CONFIG, "parameter name '%s' too long", name);
        return -1;
    }
    clasp_param_info *ni = clasp_grow(pt->info, (size_t)pt->n, &pt->cap, sizeof *ni, 64);
    if (!ni) {
        clasp_set_error(CLASP_ERR_NOMEM, "parameter table: out of memory");
        return -1;
    }
    pt->info = ni;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0 || !clasp_size_mul(numel, (size_t)shape[i], &numel)) {
            clasp_set_error(CLASP_ERR_OVERFLOW, "parameter '%s': bad or overflowing shape", name);
            return -1;
        }
    size_t total;
    if (!clasp_size_add(pt->total, numel, &total) || total > ((size_t)1 << 34)) {
        clasp_set_error(CLASP_ERR_OVERFLOW, "parameter '%s': model too large", name);
        return -1;
    }
    clasp_param_info *p = &pt->info[pt->n];
    *p = (clasp_param_info){.ndim = ndim,
                            .numel = numel,
                            .offset = pt->total,
                            .decay = decay,
                            .tower = t,
                            .init = init,
                            .init_scale = scale,
                            .fan_in = fan_in};
    snprintf(p->name, sizeof p->name, "%s", name);
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
    pt->total = total;
    return pt->n++;
}

static clasp_status add(clasp__ptable *pt, clasp_tower t, int *idx, const char *prefix,
                        const char *suffix, int ndim, int64_t d0, int64_t d1, int64_t d2,
                        int64_t d3, bool decay, clasp_init_kind init, float scale, int fan_in) {
    char name[CLASP_PARAM_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s%s%s", prefix, *suffix ? "." : "", suffix);
    int64_t shape[4] = {d0, d1, d2, d3};
    *idx = clasp__ptable_add(pt, t, name, ndim, shape, decay, init, scale, fan_in);
    return *idx < 0 ? clasp_wrap_error(CLASP_ERR_CONFIG, "declaring parameters") : CLASP_OK;
}

/* nn.Linear(in, out): weight (out, in) decayed, bias (out); both U(+-1/sqrt(in)). */
static clasp_status add_linear(clasp__ptable *pt, clasp_tower t, const char *prefix, int out,
                               int in, int *w, int *b) {
    CLASP_TRY(add(pt, t, w, prefix, "weight", 2, out, in, 0, 0, true, CLASP_INIT_UNIFORM_FANIN,
                  0.0f, in));
    return add(pt, t, b, prefix, "bias", 1, out, 0, 0, 0, false, CLASP_INIT_UNIFORM_FANIN, 0.0f,
               in);
}

/* nn.Conv2d(c, oc, (kh, kw)): weight (oc, c, kh, kw), bias (oc); fan_in = c*kh*kw. */
static clasp_status add_conv(clasp__ptable *pt, clasp_tower t, const char *prefix, int oc, int c,
                             int kh, int kw, int *w, int *b) {
    CLASP_TRY(add(pt, t, w, prefix, "weight", 4, oc, c, kh, kw, true, CLASP_INIT_UNIFORM_FANIN,
                  0.0f, c * kh * kw));
    return add(pt, t, b, prefix, "bias", 1, oc, 0, 0, 0, false, CLASP_INIT_UNIFORM_FANIN, 0.0f,
               c * kh * kw);
}

static clasp_status add_ln(clasp__ptable *pt, clasp_tower t, const char *prefix, int C, int *w,
                           int *b) {
    CLASP_TRY(add(pt, t, w, prefix, "weight", 1, C, 0, 0, 0, false, CLASP_INIT_CONST, 1.0f, 0));
    return add(pt, t, b, prefix, "bias", 1, C, 0, 0, 0, false, CLASP_INIT_CONST, 0.0f, 0);
}

static clasp_status declare_stack(clasp__stack *S, clasp__ptable *pt, clasp_tower t,
                                  const char *prefix, int L, int C, int NH, int F, bool causal,
                                  int gelu_tanh, float eps, float ls_init) {
    *S = (clasp__stack){.L = L,
                        .C = C,
                        .NH = NH,
                        .F = F,
                        .causal = causal,
                        .gelu_tanh = gelu_tanh,
                        .eps = eps,
                        .ls_init = ls_init};
    S->blk = calloc((size_t)(L ? L : 1), sizeof *S->blk);
    S->acts = calloc((size_t)(L ? L : 1), sizeof *S->acts);
    S->xs = calloc((size_t)L + 1, sizeof *S->xs);
    if (!S->blk || !S->acts || !S->xs)
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", prefix);
    for (int l = 0; l < L; l++) {
        char p[CLASP_PARAM_NAME_MAX];
        int *ix = S->blk[l];
        snprintf(p, sizeof p, "%s.blocks.%d.ln1", prefix, l);
        CLASP_TRY(add_ln(pt, t, p, C, &ix[0], &ix[1]));
        snprintf(p, sizeof p, "%s.blocks.%d.attn.qkv", prefix, l);
        CLASP_TRY(add_linear(pt, t, p, 3 * C, C, &ix[2], &ix[3]));
        snprintf(p, sizeof p, "%s.blocks.%d.attn.proj", prefix, l);
        CLASP_TRY(add_linear(pt, t, p, C, C, &ix[4], &ix[5]));
        snprintf(p, sizeof p, "%s.blocks.%d.ln2", prefix, l);
        CLASP_TRY(add_ln(pt, t, p, C, &ix[6], &ix[7]));
        snprintf(p, sizeof p, "%s.blocks.%d.mlp.fc1", prefix, l);
        CLASP_TRY(add_linear(pt, t, p, F, C, &ix[8], &ix[9]));
        snprintf(p, sizeof p, "%s.blocks.%d.mlp.fc2", prefix, l);
        CLASP_TRY(add_linear(pt, t, p, C, F, &ix[10], &ix[11]));
        ix[12] = ix[13] = -1;
        for (int k = 0; ls_init > 0.0f && k < 2; k++) { /* OpenCLIP's LayerScale gammas */
            snprintf(p, sizeof p, "%s.blocks.%d.ls%d", prefix, l, k + 1);
            CLASP_TRY(add(pt, t, &ix[12 + k], p, "gamma", 1, C, 0, 0, 0, false, CLASP_INIT_CONST,
                          ls_init, 0));
        }
    }
    char p[CLASP_PARAM_NAME_MAX];
    snprintf(p, sizeof p, "%s.ln_f", prefix);
    return add_ln(pt, t, p, C, &S->lnf_w, &S->lnf_b);
}

/* Starts tw afresh as a tower of kind t on a c x h x w input (everything else zero). */
static void tower_start(clasp__tower *tw, clasp_tower t, int c, int h, int w) {
    *tw = (clasp__tower){.kind = t, .in_c = c, .in_h = h, .in_w = w};
}

/* Conv blocks then fc layers ("<prefix>.conv{i}", "<prefix>.fc{j}") on a c x h x w input. */
static clasp_status declare_cnn(clasp__tower *tw, clasp__ptable *pt, clasp_tower t,
                                const char *prefix, int c, int h, int w, int n_conv,
                                const clasp_conv_block *convs, int n_fc, const int *fcs, bool gap,
                                int D) {
    char p[CLASP_PARAM_NAME_MAX];
    tower_start(tw, t, c, h, w);
    tw->is_cnn = true;
    tw->n_conv = n_conv;
    tw->n_fc = n_fc;
    tw->gap = gap;
    for (int i = 0; i < n_conv; i++) {
        const clasp_conv_block *cb = &convs[i];
        tw->cb[i] = *cb;
        snprintf(p, sizeof p, "%s.conv%d", prefix, i + 1);
        CLASP_TRY(add_conv(pt, t, p, cb->channels, c, cb->kernel, cb->kernel, &tw->conv_w[i],
                           &tw->conv_b[i]));
        tw->cin[i] = c;
        tw->hin[i] = h;
        tw->win[i] = w;
        tw->hconv[i] = clasp_conv2d_out_size(h, cb->kernel, cb->stride, cb->padding);
        tw->wconv[i] = clasp_conv2d_out_size(w, cb->kernel, cb->stride, cb->padding);
        tw->hout[i] = cb->pool > 0 ? tw->hconv[i] / cb->pool : tw->hconv[i];
        tw->wout[i] = cb->pool > 0 ? tw->wconv[i] / cb->pool : tw->wconv[i];
        c = cb->channels;
        h = tw->hout[i];
        w = tw->wout[i];
    }
    int in = gap ? c : c * h * w;
    for (int j = 0; j <= n_fc; j++) {
        int out = j < n_fc ? fcs[j] : D;
        snprintf(p, sizeof p, "%s.fc%d", prefix, j + 1);
        CLASP_TRY(add_linear(pt, t, p, out, in, &tw->fc_w[j], &tw->fc_b[j]));
        tw->fc_in[j] = in;
        tw->fc_out[j] = out;
        in = out;
    }
    return CLASP_OK;
}

/* Patch transformer (ViT, AST): "<prefix>.patch_embed", ".cls_token", ".pos_emb", blocks,
 * ".ln_f", ".proj" on a c x h x w input cut into ph x pw patches. */
static clasp_status declare_patch_tf(clasp__tower *tw, clasp__ptable *pt, clasp_tower t,
                                     const char *prefix, int c, int h, int w, int ph, int pw, int W,
                                     int layers, int heads, int mlp, clasp_pool pool, int gelu_tanh,
                                     float eps, bool ln_pre, bool no_proj_bias, bool no_patch_bias,
                                     float ls_init, int D) {
    char p[CLASP_PARAM_NAME_MAX];
    tower_start(tw, t, c, h, w);
    tw->PH = ph;
    tw->GH = h / ph;
    tw->PW = pw;
    tw->GW = w / pw;
    tw->pwidth = W;
    tw->ppool = pool;
    tw->cls = -1;
    snprintf(p, sizeof p, "%s.patch_embed", prefix);
    if (no_patch_bias) { /* OpenCLIP's conv1 */
        tw->patch_b = -1;
        CLASP_TRY(add(pt, t, &tw->patch_w, p, "weight", 4, W, c, ph, pw, true,
                      CLASP_INIT_UNIFORM_FANIN, 0.0f, c * ph * pw));
    } else {
        CLASP_TRY(add_conv(pt, t, p, W, c, ph, pw, &tw->patch_w, &tw->patch_b));
    }
    if (pool == CLASP_POOL_CLS) {
        snprintf(p, sizeof p, "%s.cls_token", prefix);
        CLASP_TRY(add(pt, t, &tw->cls, p, "", 1, W, 0, 0, 0, false, CLASP_INIT_NORMAL, 0.02f, 0));
    }
    tw->T = tw->GH * tw->GW + (pool == CLASP_POOL_CLS ? 1 : 0);
    snprintf(p, sizeof p, "%s.pos_emb", prefix);
    CLASP_TRY(
        add(pt, t, &tw->pos_emb, p, "", 2, tw->T, W, 0, 0, false, CLASP_INIT_NORMAL, 0.02f, 0));
    tw->lnpre_w = tw->lnpre_b = -1;
    if (ln_pre) {
        snprintf(p, sizeof p, "%s.ln_pre", prefix);
        CLASP_TRY(add_ln(pt, t, p, W, &tw->lnpre_w, &tw->lnpre_b));
    }
    CLASP_TRY(declare_stack(&tw->st, pt, t, prefix, layers, W, heads, mlp, false, gelu_tanh, eps,
                            ls_init));
    snprintf(p, sizeof p, "%s.proj", prefix);
    if (no_proj_bias) {
        tw->proj_b = -1;
        return add(pt, t, &tw->proj_w, p, "weight", 2, D, W, 0, 0, true, CLASP_INIT_UNIFORM_FANIN,
                   0.0f, W);
    }
    return add_linear(pt, t, p, D, W, &tw->proj_w, &tw->proj_b);
}

static clasp_status declare_image(clasp__tower *tw, const clasp_model_config *cfg,
                                  clasp__ptable *pt) {
    const clasp_image_tower_config *ic = &cfg->image;
    if (ic->type == CLASP_IMAGE_CNN)
        return declare_cnn(tw, pt, CLASP_TOWER_IMAGE, "image", ic->channels, ic->size, ic->size,
                           ic->n_conv, ic->conv, ic->n_fc, ic->fc, false, cfg->embed_dim);
    return declare_patch_tf(tw, pt, CLASP_TOWER_IMAGE, "image", ic->channels, ic->size, ic->size,
                            ic->patch_size, ic->patch_size, ic->width, ic->layers, ic->heads,
                            ic->mlp_width, ic->pool, (int)ic->act, ic->ln_eps, ic->ln_pre,
                            ic->no_proj_bias, ic->no_patch_bias, ic->ls_init, cfg->embed_dim);
}

static clasp_status declare_audio(clasp__tower *tw, const clasp_model_config *cfg,
                                  clasp__ptable *pt) {
    const clasp_audio_tower_config *ac = &cfg->audio;
    if (ac->type == CLASP_AUDIO_TYPE_CNN)
        return declare_cnn(tw, pt, CLASP_TOWER_AUDIO, "audio", 1, ac->n_mels, ac->n_frames,
                           ac->n_conv, ac->conv, ac->n_fc, ac->fc, true, cfg->embed_dim);
    if (ac->type == CLASP_AUDIO_TYPE_AST)
        return declare_patch_tf(tw, pt, CLASP_TOWER_AUDIO, "audio", 1, ac->n_mels, ac->n_frames,
                                ac->patch_freq, ac->patch_time, ac->width, ac->layers, ac->heads,
                                ac->mlp_width, ac->pool, (int)ac->act, ac->ln_eps, false, false,
                                false, 0.0f, cfg->embed_dim);
    return clasp_set_error(CLASP_ERR_CONFIG, "audio tower: no type");
}

static clasp_status declare_text(clasp__tower *tw, const clasp_model_config *cfg,
                                 clasp__ptable *pt) {
    const clasp_text_tower_config *tc = &cfg->text;
    const clasp_tower t = CLASP_TOWER_TEXT;
    int W = tc->width;
    tw->T = tc->context_length;
    CLASP_TRY(add(pt, t, &tw->tok_emb, "text.tok_emb", "weight", 2, tc->vocab_size, W, 0, 0, false,
                  CLASP_INIT_NORMAL, 0.02f, 0));
    CLASP_TRY(add(pt, t, &tw->pos_emb, "text.pos_emb", "", 2, tw->T, W, 0, 0, false,
                  CLASP_INIT_NORMAL, 0.01f, 0));
    CLASP_TRY(declare_stack(&tw->st, pt, t, "text", tc->layers, W, tc->heads, tc->mlp_width,
                            tc->causal, (int)tc->act, tc->ln_eps, tc->ls_init));
    if (tc->no_proj_bias) {
        tw->proj_b = -1;
        return add(pt, t, &tw->proj_w, "text.proj", "weight", 2, cfg->embed_dim, W, 0, 0, true,
                   CLASP_INIT_UNIFORM_FANIN, 0.0f, W);
    }
    return add_linear(pt, t, "text.proj", cfg->embed_dim, W, &tw->proj_w, &tw->proj_b);
}

clasp_status clasp__tower_declare(clasp__tower *tw, const clasp_model_config *cfg,
                                  clasp__ptable *pt) {
    switch (tw->kind) {
    case CLASP_TOWER_IMAGE:
        return declare_image(tw, cfg, pt);
    case CLASP_TOWER_TEXT:
        return declare_text(tw, cfg, pt);
    case CLASP_TOWER_AUDIO:
        return declare_audio(tw, cfg, pt);
    default:
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "tower %s not implemented",
                               clasp_tower_name(tw->kind));
    }
}

void clasp__tower_free(clasp__tower *tw) {
    if (!tw) return;
    free(tw->st.blk);
    free(tw->st.acts);
    free(tw->st.xs);
    clasp_arena_free(&tw->arena);
    free(tw);
}

/* ---- activation plan -------------------------------------------------------------------- */

/* n = n1*n2*n3 elements of `esize` bytes; every tensor must stay below INT_MAX elements
 * because the layers take int dimensions. */
static clasp_status take(clasp_arena *a, void **p, size_t esize, size_t n1, size_t n2, size_t n3) {
    size_t n = 0, nb = 0;
    if (!clasp_size_mul3(n1, n2, n3, &n) || n > (size_t)INT_MAX || !clasp_size_mul(n, esize, &nb))
        return clasp_set_error(CLASP_ERR_OVERFLOW, "activation tensor of %zu x %zu x %zu too large",
                               n1, n2, n3);
    *p = clasp_arena_alloc(a, nb);
    return *p ? CLASP_OK : CLASP_ERR_OVERFLOW;
}

#define TAKE_F(a, p, n1, n2, n3) take((a), (void **)&(p), sizeof(float), (n1), (n2), (n3))

static clasp_block_dims stack_dims(const clasp__stack *S, int B, int T) {
    clasp_block_dims d = {
        B, T, S->C, S->NH, S->F, S->causal, S->gelu_tanh, S->eps, S->ls_init > 0.0f};
    return d;
}

/* fwd_only (an inference model, which never runs a backward): the blocks' outputs alternate
 * between two buffers and every block uses one activation buffer, so the arena holds one block's
 * activations instead of L; the backward's scratch is left out. The forward computes the same
 * products on the same values either way (only the addresses differ). */
static clasp_status plan_stack(clasp__stack *S, clasp_arena *a, int B, int T, bool fwd_only) {
    size_t BT = (size_t)B * (size_t)T, C = (size_t)S->C;
    clasp_block_dims d = stack_dims(S, B, T);
    int n_xs = fwd_only ? (S->L ? 2 : 1) : S->L + 1;
    for (int l = 0; l < n_xs; l++) CLASP_TRY(TAKE_F(a, S->xs[l], BT, C, 1));
    for (int l = n_xs; l <= S->L; l++) S->xs[l] = S->xs[l & 1];
    /* the block layer sizes its own buffers; guard its int indexing like ours */
    size_t wide = (size_t)(3 * S->C > S->F ? 3 * S->C : S->F), n1, n2;
    if (!clasp_size_mul(BT, wide, &n1) || n1 > (size_t)INT_MAX ||
        !clasp_size_mul3((size_t)B * (size_t)S->NH, (size_t)T, (size_t)T, &n2) ||
        n2 > (size_t)INT_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "transformer activations for batch %d too large",
                               B);
    float *buf = NULL;
    for (int l = 0; l < S->L; l++) {
        if (!fwd_only || l == 0) CLASP_TRY(TAKE_F(a, buf, clasp_block_acts_floats(&d), 1, 1));
        if (!a->measure) clasp_block_acts_point(&S->acts[l], buf, &d);
    }
    CLASP_TRY(TAKE_F(a, S->lnf, BT, C, 1));
    CLASP_TRY(TAKE_F(a, S->lnf_mean, BT, 1, 1));
    CLASP_TRY(TAKE_F(a, S->lnf_rstd, BT, 1, 1));
    CLASP_TRY(TAKE_F(a, S->work, S->L ? clasp_block_work_floats(&d) : 1, 1, 1));
    S->dx_a = NULL;
    if (!fwd_only) CLASP_TRY(TAKE_F(a, S->dx_a, BT, C, 1));
    /* lnf is read only by the forward's pooling, so the backward reuses it: first as dlnf
     * (the pooling backward writes it, the final LayerNorm backward reads it into dx_a),
     * then as dx_b, the second gradient buffer stack_backward alternates with dx_a */
    S->dlnf = S->lnf;
    S->dx_b = S->lnf;
    return CLASP_OK;
}

/* Images per convolution call in pooled blocks: enough to keep each call efficient, few enough
 * that the group's raw conv output stays small. Fixed, so results never depend on threads. */
#define CNN_GROUP 16
static int cnn_group_(int B) {
    return B < CNN_GROUP ? B : CNN_GROUP;
}

static clasp_status plan_cnn(clasp__tower *tw, clasp_arena *a, int B) {
    size_t b = (size_t)B;
    CLASP_TRY(TAKE_F(a, tw->x, b, (size_t)tw->in_c, (size_t)tw->in_h * (size_t)tw->in_w));
    for (int i = 0; i < tw->n_conv; i++) {
        const clasp_conv_block *cb = &tw->cb[i];
        size_t oc = (size_t)cb->channels;
        size_t nconv = (size_t)tw->hconv[i] * (size_t)tw->wconv[i];
        size_t nout = (size_t)tw->hout[i] * (size_t)tw->wout[i];
        if (cb->pool > 0) {
            /* pooled blocks run CNN_GROUP images at a time (cnn_forward/cnn_backward), so the
             * raw conv output is a group's scratch; the fused ReLU + max-pool backward needs
             * neither it nor a separate post-ReLU gradient: the pre-ReLU gradient (one group)
             * reuses the scratch */
            CLASP_TRY(TAKE_F(a, tw->conv[i], (size_t)cnn_group_(B), oc, nconv));
            tw->dconv_pre[i] = tw->conv[i];
            tw->dconv_post[i] = NULL;
            CLASP_TRY(TAKE_F(a, tw->pool[i], b, oc, nout));
            CLASP_TRY(take(a, (void **)&tw->pidx[i], sizeof(int32_t), b, oc, nout));
            CLASP_TRY(TAKE_F(a, tw->dconv_out[i], b, oc, nout));
        } else {
            CLASP_TRY(TAKE_F(a, tw->conv[i], b, oc, nconv));
            CLASP_TRY(TAKE_F(a, tw->dconv_pre[i], b, oc, nconv));
            tw->pool[i] = NULL;
            tw->pidx[i] = NULL;
            CLASP_TRY(TAKE_F(a, tw->dconv_out[i], b, oc, nconv));
            tw->dconv_post[i] = tw->dconv_out[i];
        }
        size_t nw = clasp_conv2d_work_floats(B, tw->cin[i], tw->hin[i], tw->win[i], cb->kernel,
                                             cb->kernel, cb->stride, cb->padding);
        /* own scratch per conv block: nothing assumes the layer's scratch is dead between
         * forward and backward */
        CLASP_TRY(TAKE_F(a, tw->cwork_blk[i], nw ? nw : 1, 1, 1));
    }
    tw->gapv = tw->dgap = tw->flat = tw->dflat = NULL;
    if (tw->n_conv && !tw->gap) {
        CLASP_TRY(TAKE_F(a, tw->flat, b, (size_t)tw->fc_in[0], 1));
        CLASP_TRY(TAKE_F(a, tw->dflat, b, (size_t)tw->fc_in[0], 1));
    }
    if (tw->gap) {
        CLASP_TRY(TAKE_F(a, tw->gapv, b, (size_t)tw->fc_in[0], 1));
        CLASP_TRY(TAKE_F(a, tw->dgap, b, (size_t)tw->fc_in[0], 1));
    }
    for (int j = 0; j < tw->n_fc; j++) {
        CLASP_TRY(TAKE_F(a, tw->fc[j], b, (size_t)tw->fc_out[j], 1));
        CLASP_TRY(TAKE_F(a, tw->dfc_post[j], b, (size_t)tw->fc_out[j], 1));
        CLASP_TRY(TAKE_F(a, tw->dfc_pre[j], b, (size_t)tw->fc_out[j], 1));
    }
    return CLASP_OK;
}

static clasp_status plan_patch_tf(clasp__tower *tw, clasp_arena *a, int B, bool fwd_only) {
    size_t BN = (size_t)B * (size_t)tw->GH * (size_t)tw->GW, W = (size_t)tw->pwidth;
    CLASP_TRY(TAKE_F(a, tw->patches, BN, (size_t)tw->in_c, (size_t)tw->PH * (size_t)tw->PW));
    CLASP_TRY(TAKE_F(a, tw->pe, BN, W, 1));
    CLASP_TRY(take(a, (void **)&tw->pos, sizeof(int32_t), (size_t)B, 1, 1));
    CLASP_TRY(TAKE_F(a, tw->pooled, (size_t)B, W, 1));
    tw->dpooled = NULL;
    if (!fwd_only) CLASP_TRY(TAKE_F(a, tw->dpooled, (size_t)B, W, 1));
    if (tw->lnpre_w >= 0) {
        size_t BT = (size_t)B * (size_t)tw->T;
        CLASP_TRY(TAKE_F(a, tw->lnpre_in, BT, W, 1));
        CLASP_TRY(TAKE_F(a, tw->lnpre_mean, BT, 1, 1));
        CLASP_TRY(TAKE_F(a, tw->lnpre_rstd, BT, 1, 1));
    }
    return plan_stack(&tw->st, a, B, tw->T, fwd_only);
}

static clasp_status plan_text(clasp__tower *tw, const clasp_text_tower_config *tc, clasp_arena *a,
                              int B, bool fwd_only) {
    size_t b = (size_t)B, T = (size_t)tw->T, W = (size_t)tc->width;
    CLASP_TRY(take(a, (void **)&tw->tokens, sizeof(int32_t), b, T, 1));
    tw->padm = NULL;
    if (tc->pad_id >= 0) CLASP_TRY(take(a, (void **)&tw->padm, 1, b, T, 1));
    CLASP_TRY(take(a, (void **)&tw->pos, sizeof(int32_t), b, 1, 1));
    CLASP_TRY(TAKE_F(a, tw->pooled, b, W, 1));
    tw->dpooled = NULL;
    if (!fwd_only) CLASP_TRY(TAKE_F(a, tw->dpooled, b, W, 1));
    return plan_stack(&tw->st, a, B, tw->T, fwd_only);
}

clasp_status clasp__tower_plan(clasp__tower *tw, const clasp_model *m, clasp_arena *a, int B) {
    clasp_arena_reset(a);
    bool fwd_only = !m->grads; /* an inference model */
    switch (tw->kind) {
    case CLASP_TOWER_IMAGE:
    case CLASP_TOWER_AUDIO:
        return tw->is_cnn ? plan_cnn(tw, a, B) : plan_patch_tf(tw, a, B, fwd_only);
    case CLASP_TOWER_TEXT:
        return plan_text(tw, &m->config.text, a, B, fwd_only);
    default:
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "tower not implemented");
    }
}

/* ---- shared transformer stack ----------------------------------------------------------- */

/* NULL for an absent parameter (index -1, e.g. a projection without bias) */
static float *P(const clasp_model *m, float *buf, int idx) {
    if (idx < 0) return NULL;
    return buf + m->info[idx].offset;
}

/* The block's tensors in buf (params or grads) from their indices. */
static clasp_block_params blk_ptrs(const clasp_model *m, float *buf, const int ix[CLASP__BLK_N]) {
    return (clasp_block_params){.ln1_w = P(m, buf, ix[0]),
                                .ln1_b = P(m, buf, ix[1]),
                                .qkv_w = P(m, buf, ix[2]),
                                .qkv_b = P(m, buf, ix[3]),
                                .proj_w = P(m, buf, ix[4]),
                                .proj_b = P(m, buf, ix[5]),
                                .ln2_w = P(m, buf, ix[6]),
                                .ln2_b = P(m, buf, ix[7]),
                                .fc1_w = P(m, buf, ix[8]),
                                .fc1_b = P(m, buf, ix[9]),
                                .fc2_w = P(m, buf, ix[10]),
                                .fc2_b = P(m, buf, ix[11]),
                                .ls1 = P(m, buf, ix[12]),
                                .ls2 = P(m, buf, ix[13])};
}

/* xs[0] (B,T,C) -> lnf (B,T,C) */
static void stack_forward(clasp__stack *S, const clasp_model *m, const uint8_t *pad, int B, int T) {
    clasp_block_dims d = stack_dims(S, B, T);
    for (int l = 0; l < S->L; l++) {
        clasp_block_params bp = blk_ptrs(m, m->params, S->blk[l]);
        clasp_block_forward(S->xs[l + 1], &S->acts[l], S->work, S->xs[l], &bp, pad, &d);
    }
    clasp_layernorm_forward(S->lnf, S->lnf_mean, S->lnf_rstd, S->xs[S->L],
                            P(m, m->params, S->lnf_w), P(m, m->params, S->lnf_b), B * T, S->C,
                            S->eps);
}

/* dlnf (B,T,C) -> returns the gradient of xs[0] (one of dx_a/dx_b) */
static float *stack_backward(clasp__stack *S, clasp_model *m, int B, int T) {
    size_t n = (size_t)B * (size_t)T * (size_t)S->C;
    clasp_block_dims d = stack_dims(S, B, T);
    float *dcur = S->dx_a, *dnext = S->dx_b;
    memset(dcur, 0, n * sizeof(float));
    clasp_layernorm_backward(dcur, P(m, m->grads, S->lnf_w), P(m, m->grads, S->lnf_b), S->dlnf,
                             S->xs[S->L], P(m, m->params, S->lnf_w), S->lnf_mean, S->lnf_rstd,
                             B * T, S->C);
    for (int l = S->L - 1; l >= 0; l--) {
        clasp_block_params bp = blk_ptrs(m, m->params, S->blk[l]);
        clasp_block_params bg = blk_ptrs(m, m->grads, S->blk[l]);
        memset(dnext, 0, n * sizeof(float));
        clasp_block_backward(dnext, &bg, S->work, dcur, S->xs[l], &S->acts[l], &bp, &d);
        float *t = dcur;
        dcur = dnext;
        dnext = t;
    }
    return dcur;
}

/* ---- CNN (image cnn, audio_cnn) -------------------------------------------------------- */

static const float *cnn_block_input(const clasp__tower *tw, int i) {
    if (i == 0) return tw->x;
    return tw->pool[i - 1] ? tw->pool[i - 1] : tw->conv[i - 1];
}

static const float *cnn_fc_input(const clasp__tower *tw, int j) {
    if (j > 0) return tw->fc[j - 1];
    if (tw->gap) return tw->gapv;
    return tw->n_conv ? tw->flat : tw->x;
}

/* out (B, C, R) = in (B, R, C) with the last two axes swapped */
static void swap_last_two(float *restrict out, const float *restrict in, int B, int R, int C) {
    for (size_t b = 0; b < (size_t)B; b++) {
        const float *x = in + b * R * C;
        float *y = out + b * R * C;
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) y[(size_t)c * R + r] = x[(size_t)r * C + c];
    }
}

/* input (B, C, H, W) -> feat (B, D) */
static void cnn_forward(clasp__tower *tw, const clasp_model *m, const float *input, int B,
                        float *feat) {
    size_t npix = (size_t)B * (size_t)tw->in_c * (size_t)tw->in_h * (size_t)tw->in_w;
    if (tw->n_conv && tw->in_c > 1)
        swap_last_two(tw->x, input, B, tw->in_c, tw->in_h * tw->in_w); /* to NHWC */
    else
        memcpy(tw->x, input, npix * sizeof(float));
    for (int i = 0; i < tw->n_conv; i++) {
        const clasp_conv_block *cb = &tw->cb[i];
        int oc = cb->channels, ho = tw->hconv[i], wo = tw->wconv[i];
        const float *w = P(m, m->params, tw->conv_w[i]), *bias = P(m, m->params, tw->conv_b[i]);
        if (cb->pool > 0) {
            /* a group of images at a time through the group's conv[i]; ReLU on the pooled
             * values */
            size_t in1 = (size_t)tw->cin[i] * (size_t)tw->hin[i] * (size_t)tw->win[i];
            size_t out1 = (size_t)oc * (size_t)tw->hout[i] * (size_t)tw->wout[i];
            const float *in = cnn_block_input(tw, i);
            for (int b0 = 0, G = cnn_group_(B); b0 < B; b0 += G) {
                int g = B - b0 < G ? B - b0 : G;
                clasp_conv2d_forward(tw->conv[i], tw->cwork_blk[i], in + (size_t)b0 * in1, w, bias,
                                     g, tw->cin[i], tw->hin[i], tw->win[i], oc, cb->kernel,
                                     cb->kernel, cb->stride, cb->padding);
                clasp_relu_maxpool2d_forward(tw->pool[i] + (size_t)b0 * out1,
                                             tw->pidx[i] + (size_t)b0 * out1, tw->conv[i], g, oc,
                                             ho, wo, cb->pool, cb->pool);
            }
            continue;
        }
        clasp_conv2d_forward(tw->conv[i], tw->cwork_blk[i], cnn_block_input(tw, i), w, bias, B,
                             tw->cin[i], tw->hin[i], tw->win[i], oc, cb->kernel, cb->kernel,
                             cb->stride, cb->padding);
        clasp_relu_forward(tw->conv[i], tw->conv[i],
                           (size_t)B * (size_t)oc * (size_t)ho * (size_t)wo);
    }
    int L = tw->n_conv - 1;
    if (tw->gap)
        clasp_global_avgpool_forward(tw->gapv, cnn_block_input(tw, tw->n_conv), B, tw->fc_in[0],
                                     tw->hout[L] * tw->wout[L]);
    else if (tw->flat) /* NHWC -> the NCHW flattening */
        swap_last_two(tw->flat, cnn_block_input(tw, tw->n_conv), B, tw->hout[L] * tw->wout[L],
                      tw->cb[L].channels);
    for (int j = 0; j <= tw->n_fc; j++) {
        float *out = j < tw->n_fc ? tw->fc[j] : feat;
        clasp_linear_forward(out, cnn_fc_input(tw, j), P(m, m->params, tw->fc_w[j]),
                             P(m, m->params, tw->fc_b[j]), B, tw->fc_in[j], tw->fc_out[j]);
        if (j < tw->n_fc) clasp_relu_forward(out, out, (size_t)B * (size_t)tw->fc_out[j]);
    }
}

static void zero(float *p, size_t n) {
    if (p) memset(p, 0, n * sizeof(float));
}

static void cnn_backward(clasp__tower *tw, clasp_model *m, const float *dfeat, int B) {
    size_t b = (size_t)B;
    int L = tw->n_conv - 1;
    float *dflat = tw->gap ? tw->dgap : tw->dflat;
    const float *dout = dfeat;
    for (int j = tw->n_fc; j >= 0; j--) {
        float *dprev = j > 0 ? tw->dfc_post[j - 1] : dflat;
        zero(dprev, b * (size_t)tw->fc_in[j]);
        clasp_linear_backward(dprev, P(m, m->grads, tw->fc_w[j]), P(m, m->grads, tw->fc_b[j]), dout,
                              cnn_fc_input(tw, j), P(m, m->params, tw->fc_w[j]), B, tw->fc_in[j],
                              tw->fc_out[j]);
        if (j > 0) {
            size_t n = b * (size_t)tw->fc_out[j - 1];
            zero(tw->dfc_pre[j - 1], n);
            clasp_relu_backward(tw->dfc_pre[j - 1], tw->dfc_post[j - 1], tw->fc[j - 1], n);
            dout = tw->dfc_pre[j - 1];
        }
    }
    if (tw->gap) {
        int hw = tw->hout[L] * tw->wout[L];
        zero(tw->dconv_out[L], b * (size_t)tw->fc_in[0] * (size_t)hw);
        clasp_global_avgpool_backward(tw->dconv_out[L], tw->dgap, B, tw->fc_in[0], hw);
    } else if (tw->dflat) { /* the NCHW flattening's gradient back to NHWC */
        swap_last_two(tw->dconv_out[L], tw->dflat, B, tw->cb[L].channels,
                      tw->hout[L] * tw->wout[L]);
    }
    for (int i = tw->n_conv - 1; i >= 0; i--) {
        const clasp_conv_block *cb = &tw->cb[i];
        int oc = cb->channels, ho = tw->hconv[i], wo = tw->wconv[i];
        size_t n = b * (size_t)oc * (size_t)ho * (size_t)wo;
        size_t in1 = (size_t)tw->cin[i] * (size_t)tw->hin[i] * (size_t)tw->win[i];
        float *dprev = i > 0 ? tw->dconv_out[i - 1] : NULL;
        float *dw = P(m, m->grads, tw->conv_w[i]), *db = P(m, m->grads, tw->conv_b[i]);
        const float *w = P(m, m->params, tw->conv_w[i]), *in = cnn_block_input(tw, i);
        zero(dprev, b * in1);
        if (cb->pool > 0) {
            /* group by group: the pre-ReLU gradient of a group (written whole into the group's
             * dconv_pre), then that group's conv backward; dw and db gather the groups in
             * order */
            size_t out1 = (size_t)oc * (size_t)tw->hout[i] * (size_t)tw->wout[i];
            for (int b0 = 0, G = cnn_group_(B); b0 < B; b0 += G) {
                int g = B - b0 < G ? B - b0 : G;
                clasp_relu_maxpool2d_backward(
                    tw->dconv_pre[i], tw->dconv_out[i] + (size_t)b0 * out1,
                    tw->pidx[i] + (size_t)b0 * out1, tw->pool[i] + (size_t)b0 * out1, g, oc, ho, wo,
                    cb->pool, cb->pool);
                clasp_conv2d_backward(dprev ? dprev + (size_t)b0 * in1 : NULL, dw, db,
                                      tw->cwork_blk[i], tw->dconv_pre[i], in + (size_t)b0 * in1, w,
                                      g, tw->cin[i], tw->hin[i], tw->win[i], oc, cb->kernel,
                                      cb->kernel, cb->stride, cb->padding);
            }
            continue;
        }
        zero(tw->dconv_pre[i], n);
        clasp_relu_backward(tw->dconv_pre[i], tw->dconv_post[i], tw->conv[i], n);
        clasp_conv2d_backward(dprev, dw, db, tw->cwork_blk[i], tw->dconv_pre[i], in, w, B,
                              tw->cin[i], tw->hin[i], tw->win[i], oc, cb->kernel, cb->kernel,
                              cb->stride, cb->padding);
    }
}

/* ---- projection of the pooled tokens (ViT, AST, text) ------------------------------------ */

/* pooled (B, W) -> feat (B, D) */
static void proj_forward(clasp__tower *tw, const clasp_model *m, float *feat, int B, int W) {
    clasp_linear_forward(feat, tw->pooled, P(m, m->params, tw->proj_w), P(m, m->params, tw->proj_b),
                         B, W, m->config.embed_dim);
}

/* dfeat (B, D) -> dpooled (B, W), overwritten; accumulates the projection's grads */
static void proj_backward(clasp__tower *tw, clasp_model *m, const float *dfeat, int B, int W) {
    zero(tw->dpooled, (size_t)B * W);
    clasp_linear_backward(tw->dpooled, P(m, m->grads, tw->proj_w), P(m, m->grads, tw->proj_b),
                          dfeat, tw->pooled, P(m, m->params, tw->proj_w), B, W,
                          m->config.embed_dim);
}

/* ---- patch transformer (ViT, AST) -------------------------------------------------------- */

/* input (B, C, H, W) -> feat (B, D) */
static void patch_tf_forward(clasp__tower *tw, const clasp_model *m, const float *input, int B,
                             float *feat) {
    int C = tw->in_c, H = tw->in_h, Wi = tw->in_w, PH = tw->PH, PW = tw->PW;
    int GH = tw->GH, GW = tw->GW, N = GH * GW;
    int W = tw->pwidth, T = tw->T, CPP = C * PH * PW, off = tw->cls >= 0 ? 1 : 0;
    /* patches (B*N, C*PH*PW): row (b, gy, gx), column (c, ky, kx) = conv weight layout */
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < GH; gy++)
            for (int gx = 0; gx < GW; gx++) {
                float *row = tw->patches + ((size_t)b * N + (size_t)(gy * GW + gx)) * CPP;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < PH; ky++)
                        memcpy(row + (c * PH + ky) * PW,
                               input + (((size_t)b * C + c) * H + (size_t)(gy * PH + ky)) * Wi +
                                   (size_t)gx * PW,
                               (size_t)PW * sizeof(float));
            }
    clasp_linear_forward(tw->pe, tw->patches, P(m, m->params, tw->patch_w),
                         P(m, m->params, tw->patch_b), B * N, CPP, W);
    /* with ln_pre the embeddings go to lnpre_in and their LayerNorm into the stack's input */
    float *x0 = tw->lnpre_w >= 0 ? tw->lnpre_in : tw->st.xs[0];
    for (int b = 0; b < B; b++) {
        float *xb = x0 + (size_t)b * T * W;
        if (off) memcpy(xb, P(m, m->params, tw->cls), (size_t)W * sizeof(float));
        memcpy(xb + (size_t)off * W, tw->pe + (size_t)b * N * W, (size_t)N * W * sizeof(float));
    }
    clasp_posemb_forward(x0, P(m, m->params, tw->pos_emb), B, T, W);
    if (tw->lnpre_w >= 0)
        clasp_layernorm_forward(tw->st.xs[0], tw->lnpre_mean, tw->lnpre_rstd, x0,
                                P(m, m->params, tw->lnpre_w), P(m, m->params, tw->lnpre_b), B * T,
                                W, tw->st.eps);
    stack_forward(&tw->st, m, NULL, B, T);
    if (tw->ppool == CLASP_POOL_CLS) {
        for (int b = 0; b < B; b++) tw->pos[b] = 0;
        clasp_gather_tokens_forward(tw->pooled, tw->st.lnf, tw->pos, B, T, W);
    } else {
        clasp_meanpool_tokens_forward(tw->pooled, tw->st.lnf, B, T, W);
    }
    proj_forward(tw, m, feat, B, W);
}

static void patch_tf_backward(clasp__tower *tw, clasp_model *m, const float *dfeat, int B) {
    int N = tw->GH * tw->GW, W = tw->pwidth, T = tw->T;
    int CPP = tw->in_c * tw->PH * tw->PW, off = tw->cls >= 0 ? 1 : 0;
    proj_backward(tw, m, dfeat, B, W);
    zero(tw->st.dlnf, (size_t)B * T * W);
    if (tw->ppool == CLASP_POOL_CLS)
        clasp_gather_tokens_backward(tw->st.dlnf, tw->dpooled, tw->pos, B, T, W);
    else
        clasp_meanpool_tokens_backward(tw->st.dlnf, tw->dpooled, B, T, W);
    float *dx0 = stack_backward(&tw->st, m, B, T);
    if (tw->lnpre_w >= 0) {
        /* into the other stack gradient buffer (both are free once the stack is done) */
        float *tmp = dx0 == tw->st.dx_a ? tw->st.dx_b : tw->st.dx_a;
        zero(tmp, (size_t)B * T * W);
        clasp_layernorm_backward(tmp, P(m, m->grads, tw->lnpre_w), P(m, m->grads, tw->lnpre_b), dx0,
                                 tw->lnpre_in, P(m, m->params, tw->lnpre_w), tw->lnpre_mean,
                                 tw->lnpre_rstd, B * T, W);
        dx0 = tmp;
    }
    clasp_posemb_backward(P(m, m->grads, tw->pos_emb), dx0, B, T, W);
    float *dpe = tw->pe; /* the forward values are not needed any more */
    for (int b = 0; b < B; b++) {
        const float *db = dx0 + (size_t)b * T * W;
        if (off) {
            float *gc = P(m, m->grads, tw->cls);
            for (int k = 0; k < W; k++) gc[k] += db[k];
        }
        memcpy(dpe + (size_t)b * N * W, db + (size_t)off * W, (size_t)N * W * sizeof(float));
    }
    clasp_linear_backward(NULL, P(m, m->grads, tw->patch_w), P(m, m->grads, tw->patch_b), dpe,
                          tw->patches, P(m, m->params, tw->patch_w), B * N, CPP, W);
}

/* ---- text transformer ------------------------------------------------------------------- */

/* out (B,C) = mean of inp (B,T,C) over the rows whose padm is 0 (zeros if none). */
static void masked_mean_forward(float *out, const float *inp, const uint8_t *padm, int B, int T,
                                int C) {
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        memset(o, 0, (size_t)C * sizeof(float));
        int cnt = 0;
        for (int t = 0; t < T; t++) {
            if (padm[(size_t)b * T + t]) continue;
            const float *x = inp + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
            cnt++;
        }
        if (cnt > 0) {
            float s = 1.0f / (float)cnt;
            for (int c = 0; c < C; c++) o[c] *= s;
        }
    }
}

static void masked_mean_backward(float *dinp, const float *dout, const uint8_t *padm, int B, int T,
                                 int C) {
    for (int b = 0; b < B; b++) {
        int cnt = 0;
        for (int t = 0; t < T; t++) cnt += !padm[(size_t)b * T + t];
        if (cnt == 0) continue;
        float s = 1.0f / (float)cnt;
        const float *d = dout + (size_t)b * C;
        for (int t = 0; t < T; t++) {
            if (padm[(size_t)b * T + t]) continue;
            float *x = dinp + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) x[c] += d[c] * s;
        }
    }
}

static clasp_status text_forward(clasp__tower *tw, const clasp_model *m, const int32_t *tok, int B,
                                 float *feat) {
    const clasp_text_tower_config *tc = &m->config.text;
    int T = tw->T, W = tc->width;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t v = tok[(size_t)b * T + t];
            if (v < 0 || v >= tc->vocab_size)
                return clasp_set_error(CLASP_ERR_ARG,
                                       "encode_text: token %d at row %d position %d is outside "
                                       "[0, %d)",
                                       (int)v, b, t, tc->vocab_size);
        }
    size_t BT = (size_t)B * T;
    memcpy(tw->tokens, tok, BT * sizeof(int32_t));
    if (tw->padm)
        for (size_t i = 0; i < BT; i++) tw->padm[i] = tok[i] == tc->pad_id;
    clasp_embedding_forward(tw->st.xs[0], tw->tokens, P(m, m->params, tw->tok_emb),
                            P(m, m->params, tw->pos_emb), B, T, W);
    stack_forward(&tw->st, m, tw->padm, B, T);
    if (tc->pool == CLASP_POOL_EOS) {
        for (int b = 0; b < B; b++) {
            int p = T - 1;
            for (int t = 0; t < T; t++)
                if (tok[(size_t)b * T + t] == tc->eos_id) {
                    p = t;
                    break;
                }
            tw->pos[b] = p;
        }
        clasp_gather_tokens_forward(tw->pooled, tw->st.lnf, tw->pos, B, T, W);
    } else if (tw->padm) {
        masked_mean_forward(tw->pooled, tw->st.lnf, tw->padm, B, T, W);
    } else {
        clasp_meanpool_tokens_forward(tw->pooled, tw->st.lnf, B, T, W);
    }
    proj_forward(tw, m, feat, B, W);
    return CLASP_OK;
}

static void text_backward(clasp__tower *tw, clasp_model *m, const float *dfeat, int B) {
    const clasp_text_tower_config *tc = &m->config.text;
    int T = tw->T, W = tc->width;
    proj_backward(tw, m, dfeat, B, W);
    zero(tw->st.dlnf, (size_t)B * T * W);
    if (tc->pool == CLASP_POOL_EOS)
        clasp_gather_tokens_backward(tw->st.dlnf, tw->dpooled, tw->pos, B, T, W);
    else if (tw->padm)
        masked_mean_backward(tw->st.dlnf, tw->dpooled, tw->padm, B, T, W);
    else
        clasp_meanpool_tokens_backward(tw->st.dlnf, tw->dpooled, B, T, W);
    float *dx0 = stack_backward(&tw->st, m, B, T);
    clasp_embedding_backward(P(m, m->grads, tw->tok_emb), P(m, m->grads, tw->pos_emb), dx0,
                             tw->tokens, B, T, W);
}

/* ---- dispatch --------------------------------------------------------------------------- */

clasp_status clasp__tower_forward(clasp__tower *tw, const clasp_model *m, const void *input, int B,
                                  float *feat) {
    switch (tw->kind) {
    case CLASP_TOWER_IMAGE:
    case CLASP_TOWER_AUDIO:
        if (tw->is_cnn)
            cnn_forward(tw, m, input, B, feat);
        else
            patch_tf_forward(tw, m, input, B, feat);
        return CLASP_OK;
    case CLASP_TOWER_TEXT:
        return text_forward(tw, m, input, B, feat);
    default:
        return clasp_set_error(CLASP_ERR_UNSUPPORTED, "tower not implemented");
    }
}

void clasp__tower_backward(clasp__tower *tw, clasp_model *m, const float *dfeat) {
    int B = tw->fwd_B;
    switch (tw->kind) {
    case CLASP_TOWER_IMAGE:
    case CLASP_TOWER_AUDIO:
        if (tw->is_cnn)
            cnn_backward(tw, m, dfeat, B);
        else
            patch_tf_backward(tw, m, dfeat, B);
        break;
    case CLASP_TOWER_TEXT:
        text_backward(tw, m, dfeat, B);
        break;
    default:
        break;
    }
}
