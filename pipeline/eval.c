/* eval.c: zero-shot classification over shards. See eval.h. */
#include "pipeline/eval.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "pipeline/data.h"

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
    int cap = 0;
    char **out = NULL;
    clasp_status s = CLASP_OK;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        char *t = trim_(p);
        if (*t) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 16;
                char **nw = realloc(out, (size_t)cap * sizeof *nw);
                if (!nw) {
                    s = clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                out = nw;
            }
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

clasp_status clasp_eval_class_embeddings(clasp_engine *e, char **names, int n_classes,
                                         char **templates, int n_templates, float *out) {
    const clasp_model_config *mc = &e->models[0].config;
    clasp_loader_config lc;
    clasp_tokenizer *tok = NULL;
    CLASP_TRY(clasp_data_loader_config(mc, &lc, &tok));
    const int T = mc->text.context_length, D = e->D;
    static char *const only_name[1] = {"{}"};
    if (n_templates <= 0) {
        templates = (char **)only_name;
        n_templates = 1;
    }
    size_t np = (size_t)n_classes * (size_t)n_templates;
    int32_t *tokens = malloc(np * (size_t)T * sizeof(int32_t));
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
    clasp_tokenizer_free(tok);
    return s;
}

clasp_status clasp_eval_zeroshot(clasp_engine *e, const char *spec, const char *classes_path,
                                 const char *templates_path, int workers,
                                 clasp_zeroshot_result *r) {
    memset(r, 0, sizeof *r);
    char **names = NULL, **tmpls = NULL;
    int nc = 0, nt = 0;
    CLASP_TRY(clasp_read_lines(classes_path, &names, &nc));
    clasp_status s = CLASP_OK;
    if (nc < 2)
        s = clasp_set_error(CLASP_ERR_FORMAT, "%s: needs at least 2 class names, has %d",
                            classes_path, nc);
    if (s == CLASP_OK && templates_path) {
        s = clasp_read_lines(templates_path, &tmpls, &nt);
        for (int t = 0; t < nt && s == CLASP_OK; t++)
            if (!strstr(tmpls[t], "{}"))
                s = clasp_set_error(CLASP_ERR_FORMAT, "%s: line %d ('%s') has no '{}'",
                                    templates_path, t + 1, tmpls[t]);
        if (s == CLASP_OK && nt == 0)
            s = clasp_set_error(CLASP_ERR_FORMAT, "%s: no templates", templates_path);
    }
    const int D = e->D;
    float *cls = s == CLASP_OK ? malloc((size_t)nc * D * sizeof(float)) : NULL;
    int64_t *hits_c = calloc((size_t)nc, sizeof(int64_t)),
            *count_c = calloc((size_t)nc, sizeof(int64_t));
    if (s == CLASP_OK && (!cls || !hits_c || !count_c))
        s = clasp_set_error(CLASP_ERR_NOMEM, "zero-shot: out of memory");
    if (s == CLASP_OK) s = clasp_eval_class_embeddings(e, names, nc, tmpls, nt, cls);

    clasp_data *data = NULL;
    if (s == CLASP_OK) {
        clasp_data_options o = clasp_data_default_options();
        o.spec = spec;
        o.batch_size = e->opt.batch_size;
        o.workers = workers;
        o.train = false;
        s = clasp_data_open(&o, &e->models[0].config, &data);
    }
    float *feat = NULL, *scores = NULL;
    if (s == CLASP_OK) {
        feat = malloc((size_t)e->opt.batch_size * D * sizeof(float));
        scores = malloc((size_t)e->opt.batch_size * nc * sizeof(float));
        if (!feat || !scores) s = clasp_set_error(CLASP_ERR_NOMEM, "zero-shot: out of memory");
    }
    int64_t top1 = 0, top5 = 0;
    while (s == CLASP_OK) {
        const clasp_batch *b = NULL;
        bool end = false;
        s = clasp_loader_next(clasp_data_loader(data), &b, &end);
        if (s != CLASP_OK || end) break;
        int n = (int)b->n;
        s = clasp_engine_embed(e, CLASP_TOWER_IMAGE, b->images, n, feat);
        if (s != CLASP_OK) break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nc, D, 1.0f, feat, D, cls, D, 0.0f,
                    scores, nc);
        for (int i = 0; i < n; i++) {
            int64_t y = b->labels[i];
            if (y < 0 || y >= nc) {
                r->skipped++;
                continue;
            }
            const float *sc = scores + (size_t)i * nc;
            /* rank of the true class: 1 + classes strictly better, ties broken by index */
            int rank = 1;
            for (int c = 0; c < nc; c++)
                if (sc[c] > sc[y] || (sc[c] == sc[y] && c < y)) rank++;
            top1 += rank == 1;
            top5 += rank <= 5;
            hits_c[y] += rank == 1;
            count_c[y]++;
            r->n++;
        }
    }
    if (s == CLASP_OK) {
        if (r->n == 0) {
            s = clasp_set_error(CLASP_ERR_FORMAT,
                                "%s: no image with a class label in [0, %d) to evaluate", spec, nc);
        } else {
            r->top1 = (double)top1 / (double)r->n;
            r->top5 = (double)top5 / (double)r->n;
            int present = 0;
            double rec = 0;
            for (int c = 0; c < nc; c++)
                if (count_c[c]) {
                    rec += (double)hits_c[c] / (double)count_c[c];
                    present++;
                }
            r->mean_recall = present ? rec / present : 0;
            r->n_classes = nc;
            r->skipped += clasp_data_skipped_total(data);
        }
    }
    clasp_data_close(data);
    free(feat);
    free(scores);
    free(cls);
    free(hits_c);
    free(count_c);
    clasp_free_lines(names, nc);
    clasp_free_lines(tmpls, nt);
    return s;
}
