/* test_mpi.c: data-parallel training over MPI (train/dist.h, `mpirun -np N clasp train`):
 * the single-rank layer without mpirun; with a CLASP_MPI=ON build and mpirun: N ranks equal one
 * process (2 and 4 ranks), bit-exact resume of a 2-rank run after a rank was killed (the last
 * checkpoint stays valid), refusal to resume with another rank count, a hung rank that ends the
 * job through the collective timeout, and too few shards for the ranks.
 *
 * mpirun runs as `mpirun --allow-run-as-root --oversubscribe -np N` (the tests run as root on a
 * 2-core machine) under `timeout`, so a hang fails the test instead of blocking the suite. The
 * launcher comes from CLASP_MPIEXEC (set by tests/CMakeLists.txt), else "mpirun". */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "train/dist.h"
#include "fixtures.h"

/* ---- the layer in one process (every build) ------------------------------------------- */

Test(mpi, single_rank_layer_copies_and_keeps) {
    /* not started by mpirun: one rank, MPI or not */
    cr_assert_eq(clasp_dist_init(), CLASP_OK);
    cr_assert_eq(clasp_dist_rank(), 0);
    cr_assert_eq(clasp_dist_world(), 1);
    clasp_dist_reset_stats();
    float loc[3] = {1.5f, -2.0f, 3.25f}, all[3] = {0};
    cr_assert_eq(clasp_dist_allgather(all, loc, sizeof loc), CLASP_OK);
    cr_assert(!memcmp(all, loc, sizeof loc));
    float buf[2] = {0.5f, 7.0f};
    cr_assert_eq(clasp_dist_allreduce_sum_f32(buf, 2), CLASP_OK);
    cr_assert(buf[0] == 0.5f && buf[1] == 7.0f, "one rank: the sum is the input");
    double d = 2.5;
    cr_assert_eq(clasp_dist_allreduce_sum_f64(&d, 1), CLASP_OK);
    cr_assert(d == 2.5);
    int64_t flag = 3;
    cr_assert_eq(clasp_dist_allreduce_max_i64(&flag, 1), CLASP_OK);
    cr_assert_eq(flag, 3);
    float out[3] = {0};
    cr_assert_eq(clasp_dist_reduce_scatter_sum_f32(out, loc, 3), CLASP_OK);
    cr_assert(!memcmp(out, loc, sizeof loc));
    cr_assert_eq(clasp_dist_bcast(buf, sizeof buf, 0), CLASP_OK);
    cr_assert_eq(clasp_dist_bcast(buf, sizeof buf, 1), CLASP_ERR_ARG, "root 1 of 1 rank");
    cr_assert_eq(clasp_dist_barrier(), CLASP_OK);
    cr_assert_eq(clasp_dist_check_equal(42, "a value"), CLASP_OK);
    clasp_dist_stats st = clasp_dist_get_stats();
    cr_assert_eq(st.n_gather, 2, "allgather + broadcast (the refused one not counted): %lld",
                 (long long)st.n_gather);
    cr_assert_eq(st.gather_bytes, sizeof loc + sizeof buf);
    cr_assert_eq(st.n_reduce, 4);
    cr_assert_eq(st.reduce_bytes,
                 2 * sizeof(float) + sizeof(double) + sizeof(int64_t) + sizeof out);
    clasp_dist_finalize();
}

/* ---- mpirun end to end -------------------------------------------------------------------- */

static char g_data[4200];

static void need_mpi_(void) {
    if (!clasp_dist_compiled()) cr_skip_test("built without CLASP_MPI");
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
}

static const char *mpiexec_(void) {
    const char *m = getenv("CLASP_MPIEXEC");
    return m && *m ? m : "mpirun";
}

static void build_data_(const char *name) {
    char dir[4000];
    clasp_test_tmpdir(name, dir, sizeof dir);
    snprintf(g_data, sizeof g_data, "%s/fmnist", dir);
    cr_assert_eq(fx_fmnist_shards(g_data), 0, "building %s failed", g_data);
}

/* Runs clasp train with `np` ranks (0 = no mpirun) and the common fmnist-small options; the
 * output goes to OUT.log. `env` is prepended (e.g. "CLASP_FAULT_INJECT=die:1:5"). Returns the
 * exit status (124 from timeout = the job hung). */
static char g_model[4200]; /* --model; empty = configs/fmnist-small.json */

static int run_(int np, const char *env, const char *extra, const char *out) {
    char launcher[512] = "";
    if (np > 0)
        snprintf(launcher, sizeof launcher, "%s --allow-run-as-root --oversubscribe -np %d",
                 mpiexec_(), np);
    char cmd[16384], model[4300];
    if (g_model[0])
        snprintf(model, sizeof model, "%s", g_model);
    else
        snprintf(model, sizeof model, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    snprintf(cmd, sizeof cmd,
             "%s OPENBLAS_NUM_THREADS=1 timeout -k 10 240 %s %s train "
             "--model %s --train '%s/train-{000000..000004}.tar' "
             "--out %s --batch-size 64 --warmup 2 --lr 1e-4 --log-every 1 --no-progress --seed 5 "
             "--threads 1 %s >%s.log 2>&1",
             env ? env : "", launcher, clasp_test_bin(), model, g_data, out, extra, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Values of field `key` of the train lines of RUN/metrics.jsonl; returns their count. */
static int field_(const char *run, const char *key, double *v, int cap) {
    int n = fx_metrics_numbers(run, "train", key, v, cap);
    cr_assert_geq(n, 0, "%s/metrics.jsonl", run);
    return n;
}

static char *read_text_(const char *path) {
    char *t = (char *)fx_read(path, NULL);
    cr_assert_not_null(t, "%s", path);
    return t;
}

/* Checks that RUN.log, the output of the run writing to RUN, holds `needle`. */
static void expect_log_(const char *run, const char *needle) {
    char log[4300];
    snprintf(log, sizeof log, "%s.log", run);
    char *t = read_text_(log);
    cr_assert(strstr(t, needle), "%s", t);
    free(t);
}

/* Tolerance of N ranks vs one process. Both compute the same global-batch loss and gradient,
 * but the sums run in another order: one process sums one 64 x 64 softmax and the chunk
 * gradients; N ranks sum N row blocks of the loss, the reduce-scattered feature gradients and
 * the all-reduced parameter gradients. Each step therefore differs by a few fp32 roundings
 * (measured on this machine at --lr 1e-4: at most 2.4e-7 absolute on losses near 4, i.e. one
 * or two ulps); AdamW can amplify such differences along the run (at --lr 3e-4 they grew to
 * 1.6e-5 by step 20). 1e-4 relative is 6x that worst case, yet far below what a wrong
 * normalisation or a missing rank's rows causes (step 1 alone would differ by > 1e-2), and the
 * gradient norm, compared with the same tolerance, catches a gradient scaled by N (averaged
 * instead of summed), which AdamW's scale invariance would hide in the losses. */
#define EQUIV_RTOL 1e-4

static void expect_close_(const char *what, const double *a, const double *b, int n) {
    for (int i = 0; i < n; i++) {
        double tol = EQUIV_RTOL * fmax(1.0, fabs(a[i]));
        cr_expect(fabs(a[i] - b[i]) <= tol,
                  "%s at step %d: one process %.9g, ranks %.9g (diff %.3g > %.3g)", what, i + 1,
                  a[i], b[i], fabs(a[i] - b[i]), tol);
    }
}

static void equivalence_(int np, int steps, const char *opts) {
    need_mpi_();
    char name[64], base[4096], a[4200], b[4200], extra[512];
    snprintf(name, sizeof name, "mpi_equiv%d%s", np, opts[0] ? "x" : "");
    build_data_(name);
    snprintf(name, sizeof name, "mpi_equiv%d%s_runs", np, opts[0] ? "x" : "");
    clasp_test_tmpdir(name, base, sizeof base);
    snprintf(a, sizeof a, "%s/one", base);
    snprintf(b, sizeof b, "%s/ranks", base);
    snprintf(extra, sizeof extra, "--steps %d %s", steps, opts);
    cr_assert_eq(run_(0, NULL, extra, a), 0, "one process failed: see %s.log", a);
    /* global batch 64 = np x 64/np rows; every rank checks the parameter hash every step */
    snprintf(extra, sizeof extra, "--steps %d --data-split samples --check-every 1 %s", steps,
             opts);
    cr_assert_eq(run_(np, NULL, extra, b), 0, "%d ranks failed: see %s.log", np, b);
    double la[64], lb[64], ga[64], gb[64];
    int na = field_(a, "loss", la, 64), nb = field_(b, "loss", lb, 64);
    cr_assert_eq(na, steps);
    cr_assert_eq(nb, steps, "rank 0 alone writes metrics: %d lines", nb);
    cr_assert(lb[steps - 1] < lb[0] - 0.1, "the run does not learn: %g -> %g", lb[0],
              lb[steps - 1]);
    expect_close_("loss", la, lb, steps);
    cr_assert_eq(field_(a, "grad_norm", ga, 64), steps);
    cr_assert_eq(field_(b, "grad_norm", gb, 64), steps);
    expect_close_("grad_norm", ga, gb, steps);
}

Test(mpi, two_ranks_equal_one_process) {
    equivalence_(2, 20, "");
}

Test(mpi, four_ranks_equal_one_process) {
    equivalence_(4, 10, "");
}

/* SigLIP (local images vs gathered texts, text-gradient reduce-scatter, bias gradient) with
 * multi-positive groups (caption hashes all-gathered, dense ids over the global batch). */
Test(mpi, two_ranks_equal_one_process_siglip_multi_positive) {
    need_mpi_();
    char dir[4000];
    clasp_test_tmpdir("mpi_siglip_cfg", dir, sizeof dir);
    snprintf(g_model, sizeof g_model, "%s/fmnist-siglip.json", dir);
    char src[4200];
    snprintf(src, sizeof src, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    char *text = read_text_(src);
    char *brace = strchr(text, '{');
    cr_assert_not_null(brace);
    char *cfg = malloc(strlen(brace) + 64);
    sprintf(cfg, "{\"init_logit_bias\": -10.0,%s", brace + 1);
    cr_assert(fx_write_str(g_model, cfg), "%s", g_model);
    free(cfg);
    free(text);
    equivalence_(2, 8, "--loss siglip --multi-positive");
}

/* The losses of issue 14 (loss/registry.h): the replicated recipe (supcon, triplet, ntxent:
 * every rank computes the global loss on the gathered rows and keeps its rows' gradients, the
 * loss reported by rank 0), margin's natural split (local rows against all, text-gradient
 * reduce-scatter), the labels all-gathered as group ids, and InfoNCE with hard negatives and a
 * scheduled temperature. A few steps each. */
Test(mpi, two_ranks_equal_one_process_supcon) {
    equivalence_(2, 5, "--loss supcon");
}

Test(mpi, two_ranks_equal_one_process_triplet) {
    equivalence_(2, 5, "--loss triplet --mining batch-all --distance euclidean");
}

Test(mpi, two_ranks_equal_one_process_ntxent) {
    equivalence_(2, 5, "--loss ntxent --temperature 0.2");
}

Test(mpi, two_ranks_equal_one_process_margin) {
    equivalence_(2, 5, "--loss margin --margin 2 --lr 3e-4"); /* learns by > 0.1 in 5 steps */
}

Test(mpi, two_ranks_equal_one_process_hard_negatives) {
    equivalence_(2, 5, "--hard-negatives 1 --tau-plus 0.1 --temperature-schedule cosine:0.1:0.05");
}

/* Per-tower optimiser settings: every rank applies the same parameter groups. */
Test(mpi, two_ranks_equal_one_process_tower_settings) {
    equivalence_(2, 8, "--lr-scale image=0.5,shared=2 --tower-wd text=0.01");
}

/* MoCo (infonce --queue): keys of both sides from the momentum copy, all-gathered before every
 * rank enqueues them with their caption groups, so the ranks' queues hold the global batch's
 * keys in one order. A queue of 128 fills in two steps and wraps at step 3; two ranks log the
 * losses and gradient norms of one process (a rank enqueueing only its own keys would not).
 * No learning check: the loss rises while the queue fills. */
Test(mpi, two_ranks_equal_one_process_moco_queue) {
    need_mpi_();
    char base[4096], a[4200], b[4200];
    build_data_("mpi_moco");
    clasp_test_tmpdir("mpi_moco_runs", base, sizeof base);
    snprintf(a, sizeof a, "%s/one", base);
    snprintf(b, sizeof b, "%s/ranks", base);
    const char *q = "--steps 5 --queue 128 --momentum 0.9";
    char extra[512];
    snprintf(extra, sizeof extra, "%s", q);
    cr_assert_eq(run_(0, NULL, extra, a), 0, "one process failed: see %s.log", a);
    snprintf(extra, sizeof extra, "%s --data-split samples --check-every 1", q);
    cr_assert_eq(run_(2, NULL, extra, b), 0, "2 ranks failed: see %s.log", b);
    double la[8], lb[8], ga[8], gb[8];
    cr_assert_eq(field_(a, "loss", la, 8), 5);
    cr_assert_eq(field_(b, "loss", lb, 8), 5);
    expect_close_("loss", la, lb, 5);
    cr_assert_eq(field_(a, "grad_norm", ga, 8), 5);
    cr_assert_eq(field_(b, "grad_norm", gb, 8), 5);
    expect_close_("grad_norm", ga, gb, 5);
}

/* --positives both: captions and labels all-gathered, groups over the global batch. */
Test(mpi, two_ranks_equal_one_process_caption_or_label_positives) {
    equivalence_(2, 8, "--positives both");
}

/* SimCLR: two augmented views per sample on each rank's rows (views keyed by sample, not rank). */
Test(mpi, two_ranks_equal_one_process_two_views) {
    equivalence_(2, 8, "--pair image-image --loss ntxent");
}

Test(mpi, killed_rank_stops_job_and_last_checkpoint_resumes_exactly) {
    need_mpi_();
    build_data_("mpi_kill");
    char base[4096], a[4200], b[4200];
    fx_scratch("mpi_kill_runs", base, a, "straight", b, "killed", NULL);
    const char *opts = "--steps 8 --save-every 2 --check-every 2";
    cr_assert_eq(run_(2, NULL, opts, a), 0, "see %s.log", a);
    /* rank 1 SIGKILLs itself after step 5: mpirun must end the job (not hang: timeout = 124) */
    int rc = run_(2, "CLASP_FAULT_INJECT=die:1:5", opts, b);
    cr_assert(rc != 0 && rc != 124, "killed job: exit %d (124 = hung; see %s.log)", rc, b);
    expect_log_(b, "fault injection: SIGKILL after step 5");
    /* the last checkpoint is step 4 and resumes with 2 ranks to the straight run's losses */
    char ck[4400];
    snprintf(ck, sizeof ck, "%s/checkpoints/step-00000004/state.json", b);
    char *state = (char *)fx_read(ck, NULL);
    cr_assert_not_null(state, "no step-4 checkpoint");
    const char *w = strstr(state, "\"world\":");
    cr_assert(w && strtol(w + 8, NULL, 10) == 2 && strstr(state, "\"loaders\":"), "%s", state);
    free(state);
    /* one process cannot resume a 2-rank checkpoint */
    cr_assert_eq(run_(0, NULL, "--steps 8 --save-every 2 --resume latest", b), 1);
    expect_log_(b, "written by 2 rank(s), this run has 1");
    cr_assert_eq(run_(2, NULL, "--steps 8 --save-every 2 --check-every 2 --resume latest", b), 0,
                 "resume failed: see %s.log", b);
    double la[16], lb[16];
    int na = field_(a, "loss", la, 16), nb = field_(b, "loss", lb, 16);
    cr_assert_eq(na, 8);
    cr_assert_eq(nb, 8);
    for (int i = 0; i < 8; i++)
        cr_expect(la[i] == lb[i], "step %d: straight %.17g, killed + resumed %.17g", i + 1, la[i],
                  lb[i]);
}

Test(mpi, hung_rank_ends_job_after_timeout) {
    need_mpi_();
    build_data_("mpi_hang");
    char base[4096], a[4200];
    fx_scratch("mpi_hang_runs", base, a, "hung", NULL);
    /* rank 1 stops answering after step 3; rank 0 waits 5 s in its next collective, then the
     * job is aborted (the hung rank included) */
    int rc =
        run_(2, "CLASP_FAULT_INJECT=hang:1:3", "--steps 10 --save-every 2 --dist-timeout 5", a);
    cr_assert(rc != 0 && rc != 124, "hung job: exit %d (124 = nobody noticed; see %s.log)", rc, a);
    expect_log_(a, "no answer from the other ranks for 5 s");
    char ck[4400];
    snprintf(ck, sizeof ck, "%s/checkpoints/step-00000002/model.safetensors", a);
    cr_assert_eq(access(ck, F_OK), 0, "the step-2 checkpoint is missing");
}

Test(mpi, fewer_shards_than_ranks_is_a_named_error) {
    need_mpi_();
    build_data_("mpi_shards");
    char base[4096], a[4200], cmd[16384];
    fx_scratch("mpi_shards_runs", base, a, "run", NULL);
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 timeout -k 10 120 %s --allow-run-as-root --oversubscribe "
             "-np 2 %s train --model %s/configs/fmnist-small.json --train %s/train-000000.tar "
             "--out %s --batch-size 64 --steps 2 --threads 1 --no-progress >%s.log 2>&1",
             mpiexec_(), clasp_test_bin(), CLASP_SOURCE_DIR, g_data, a, a);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0 && WEXITSTATUS(rc) != 124, "exit %d",
              WEXITSTATUS(rc));
    expect_log_(a, "error on rank");
    expect_log_(a, "shard");
}
