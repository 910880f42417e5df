/* captions.c: the caption rule (which captions a sample carries). See captions.h. */
#include "pipeline/captions.h"

#include <string.h>

#include "modalities/augment.h"

/* Appends a json member that is a string, or the string elements of an array. */
static void add_json_(clasp_captions *out, const cJSON *v) {
    if (cJSON_IsString(v)) {
        if (out->n < CLASP_MAX_CAPTIONS)
            out->c[out->n++] = (clasp_caption){v->valuestring, strlen(v->valuestring)};
        return;
    }
    if (!cJSON_IsArray(v)) return;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (cJSON_IsString(e) && out->n < CLASP_MAX_CAPTIONS)
            out->c[out->n++] = (clasp_caption){e->valuestring, strlen(e->valuestring)};
    }
}

/* True when the JSON text holds a \u0000 escape (an odd run of backslashes before "u0000").
 * cJSON ends a string at a NUL, so such a caption would be cut silently. */
static bool json_has_nul_(const uint8_t *d, size_t n) {
    for (size_t i = 0; i + 5 < n; i++) {
        if (d[i] != '\\') continue;
        size_t run = 0;
        while (i + run < n && d[i + run] == '\\') run++;
        i += run - 1;
        if (run % 2 == 1 && i + 5 < n && d[i + 1] == 'u' && !memcmp(d + i + 2, "0000", 4))
            return true;
    }
    return false;
}

bool clasp_captions_of(const clasp_sample *s, const clasp_field_map *fields, clasp_captions *out) {
    memset(out, 0, sizeof *out);
    out->skip = CLASP_SKIP_N;
    const clasp_field *txt = clasp_sample_find(s, fields, CLASP_FIELD_TEXT);
    const clasp_field *js = clasp_sample_find(s, fields, CLASP_FIELD_JSON);
    if (!txt && !js) {
        out->skip = CLASP_SKIP_MISSING_FIELD;
        out->detail = "no text or json field";
        return false;
    }
    if (txt) out->c[out->n++] = (clasp_caption){(const char *)txt->data, txt->n};
    if (js && json_has_nul_(js->data, js->n)) {
        /* A .txt caption keeps every byte (a NUL included; normalisation's strip_control drops
         * it with the other control characters). A JSON caption cannot, so the sample is a
         * counted skip rather than a silently shortened caption. */
        out->n = 0;
        out->skip = CLASP_SKIP_BAD_TEXT;
        out->detail = "json holds a NUL (\\u0000), which its strings cannot keep";
        return false;
    }
    if (js) {
        out->json_ = cJSON_ParseWithLength((const char *)js->data, js->n);
        if (!out->json_ && !txt) {
            out->skip = CLASP_SKIP_BAD_JSON;
            out->detail = "json does not parse";
            return false;
        }
        add_json_(out, cJSON_GetObjectItemCaseSensitive(out->json_, "captions"));
        add_json_(out, cJSON_GetObjectItemCaseSensitive(out->json_, "text"));
    }
    if (out->n == 0) {
        out->skip = CLASP_SKIP_MISSING_FIELD;
        out->detail = "json has no captions or text";
        return false;
    }
    return true;
}

void clasp_captions_free(clasp_captions *c) {
    if (c) {
        cJSON_Delete(c->json_);
        c->json_ = NULL;
        c->n = 0;
    }
}

size_t clasp_captions_pick(const clasp_captions *c, bool eval, uint64_t seed, uint64_t epoch,
                           const char *key) {
    return eval ? 0 : clasp_caption_choose(seed, epoch, key, c->n);
}
