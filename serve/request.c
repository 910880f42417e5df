/* request.c: see request.h. */
#include "serve/request.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool prefix_(const char *s, const char *p) {
    return strncasecmp(s, p, strlen(p)) == 0;
}

clasp_serve_body clasp_serve_body_kind(const char *ct) {
    if (!ct) return CLASP_SERVE_BODY_OTHER;
    while (*ct == ' ') ct++;
    if (prefix_(ct, "application/json")) {
        char c = ct[strlen("application/json")];
        return c == '\0' || c == ';' || c == ' ' ? CLASP_SERVE_BODY_JSON : CLASP_SERVE_BODY_OTHER;
    }
    if (prefix_(ct, "image/") && ct[6]) return CLASP_SERVE_BODY_IMAGE;
    if (prefix_(ct, "audio/") && ct[6]) return CLASP_SERVE_BODY_AUDIO;
    return CLASP_SERVE_BODY_OTHER;
}

/* The body as a JSON object; CLASP_ERR_FORMAT naming where parsing stopped. */
static clasp_status object_(const char *body, size_t len, cJSON **out) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!j) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return clasp_set_error(CLASP_ERR_FORMAT, "body: invalid JSON at byte %zu", at);
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return clasp_set_error(CLASP_ERR_FORMAT, "body: a JSON object expected");
    }
    *out = j;
    return CLASP_OK;
}

clasp_status clasp_serve_parse_texts(const char *body, size_t body_len, char ***texts, int *n) {
    cJSON *j;
    CLASP_TRY(object_(body, body_len, &j));
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "texts");
    clasp_status s = CLASP_OK;
    int m = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a))
        s = clasp_set_error(CLASP_ERR_FORMAT, "body: \"texts\" (an array of strings) missing");
    else if (m < 1 || m > CLASP_SERVE_MAX_TEXTS)
        s = clasp_set_error(CLASP_ERR_ARG, "body: \"texts\" has %d entries (1 to %d)", m,
                            CLASP_SERVE_MAX_TEXTS);
    size_t bytes = (size_t)m * sizeof(char *);
    for (int i = 0; s == CLASP_OK && i < m; i++) {
        const cJSON *t = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(t) || !t->valuestring[0])
            s = clasp_set_error(CLASP_ERR_FORMAT, "body: texts[%d] is not a non-empty string", i);
        else
            bytes += strlen(t->valuestring) + 1;
    }
    char **p = s == CLASP_OK ? malloc(bytes) : NULL;
    if (s == CLASP_OK && !p) s = clasp_set_error(CLASP_ERR_NOMEM, "body: %zu bytes", bytes);
    if (s == CLASP_OK) {
        char *w = (char *)(p + m);
        for (int i = 0; i < m; i++) {
            const char *t = cJSON_GetArrayItem(a, i)->valuestring;
            size_t l = strlen(t) + 1;
            memcpy(w, t, l);
            p[i] = w;
            w += l;
        }
        *texts = p;
        *n = m;
    }
    cJSON_Delete(j);
    return s;
}

static clasp_status vector_(const cJSON *v, int dim, float **out) {
    int m = cJSON_GetArraySize(v);
    if (m != dim)
        return clasp_set_error(CLASP_ERR_ARG,
                               "body: \"vector\" has dimension %d, the model's is %d", m, dim);
    float *x = malloc((size_t)dim * sizeof *x);
    if (!x) return clasp_set_error(CLASP_ERR_NOMEM, "body: vector of %d", dim);
    bool nonzero = false;
    for (int i = 0; i < dim; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e)) {
            free(x);
            return clasp_set_error(CLASP_ERR_FORMAT, "body: vector[%d] is not a number", i);
        }
        double d = e->valuedouble;
        if (!isfinite(d) || fabs(d) > (double)FLT_MAX) {
            free(x);
            return clasp_set_error(CLASP_ERR_NUMERIC, "body: vector[%d] is not finite", i);
        }
        x[i] = (float)d;
        nonzero |= x[i] != 0.0f;
    }
    if (!nonzero) {
        free(x);
        return clasp_set_error(CLASP_ERR_NUMERIC, "body: \"vector\" is all zero");
    }
    *out = x;
    return CLASP_OK;
}

static clasp_status search_fields_(const cJSON *j, int dim, clasp_serve_query *q) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vector");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "k");
    if ((t != NULL) == (v != NULL))
        return clasp_set_error(CLASP_ERR_FORMAT, "body: need exactly one of \"text\", \"vector\"");
    if (k) {
        if (!cJSON_IsNumber(k) || k->valuedouble != floor(k->valuedouble) || k->valuedouble < 1 ||
            k->valuedouble > CLASP_SERVE_MAX_K)
            return clasp_set_error(CLASP_ERR_ARG, "body: \"k\" must be an integer 1 to %d",
                                   CLASP_SERVE_MAX_K);
        q->k = (int)k->valuedouble;
    }
    if (t) {
        if (!cJSON_IsString(t) || !t->valuestring[0])
            return clasp_set_error(CLASP_ERR_FORMAT, "body: \"text\" is not a non-empty string");
        q->text = strdup(t->valuestring);
        return q->text ? CLASP_OK : clasp_set_error(CLASP_ERR_NOMEM, "body: text");
    }
    if (!cJSON_IsArray(v))
        return clasp_set_error(CLASP_ERR_FORMAT, "body: \"vector\" is not an array of numbers");
    return vector_(v, dim, &q->vector);
}

clasp_status clasp_serve_parse_search(const char *body, size_t body_len, int dim, int k,
                                      clasp_serve_query *q) {
    *q = (clasp_serve_query){.k = k};
    cJSON *j;
    CLASP_TRY(object_(body, body_len, &j));
    clasp_status s = search_fields_(j, dim, q);
    cJSON_Delete(j);
    if (s != CLASP_OK) clasp_serve_query_free(q);
    return s;
}

void clasp_serve_query_free(clasp_serve_query *q) {
    free(q->text);
    free(q->vector);
    q->text = NULL;
    q->vector = NULL;
}

clasp_status clasp_serve_parse_k(const char *s, int def, int *k) {
    if (!s) {
        *k = def;
        return CLASP_OK;
    }
    char *end;
    long v = s[0] >= '0' && s[0] <= '9' ? strtol(s, &end, 10) : -1;
    if (v < 1 || v > CLASP_SERVE_MAX_K || *end)
        return clasp_set_error(CLASP_ERR_ARG, "?k=%.32s: an integer 1 to %d expected", s,
                               CLASP_SERVE_MAX_K);
    *k = (int)v;
    return CLASP_OK;
}

bool clasp_serve_bearer_ok(const char *header, const char *token) {
    if (!header || strncmp(header, "Bearer ", 7) != 0) return false;
    const unsigned char *a = (const unsigned char *)header + 7, *b = (const unsigned char *)token;
    size_t la = strlen((const char *)a), lb = strlen(token);
    unsigned diff = (unsigned)(la != lb);
    /* every byte of the expected token is compared whatever the input's length */
    for (size_t i = 0; i < lb; i++) diff |= (unsigned)(b[i] ^ (i < la ? a[i] : 0u));
    return diff == 0;
}
