/* eval.c: the evaluation pass over shards (image features, labels, keys, first or all
 * captions) and zero-shot classification. See eval.h. */
#include "core/compute.h"
#include "eval/eval.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/hash.h"
#include "core/json.h"
#include "modalities/text.h"
#include "pipeline/captions.h"
#include "pipeline/data.h"
#include "export/export.h"
#include "eval/retrieval.h"
#include "pipeline/shardlist.h"

static char *trim_(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

void clasp_free_lines(char **lines, int n) {
    if (!lines) return;
    for (int i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

clasp_status clasp_read_lines(const char *path, char ***lines, int *n) {
    *lines = NULL;
    *n = 0;
    char *text;
    size_t len;
    CLASP_TRY(clasp_read_file(path, (size_t)64 << 20, &text, &len));
    /* a UTF-8 BOM at the start is not part of the first line */
    char *p = text;
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3;
    size_t cap = 0;
    char **out = NULL;
    clasp_status s = CLASP_OK;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        char *t = trim_(p);
        if (*t) {
            char **nw = clasp_grow(out, (size_t)*n, &cap, sizeof *nw, 16);
            if (!nw) {
                s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            out = nw;
            out[*n] = strdup(t);
            if (!out[*n]) {
                s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            (*n)++;
        }
        p = nl ? nl + 1 : NULL;
    }
    free(text);
    if (s != CLASP_OK) {
        clasp_free_lines(out, *n);
        *n = 0;
        return s;
    }
    *lines = out;
    return CLASP_OK;
}

/* Replaces every "{}" of tmpl by name into a malloc'd string. */
static char *fill_template_(const char *tmpl, const char *name) {
    size_t nn = strlen(name), cap = strlen(tmpl) + 1;
    for (const char *q = tmpl; (q = strstr(q, "{}")); q += 2) cap += nn;
    char *out = malloc(cap);
    if (!out) return NULL;
    char *w = out;
    for (const char *q = tmpl; *q;) {
        if (q[0] == '{' && q[1] == '}') {
            memcpy(w, name, nn);
            w += nn;
            q += 2;
        } else {
            *w++ = *q++;
        }
    }
    *w = '\0';
    return out;
}

clasp_status clasp_eval_class_embeddings(clasp_engine *e, const clasp_preprocess *pre, char **names,
                                         int n_classes, char **templates, int n_templates,
                                         float *out) {
    if (!pre->has_text)
        return clasp_set_error(CLASP_ERR_CONFIG, "zero-shot: the model has no text tower");
    const clasp_tokenizer *tok = pre->tokenizer;
    const int T = pre->context_length, D = e->D;
    static char *const only_name[1] = {"{}"};
    if (n_templates <= 0) {
        templates = (char **)only_name;
        n_templates = 1;
    }
    size_t np = (size_t)n_classes * (size_t)n_templates;
    int32_t *tokens = calloc(np * (size_t)T, sizeof(int32_t));
    float *emb = malloc(np * (size_t)D * sizeof(float));
    clasp_status s =
        (tokens && emb) ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "zero-shot: out of memory");
    for (int c = 0; c < n_classes && s == CLASP_OK; c++) {
        for (int t = 0; t < n_templates && s == CLASP_OK; t++) {
            char *prompt = fill_template_(templates[t], names[c]);
            if (!prompt) {
                s = clasp_set_error(CLASP_ERR_NOMEM, "zero-shot: out of memory");
                break;
            }
            s = clasp_tokenizer_encode(tok, prompt, tokens + ((size_t)c * n_templates + t) * T, T);
            free(prompt);
        }
    }
    if (s == CLASP_OK) s = clasp_engine_embed(e, CLASP_TOWER_TEXT, tokens, (int)np, emb);
    for (int c = 0; c < n_classes && s == CLASP_OK; c++) {
        double acc[4096];
        double *a = D <= 4096 ? acc : NULL;
        if (!a) {
            s = clasp_set_error(CLASP_ERR_UNSUPPORTED, "zero-shot: embed_dim %d above 4096", D);
            break;
        }
        for (int d = 0; d < D; d++) a[d] = 0;
        for (int t = 0; t < n_templates; t++) {
            const float *x = emb + ((size_t)c * n_templates + t) * D;
            for (int d = 0; d < D; d++) a[d] += (double)x[d];
        }
        double nrm = 0;
        for (int d = 0; d < D; d++) nrm += a[d] * a[d];
        nrm = sqrt(nrm);
        if (nrm < 1e-12) nrm = 1e-12;
        for (int d = 0; d < D; d++) out[(size_t)c * D + d] = (float)(a[d] / nrm);
    }
    free(tokens);
    free(emb);
    return s;
}

/* ---- collection pass -------------------------------------------------------------------- */

void clasp_eval_set_free(clasp_eval_set *s) {
    if (!s) return;
    if (s->keys)
        for (int64_t i = 0; i < s->n; i++) free(s->keys[i]);
    free(s->keys), free(s->img), free(s->labels);
    free(s->txt), free(s->txt_owner), free(s->txt_group);
    memset(s, 0, sizeof *s);
}

/* One array of rows to grow: the address of its pointer and the bytes of a row. */
typedef struct grow_item_ {
    void *ptr; /* T ** */
    size_t row;
} grow_item_;

/* Grows every array of items to hold `need` rows (capacity doubling from 1024). On failure the
 * arrays already grown keep their new size and *cap stays. */
static clasp_status grow_rows_(const grow_item_ *items, int n_items, int64_t need, int64_t *cap) {
    if (need <= *cap) return CLASP_OK;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    for (int k = 0; k < n_items; k++) {
        void *old, *p;
        memcpy(&old, items[k].ptr, sizeof old);
        if (!(p = realloc(old, (size_t)c * items[k].row)))
            return clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
        memcpy(items[k].ptr, &p, sizeof p);
    }
    *cap = c;
    return CLASP_OK;
}

/* Grows every per-image array of s to hold `need` rows. */
static clasp_status grow_images_(clasp_eval_set *s, int64_t need, int64_t *cap) {
    const grow_item_ it[3] = {{&s->img, (size_t)s->D * sizeof(float)},
                              {&s->labels, sizeof(int64_t)},
                              {&s->keys, sizeof(char *)}};
    return grow_rows_(it, 3, need, cap);
}

/* Grows every per-text array of s to hold `need` rows. */
static clasp_status grow_texts_(clasp_eval_set *s, int64_t need, int64_t *cap) {
    const grow_item_ it[3] = {{&s->txt, (size_t)s->D * sizeof(float)},
                              {&s->txt_owner, sizeof(int64_t)},
                              {&s->txt_group, sizeof(uint64_t)}};
    return grow_rows_(it, 3, need, cap);
}

/* Captions waiting to be embedded, tokenized, with their image rows. */
typedef struct caption_batch {
    int32_t *tokens; /* (cap, T) */
    int64_t *owner;  /* (cap) */
    uint64_t *group; /* (cap) hash of the tokens, as the loader's group ids */
    int n, cap, T;
} caption_batch;

static clasp_status add_caption_(caption_batch *cb, const clasp_loader_config *lc, const char *p,
                                 size_t n, int64_t owner, int64_t *bad) {
    char *norm = NULL;
    size_t nn = 0;
    clasp_status s = clasp_text_normalize(p, n, &lc->text, &norm, &nn);
    if (s == CLASP_ERR_NOMEM) return s;
    if (s != CLASP_OK) {
        (*bad)++;
        return CLASP_OK;
    }
    int32_t *tokens = cb->tokens + (size_t)cb->n * cb->T;
    s = clasp_tokenizer_encode_n(lc->tokenizer, norm, nn, tokens, cb->T, NULL);
    free(norm);
    if (s != CLASP_OK) return s;
    cb->group[cb->n] = clasp_hash64(tokens, (size_t)cb->T * sizeof(int32_t), 0);
    cb->owner[cb->n++] = owner;
    return CLASP_OK;
}

/* Appends every caption of one raw sample, by the caption rule (pipeline/captions.h). */
static clasp_status sample_captions_(caption_batch *cb, const clasp_loader_config *lc,
                                     const clasp_sample *smp, int64_t owner, int64_t *bad) {
    clasp_captions caps;
    clasp_status s = CLASP_OK;
    if (clasp_captions_of(smp, &lc->fields, &caps))
        for (size_t i = 0; i < caps.n && s == CLASP_OK; i++)
            s = add_caption_(cb, lc, caps.c[i].p, caps.c[i].n, owner, bad);
    clasp_captions_free(&caps);
    return s;
}

/* Embeds the pending captions of cb into s. */
static clasp_status flush_captions_(clasp_engine *e, caption_batch *cb, clasp_eval_set *s,
                                    int64_t *cap) {
    if (cb->n == 0) return CLASP_OK;
    CLASP_TRY(grow_texts_(s, s->n_txt + cb->n, cap));
    CLASP_TRY(clasp_engine_embed(e, CLASP_TOWER_TEXT, cb->tokens, cb->n,
                                 s->txt + (size_t)s->n_txt * s->D));
    memcpy(s->txt_owner + s->n_txt, cb->owner, (size_t)cb->n * sizeof(int64_t));
    memcpy(s->txt_group + s->n_txt, cb->group, (size_t)cb->n * sizeof(uint64_t));
    s->n_txt += cb->n;
    cb->n = 0;
    return CLASP_OK;
}

/* Second pass for every caption: walks the spec's samples in the loader's order; the samples
 * the loader kept are a subsequence (same keys in the same order). */
static clasp_status collect_all_captions_(clasp_engine *e, const clasp_loader_config *lc,
                                          const char *spec, clasp_eval_set *s) {
    clasp_shardlist sl;
    clasp_status st = clasp_shardlist_expand(spec, &sl);
    if (st != CLASP_OK) {
        clasp_shardlist_free(&sl);
        return st;
    }
    caption_batch cb = {.cap = e->opt.batch_size, .T = lc->context_length};
    /* the batch flushes once full, so one sample adds at most CLASP_MAX_CAPTIONS beyond it */
    cb.tokens = malloc((size_t)(cb.cap + CLASP_MAX_CAPTIONS) * (size_t)cb.T * sizeof(int32_t));
    cb.owner = malloc((size_t)(cb.cap + CLASP_MAX_CAPTIONS) * sizeof(int64_t));
    cb.group = malloc((size_t)(cb.cap + CLASP_MAX_CAPTIONS) * sizeof(uint64_t));
    int64_t tcap = 0, next = 0;
    if (!cb.tokens || !cb.owner || !cb.group)
        st = clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
    for (size_t i = 0; i < sl.n && st == CLASP_OK && next < s->n; i++) {
        clasp_tar_reader *r = NULL;
        if (clasp_tar_open(sl.names[i], NULL, lc->max_member_bytes, &r) != CLASP_OK) continue;
        clasp_sample smp;
        memset(&smp, 0, sizeof smp);
        for (;;) {
            bool got = false;
            st = clasp_tar_next(r, true, &smp, &got);
            if (st != CLASP_OK || !got || next >= s->n) break;
            if (strcmp(smp.key, s->keys[next]) != 0) continue;
            st = sample_captions_(&cb, lc, &smp, next, &s->bad_captions);
            next++;
            if (st == CLASP_OK && cb.n >= cb.cap) st = flush_captions_(e, &cb, s, &tcap);
            if (st != CLASP_OK) break;
        }
        clasp_sample_clear(&smp);
        clasp_tar_close(r);
    }
    if (st == CLASP_OK) st = flush_captions_(e, &cb, s, &tcap);
    if (st == CLASP_OK && next != s->n)
        st = clasp_set_error(CLASP_ERR_FORMAT,
                             "%s: the caption pass found %lld of the %lld samples the loader "
                             "returned (shards changed during evaluation?)",
                             spec, (long long)next, (long long)s->n);
    free(cb.tokens);
    free(cb.owner);
    free(cb.group);
    clasp_shardlist_free(&sl);
    return st;
}

/* Runs an evaluation loader over lc's spec, handing each batch to take(ctx, batch); *skipped
 * receives the loader's skip count. */
typedef clasp_status (*batch_fn_)(void *ctx, const clasp_batch *b);

static clasp_status run_loader_(const clasp_loader_config *lc, batch_fn_ take, void *ctx,
                                int64_t *skipped) {
    clasp_loader *L = NULL;
    clasp_status s = clasp_loader_open(lc, NULL, &L);
    while (s == CLASP_OK) {
        const clasp_batch *b = NULL;
        bool end = false;
        s = clasp_loader_next(L, &b, &end);
        if (s != CLASP_OK || end) break;
        s = take(ctx, b);
    }
    if (L) {
        clasp_data_stats *st = clasp_loader_stats(L);
        *skipped = st ? (int64_t)clasp_data_stats_total_skipped(st) : 0;
    }
    clasp_loader_close(L);
    return s;
}

/* Copies the batch's keys into keys[*n..]; *n counts the rows whose key was copied. */
static clasp_status append_keys_(char **keys, int64_t *n, const clasp_batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        keys[*n] = strdup(b->keys[i]);
        if (!keys[*n]) return clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
        (*n)++;
    }
    return CLASP_OK;
}

typedef struct collect_ctx_ {
    clasp_engine *e;
    clasp_eval_text text;
    clasp_eval_set *out;
    int64_t icap, tcap;
} collect_ctx_;

static clasp_status collect_batch_(void *ctx, const clasp_batch *b) {
    collect_ctx_ *c = ctx;
    clasp_eval_set *out = c->out;
    int64_t n = (int64_t)b->n;
    CLASP_TRY(grow_images_(out, out->n + n, &c->icap));
    CLASP_TRY(clasp_engine_embed(c->e, CLASP_TOWER_IMAGE, b->images, (int)n,
                                 out->img + (size_t)out->n * out->D));
    if (c->text == CLASP_EVAL_TEXT_FIRST) {
        CLASP_TRY(grow_texts_(out, out->n_txt + n, &c->tcap));
        CLASP_TRY(clasp_engine_embed(c->e, CLASP_TOWER_TEXT, b->tokens, (int)n,
                                     out->txt + (size_t)out->n_txt * out->D));
        for (int64_t i = 0; i < n; i++) {
            out->txt_owner[out->n_txt + i] = out->n + i;
            out->txt_group[out->n_txt + i] = b->group_ids[i];
        }
        out->n_txt += n;
    }
    memcpy(out->labels + out->n, b->labels, (size_t)n * sizeof(int64_t));
    return append_keys_(out->keys, &out->n, b);
}

clasp_status clasp_eval_collect(clasp_engine *e, const clasp_preprocess *pre, const char *spec,
                                clasp_eval_text text, int workers, clasp_eval_set *out) {
    memset(out, 0, sizeof *out);
    out->D = e->D;
    clasp_loader_config lc;
    CLASP_TRY(clasp_data_loader_config(
        pre, CLASP_NEED_IMAGE | (text == CLASP_EVAL_TEXT_NONE ? 0u : CLASP_NEED_TEXT), &lc));
    clasp_loader_config_eval(&lc, spec, (size_t)e->opt.batch_size, workers);
    collect_ctx_ ctx = {.e = e, .text = text, .out = out};
    clasp_status s = run_loader_(&lc, collect_batch_, &ctx, &out->skipped);
    if (s == CLASP_OK && out->n == 0)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: no usable sample to evaluate", spec);
    if (s == CLASP_OK && text == CLASP_EVAL_TEXT_ALL) s = collect_all_captions_(e, &lc, spec, out);
    if (s != CLASP_OK) clasp_eval_set_free(out);
    return s;
}

/* ---- zero-shot ----------------------------------------------------------------------------- */

clasp_status clasp_eval_zeroshot_set(const clasp_eval_set *set, const float *cls, int nc,
                                     clasp_zeroshot_result *r, double *per_class_recall,
                                     int64_t *per_class_count) {
    memset(r, 0, sizeof *r);
    const int D = set->D;
    const int64_t B = 256;
    float *scores = malloc((size_t)B * (size_t)nc * sizeof(float));
    int64_t *hits_c = calloc((size_t)nc, sizeof(int64_t)),
            *count_c = calloc((size_t)nc, sizeof(int64_t));
    if (!scores || !hits_c || !count_c) {
        free(scores), free(hits_c), free(count_c);
        return clasp_set_error(CLASP_ERR_NOMEM, "zero-shot: out of memory");
    }
    int64_t top1 = 0, top5 = 0, top10 = 0;
    for (int64_t i0 = 0; i0 < set->n; i0 += B) {
        int n = (int)(set->n - i0 < B ? set->n - i0 : B);
        clasp_gemm(0, 1, n, nc, D, 1.0f, set->img + (size_t)i0 * D, D, cls, D, 0.0f, scores, nc);
        for (int i = 0; i < n; i++) {
            int64_t y = set->labels[i0 + i];
            if (y < 0 || y >= nc) {
                r->skipped++;
                continue;
            }
            /* rank of the true class: 1 + classes strictly better, ties broken by index */
            int64_t rank = clasp_rank_of(scores + (size_t)i * nc, nc, y);
            top1 += rank == 1;
            top5 += rank <= 5;
            top10 += rank <= 10;
            hits_c[y] += rank == 1;
            count_c[y]++;
            r->n++;
        }
    }
    clasp_status s = CLASP_OK;
    if (r->n == 0) {
        s = clasp_set_error(CLASP_ERR_FORMAT, "no image with a class label in [0, %d) to evaluate",
                            nc);
    } else {
        r->top1 = (double)top1 / (double)r->n;
        r->top5 = (double)top5 / (double)r->n;
        r->top10 = (double)top10 / (double)r->n;
        int present = 0;
        double rec = 0;
        for (int c = 0; c < nc; c++) {
            double rc = count_c[c] ? (double)hits_c[c] / (double)count_c[c] : (double)NAN;
            if (count_c[c]) {
                rec += rc;
                present++;
            }
            if (per_class_recall) per_class_recall[c] = rc;
            if (per_class_count) per_class_count[c] = count_c[c];
        }
        r->mean_recall = present ? rec / present : 0;
        r->n_classes = nc;
        r->skipped += set->skipped;
    }
    free(scores), free(hits_c), free(count_c);
    return s;
}

/* Reads class names and templates with the checks of clasp_eval_zeroshot. */
static clasp_status read_prompts_(const char *classes_path, const char *templates_path,
                                  char ***names, int *nc, char ***tmpls, int *nt) {
    *tmpls = NULL;
    *nt = 0;
    CLASP_TRY(clasp_read_lines(classes_path, names, nc));
    clasp_status s = CLASP_OK;
    if (*nc < 2)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: needs at least 2 class names, has %d",
                            classes_path, *nc);
    if (s == CLASP_OK && templates_path) {
        s = clasp_read_lines(templates_path, tmpls, nt);
        for (int t = 0; t < *nt && s == CLASP_OK; t++)
            if (!strstr((*tmpls)[t], "{}"))
                s = clasp_set_error(CLASP_ERR_FORMAT, "%s: line %d ('%s') has no '{}'",
                                    templates_path, t + 1, (*tmpls)[t]);
        if (s == CLASP_OK && *nt == 0)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: no templates", templates_path);
    }
    if (s != CLASP_OK) {
        clasp_free_lines(*names, *nc);
        clasp_free_lines(*tmpls, *nt);
        *names = *tmpls = NULL;
        *nc = *nt = 0;
    }
    return s;
}

/* The class embeddings (*nc, D) of a class-name file and a template file (NULL: the name
 * alone), malloc'd into *cls. */
static clasp_status prompt_embeddings_(clasp_engine *e, const clasp_preprocess *pre,
                                       const char *classes_path, const char *templates_path,
                                       float **cls, int *nc) {
    char **names = NULL, **tmpls = NULL;
    int nt = 0;
    *cls = NULL;
    CLASP_TRY(read_prompts_(classes_path, templates_path, &names, nc, &tmpls, &nt));
    *cls = malloc((size_t)*nc * (size_t)e->D * sizeof(float));
    clasp_status s = *cls ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "zero-shot: out of memory");
    if (s == CLASP_OK) s = clasp_eval_class_embeddings(e, pre, names, *nc, tmpls, nt, *cls);
    clasp_free_lines(names, *nc);
    clasp_free_lines(tmpls, nt);
    if (s != CLASP_OK) {
        free(*cls);
        *cls = NULL;
    }
    return s;
}

clasp_status clasp_eval_zeroshot(clasp_engine *e, const clasp_preprocess *pre, const char *spec,
                                 const char *classes_path, const char *templates_path, int workers,
                                 clasp_zeroshot_result *r) {
    memset(r, 0, sizeof *r);
    float *cls = NULL;
    int nc = 0;
    CLASP_TRY(prompt_embeddings_(e, pre, classes_path, templates_path, &cls, &nc));
    clasp_eval_set set;
    memset(&set, 0, sizeof set);
    clasp_status s = clasp_eval_collect(e, pre, spec, CLASP_EVAL_TEXT_NONE, workers, &set);
    if (s == CLASP_OK) {
        s = clasp_eval_zeroshot_set(&set, cls, nc, r, NULL, NULL);
        if (s != CLASP_OK) clasp_wrap_error(s, "%s", spec);
    }
    clasp_eval_set_free(&set);
    free(cls);
    return s;
}

/* Zero-shot and, when the set has captions and labels, retrieval by class, for the trainer:
 * one embedding pass with each sample's first caption. A sample without a caption is skipped
 * by that pass, so when any sample was skipped the zero-shot figures come from a second,
 * images-only pass (clasp_eval_zeroshot's), the same images `clasp eval` scores. */
clasp_status clasp_eval_zeroshot_for_train(clasp_engine *e, const clasp_preprocess *pre,
                                           const char *val_spec, const char *classes,
                                           const char *templates, int workers,
                                           clasp_train_eval_result *out) {
    memset(out, 0, sizeof *out);
    float *cls = NULL;
    int nc = 0;
    CLASP_TRY(prompt_embeddings_(e, pre, classes, templates, &cls, &nc));
    clasp_status s = CLASP_OK;
    clasp_eval_set set;
    memset(&set, 0, sizeof set);
    bool with_text = false;
    if (s == CLASP_OK) {
        with_text = clasp_eval_collect(e, pre, val_spec, CLASP_EVAL_TEXT_FIRST, workers, &set) ==
                        CLASP_OK &&
                    set.skipped == 0;
        if (!with_text) {
            clasp_eval_set_free(&set);
            s = clasp_eval_collect(e, pre, val_spec, CLASP_EVAL_TEXT_NONE, workers, &set);
        }
    }
    clasp_zeroshot_result zr;
    if (s == CLASP_OK) {
        s = clasp_eval_zeroshot_set(&set, cls, nc, &zr, NULL, NULL);
        if (s != CLASP_OK) clasp_wrap_error(s, "%s", val_spec);
    }
    if (s == CLASP_OK) {
        out->top1 = zr.top1, out->top5 = zr.top5, out->mean_recall = zr.mean_recall;
        out->n = zr.n, out->n_classes = zr.n_classes;
        clasp_group_retrieval i2t, t2i;
        if (with_text && set.n_txt > 0 &&
            clasp_eval_retrieval_match(&set, CLASP_EVAL_MATCH_CLASS, &i2t, &t2i) == CLASP_OK) {
            out->has_retrieval = true;
            out->i2t_r1 = i2t.stats.r1, out->i2t_r5 = i2t.stats.r5;
            out->t2i_r1 = t2i.stats.r1, out->t2i_r5 = t2i.stats.r5;
        }
    }
    clasp_eval_set_free(&set);
    free(cls);
    return s;
}

/* ---- distinct captions ------------------------------------------------------------------- */

/* A row's key and value, sorted by key then value. */
typedef struct keyed_ {
    uint64_t key;
    int64_t val;
} keyed_;

static int cmp_keyed_(const void *a, const void *b) {
    const keyed_ *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->val > y->val) - (x->val < y->val);
}

/* The distinct values of g[0..n) (n >= 1) in order of first occurrence: of_row[i] receives
 * the distinct index of row i, *first (malloc'd, *nd entries) the first row of each value. */
static clasp_status distinct_(const uint64_t *g, int64_t n, int64_t *of_row, int64_t **first,
                              int64_t *nd) {
    keyed_ *o = malloc((size_t)n * sizeof *o);
    int64_t *rep = malloc((size_t)n * sizeof *rep); /* the first row with row i's value */
    *first = malloc((size_t)n * sizeof **first);
    *nd = 0;
    if (!o || !rep || !*first) {
        free(o), free(rep), free(*first);
        *first = NULL;
        return clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
    }
    for (int64_t i = 0; i < n; i++) o[i] = (keyed_){g[i], i};
    qsort(o, (size_t)n, sizeof *o, cmp_keyed_);
    for (int64_t k = 0; k < n; k++)
        rep[o[k].val] = k > 0 && o[k].key == o[k - 1].key ? rep[o[k - 1].val] : o[k].val;
    for (int64_t i = 0; i < n; i++) {
        if (rep[i] == i) {
            (*first)[*nd] = i;
            of_row[i] = (*nd)++;
        } else {
            of_row[i] = of_row[rep[i]];
        }
    }
    free(o), free(rep);
    return CLASP_OK;
}

/* Rows rows[0..n) of x (D columns) copied into a new (n, D) array; NULL when out of memory. */
static float *gather_rows_(const float *x, const int64_t *rows, int64_t n, int D) {
    float *out = malloc((size_t)(n ? n : 1) * (size_t)D * sizeof(float));
    for (int64_t r = 0; out && r < n; r++)
        memcpy(out + (size_t)r * (size_t)D, x + (size_t)rows[r] * (size_t)D,
               (size_t)D * sizeof(float));
    return out;
}

/* ---- class-aware retrieval ------------------------------------------------------------------ */

/* Which distinct captions answer which images. */
typedef struct match_ctx_ {
    bool by_class;
    const int64_t *key;   /* (n images) CLASS: the label; CAPTION: the distinct index of the
                             image's first caption; -1: none */
    const int64_t *start; /* CLASS: the labels of distinct caption d are */
    const int64_t *cls;   /* cls[start[d] .. start[d + 1]), sorted, without repeats */
} match_ctx_;

static bool image_matches_caption_(const match_ctx_ *c, int64_t image, int64_t caption) {
    const int64_t k = c->key[image];
    if (k < 0) return false;
    if (!c->by_class) return k == caption;
    for (int64_t j = c->start[caption]; j < c->start[caption + 1]; j++)
        if (c->cls[j] == k) return true;
    return false;
}

static bool i2t_relevant_(const void *ctx, int64_t q, int64_t g) {
    return image_matches_caption_(ctx, q, g);
}

static bool t2i_relevant_(const void *ctx, int64_t q, int64_t g) {
    return image_matches_caption_(ctx, g, q);
}

/* The labels each distinct caption is used with: of_row[j] is text j's distinct index (nd of
 * them); *start (nd + 1) and *cls (malloc'd) as in match_ctx_. */
static clasp_status caption_classes_(const clasp_eval_set *set, const int64_t *of_row, int64_t nd,
                                     int64_t **start, int64_t **cls) {
    keyed_ *p = malloc((size_t)set->n_txt * sizeof *p);
    *start = calloc((size_t)nd + 1, sizeof **start);
    *cls = malloc((size_t)set->n_txt * sizeof **cls);
    if (!p || !*start || !*cls) {
        free(p), free(*start), free(*cls);
        *start = *cls = NULL;
        return clasp_set_error(CLASP_ERR_NOMEM, "class-aware retrieval: out of memory");
    }
    int64_t np = 0, nc = 0;
    for (int64_t j = 0; j < set->n_txt; j++)
        if (set->labels[set->txt_owner[j]] >= 0)
            p[np++] = (keyed_){(uint64_t)of_row[j], set->labels[set->txt_owner[j]]};
    qsort(p, (size_t)np, sizeof *p, cmp_keyed_);
    for (int64_t k = 0; k < np; k++) {
        if (k > 0 && p[k].key == p[k - 1].key && p[k].val == p[k - 1].val) continue;
        (*start)[p[k].key + 1]++;
        (*cls)[nc++] = p[k].val;
    }
    for (int64_t d = 0; d < nd; d++) (*start)[d + 1] += (*start)[d];
    free(p);
    return CLASP_OK;
}

clasp_status clasp_eval_retrieval_match(const clasp_eval_set *set, clasp_eval_match match,
                                        clasp_group_retrieval *i2t, clasp_group_retrieval *t2i) {
    memset(i2t, 0, sizeof *i2t);
    memset(t2i, 0, sizeof *t2i);
    if (set->n < 1 || set->n_txt < 1 || !set->txt_group)
        return clasp_set_error(CLASP_ERR_ARG, "class-aware retrieval: the set has no texts");
    int64_t *of_row = malloc((size_t)set->n_txt * sizeof(int64_t));
    int64_t *first = NULL, *start = NULL, *cls = NULL, *key = NULL, nd = 0;
    float *gal = NULL;
    clasp_status s = of_row ? distinct_(set->txt_group, set->n_txt, of_row, &first, &nd)
                            : clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
    if (s == CLASP_OK && !(gal = gather_rows_(set->txt, first, nd, set->D)))
        s = clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
    match_ctx_ c = {.by_class = match == CLASP_EVAL_MATCH_CLASS, .key = set->labels};
    if (s == CLASP_OK && c.by_class) {
        s = caption_classes_(set, of_row, nd, &start, &cls);
        c.start = start, c.cls = cls;
    } else if (s == CLASP_OK) {
        /* an image's caption is its first one, the first of its texts in the set's order */
        if (!(key = malloc((size_t)set->n * sizeof *key)))
            s = clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
        for (int64_t i = 0; key && i < set->n; i++) key[i] = -1;
        for (int64_t j = 0; key && j < set->n_txt; j++)
            if (key[set->txt_owner[j]] < 0) key[set->txt_owner[j]] = of_row[j];
        c.key = key;
    }
    if (s == CLASP_OK)
        s = clasp_retrieval_by_relevance(set->img, set->n, gal, nd, set->D, i2t_relevant_, &c, i2t);
    if (s == CLASP_OK)
        s = clasp_retrieval_by_relevance(gal, nd, set->img, set->n, set->D, t2i_relevant_, &c, t2i);
    free(of_row), free(first), free(start), free(cls), free(key), free(gal);
    return s;
}

/* ---- any two towers ------------------------------------------------------------------------ */

void clasp_eval_towers_free(clasp_eval_towers *t) {
    if (!t) return;
    if (t->keys)
        for (int64_t i = 0; i < t->n; i++) free(t->keys[i]);
    free(t->keys), free(t->a), free(t->b), free(t->group), free(t->labels);
    memset(t, 0, sizeof *t);
}

static const void *batch_input_(const clasp_batch *b, clasp_tower t) {
    if (t == CLASP_TOWER_IMAGE) return b->images;
    if (t == CLASP_TOWER_TEXT) return b->tokens;
    return b->audio;
}

static unsigned need_of_(clasp_tower t) {
    if (t == CLASP_TOWER_IMAGE) return CLASP_NEED_IMAGE;
    if (t == CLASP_TOWER_TEXT) return CLASP_NEED_TEXT;
    if (t == CLASP_TOWER_AUDIO) return CLASP_NEED_AUDIO;
    return 0;
}

typedef struct towers_ctx_ {
    clasp_embedder *em;
    clasp_eval_towers *out;
    int64_t cap;
} towers_ctx_;

/* Grows every per-row array of t to hold `need` rows (b only with a second tower). */
static clasp_status grow_towers_(clasp_eval_towers *t, int64_t need, int64_t *cap) {
    const size_t row = (size_t)t->D * sizeof(float);
    const grow_item_ it[5] = {{&t->a, row},
                              {&t->group, sizeof(uint64_t)},
                              {&t->keys, sizeof(char *)},
                              {&t->labels, sizeof(int64_t)},
                              {&t->b, row}};
    return grow_rows_(it, t->tb != CLASP_N_TOWERS ? 5 : 4, need, cap);
}

static clasp_status towers_batch_(void *ctx, const clasp_batch *b) {
    towers_ctx_ *c = ctx;
    clasp_eval_towers *out = c->out;
    int64_t n = (int64_t)b->n;
    const size_t D = (size_t)out->D;
    CLASP_TRY(grow_towers_(out, out->n + n, &c->cap));
    CLASP_TRY(clasp_embedder_embed_inputs(c->em, out->ta, batch_input_(b, out->ta), (int)n,
                                          out->a + (size_t)out->n * D));
    if (out->tb != CLASP_N_TOWERS)
        CLASP_TRY(clasp_embedder_embed_inputs(c->em, out->tb, batch_input_(b, out->tb), (int)n,
                                              out->b + (size_t)out->n * D));
    memcpy(out->group + out->n, b->group_ids, (size_t)n * sizeof(uint64_t));
    memcpy(out->labels + out->n, b->labels, (size_t)n * sizeof(int64_t));
    return append_keys_(out->keys, &out->n, b);
}

clasp_status clasp_eval_collect_towers(clasp_embedder *em, const char *spec, clasp_tower ta,
                                       clasp_tower tb, int workers, clasp_eval_towers *out) {
    memset(out, 0, sizeof *out);
    out->D = em->D;
    out->ta = ta;
    out->tb = tb;
    bool has_b = tb != CLASP_N_TOWERS;
    if (!clasp_embedder_has(em, ta) || (has_b && !clasp_embedder_has(em, tb)))
        return clasp_set_error(CLASP_ERR_CONFIG, "%s: the model has no %s tower", em->path,
                               clasp_embedder_has(em, ta) ? clasp_tower_name(tb)
                                                          : clasp_tower_name(ta));
    clasp_loader_config lc = em->lc;
    clasp_loader_config_eval(&lc, spec, (size_t)em->batch_size, workers);
    lc.required = need_of_(ta) | (has_b ? need_of_(tb) : 0u) | CLASP_NEED_TEXT;
    towers_ctx_ ctx = {.em = em, .out = out};
    clasp_status s = run_loader_(&lc, towers_batch_, &ctx, &out->skipped);
    if (s == CLASP_OK && out->n == 0)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: no usable sample with %s%s%s and a caption",
                            spec, clasp_tower_name(ta), has_b ? " and " : "",
                            has_b ? clasp_tower_name(tb) : "");
    if (s != CLASP_OK) clasp_eval_towers_free(out);
    return s;
}

clasp_status clasp_eval_pair_retrieval(const clasp_eval_towers *t, clasp_eval_pair_result *out) {
    memset(out, 0, sizeof *out);
    if (!t->b) return clasp_set_error(CLASP_ERR_ARG, "pair retrieval needs two towers");
    if (t->n < 1) return clasp_set_error(CLASP_ERR_ARG, "pair retrieval: no rows");
    int64_t *of_row = malloc((size_t)t->n * sizeof(int64_t)), *first = NULL, nu = 0;
    float *ub = NULL;
    uint64_t *ug = NULL;
    clasp_status s = of_row ? distinct_(t->group, t->n, of_row, &first, &nu)
                            : clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
    if (s == CLASP_OK) {
        /* the gallery: the first row of each distinct caption, in order of first occurrence */
        ub = gather_rows_(t->b, first, nu, t->D);
        ug = malloc((size_t)nu * sizeof(uint64_t));
        if (!ub || !ug) s = clasp_set_error(CLASP_ERR_NOMEM, "eval: out of memory");
        for (int64_t d = 0; ug && d < nu; d++) ug[d] = t->group[first[d]];
    }
    out->n_unique = nu;
    if (s == CLASP_OK)
        s = clasp_retrieval_by_group(t->a, t->group, t->n, ub, ug, nu, t->D, &out->a_to_b);
    if (s == CLASP_OK)
        s = clasp_retrieval_by_group(ub, ug, nu, t->a, t->group, t->n, t->D, &out->b_to_a);
    free(of_row), free(first), free(ub), free(ug);
    return s;
}
