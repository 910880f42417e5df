/* text.c: UTF-8 validation with the offending byte offset, and NFKC / case fold / control
 * character stripping with utf8proc, then ASCII whitespace collapsing and trimming (text.h). */
#include "modalities/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/json.h"

clasp_text_config clasp_text_default_config(void) {
    clasp_text_config c;
    c.nfkc = true;
    c.casefold = false;
    c.strip_control = true;
    c.collapse_whitespace = true;
    c.trim = true;
    c.reject_empty = true;
    return c;
}

clasp_status clasp_text_config_from_json(const cJSON *obj, const char *file, const char *prefix,
                                         clasp_text_config *out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "text config from json: NULL output");
    clasp_text_config c = clasp_text_default_config();
    if (obj) {
        CLASP_TRY(clasp_json_bool_opt(obj, "nfkc", file, prefix, c.nfkc, &c.nfkc));
        CLASP_TRY(clasp_json_bool_opt(obj, "casefold", file, prefix, c.casefold, &c.casefold));
        CLASP_TRY(clasp_json_bool_opt(obj, "strip_control", file, prefix, c.strip_control,
                                      &c.strip_control));
        CLASP_TRY(clasp_json_bool_opt(obj, "collapse_whitespace", file, prefix,
                                      c.collapse_whitespace, &c.collapse_whitespace));
        CLASP_TRY(clasp_json_bool_opt(obj, "trim", file, prefix, c.trim, &c.trim));
        CLASP_TRY(clasp_json_bool_opt(obj, "reject_empty", file, prefix, c.reject_empty,
                                      &c.reject_empty));
    }
    *out = c;
    return CLASP_OK;
}

clasp_status clasp_text_validate_utf8(const char *s, size_t n, size_t *bad_offset) {
    if (!s && n > 0) return clasp_set_error(CLASP_ERR_ARG, "text: NULL string");
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { /* ASCII fast path */
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        size_t left = n - i;
        utf8proc_ssize_t len = utf8proc_iterate(p + i, left > 4 ? 4 : (utf8proc_ssize_t)left, &cp);
        if (len <= 0 || cp < 0) {
            if (bad_offset) *bad_offset = i;
            return clasp_set_error(CLASP_ERR_FORMAT, "invalid UTF-8 at byte %zu (byte 0x%02x: %s)",
                                   i, p[i],
                                   utf8proc_errmsg(len < 0 ? len : UTF8PROC_ERROR_INVALIDUTF8));
        }
        i += (size_t)len;
    }
    return CLASP_OK;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

clasp_status clasp_text_normalize(const char *s, size_t n, const clasp_text_config *cfg, char **out,
                                  size_t *out_n) {
    if (!out || !out_n || !cfg)
        return clasp_set_error(CLASP_ERR_ARG, "text normalize: NULL argument");
    *out = NULL;
    *out_n = 0;
    if (n > (size_t)INT32_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW, "text: %zu bytes is too long", n);
    CLASP_TRY(clasp_text_validate_utf8(s, n, NULL));

    char *buf;
    size_t len;
    utf8proc_option_t opt = 0;
    if (cfg->nfkc) opt |= UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    if (cfg->casefold) opt |= UTF8PROC_CASEFOLD;
    if (cfg->strip_control) opt |= UTF8PROC_STRIPCC;
    if (opt != 0 && n > 0) {
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r =
            utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, opt);
        if (r < 0) {
            free(dst);
            return clasp_set_error(r == UTF8PROC_ERROR_NOMEM ? CLASP_ERR_NOMEM : CLASP_ERR_FORMAT,
                                   "text: utf8proc normalisation failed (%s)", utf8proc_errmsg(r));
        }
        buf = (char *)dst;
        len = (size_t)r;
    } else {
        buf = malloc(n + 1);
        if (!buf) return clasp_set_error(CLASP_ERR_NOMEM, "text: %zu bytes", n + 1);
        if (n) memcpy(buf, s, n);
        buf[n] = '\0';
        len = n;
    }

    /* Whitespace passes, in place (the result only shrinks). */
    if (cfg->collapse_whitespace || cfg->trim) {
        size_t w = 0;
        int prev_space = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)buf[i];
            if (is_space(c) && cfg->collapse_whitespace) {
                if (prev_space) continue;
                c = ' ';
                prev_space = 1;
            } else {
                prev_space = is_space(c);
            }
            if (cfg->trim && w == 0 && is_space(c)) continue;
            buf[w++] = (char)c;
        }
        if (cfg->trim)
            while (w > 0 && is_space((unsigned char)buf[w - 1])) w--;
        len = w;
        buf[len] = '\0';
    }
    if (len == 0 && cfg->reject_empty) {
        free(buf);
        return clasp_set_error(CLASP_ERR_FORMAT, "empty caption (%zu bytes before normalisation)",
                               n);
    }
    *out = buf;
    *out_n = len;
    return CLASP_OK;
}
