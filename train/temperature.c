/* temperature.c: --temperature-schedule parsing and values (temperature.h). */
#include "train/temperature.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool number_(const char *p, char **end, double *v) {
    errno = 0;
    *v = strtod(p, end);
    return *end != p && errno != ERANGE && *v > 0 && *v <= 100;
}

clasp_status clasp_temp_schedule_parse(const char *text, clasp_temp_schedule *out) {
    clasp_temp_schedule s = {0};
    const char *p = text ? text : "";
    if (!strncmp(p, "cosine:", 7)) {
        s.kind = CLASP_TEMP_COSINE;
        p += 7;
    } else if (!strncmp(p, "linear:", 7)) {
        s.kind = CLASP_TEMP_LINEAR;
        p += 7;
    }
    char *end = NULL;
    if (s.kind && number_(p, &end, &s.start) && *end == ':' && number_(end + 1, &end, &s.end) &&
        *end == '\0') {
        *out = s;
        return CLASP_OK;
    }
    return clasp_set_error(CLASP_ERR_ARG,
                           "--temperature-schedule: '%s' is not cosine:START:END or "
                           "linear:START:END with temperatures in (0, 100]",
                           text ? text : "(null)");
}

clasp_status clasp_temp_schedule_for_loss(const clasp_loss_config *loss, const char *text,
                                          clasp_temp_schedule *out) {
    *out = (clasp_temp_schedule){0};
    if (!text) return CLASP_OK;
    const clasp_loss_def *d = clasp_loss_config_def(loss);
    int i = clasp_loss_option_index(d, "temperature");
    if (i < 0)
        return clasp_set_error(
            CLASP_ERR_ARG, "--temperature-schedule does not apply to --loss %s (no temperature)",
            d->name);
    if (loss && (loss->set >> i & 1u))
        return clasp_set_error(CLASP_ERR_ARG,
                               "--temperature-schedule and --temperature exclude each other");
    return clasp_temp_schedule_parse(text, out);
}

double clasp_temp_schedule_at(const clasp_temp_schedule *s, int64_t step, int64_t total) {
    double p = total > 1 ? (double)step / (double)(total - 1) : 0.0;
    if (p < 0) p = 0;
    if (p > 1) p = 1;
    if (s->kind == CLASP_TEMP_LINEAR) return s->start + (s->end - s->start) * p;
    return s->end + (s->start - s->end) * 0.5 * (1.0 + cos(M_PI * p));
}
