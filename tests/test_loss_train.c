/* test_loss_train.c: every loss of the registry through `clasp train` on a small Fashion-MNIST
 * subset: each trains (the loss falls, no collapse warning) and a broken run (--lr 10) warns of
 * collapse; exact resume for supcon and triplet; loss options in the resume key and
 * options.json; usage errors (an option the loss does not take, a margin <= 0, a label loss on
 * shards without .cls, a temperature schedule without a temperature); the temperature in
 * metrics.jsonl: fixed, scheduled (first / middle / last step), learnable; the generated
 * --help lines; and, at the engine, every loss on every pairing of an image-audio-text model. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/rng.h"
#include "fixtures.h"
#include "loss/registry.h"
#include "train/engine.h"

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
        snprintf(extra, sizeof extra, "--steps 4 --lr 3e-4 --loss %s --json", k_trained[i]);
        cr_assert_eq(run_(extra, out), 0, "%s: see %s.log", k_trained[i], out);
        double l[8], fs[8];
        cr_assert_eq(fx_metrics_numbers(out, "train", "loss", l, 8), 4, "%s", k_trained[i]);
        cr_assert(isfinite(l[3]) && l[3] < l[0], "%s does not learn: %g -> %g", k_trained[i], l[0],
                  l[3]);
        cr_assert_eq(fx_metrics_numbers(out, "train", "feat_std_image", fs, 8), 4,
                     "diagnostics stay on for %s", k_trained[i]);
        char *t = log_(out);
        cr_assert(!strstr(t, "collapsing"), "%s: a healthy run warns:\n%s", k_trained[i], t);
        cr_assert(strstr(t, "\"collapse_warnings\":0,\"collapsed\":false"), "%s:\n%s", k_trained[i],
                  t);
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
        snprintf(extra, sizeof extra, "--steps 3 --lr 10 --loss %s --json", losses[i]);
        int rc = run_(extra, out);
        char *t = log_(out);
        cr_assert(rc == 0 || rc == 1, "%s: exit %d", losses[i], rc);
        cr_assert(strstr(t, "features are collapsing"), "%s --lr 10: no warning:\n%s", losses[i],
                  t);
        /* still collapsed at the end: said at the end, and in the --json summary */
        cr_assert(strstr(t, "features still collapsed at step 3"), "%s:\n%s", losses[i], t);
        cr_assert(strstr(t, "\"collapse_warnings\":1,\"collapsed\":true"), "%s:\n%s", losses[i], t);
        cr_assert(!strstr(t, "recovered"), "%s:\n%s", losses[i], t);
        free(t);
    }
}

/* A dip is not a collapse: at the default learning rate with a 2-step warmup this model's
 * features fall under the threshold within ten steps and spread again by step 50 or so. The
 * warning fires, the recovery is told, and the run does not end collapsed. */
Test(loss_train, collapse_warning_then_recovery) {
    char dir[FX_PATH], run[FX_PATH];
    build_data_(fx_scratch("loss_train_recover", dir, run, "run", NULL));
    cr_assert_eq(run_("--steps 100 --loss infonce --json", run), 0, "see %s.log", run);
    char *t = log_(run);
    const char *w = strstr(t, "features are collapsing"), *r = strstr(t, "features recovered");
    cr_assert(w && r && w < r, "a warning, then the recovery:\n%s", t);
    cr_assert(!strstr(t, "still collapsed"), "%s", t);
    cr_assert(strstr(t, "\"collapse_warnings\":1,\"collapsed\":false"), "%s", t);
    double fs[128];
    size_t n = fx_metrics_numbers(run, "train", "feat_std_image", fs, 128);
    cr_assert_eq(n, 100);
    cr_assert(fs[9] < 0.01 && fs[99] >= 0.02, "the std dips then spreads: %g at step 10, %g at 100",
              fs[9], fs[99]);
    free(t);
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
    usage_(NULL, "--steps 2 --multi-positive --tau-plus 0.1", a, "not with --multi-positive");
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

/* A tiny model with the three towers (8x8 gray images, 16-mel audio, byte text). */
static const char k_three_towers[] =
    "{\"embed_dim\": 8, \"init_logit_bias\": -10,"
    " \"image\": {\"type\": \"cnn\", \"channels\": 1, \"size\": 8, \"conv\": [{\"channels\": 4,"
    " \"kernel\": 3, \"padding\": 1, \"pool\": 2}], \"fc\": [8]},"
    " \"audio\": {\"type\": \"audio_cnn\", \"conv\": [{\"channels\": 4, \"kernel\": 3, "
    "\"padding\": 1, \"pool\": 2}], \"fc\": [8], \"sample_rate\": 8000, \"clip_seconds\": 0.25,"
    " \"n_fft\": 128, \"win_length\": 128, \"hop_length\": 64, \"n_mels\": 16, \"fmax\": 4000},"
    " \"text\": {\"type\": \"transformer\", \"vocab_size\": 259, \"context_length\": 8, "
    "\"width\": 8, \"layers\": 1, \"heads\": 2, \"mlp_width\": 16,"
    " \"tokenizer\": {\"type\": \"bytes\", \"bos\": 256, \"eos\": 257, \"pad\": 258}}}";

/* Every registered stateless loss on image-text, audio-text and audio-image: a finite loss and
 * a gradient reaching both towers of the pair. */
Test(loss_train, every_loss_on_every_pairing) {
    char dir[FX_PATH], path[FX_PATH];
    fx_scratch("loss_train_pairs", dir, path, "three.json", NULL);
    cr_assert(fx_write_str(path, k_three_towers));
    clasp_model_config cfg;
    cr_assert_eq(clasp_model_config_load(path, &cfg), CLASP_OK, "%s", clasp_last_error());
    enum { B = 8 };
    const size_t ni = clasp_model_input_elems(&cfg, CLASP_TOWER_IMAGE),
                 na = clasp_model_input_elems(&cfg, CLASP_TOWER_AUDIO),
                 nt = clasp_model_input_elems(&cfg, CLASP_TOWER_TEXT);
    float *img = calloc(B * ni, sizeof *img), *aud = calloc(B * na, sizeof *aud);
    int32_t *tok = calloc(B * nt, sizeof *tok), groups[B];
    cr_assert(img && aud && tok);
    clasp_rng r;
    clasp_rng_init(&r, 3, 77, 0, 0);
    for (size_t i = 0; i < B * ni; i++) img[i] = (float)clasp_rng_normal(&r);
    for (size_t i = 0; i < B * na; i++) aud[i] = (float)clasp_rng_normal(&r);
    for (int i = 0; i < B; i++) {
        groups[i] = i % 3;
        for (size_t j = 0; j < nt; j++)
            tok[(size_t)i * nt + j] = j == 0 ? 256 : j < 4 ? 'a' + i + (int)j : j == 4 ? 257 : 258;
    }
    const void *in[CLASP_N_TOWERS] = {0};
    in[CLASP_TOWER_IMAGE] = img, in[CLASP_TOWER_AUDIO] = aud, in[CLASP_TOWER_TEXT] = tok;
    const clasp_tower pairs[3][2] = {{CLASP_TOWER_IMAGE, CLASP_TOWER_TEXT},
                                     {CLASP_TOWER_AUDIO, CLASP_TOWER_TEXT},
                                     {CLASP_TOWER_AUDIO, CLASP_TOWER_IMAGE}};
    for (int li = 0; li < clasp_loss_count(); li++) {
        const clasp_loss_def *d = clasp_loss_at(li);
        if (d->state_init) continue; /* stateful (MoCo): its own tests */
        clasp_engine e;
        clasp_engine_options o = {
            .batch_size = B, .accum_steps = 1, .chunks = 1, .threads = 1, .loss = {.def = d}};
        cr_assert_eq(clasp_engine_init(&e, &cfg, &o), CLASP_OK, "%s: %s", d->name,
                     clasp_last_error());
        clasp_model *m = &e.models[0];
        clasp_model_init_weights(m, 5);
        clasp_engine_sync_params(&e);
        for (int p = 0; p < 3; p++) {
            clasp_tower ta = pairs[p][0], tb = pairs[p][1];
            clasp_step_stats st;
            cr_assert_eq(clasp_engine_grads_pair(&e, ta, in[ta], tb, in[tb], groups, B, &st),
                         CLASP_OK, "%s %s-%s: %s", d->name, clasp_tower_name(ta),
                         clasp_tower_name(tb), clasp_last_error());
            cr_assert(isfinite(st.loss) && st.loss > 0, "%s %s-%s: loss %g", d->name,
                      clasp_tower_name(ta), clasp_tower_name(tb), (double)st.loss);
            double g[CLASP_N_TOWERS] = {0};
            for (int k = 0; k < m->n_params; k++)
                for (size_t x = 0; x < m->info[k].numel; x++)
                    g[m->info[k].tower] += fabs((double)m->grads[m->info[k].offset + x]);
            cr_assert(g[ta] > 0 && g[tb] > 0, "%s %s-%s: no gradient reaches a tower", d->name,
                      clasp_tower_name(ta), clasp_tower_name(tb));
        }
        clasp_engine_free(&e);
    }
    free(img), free(aud), free(tok);
}
