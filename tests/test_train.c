/* test_train.c: `clasp train` end to end on a small Fashion-MNIST subset: exact resume
 * (straight run vs stop + resume, and after a SIGKILL), loader-thread independence, refusal of
 * a mismatched or corrupt checkpoint, and that training lowers the loss. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.h"

static char g_data[4200];

/* Builds the shards in DIR/nested/fmnist, once per test process (each test is its own process
 * under Criterion). */
static void build_data_(const char *dir) {
    snprintf(g_data, sizeof g_data, "%s/nested/fmnist", dir); /* parents are created */
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    cr_assert_eq(fx_fmnist_shards(g_data), 0, "building %s failed", g_data);
}

static int run_spec_(const char *spec_extra, const char *extra, const char *out) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "%s train --model %s/configs/fmnist-small.json "
             "--train '%s/train-{000000..000004}.tar%s' "
             "--out %s --batch-size 64 --warmup 2 --log-every 1 --no-progress --seed 5 %s "
             ">%s.log 2>&1",
             clasp_test_bin(), CLASP_SOURCE_DIR, g_data, spec_extra, out, extra, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int run_(const char *extra, const char *out) {
    return run_spec_("", extra, out);
}

/* Starts the same run as run_ in the background (output to `log`); returns its pid. */
static pid_t spawn_(const char *extra, const char *out, const char *log) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char cmd[16384];
        snprintf(cmd, sizeof cmd,
                 "exec %s train --model %s/configs/fmnist-small.json "
                 "--train '%s/train-{000000..000004}.tar' --out %s --batch-size 64 --warmup 2 "
                 "--log-every 1 --no-progress --seed 5 %s >%s 2>&1",
                 clasp_test_bin(), CLASP_SOURCE_DIR, g_data, out, extra, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The "loss" fields of the train lines of RUN/metrics.jsonl, as printed, "\n"-joined. */
static char *losses_(const char *run) {
    char *out = fx_metrics_values(run, "train", "loss");
    cr_assert_not_null(out, "%s/metrics.jsonl", run);
    return out;
}

/* The two runs logged the same losses, to the printed digit. */
static void expect_same_losses_(const char *a, const char *b, const char *what) {
    char *la = losses_(a), *lb = losses_(b);
    cr_assert_str_eq(la, lb, "%s:\n%s\nvs\n%s", what, la, lb);
    free(la);
    free(lb);
}

/* RUN.log, the output of the run writing to RUN. */
static char *read_log_(const char *run) {
    char log[4400];
    snprintf(log, sizeof log, "%s.log", run);
    return fx_read_text(log);
}

/* Straight run vs stopped + resumed, in the given precision ("--precision P" or ""). */
static void resume_case_(const char *name, const char *prec) {
    char base[4096], a[4200], b[4200], x[256];
    build_data_(fx_scratch(name, base, a, "straight", b, "stopped", NULL));
    snprintf(x, sizeof x, "--steps 8 %s", prec);
    cr_assert_eq(run_(x, a), 0);
    snprintf(x, sizeof x, "--steps 8 --stop-after 4 %s", prec);
    cr_assert_eq(run_(x, b), 3, "--stop-after exits 3 (interrupted)");
    char *part = losses_(b);
    cr_assert_eq(fx_count_lines(part), 4);
    snprintf(x, sizeof x, "--steps 8 --resume latest %s", prec);
    cr_assert_eq(run_(x, b), 0);
    char *la = losses_(a);
    cr_assert_eq(fx_count_lines(la), 8);
    expect_same_losses_(a, b, "losses after resume differ: straight vs resumed");
    free(part);
    free(la);
}

Test(train, resume_is_bit_exact) {
    resume_case_("train_resume", "");
}

Test(train, resume_is_bit_exact_bf16) {
    if (!strcmp(CLASP_BACKEND_NAME, "openblas")) cr_skip_test("bf16 needs the onednn backend");
    resume_case_("train_resume_bf16", "--precision bf16");
}

/* Per-tower settings (--lr-scale, --tower-wd) given again on --resume continue bit for bit. */
Test(train, resume_is_bit_exact_with_tower_settings) {
    resume_case_("train_resume_towers", "--lr-scale image=0.3,shared=2 --tower-wd text=0.02");
}

/* RUN's checkpoint at `step`: model.safetensors. */
static void model_at_(char *out, size_t cap, const char *run, int step) {
    snprintf(out, cap, "%s/checkpoints/step-%08d/model.safetensors", run, step);
}

/* --lr-scale image=0 leaves the model exactly as --freeze image does (the image tower keeps
 * its init; the rest trains the same); --lr-scale and --tower-wd each change what they name;
 * options.json records them. */
Test(train, lr_scale_zero_equals_freeze_and_tower_wd_applies) {
    char base[4096], a[4200], b[4200], c[4200], d[4200], ma[4400], mb[4400];
    build_data_(
        fx_scratch("train_towers", base, a, "freeze", b, "scale0", c, "plain", d, "wd", NULL));
    cr_assert_eq(run_("--steps 3 --freeze image --tower-wd text=0.5", a), 0, "see %s.log", a);
    cr_assert_eq(run_("--steps 3 --lr-scale image=0 --tower-wd text=0.5", b), 0, "see %s.log", b);
    cr_assert_eq(run_("--steps 3 --tower-wd text=0.5", c), 0, "see %s.log", c);
    cr_assert_eq(run_("--steps 3 --lr-scale image=0", d), 0, "see %s.log", d);
    model_at_(ma, sizeof ma, a, 3);
    model_at_(mb, sizeof mb, b, 3);
    cr_assert(fx_same_file(ma, mb), "--lr-scale image=0 and --freeze image differ: %s vs %s", ma,
              mb);
    model_at_(ma, sizeof ma, c, 3);
    cr_assert(!fx_same_file(ma, mb), "--lr-scale image=0 had no effect");
    model_at_(ma, sizeof ma, d, 3);
    cr_assert(!fx_same_file(ma, mb), "--tower-wd text=0.5 had no effect");
    snprintf(ma, sizeof ma, "%s/options.json", b);
    char *text = fx_read_text(ma);
    cJSON *j = cJSON_Parse(text);
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "lr_scale"),
                *wd = cJSON_GetObjectItemCaseSensitive(j, "tower_weight_decay");
    const cJSON *li = cJSON_GetObjectItemCaseSensitive(ls, "image"),
                *lt = cJSON_GetObjectItemCaseSensitive(ls, "text"),
                *wt = cJSON_GetObjectItemCaseSensitive(wd, "text"),
                *wi = cJSON_GetObjectItemCaseSensitive(wd, "image");
    cr_assert(cJSON_IsNumber(li) && li->valuedouble == 0 && cJSON_IsNumber(lt) &&
                  lt->valuedouble == 1 && cJSON_IsNumber(wt) && wt->valuedouble == 0.5 &&
                  cJSON_IsNumber(wi) && wi->valuedouble == 0.1,
              "%s", text);
    cJSON_Delete(j);
    free(text);
}

/* A bad --lr-scale / --tower-wd is a usage error (exit 2) naming the flag and what is wrong. */
Test(train, tower_settings_usage_errors) {
    char base[4096], a[4200];
    build_data_(fx_scratch("train_tower_usage", base, a, "run", NULL));
    const struct {
        const char *args, *want1, *want2;
    } cases[] = {
        {"--lr-scale video=1", "--lr-scale 'video=1'", "not a tower"},
        {"--tower-wd audio=0.1", "--tower-wd 'audio=0.1'", "no audio tower"},
        {"--lr-scale image=-0.5", "--lr-scale 'image=-0.5'", "not a number >= 0"},
        {"--tower-wd text=1e", "--tower-wd 'text=1e'", "not a number >= 0"},
        {"--lr-scale image", "--lr-scale 'image'", "not TOWER=VALUE"},
        {"--lr-scale image=1,image=2", "--lr-scale", "given twice"},
        {"--freeze image --lr-scale text=1,image=0.1", "--lr-scale", "image tower is frozen"},
        {"--freeze text --tower-wd text=0", "--tower-wd 'text=0'", "text tower is frozen"},
        {"--freeze video", "--freeze 'video'", "not a tower"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char x[256];
        snprintf(x, sizeof x, "--steps 1 %s", cases[k].args);
        cr_assert_eq(run_(x, a), 2, "%s: not a usage error (see %s.log)", cases[k].args, a);
        char *text = read_log_(a);
        cr_assert(strstr(text, cases[k].want1) && strstr(text, cases[k].want2), "%s: %s",
                  cases[k].args, text);
        free(text);
    }
}

Test(train, loader_threads_do_not_change_losses) {
    char base[4096], a[4200], b[4200];
    build_data_(fx_scratch("train_threads", base, a, "w1", b, "w3", NULL));
    cr_assert_eq(run_("--steps 5 --workers 1 --threads 1 --chunks 2", a), 0);
    cr_assert_eq(run_("--steps 5 --workers 3 --threads 2 --chunks 2", b), 0);
    expect_same_losses_(a, b, "workers 1/threads 1 vs workers 3/threads 2");
}

/* Straight run vs SIGKILLed + resumed, in the given precision ("--precision P" or ""). */
static void sigkill_case_(const char *name, const char *prec) {
    char base[4096], a[4200], b[4200], x[256];
    build_data_(fx_scratch(name, base, a, "straight", b, "killed", NULL));
    snprintf(x, sizeof x, "--steps 10 --save-every 2 %s", prec);
    cr_assert_eq(run_(x, a), 0);
    /* Run the same in the background and SIGKILL it once its second checkpoint exists. */
    pid_t pid = spawn_(x, b, "/dev/null");
    char ck[4400];
    snprintf(ck, sizeof ck, "%s/checkpoints/step-00000004", b);
    struct stat sb;
    for (int i = 0; i < 6000 && stat(ck, &sb) != 0; i++) usleep(10000);
    usleep(20000); /* somewhere inside the next steps, maybe while writing a checkpoint */
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st), "the run finished before it could be killed");
    char *before = losses_(b);
    cr_assert(fx_count_lines(before) < 10, "killed run logged all steps");
    free(before);
    snprintf(x, sizeof x, "--steps 10 --save-every 2 --resume latest %s", prec);
    cr_assert_eq(run_(x, b), 0, "resume after SIGKILL failed (see %s.log)", b);
    expect_same_losses_(a, b, "straight vs killed+resumed");
}

Test(train, sigkill_then_resume_matches_straight_run) {
    sigkill_case_("train_kill", "");
}

Test(train, sigkill_then_resume_matches_straight_run_bf16) {
    if (!strcmp(CLASP_BACKEND_NAME, "openblas")) cr_skip_test("bf16 needs the onednn backend");
    sigkill_case_("train_kill_bf16", "--precision bf16");
}

/* One writer per run folder: a second `clasp train` on a folder in use (fresh or --resume)
 * refuses, naming the holder's PID; after a SIGKILL of the holder the kernel has released the
 * lock and the folder is usable at once. */
Test(train, run_folder_has_one_writer) {
    char base[4096], a[4200], lock[4400], x[64];
    build_data_(fx_scratch("train_lock", base, a, "run", NULL));
    pid_t pid = spawn_("--steps 100000 --save-every 100000", a, "/dev/null");
    snprintf(lock, sizeof lock, "%s/.lock", a);
    snprintf(x, sizeof x, "%ld", (long)pid);
    char *held = NULL;
    for (int i = 0; i < 6000; i++) {
        free(held);
        held = fx_read_text(lock);
        if (held && strstr(held, x)) break;
        usleep(10000);
    }
    cr_assert(held && strstr(held, x), "the first run never took %s", lock);
    free(held);
    const char *second[] = {"--steps 2", "--steps 2 --resume latest"};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(run_(second[k], a), 1, "%s on a folder in use", second[k]);
        char *text = read_log_(a);
        cr_assert(strstr(text, "in use") && strstr(text, x), "%s", text);
        free(text);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st));
    cr_assert_eq(run_("--steps 2", a), 0, "after the holder's SIGKILL (see %s.log)", a);
}

/* A bf16 run: its export records the precision, a resume in fp32 is refused naming the option,
 * and the losses are not fp32's. On OpenBLAS, --precision bf16 is refused naming the backend. */
Test(train, precision_is_recorded_and_part_of_the_resume_key) {
    char base[4096], a[4200], b[4200], path[4400];
    build_data_(fx_scratch("train_precision", base, a, "bf16", b, "fp32", NULL));
    if (!strcmp(CLASP_BACKEND_NAME, "openblas")) {
        cr_assert_eq(run_("--steps 2 --precision bf16", a), 1);
        char *text = read_log_(a);
        cr_assert(strstr(text, "bf16") && strstr(text, "openblas"), "%s", text);
        free(text);
        return;
    }
    cr_assert_eq(run_("--steps 3 --precision bf16", a), 0);
    cr_assert_eq(run_("--steps 3 --precision fp32", b), 0);
    char *la = losses_(a), *lb = losses_(b);
    cr_expect_str_neq(la, lb, "bf16 and fp32 logged the same losses:\n%s", la);
    free(la), free(lb);
    cr_assert_eq(run_("--steps 3 --precision fp32 --resume latest", a), 1);
    char *text = read_log_(a);
    cr_assert(strstr(text, "resume_key.precision"), "%s", text);
    free(text);
    char *out = NULL;
    snprintf(path, sizeof path, "%s/export", a);
    cr_assert_eq(fx_clasp(&out, "export %s -o %s", a, path), 0, "%s", out ? out : "");
    free(out);
    snprintf(path, sizeof path, "%s/export/config.json", a);
    text = fx_read_text(path);
    cJSON *cfg = cJSON_Parse(text);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cfg, "precision");
    cr_expect(cJSON_IsString(p) && !strcmp(p->valuestring, "bf16"), "%s", text);
    cJSON_Delete(cfg);
    free(text);
}

Test(train, mismatched_or_corrupt_checkpoint_is_a_named_error) {
    char base[4096], a[4200], path[4400];
    build_data_(fx_scratch("train_bad", base, a, "run", NULL));
    cr_assert_eq(run_("--steps 2", a), 0);
    /* another batch size: not an exact resume */
    cr_assert_eq(run_("--steps 4 --batch-size 32 --resume latest", a), 1);
    char *text = read_log_(a);
    cr_assert(text[0] && strstr(text, "resume_key.batch_size"), "%s", text);
    free(text);
    /* flip a byte of the model file: checksum error naming the file */
    snprintf(path, sizeof path, "%s/checkpoints/step-00000002/model.safetensors", a);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, -5, SEEK_END);
    fputc(0x7f, f);
    fclose(f);
    cr_assert_eq(run_("--steps 4 --resume latest", a), 1);
    text = read_log_(a);
    cr_assert(strstr(text, "model.safetensors: checksum mismatch"), "%s", text);
    free(text);
    /* a fresh run into a folder that holds one is refused */
    cr_assert_eq(run_("--steps 2", a), 1);
}

Test(train, non_finite_steps_are_skipped_then_stop_with_checkpoint) {
    char base[4096], a[4200], path[4400];
    build_data_(fx_scratch("train_nan", base, a, "run", NULL));
    /* a learning rate of 1e30 sends the weights to inf after the first step */
    cr_assert_eq(run_("--steps 20 --lr 1e30 --warmup 0 --max-bad-steps 3", a), 1);
    char *text = read_log_(a);
    cr_assert(strstr(text, "non-finite loss or gradient"), "%s", text);
    cr_assert(strstr(text, "3 consecutive steps had a non-finite loss"), "%s", text);
    free(text);
    snprintf(path, sizeof path, "%s/checkpoints/latest", a);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "a checkpoint is written when the guard stops the run");
    char *l = losses_(a);
    cr_assert(fx_count_lines(l) >= 3 && fx_count_lines(l) < 20);
    free(l);
}

Test(train, sigterm_finishes_the_step_and_checkpoints) {
    char base[4096], a[4200], b[4200];
    build_data_(fx_scratch("train_term", base, a, "straight", b, "term", NULL));
    cr_assert_eq(run_("--steps 12", a), 0);
    char blog[4400];
    snprintf(blog, sizeof blog, "%s.log", b);
    pid_t pid = spawn_("--steps 12", b, blog);
    /* wait for the first logged step, then ask it to stop */
    char metrics[4400];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", b);
    struct stat sb;
    for (int i = 0; i < 6000 && (stat(metrics, &sb) != 0 || sb.st_size == 0); i++) usleep(10000);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3, "SIGTERM: exit status 3 (interrupted)");
    char *text = read_log_(b);
    cr_assert(strstr(text, "resume with --resume latest"), "%s", text);
    free(text);
    char *part = losses_(b);
    int done = fx_count_lines(part);
    free(part);
    cr_assert(done >= 1 && done < 12, "stopped after %d steps", done);
    cr_assert_eq(run_("--steps 12 --resume latest", b), 0);
    expect_same_losses_(a, b, "straight vs terminated+resumed");
}

Test(train, missing_shard_policy_and_image_augmentation) {
    char base[4096], a[4200], b[4200], extra[8192];
    build_data_(fx_scratch("train_policy", base, a, "skip", b, "fail", NULL));
    /* a spec naming a shard that does not exist: skipped and counted, or fatal */
    snprintf(extra, sizeof extra, "::%s/missing-000000.tar", g_data);
    cr_assert_eq(run_spec_(extra, "--steps 12", a), 0);
    cr_assert_eq(run_spec_(extra, "--steps 12 --on-error fail", b), 1);
    char *text = read_log_(b);
    cr_assert(strstr(text, "missing-000000.tar"), "%s", text);
    free(text);
    cr_assert_eq(run_("--steps 2 --on-error sometimes", b), 2);

    /* augmentation changes what the model sees, deterministically */
    char p1[4200], p2[4200], p3[4200], bad[4400];
    snprintf(p1, sizeof p1, "%s/plain", base);
    snprintf(p2, sizeof p2, "%s/aug1", base);
    snprintf(p3, sizeof p3, "%s/aug2", base);
    cr_assert_eq(run_("--steps 3", p1), 0);
    cr_assert_eq(run_("--steps 3 --image-augment default", p2), 0);
    cr_assert_eq(run_("--steps 3 --image-augment default", p3), 0);
    char *l1 = losses_(p1), *l2 = losses_(p2), *l3 = losses_(p3);
    cr_assert_str_eq(l2, l3, "augmented runs differ:\n%s\nvs\n%s", l2, l3);
    cr_assert_str_neq(l1, l2, "augmentation had no effect");
    free(l1);
    free(l2);
    free(l3);
    /* a bad augmentation file is an error naming the file and the field */
    snprintf(bad, sizeof bad, "%s/aug.json", base);
    cr_assert(fx_write_str(bad, "{\"hflip\": 2}"));
    snprintf(extra, sizeof extra, "--steps 2 --image-augment %s", bad);
    char p4[4200];
    snprintf(p4, sizeof p4, "%s/badaug", base);
    cr_assert_eq(run_(extra, p4), 1);
    text = read_log_(p4);
    cr_assert(strstr(text, "aug.json") && strstr(text, "hflip"), "%s", text);
    free(text);
}

/* The file `name` of the step-S checkpoints of runs a and b holds the same bytes. */
static bool same_ckpt_file_(const char *a, const char *b, int step, const char *name) {
    char cmd[9200];
    snprintf(cmd, sizeof cmd, "cmp -s %s/checkpoints/step-%08d/%s %s/checkpoints/step-%08d/%s", a,
             step, name, b, step, name);
    return fx_system(cmd) == 0;
}

/* MoCo (--queue, --momentum): a run stopped while its queues are half full (2 steps of 64 keys
 * in a queue of 256) and resumed equals the straight run bit for bit: losses, parameters, and
 * the optimiser file that holds the queues, their groups and positions and the momentum copy;
 * the queue changes the run (keys beyond the batch). */
Test(train, moco_queue_resume_is_bit_exact) {
    char base[4096], a[4200], b[4200], p[4200];
    build_data_(fx_scratch("train_moco", base, a, "straight", b, "stopped", p, "plain", NULL));
    const char *q = "--queue 256 --momentum 0.9";
    char x[256];
    snprintf(x, sizeof x, "--steps 6 %s", q);
    cr_assert_eq(run_(x, a), 0);
    snprintf(x, sizeof x, "--steps 6 --stop-after 2 %s", q);
    cr_assert_eq(run_(x, b), 3);
    snprintf(x, sizeof x, "--steps 6 --resume latest %s", q);
    cr_assert_eq(run_(x, b), 0);
    expect_same_losses_(a, b, "MoCo: straight vs resumed mid-queue");
    cr_assert(same_ckpt_file_(a, b, 6, "model.safetensors"), "parameters differ");
    cr_assert(same_ckpt_file_(a, b, 6, "optim.safetensors"), "queues or momentum copy differ");
    char path[4400];
    snprintf(path, sizeof path, "grep -q loss.queue_b_groups %s/checkpoints/step-00000006/%s", a,
             "optim.safetensors");
    cr_assert_eq(fx_system(path), 0, "the queues are in the checkpoint");
    snprintf(path, sizeof path, "grep -q momentum.params %s/checkpoints/step-00000006/%s", a,
             "optim.safetensors");
    cr_assert_eq(fx_system(path), 0, "the momentum copy is in the checkpoint");
    /* the queue changes the run (the same caption groups as positives, without it) */
    cr_assert_eq(run_("--steps 6 --multi-positive", p), 0);
    char *lp = losses_(p), *la = losses_(a);
    cr_assert_str_neq(lp, la, "the queue had no effect");
    free(lp);
    free(la);
}

/* The trainer updates the momentum copy after each step: with m = 0 the keys follow the
 * parameters, with m = 0.99 they lag, so the runs' first losses agree and the next differ
 * (without the update both would keep the initial copy and log the same losses). */
Test(train, moco_momentum_copy_follows_the_steps) {
    char base[4096], a[4200], b[4200];
    build_data_(fx_scratch("train_moco_m", base, a, "m0", b, "m99", NULL));
    cr_assert_eq(run_("--steps 3 --queue 128 --momentum 0", a), 0);
    cr_assert_eq(run_("--steps 3 --queue 128 --momentum 0.99", b), 0);
    double la[3], lb[3];
    cr_assert_eq(fx_metrics_numbers(a, "train", "loss", la, 3), 3);
    cr_assert_eq(fx_metrics_numbers(b, "train", "loss", lb, 3), 3);
    cr_assert(la[0] == lb[0], "step 1: both copies are the initial parameters");
    cr_assert(la[1] != lb[1] && la[2] != lb[2], "the copies differ after a step");
}

/* Bad queue options are usage errors naming the flag (exit 2), before any training. */
Test(train, moco_bad_options_are_usage_errors) {
    char base[4096], a[4200];
    build_data_(fx_scratch("train_moco_bad", base, a, "run", NULL));
    static const char *const cases[][2] = {
        {"--queue 32", "--queue 32 is smaller than the global batch 64"},
        {"--queue 256 --momentum 1", "--momentum"},
        {"--queue 256 --momentum -0.5", "--momentum"},
        {"--momentum 0.9", "--momentum applies only with --queue"},
        {"--queue 256 --loss siglip", "--queue does not apply to --loss siglip"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char x[256];
        snprintf(x, sizeof x, "--steps 2 %s", cases[i][0]);
        cr_assert_eq(run_(x, a), 2, "%s", cases[i][0]);
        char *text = read_log_(a);
        cr_assert(strstr(text, cases[i][1]), "%s: %s", cases[i][0], text);
        free(text);
    }
}
