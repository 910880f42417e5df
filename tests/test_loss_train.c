/* test_loss_train.c: every loss of the registry through `clasp train` on a small Fashion-MNIST
 * subset: each trains (the loss falls, no collapse warning) and a broken run (--lr 10) warns of
 * collapse; exact resume for supcon and triplet; loss options in the resume key and
 * options.json; usage errors (an option the loss does not take, a margin <= 0, a label loss on
 * shards without .cls, a temperature schedule without a temperature); the temperature in
 * metrics.jsonl: fixed, scheduled (first / middle / last step), learnable; the generated
 * --help lines. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fixtures.h"
#include "loss/registry.h"

static char g_data[FX_PATH + 64];

static void build_data_(const char *dir) {
    snprintf(g_data, sizeof g_data, "%s/fmnist", dir);
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    cr_assert_eq(fx_fmnist_shards(g_data), 0, "building %s failed", g_data);
}

/* `clasp train` on shards SPEC (default: g_data's five) writing to RUN (log in RUN.log). */
static int run_on_(const char *spec, const char *extra, const char *out) {
    char cmd[8192], def[FX_PATH + 128];
    snprintf(def, sizeof def, "%s/train-{000000..000004}.tar", g_data);
    snprintf(cmd, sizeof cmd,
             "%s train --model %s/configs/fmnist-small.json --train '%s' --out %s "
             "--batch-size 64 --warmup 2 --log-every 1 --no-progress --seed 5 %s >%s.log 2>&1",
             clasp_test_bin(), CLASP_SOURCE_DIR, spec ? spec : def, out, extra, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int run_(const char *extra, const char *out) {
    return run_on_(NULL, extra, out);
}

static char *log_(const char *run) {
    char p[FX_PATH + 8];
    snprintf(p, sizeof p, "%s.log", run);
    char *t = fx_read_text(p);
    cr_assert_not_null(t, "%s", p);
    return t;
}

static const char *const k_trained[] = {"infonce", "supcon", "triplet", "ntxent", "margin"};
#define N_TRAINED (sizeof k_trained / sizeof k_trained[0])

Test(loss_train, every_loss_trains_without_collapse_warning) {
    char dir[FX_PATH], run[FX_PATH];
    build_data_(fx_scratch("loss_train_all", dir, run, "run", NULL));
    for (size_t i = 0; i < N_TRAINED; i++) {
        char extra[128], out[FX_PATH + 32];
        snprintf(out, sizeof out, "%s_%s", run, k_trained[i]);
        /* a healthy learning rate for this small model: the default 1e-3 drifts below the
         * warning's threshold within a few steps */
        snprintf(extra, sizeof extra, "--steps 4 --lr 3e-4 --loss %s", k_trained[i]);
        cr_assert_eq(run_(extra, out), 0, "%s: see %s.log", k_trained[i], out);
        double l[8], fs[8];
        cr_assert_eq(fx_metrics_numbers(out, "train", "loss", l, 8), 4, "%s", k_trained[i]);
        cr_assert(isfinite(l[3]) && l[3] < l[0], "%s does not learn: %g -> %g", k_trained[i], l[0],
                  l[3]);
        cr_assert_eq(fx_metrics_numbers(out, "train", "feat_std_image", fs, 8), 4,
                     "diagnostics stay on for %s", k_trained[i]);
        char *t = log_(out);
        cr_assert(!strstr(t, "collapsing"), "%s: a healthy run warns:\n%s", k_trained[i], t);
        free(t);
    }
}

/* --lr 10 collapses the features in a step or two: the warning fires (a caption loss and a
 * label loss; the diagnostics are the engine's, the same for every loss). */
Test(loss_train, broken_run_warns_of_collapse) {
    char dir[FX_PATH], run[FX_PATH];
    build_data_(fx_scratch("loss_train_collapse", dir, run, "run", NULL));
    static const char *const losses[] = {"infonce", "triplet"};
    for (size_t i = 0; i < 2; i++) {
        char extra[128], out[FX_PATH + 32];
        snprintf(out, sizeof out, "%s_%s", run, losses[i]);
        snprintf(extra, sizeof extra, "--steps 3 --lr 10 --loss %s", losses[i]);
        int rc = run_(extra, out);
        char *t = log_(out);
        cr_assert(rc == 0 || rc == 1, "%s: exit %d", losses[i], rc);
        cr_assert(strstr(t, "features are collapsing"), "%s --lr 10: no warning:\n%s", losses[i],
                  t);
        free(t);
    }
}

/* Straight run vs stopped + resumed with loss `opts`: the same losses, to the printed digit. */
static void resume_case_(const char *name, const char *opts) {
    char dir[FX_PATH], a[FX_PATH], b[FX_PATH], x[256];
    build_data_(fx_scratch(name, dir, a, "straight", b, "stopped", NULL));
    snprintf(x, sizeof x, "--steps 4 %s", opts);
    cr_assert_eq(run_(x, a), 0, "see %s.log", a);
    snprintf(x, sizeof x, "--steps 4 --stop-after 2 %s", opts);
    cr_assert_eq(run_(x, b), 3, "--stop-after exits 3");
    snprintf(x, sizeof x, "--steps 4 --resume latest %s", opts);
    cr_assert_eq(run_(x, b), 0, "see %s.log", b);
    char *la = fx_metrics_values(a, "train", "loss"), *lb = fx_metrics_values(b, "train", "loss");
    cr_assert(la && lb);
    cr_assert_eq(fx_count_lines(la), 4);
    cr_assert_str_eq(la, lb, "%s: straight vs resumed:\n%s\nvs\n%s", opts, la, lb);
    free(la), free(lb);
}

Test(loss_train, supcon_resume_is_bit_exact) {
    resume_case_("loss_train_resume_supcon", "--loss supcon");
}

Test(loss_train, triplet_resume_is_bit_exact) {
    resume_case_("loss_train_resume_triplet", "--loss triplet --mining semi-hard --margin 0.3");
}

Test(loss_train, loss_options_are_part_of_the_resume_key) {
    char dir[FX_PATH], a[FX_PATH];
    build_data_(fx_scratch("loss_train_key", dir, a, "run", NULL));
    cr_assert_eq(run_("--steps 4 --stop-after 2 --loss triplet --margin 0.3", a), 3);
    char opts[FX_PATH + 32];
    snprintf(opts, sizeof opts, "%s/options.json", a);
    char *o = fx_read_text(opts);
    cr_assert(o && strstr(o, "\"loss_options\"") && strstr(o, "\"margin\":\t0.3"), "%s", o);
    free(o);
    cr_assert_eq(run_("--steps 4 --resume latest --loss triplet --margin 0.4", a), 1);
    char *t = log_(a);
    cr_assert(strstr(t, "resume_key.loss_options"), "%s", t);
    free(t);
    cr_assert_eq(run_("--steps 4 --resume latest --loss triplet --margin 0.3 --json", a), 0);
    t = log_(a); /* the --json summary names the loss and its options */
    cr_assert(strstr(t, "\"loss\":\"triplet\"") && strstr(t, "\"loss_options\":{\"margin\":0.3}"),
              "%s", t);
    free(t);
}

/* exit 2 and a message containing `want` */
static void usage_(const char *spec, const char *extra, const char *out, const char *want) {
    cr_assert_eq(run_on_(spec, extra, out), 2, "%s: not a usage error", extra);
    char *t = log_(out);
    cr_assert(strstr(t, want), "%s: '%s' not in:\n%s", extra, want, t);
    free(t);
}

Test(loss_train, usage_errors_name_the_flag) {
    char dir[FX_PATH], a[FX_PATH], nocls[FX_PATH];
    build_data_(fx_scratch("loss_train_usage", dir, a, "run", nocls, "nocls", NULL));
    usage_(NULL, "--steps 2 --margin 0.2", a, "--margin does not apply to --loss infonce");
    usage_(NULL, "--steps 2 --loss siglip --temperature 0.1", a,
           "--temperature does not apply to --loss siglip");
    usage_(NULL, "--steps 2 --loss triplet --margin 0", a, "--margin: 0 is outside (0");
    usage_(NULL, "--steps 2 --loss margin --margin -1", a, "--margin");
    usage_(NULL, "--steps 2 --loss triplet --mining hardest", a, "--mining: 'hardest'");
    usage_(NULL, "--steps 2 --loss triplet --temperature-schedule cosine:0.1:0.05", a,
           "--temperature-schedule does not apply to --loss triplet");
    usage_(NULL, "--steps 2 --temperature 0.1 --temperature-schedule cosine:0.1:0.05", a,
           "exclude each other");
    usage_(NULL, "--steps 2 --temperature-schedule cos:0.1:0.05", a, "--temperature-schedule");
    usage_(NULL, "--steps 2 --loss infonce2", a, "unknown loss 'infonce2'");
    /* shards without .cls: a label loss is refused naming the flag and the shards */
    char cmd[4 * FX_PATH];
    cr_assert_eq(mkdir(nocls, 0755), 0);
    snprintf(cmd, sizeof cmd,
             "cp %s/train-000000.tar %s/x.tar && tar -f %s/x.tar --delete --wildcards '*.cls'",
             g_data, nocls, nocls);
    cr_assert_eq(fx_system(cmd), 0, "%s", cmd);
    char spec[FX_PATH + 16];
    snprintf(spec, sizeof spec, "%s/x.tar", nocls);
    usage_(spec, "--steps 2 --loss supcon", a, "--loss supcon needs a label (.cls)");
    usage_(spec, "--steps 2 --loss triplet", a, "x.tar has none");
    /* the same shards train a caption loss */
    cr_assert_eq(run_on_(spec, "--steps 1", a), 0);
}

static void temperatures_(const char *run, double *t, int n) {
    cr_assert_eq(fx_metrics_numbers(run, "train", "temperature", t, n), n, "%s", run);
}

Test(loss_train, temperature_fixed_scheduled_and_learnable) {
    char dir[FX_PATH], a[FX_PATH], b[FX_PATH], c[FX_PATH], d[FX_PATH], e[FX_PATH];
    build_data_(fx_scratch("loss_train_temp", dir, a, "fixed", b, "cosine", c, "linear", d, "learn",
                           e, "none", NULL));
    double t[5], s[5];
    /* fixed: the value every step, and the logit scale is not trained */
    cr_assert_eq(run_("--steps 5 --loss supcon --temperature 0.1", a), 0);
    temperatures_(a, t, 5);
    cr_assert_eq(fx_metrics_numbers(a, "train", "logit_scale", s, 5), 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(t[i], 0.1, "step %d: %g", i + 1, t[i]);
        cr_assert_eq(s[i], s[0], "the logit scale moved: %g -> %g", s[0], s[i]);
    }
    /* cosine 0.2 -> 0.05 over 5 steps: first 0.2, middle (step 3) 0.125, last 0.05 */
    cr_assert_eq(run_("--steps 5 --temperature-schedule cosine:0.2:0.05", b), 0);
    temperatures_(b, t, 5);
    cr_assert(fabs(t[0] - 0.2) < 1e-12 && fabs(t[2] - 0.125) < 1e-12 && fabs(t[4] - 0.05) < 1e-12,
              "%g %g %g", t[0], t[2], t[4]);
    cr_assert(t[1] > 0.125 && t[1] < 0.2 &&
                  fabs(t[1] - (0.05 + 0.15 * (1 + cos(M_PI / 4)) / 2)) < 1e-12,
              "step 2: %g", t[1]);
    cr_assert_eq(fx_metrics_numbers(b, "train", "logit_scale", s, 5), 5);
    cr_assert_eq(s[4], s[0], "a scheduled temperature does not train the scale");
    /* linear 0.1 -> 0.3 for ntxent: 0.1, 0.15, 0.2, 0.25, 0.3 */
    cr_assert_eq(run_("--steps 5 --loss ntxent --temperature-schedule linear:0.1:0.3", c), 0);
    temperatures_(c, t, 5);
    for (int i = 0; i < 5; i++)
        cr_assert(fabs(t[i] - (0.1 + 0.05 * i)) < 1e-12, "step %d: %g", i + 1, t[i]);
    /* learnable: 1 / the logit scale of the step, 1/0.07 at the start, then it moves */
    cr_assert_eq(run_("--steps 5", d), 0);
    temperatures_(d, t, 5);
    cr_assert(fabs(t[0] - 0.07) < 1e-6, "%g", t[0]);
    cr_assert(t[4] != t[0], "the learnable temperature did not move");
    /* a loss without a temperature writes none */
    cr_assert_eq(run_("--steps 1 --loss triplet", e), 0);
    cr_assert_eq(fx_metrics_numbers(e, "train", "temperature", t, 5), 0);
}

Test(loss_train, help_lists_every_registered_option_with_its_losses) {
    char *out = NULL;
    cr_assert_eq(fx_clasp(&out, "train --help"), 0);
    cr_assert(out);
    for (int i = 0; i < clasp_loss_count(); i++) {
        const clasp_loss_def *d = clasp_loss_at(i);
        cr_assert(strstr(out, d->name), "%s", d->name);
        for (int k = 0; k < d->n_options; k++) {
            char flag[64];
            snprintf(flag, sizeof flag, "--%s ", d->options[k].name);
            cr_assert(strstr(out, flag), "--help lacks %s", flag);
        }
    }
    cr_assert(strstr(out, "--margin X"), "%s", out);
    cr_assert(strstr(out, "--loss triplet (default 0.2), margin (default 1)"), "%s", out);
    cr_assert(strstr(out, "--mining batch-all|batch-hard|semi-hard"), "%s", out);
    cr_assert(strstr(out, "--temperature-schedule"), "%s", out);
    free(out);
}
