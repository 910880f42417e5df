/* test_loss_registry.c: the loss registry (loss/registry.h): every entry found by its names,
 * unknown names refused with the list of known ones, the names list, entries well formed, and
 * option parsing (numbers, ranges, choices, options a loss does not take). The engine's result
 * through the registry equals the direct loss call: tests/test_engine.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "loss/registry.h"

Test(loss_registry, every_entry_is_found_by_name_and_alias) {
    int n = clasp_loss_count();
    cr_assert(n >= 2);
    cr_assert_eq(clasp_loss_at(-1), NULL);
    cr_assert_eq(clasp_loss_at(n), NULL);
    cr_assert_str_eq(clasp_loss_default()->name, "infonce");
    cr_assert_eq(clasp_loss_default(), clasp_loss_at(0));
    for (int i = 0; i < n; i++) {
        const clasp_loss_def *d = clasp_loss_at(i), *got = NULL;
        cr_assert(d && d->name && d->summary && d->compute && d->work_floats, "entry %d", i);
        cr_assert_eq(clasp_loss_find(d->name, &got), CLASP_OK, "%s", clasp_last_error());
        cr_assert_eq(got, d, "%s", d->name);
        for (const char *const *a = d->aliases; a && *a; a++) {
            got = NULL;
            cr_assert_eq(clasp_loss_find(*a, &got), CLASP_OK);
            cr_assert_eq(got, d, "alias %s", *a);
        }
        cr_assert(d->n_scalars >= 0 && d->n_scalars <= CLASP_LOSS_MAX_SCALARS);
        cr_assert(d->n_options >= 0 && d->n_options <= CLASP_LOSS_MAX_OPTIONS);
        /* state hooks come together or not at all */
        cr_assert_eq(!d->state_init, !d->state_free, "%s", d->name);
        /* names are unique */
        for (int j = 0; j < i; j++) cr_assert_str_neq(clasp_loss_at(j)->name, d->name);
    }
    const clasp_loss_def *clip = NULL;
    cr_assert_eq(clasp_loss_find("clip", &clip), CLASP_OK);
    cr_assert_str_eq(clip->name, "infonce");
    const clasp_loss_def *sig = NULL;
    cr_assert_eq(clasp_loss_find("siglip", &sig), CLASP_OK);
    cr_assert_eq(sig->n_scalars, 2);
    cr_assert_eq(sig->scalars[1], CLASP_LOSS_SCALAR_LOGIT_BIAS);
}

Test(loss_registry, unknown_name_lists_the_known_ones) {
    const clasp_loss_def *d = clasp_loss_default();
    cr_assert_eq(clasp_loss_find("infonce2", &d), CLASP_ERR_ARG);
    cr_assert_eq(d, clasp_loss_default(), "out untouched on error");
    const char *msg = clasp_last_error();
    cr_assert(strstr(msg, "'infonce2'"), "%s", msg);
    for (int i = 0; i < clasp_loss_count(); i++)
        cr_assert(strstr(msg, clasp_loss_at(i)->name), "%s lacks %s", msg, clasp_loss_at(i)->name);
    cr_assert_eq(clasp_loss_find("", &d), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_find(NULL, &d), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_find("INFONCE", &d), CLASP_ERR_ARG, "names are case-sensitive");
}

Test(loss_registry, names_list_follows_the_table) {
    char want[512] = "";
    for (int i = 0; i < clasp_loss_count(); i++) {
        if (i) strcat(want, "|");
        strcat(want, clasp_loss_at(i)->name);
    }
    char buf[512];
    cr_assert_eq(clasp_loss_names(buf, sizeof buf, "|"), strlen(want));
    cr_assert_str_eq(buf, want);
    cr_assert(!strncmp(buf, "infonce|siglip", 14));
    /* truncated like snprintf: terminated, the full length returned */
    char small[5];
    cr_assert_eq(clasp_loss_names(small, sizeof small, "|"), strlen(want));
    cr_assert_str_eq(small, "info");
    cr_assert_eq(clasp_loss_names(NULL, 0, ", "), strlen(want) + (size_t)(clasp_loss_count() - 1));
}

/* A loss with options, as issue 14's entries declare them (not registered). */
static const char *const mining_choices[] = {"batch-all", "batch-hard", "semi-hard", NULL};
static const clasp_loss_option toy_options[] = {
    {.name = "margin",
     .help = "hinge margin",
     .def = 0.2,
     .min = 0,
     .max = 10,
     .min_exclusive = true},
    {.name = "mining", .help = "triplet mining", .def = 1, .choices = mining_choices},
};
static const clasp_loss_def toy = {.name = "toy", .n_options = 2, .options = toy_options};

Test(loss_registry, options_parse_check_and_default) {
    clasp_loss_config c = {.def = &toy};
    cr_assert_eq(clasp_loss_config_get(&c, 0), 0.2, "unset reads as the default");
    cr_assert_eq(clasp_loss_config_get(&c, 1), 1.0);
    cr_assert(isnan(clasp_loss_config_get(&c, 2)));
    cr_assert_eq(clasp_loss_config_set(&c, "margin", "0.5"), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_loss_config_get(&c, 0), 0.5);
    cr_assert_eq(clasp_loss_config_set(&c, "mining", "semi-hard"), CLASP_OK);
    cr_assert_eq(clasp_loss_config_get(&c, 1), 2.0);

    cr_assert_eq(clasp_loss_config_set(&c, "margin", "0"), CLASP_ERR_ARG, "margin must be > 0");
    cr_assert(strstr(clasp_last_error(), "--margin"), "%s", clasp_last_error());
    cr_assert_eq(clasp_loss_config_set(&c, "margin", "abc"), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "'abc'"), "%s", clasp_last_error());
    cr_assert_eq(clasp_loss_config_set(&c, "margin", "1e400"), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_config_set(&c, "margin", "11"), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_config_set(&c, "margin", "0.3x"), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_config_get(&c, 0), 0.5, "a refused value leaves the option");
    cr_assert_eq(clasp_loss_config_set(&c, "mining", "hardest"), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "batch-all|batch-hard|semi-hard"), "%s",
              clasp_last_error());

    cr_assert_eq(clasp_loss_config_set(&c, "queue", "4096"), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "--queue does not apply to --loss toy"), "%s",
              clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "--margin, --mining"), "%s", clasp_last_error());

    /* the default loss takes its temperature and hard-negative options, not a margin */
    clasp_loss_config z = {0};
    cr_assert_eq(clasp_loss_config_def(&z), clasp_loss_default());
    cr_assert_eq(clasp_loss_config_set(&z, "margin", "0.2"), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(),
                     "--margin does not apply to --loss infonce (its options: --temperature, "
                     "--hard-negatives, --tau-plus)"),
              "%s", clasp_last_error());
    const clasp_loss_def *sig = NULL;
    cr_assert_eq(clasp_loss_find("siglip", &sig), CLASP_OK);
    clasp_loss_config sc = {.def = sig};
    cr_assert_eq(clasp_loss_config_set(&sc, "temperature", "0.1"), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "(its options: none)"), "%s", clasp_last_error());
}

/* The entries of issue 14: needs, scalars and options as loss/registry.h describes them. */
Test(loss_registry, issue_14_entries_declare_needs_and_options) {
    static const struct {
        const char *name;
        unsigned needs;
        int n_scalars;
        const char *options;
    } want[] = {
        {"infonce", 0, 1, "temperature hard-negatives tau-plus"},
        {"siglip", 0, 2, ""},
        {"supcon", CLASP_LOSS_NEEDS_GROUPS, 1, "temperature"},
        {"triplet", CLASP_LOSS_NEEDS_GROUPS, 0, "margin mining distance"},
        {"ntxent", CLASP_LOSS_NEEDS_TWO_VIEWS, 1, "temperature hard-negatives tau-plus"},
        {"margin", CLASP_LOSS_NEEDS_GROUPS, 0, "margin"},
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        const clasp_loss_def *d = NULL;
        cr_assert_eq(clasp_loss_find(want[w].name, &d), CLASP_OK, "%s", want[w].name);
        cr_assert_eq(d->needs, want[w].needs, "%s needs", d->name);
        cr_assert_eq(d->n_scalars, want[w].n_scalars, "%s scalars", d->name);
        char got[256] = "";
        for (int i = 0; i < d->n_options; i++) {
            if (i) strcat(got, " ");
            strcat(got, d->options[i].name);
            cr_assert(d->options[i].help && d->options[i].help[0], "%s", d->options[i].name);
        }
        cr_assert_str_eq(got, want[w].options, "%s options", d->name);
    }
    const clasp_loss_def *t = NULL;
    cr_assert_eq(clasp_loss_find("triplet", &t), CLASP_OK);
    clasp_loss_config c = {.def = t};
    cr_assert_eq(clasp_loss_config_set(&c, "margin", "0"), CLASP_ERR_ARG, "margin <= 0");
    cr_assert(strstr(clasp_last_error(), "--margin"), "%s", clasp_last_error());
    cr_assert_eq(clasp_loss_config_set(&c, "margin", "-1"), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_config_set(&c, "distance", "squared"), CLASP_OK);
    cr_assert_eq(clasp_loss_config_get(&c, 2), 1.0, "squared = CLASP_TRIPLET_DISTANCE_SQEUCLIDEAN");
    cr_assert_eq(clasp_loss_config_set(&c, "temperature", "0.1"), CLASP_ERR_ARG);
}

Test(loss_registry, temperature_option_fixes_the_log_scale) {
    const clasp_loss_def *d = NULL;
    cr_assert_eq(clasp_loss_find("supcon", &d), CLASP_OK);
    clasp_loss_config c = {.def = d};
    const float scalars[1] = {2.5f};
    clasp_loss_batch in = {.scalars = scalars, .cfg = &c};
    bool learnable = false;
    cr_assert_eq(clasp_loss_log_scale(&in, &learnable), 2.5f);
    cr_assert(learnable, "unset: the learnable logit scale");
    cr_assert_eq(clasp_loss_config_set(&c, "temperature", "0.25"), CLASP_OK);
    cr_assert_float_eq(clasp_loss_log_scale(&in, &learnable), logf(4.0f), 1e-6);
    cr_assert(!learnable);
    cr_assert_eq(clasp_loss_config_set(&c, "temperature", "0"), CLASP_ERR_ARG, "T > 0");
}

/* ---- every entry through its compute function -------------------------------------------- */

enum { RN = 8, RD = 4, RHALF = 4 };

/* One call of def's compute on rows offset.. of (a_all, b_all) as rank `rank` of `world`;
 * adds this rank's part, combined as the engine does (loss/registry.h step 4), into loss,
 * dA, dB (RN, RD) and ds. */
static void rank_part_(const clasp_loss_config *cfg, const float *a_all, const float *b_all,
                       const int *groups, int rank, int world, double *loss, double *dA, double *dB,
                       double *ds) {
    const clasp_loss_def *def = clasp_loss_config_def(cfg);
    const size_t n = RN / (size_t)world, off = (size_t)rank * n;
    clasp_loss_setup su = {.n = n, .N = RN, .D = RD, .rank = rank, .world = world, .cfg = cfg};
    size_t wf = def->work_floats(&su);
    cr_assert(wf > 0, "%s: work", def->name);
    float *work = calloc(wf, sizeof *work);
    float da[RN * RD] = {0}, db[RN * RD] = {0}, da_all[RN * RD] = {0}, db_all[RN * RD] = {0};
    float dsc[2] = {0, 0};
    const float scalars[2] = {2.0f, -1.0f};
    clasp_loss_batch in = {.a = a_all + off * RD,
                           .b = b_all + off * RD,
                           .a_all = a_all,
                           .b_all = b_all,
                           .groups = groups,
                           .n = n,
                           .offset = off,
                           .N = RN,
                           .D = RD,
                           .rank = rank,
                           .world = world,
                           .scalars = scalars,
                           .cfg = cfg,
                           .work = work};
    clasp_loss_grads out = {.da = da,
                            .db = db,
                            .da_all = world > 1 ? da_all : NULL,
                            .db_all = world > 1 ? db_all : NULL,
                            .dscalars = dsc};
    cr_assert_eq(def->compute(&in, &out), CLASP_OK, "%s: %s", def->name, clasp_last_error());
    *loss += (double)out.loss;
    for (int k = 0; k < def->n_scalars; k++) ds[k] += (double)dsc[k];
    for (size_t i = 0; i < n * RD; i++) {
        if (out.wrote & CLASP_LOSS_WROTE_A) dA[off * RD + i] += (double)da[i];
        if (out.wrote & CLASP_LOSS_WROTE_B) dB[off * RD + i] += (double)db[i];
    }
    for (size_t i = 0; world > 1 && i < RN * RD; i++) {
        if (out.wrote & CLASP_LOSS_WROTE_A_ALL) dA[i] += (double)da_all[i];
        if (out.wrote & CLASP_LOSS_WROTE_B_ALL) dB[i] += (double)db_all[i];
    }
    free(work);
}

static void close_(const char *what, const char *name, const double *got, const double *want,
                   int n) {
    for (int i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= 1e-5 * fmax(1.0, fabs(want[i])),
                  "%s %s[%d]: two ranks %.9g, one process %.9g", name, what, i, got[i], want[i]);
}

/* loss `name` with option opt = val (or none): two ranks' parts equal one process. Returns the
 * one-process scalar gradients in ds1. */
static void ranks_equal_one_(const char *name, const char *opt, const char *val, bool grouped,
                             double ds1[2]) {
    clasp_loss_config cfg = {0};
    cr_assert_eq(clasp_loss_find(name, &cfg.def), CLASP_OK);
    if (opt)
        cr_assert_eq(clasp_loss_config_set(&cfg, opt, val), CLASP_OK, "%s", clasp_last_error());
    float a[RN * RD], b[RN * RD];
    for (int i = 0; i < RN * RD; i++) {
        a[i] = sinf(0.7f * (float)i + 0.3f);
        b[i] = cosf(1.3f * (float)i) + 0.4f * a[i];
    }
    for (int i = 0; i < RN; i++) {
        float sa = 0, sb = 0;
        for (int k = 0; k < RD; k++) sa += a[i * RD + k] * a[i * RD + k];
        for (int k = 0; k < RD; k++) sb += b[i * RD + k] * b[i * RD + k];
        for (int k = 0; k < RD; k++) a[i * RD + k] /= sqrtf(sa), b[i * RD + k] /= sqrtf(sb);
    }
    static const int groups[RN] = {0, 1, 0, 2, 1, 3, 2, 0};
    const int *g = grouped ? groups : NULL;
    double l1 = 0, l2 = 0, dA1[RN * RD] = {0}, dB1[RN * RD] = {0}, dA2[RN * RD] = {0},
           dB2[RN * RD] = {0}, ds2[2] = {0, 0};
    ds1[0] = ds1[1] = 0;
    rank_part_(&cfg, a, b, g, 0, 1, &l1, dA1, dB1, ds1);
    for (int r = 0; r < 2; r++) rank_part_(&cfg, a, b, g, r, 2, &l2, dA2, dB2, ds2);
    cr_assert(l1 > 0 && isfinite(l1), "%s: loss %g", name, l1);
    close_("loss", name, &l2, &l1, 1);
    close_("dA", name, dA2, dA1, RN * RD);
    close_("dB", name, dB2, dB1, RN * RD);
    close_("dscalars", name, ds2, ds1, 2);
}

Test(loss_registry, every_entry_two_ranks_equal_one_process) {
    double ds[2];
    for (int i = 0; i < clasp_loss_count(); i++) {
        const clasp_loss_def *d = clasp_loss_at(i);
        if (d->state_init) continue; /* stateful (MoCo): its own tests */
        ranks_equal_one_(d->name, NULL, NULL, true, ds);
    }
    ranks_equal_one_("infonce", NULL, NULL, false, ds);
    ranks_equal_one_("infonce", "hard-negatives", "1.5", false, ds);
    ranks_equal_one_("infonce", "tau-plus", "0.1", false, ds);
    ranks_equal_one_("ntxent", "hard-negatives", "2", false, ds);
    ranks_equal_one_("triplet", "mining", "batch-all", true, ds);
    ranks_equal_one_("triplet", "distance", "euclidean", true, ds);
    ranks_equal_one_("margin", "margin", "0.5", true, ds);
}

Test(loss_registry, fixed_temperature_trains_no_scalar) {
    static const char *const with_t[] = {"infonce", "supcon", "ntxent"};
    for (int i = 0; i < 3; i++) {
        double ds[2];
        ranks_equal_one_(with_t[i], NULL, NULL, true, ds);
        cr_assert(fabs(ds[0]) > 1e-6, "%s: learnable scale has a gradient", with_t[i]);
        ranks_equal_one_(with_t[i], "temperature", "0.2", true, ds);
        cr_assert_eq(ds[0], 0.0, "%s: fixed temperature, no scale gradient", with_t[i]);
    }
}

Test(loss_registry, hard_negatives_refuse_group_ids) {
    clasp_loss_config cfg = {0};
    cr_assert_eq(clasp_loss_config_set(&cfg, "hard-negatives", "1"), CLASP_OK);
    float a[4] = {1, 0, 0, 1}, w[64], da[4], db[4], ds[1];
    const float s[1] = {1};
    const int g[2] = {0, 0};
    clasp_loss_batch in = {.a = a,
                           .b = a,
                           .a_all = a,
                           .b_all = a,
                           .groups = g,
                           .n = 2,
                           .N = 2,
                           .D = 2,
                           .world = 1,
                           .scalars = s,
                           .cfg = &cfg,
                           .work = w};
    clasp_loss_grads out = {.da = da, .db = db, .dscalars = ds};
    cr_assert_eq(clasp_loss_default()->compute(&in, &out), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "--hard-negatives"), "%s", clasp_last_error());
}
