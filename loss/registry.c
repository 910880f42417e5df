/* registry.c: the table of losses training can use, name lookup and option parsing.
 * See registry.h; a new loss is one entry of `losses` below. */
#include "loss/registry.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss/hardneg.h"
#include "loss/infonce.h"
#include "loss/margin.h"
#include "loss/siglip.h"
#include "loss/supcon.h"
#include "loss/triplet.h"

static const char *const infonce_aliases[] = {"clip", NULL};
static const char *const simclr_aliases[] = {"simclr", NULL};
static const char *const mining_choices[] = {"batch-all", "batch-hard", "semi-hard", NULL};
/* the order of clasp_triplet_distance */
static const char *const distance_choices[] = {"euclidean", "squared", "cosine", NULL};

/* One line of an options table each; the CLI flag is "--" name (cli/cmd_train.c). Default 0
 * of "temperature" means learnable (the logit scale); see clasp_loss_log_scale. */
#define OPT_TEMPERATURE                                                                            \
    {                                                                                              \
        .name = "temperature",                                                                     \
        .help = "fixed temperature T (logits = cos / T; the logit scale is then not trained); "    \
                "default: learnable",                                                              \
        .def = 0, .min = 0, .max = 100, .min_exclusive = true                                      \
    }
#define OPT_MARGIN(d)                                                                              \
    {                                                                                              \
        .name = "margin", .help = "margin m > 0", .def = d, .min = 0, .max = 100,                  \
        .min_exclusive = true                                                                      \
    }
/* infonce and ntxent */
static const clasp_loss_option contrastive_options[] = {
    OPT_TEMPERATURE,
    {.name = "hard-negatives",
     .help = "hard negatives (Robinson et al. 2021): importance weights exp(beta s) of the "
             "negatives, beta >= 0 (0 with --tau-plus 0 is InfoNCE); unset: off",
     .def = 0,
     .min = 0,
     .max = 100},
    {.name = "tau-plus",
     .help = "debiasing class prior tau+ in [0, 0.99] of the hard-negative term (Chuang et al. "
             "2020); turns hard negatives on",
     .def = 0,
     .min = 0,
     .max = 0.99},
};
static const clasp_loss_option temperature_options[] = {OPT_TEMPERATURE};
static const clasp_loss_option triplet_options[] = {
    OPT_MARGIN(0.2),
    {.name = "mining",
     .help = "triplets used: every valid one, the hardest per anchor, or semi-hard",
     .def = CLASP_TRIPLET_MINING_BATCH_HARD,
     .choices = mining_choices},
    {.name = "distance",
     .help = "distance between features",
     .def = CLASP_TRIPLET_DISTANCE_COSINE,
     .choices = distance_choices},
};
static const clasp_loss_option margin_options[] = {OPT_MARGIN(1.0)};
#define N_OPTS(t) ((int)(sizeof t / sizeof t[0]))

static const clasp_loss_def losses[] = {
    {.name = "infonce",
     .aliases = infonce_aliases,
     .summary = "symmetric InfoNCE (CLIP), learnable logit scale",
     .n_scalars = 1,
     .scalars = {CLASP_LOSS_SCALAR_LOGIT_SCALE},
     .n_options = N_OPTS(contrastive_options),
     .options = contrastive_options,
     .work_floats = clasp_infonce_batch_work_floats,
     .compute = clasp_infonce_batch},
    {.name = "siglip",
     .summary = "pairwise sigmoid (SigLIP), learnable logit scale and bias "
                "(needs init_logit_bias in the model config)",
     .n_scalars = 2,
     .scalars = {CLASP_LOSS_SCALAR_LOGIT_SCALE, CLASP_LOSS_SCALAR_LOGIT_BIAS},
     .work_floats = clasp_siglip_batch_work_floats,
     .compute = clasp_siglip_batch},
    {.name = "supcon",
     .summary = "supervised contrastive (SupCon) over both sides, positives = same label (.cls)",
     .needs = CLASP_LOSS_NEEDS_GROUPS,
     .n_scalars = 1,
     .scalars = {CLASP_LOSS_SCALAR_LOGIT_SCALE},
     .n_options = N_OPTS(temperature_options),
     .options = temperature_options,
     .work_floats = clasp_supcon_batch_work_floats,
     .compute = clasp_supcon_batch},
    {.name = "triplet",
     .summary = "triplet loss with a margin and online mining over both sides, by label (.cls)",
     .needs = CLASP_LOSS_NEEDS_GROUPS,
     .n_options = N_OPTS(triplet_options),
     .options = triplet_options,
     .work_floats = clasp_triplet_batch_work_floats,
     .compute = clasp_triplet_batch},
    {.name = "ntxent",
     .aliases = simclr_aliases,
     .summary = "NT-Xent (SimCLR): the other side of a row is its positive, all other rows of "
                "both sides are negatives",
     .needs = CLASP_LOSS_NEEDS_TWO_VIEWS,
     .n_scalars = 1,
     .scalars = {CLASP_LOSS_SCALAR_LOGIT_SCALE},
     .n_options = N_OPTS(contrastive_options),
     .options = contrastive_options,
     .work_floats = clasp_ntxent_batch_work_floats,
     .compute = clasp_ntxent_batch},
    {.name = "margin",
     .summary = "margin contrastive loss (Hadsell et al. 2006) over all cross pairs, similar = "
                "same label (.cls)",
     .needs = CLASP_LOSS_NEEDS_GROUPS,
     .n_options = N_OPTS(margin_options),
     .options = margin_options,
     .work_floats = clasp_margin_batch_work_floats,
     .compute = clasp_margin_batch},
};

#define N_LOSSES ((int)(sizeof losses / sizeof losses[0]))

int clasp_loss_count(void) {
    return N_LOSSES;
}

const clasp_loss_def *clasp_loss_at(int i) {
    return i >= 0 && i < N_LOSSES ? &losses[i] : NULL;
}

const clasp_loss_def *clasp_loss_default(void) {
    return &losses[0];
}

/* Appends s to buf at *len (snprintf-style: *len counts what the full text needs). */
static void append_(char *buf, size_t cap, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len < cap) {
        size_t room = cap - *len - 1;
        memcpy(buf + *len, s, n < room ? n : room);
        buf[*len + (n < room ? n : room)] = '\0';
    }
    *len += n;
}

size_t clasp_loss_names(char *buf, size_t cap, const char *sep) {
    size_t len = 0;
    if (buf && cap) buf[0] = '\0';
    for (int i = 0; i < N_LOSSES; i++) {
        if (i) append_(buf, buf ? cap : 0, &len, sep);
        append_(buf, buf ? cap : 0, &len, losses[i].name);
    }
    return len;
}

static bool named_(const clasp_loss_def *d, const char *name) {
    if (!strcmp(d->name, name)) return true;
    for (const char *const *a = d->aliases; a && *a; a++)
        if (!strcmp(*a, name)) return true;
    return false;
}

clasp_status clasp_loss_find(const char *name, const clasp_loss_def **out) {
    for (int i = 0; name && i < N_LOSSES; i++)
        if (named_(&losses[i], name)) {
            *out = &losses[i];
            return CLASP_OK;
        }
    char known[256];
    clasp_loss_names(known, sizeof known, ", ");
    return clasp_set_error(CLASP_ERR_ARG, "unknown loss '%s' (known: %s)", name ? name : "(null)",
                           known);
}

const clasp_loss_def *clasp_loss_config_def(const clasp_loss_config *cfg) {
    return cfg && cfg->def ? cfg->def : clasp_loss_default();
}

int clasp_loss_option_index(const clasp_loss_def *def, const char *name) {
    for (int i = 0; def && name && i < def->n_options; i++)
        if (!strcmp(def->options[i].name, name)) return i;
    return -1;
}

double clasp_loss_config_get(const clasp_loss_config *cfg, int i) {
    const clasp_loss_def *d = clasp_loss_config_def(cfg);
    if (i < 0 || i >= d->n_options) return (double)NAN;
    return cfg && (cfg->set >> i & 1u) ? cfg->value[i] : d->options[i].def;
}

/* "margin, mining" or "none" */
static void option_names_(char *buf, size_t cap, const clasp_loss_def *d) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < d->n_options; i++) {
        if (i)
            append_(buf, cap, &len, ", --");
        else
            append_(buf, cap, &len, "--");
        append_(buf, cap, &len, d->options[i].name);
    }
    if (d->n_options == 0) append_(buf, cap, &len, "none");
}

static clasp_status parse_choice_(double *v, const clasp_loss_option *o, const char *text) {
    char list[256];
    size_t len = 0;
    list[0] = '\0';
    for (int c = 0; o->choices[c]; c++) {
        if (!strcmp(o->choices[c], text)) {
            *v = c;
            return CLASP_OK;
        }
        append_(list, sizeof list, &len, c ? "|" : "");
        append_(list, sizeof list, &len, o->choices[c]);
    }
    return clasp_set_error(CLASP_ERR_ARG, "--%s: '%s' is not one of %s", o->name, text, list);
}

static clasp_status parse_number_(double *v, const clasp_loss_option *o, const char *text) {
    char *end = NULL;
    errno = 0;
    double x = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(x))
        return clasp_set_error(CLASP_ERR_ARG, "--%s: '%s' is not a number", o->name, text);
    bool low = o->min_exclusive ? !(x > o->min) : !(x >= o->min);
    if (low || !(x <= o->max))
        return clasp_set_error(CLASP_ERR_ARG, "--%s: %s is outside %s%g, %g]", o->name, text,
                               o->min_exclusive ? "(" : "[", o->min, o->max);
    *v = x;
    return CLASP_OK;
}

clasp_status clasp_loss_config_set(clasp_loss_config *cfg, const char *name, const char *value) {
    const clasp_loss_def *d = clasp_loss_config_def(cfg);
    if (!name || !value) return clasp_set_error(CLASP_ERR_ARG, "loss option: no name or value");
    int i = clasp_loss_option_index(d, name);
    if (i >= 0 && i < CLASP_LOSS_MAX_OPTIONS) {
        const clasp_loss_option *o = &d->options[i];
        double v = 0;
        CLASP_TRY(o->choices ? parse_choice_(&v, o, value) : parse_number_(&v, o, value));
        cfg->value[i] = v;
        cfg->set |= 1u << i;
        return CLASP_OK;
    }
    char takes[256];
    option_names_(takes, sizeof takes, d);
    return clasp_set_error(CLASP_ERR_ARG, "--%s does not apply to --loss %s (its options: %s)",
                           name, d->name, takes);
}

float clasp_loss_log_scale(const clasp_loss_batch *in, bool *learnable) {
    int i = clasp_loss_option_index(clasp_loss_config_def(in->cfg), "temperature");
    if (i >= 0 && in->cfg && (in->cfg->set >> i & 1u)) {
        *learnable = false;
        return (float)-log(in->cfg->value[i]);
    }
    *learnable = true;
    return in->scalars[0];
}

void clasp_loss_config_add_json(const clasp_loss_config *cfg, cJSON *obj) {
    const clasp_loss_def *d = clasp_loss_config_def(cfg);
    for (int i = 0; cfg && obj && i < d->n_options; i++) {
        if (!(cfg->set >> i & 1u)) continue;
        const clasp_loss_option *op = &d->options[i];
        if (op->choices)
            cJSON_AddStringToObject(obj, op->name, op->choices[(int)cfg->value[i]]);
        else
            cJSON_AddNumberToObject(obj, op->name, cfg->value[i]);
    }
}
