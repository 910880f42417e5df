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

    /* the default loss takes its queue options, not a margin */
    clasp_loss_config z = {0};
    cr_assert_eq(clasp_loss_config_def(&z), clasp_loss_default());
    cr_assert_eq(clasp_loss_config_set(&z, "margin", "0.2"), CLASP_ERR_ARG);
    cr_assert(
        strstr(clasp_last_error(),
               "--margin does not apply to --loss infonce (its options: --queue, --momentum)"),
        "%s", clasp_last_error());
}
