/* temperature.h: the temperature of a run's loss: learnable (the logit scale, the default),
 * fixed (the loss's "temperature" option, loss/registry.h) or scheduled over the run's steps
 * (--temperature-schedule KIND:START:END). A scheduled value is written into the engine's loss
 * config before every step, so the loss sees it as a fixed temperature for that step (the logit
 * scale is not trained).
 *
 * KIND is linear or cosine; with step k = 0 .. T-1 of T total steps and progress p = k/(T-1)
 * (p = 0 when T = 1):
 *     linear: tau = START + (END - START) p
 *     cosine: tau = END + (START - END) (1 + cos(pi p)) / 2
 * so the first step uses START, the last END, and the middle one (p = 1/2) their mean. */
#ifndef CLASP_TRAIN_TEMPERATURE_H
#define CLASP_TRAIN_TEMPERATURE_H

#include <stdint.h>

#include "core/status.h"
#include "loss/registry.h"

typedef enum clasp_temp_kind { CLASP_TEMP_LINEAR = 1, CLASP_TEMP_COSINE = 2 } clasp_temp_kind;

typedef struct clasp_temp_schedule {
    clasp_temp_kind kind;
    double start, end; /* > 0 */
} clasp_temp_schedule;

/* Parses "cosine:0.1:0.05" / "linear:START:END" (START, END in (0, 100]). CLASP_ERR_ARG naming
 * --temperature-schedule and the text otherwise. */
clasp_status clasp_temp_schedule_parse(const char *text, clasp_temp_schedule *out);

/* --temperature-schedule TEXT for the chosen loss: *out = the parsed schedule (kind 0 when text
 * is NULL). CLASP_ERR_ARG naming the flags when the loss has no "temperature" option, when
 * --temperature is set too, or when TEXT does not parse. */
clasp_status clasp_temp_schedule_for_loss(const clasp_loss_config *loss, const char *text,
                                          clasp_temp_schedule *out);

/* The temperature of 0-based step `step` of `total` steps. */
double clasp_temp_schedule_at(const clasp_temp_schedule *s, int64_t step, int64_t total);

#endif
