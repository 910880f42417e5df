/* test_moco.c: the symmetric two-queue MoCo loss (clasp_moco_sym, loss/queue.h) and the queue
 * options of the infonce registry entry (loss/moco.h): PyTorch parity with group masking,
 * central finite differences, rank parts that sum to the whole, masking and FIFO group ids,
 * the state tensors and the option checks. End-to-end runs are in test_train.c and test_mpi.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loss/moco.h"
#include "loss/queue.h"
#include "loss/registry.h"
#include "test_loss_lib.h"

typedef struct sym_ctx {
    float *A, *B, log_scale, *work;
    const float *KA, *KB;
    const clasp_queue *qa, *qb;
    const int *groups;
    size_t N, D;
} sym_ctx;

static double sym_eval(void *p) {
    sym_ctx *c = p;
    float loss;
    cr_assert_eq(clasp_moco_sym(&loss, NULL, NULL, NULL, c->A, c->B, c->KA, c->KB, c->qa, c->qb,
                                c->log_scale, c->groups, c->N, 0, c->N, c->D, c->work),
                 CLASP_OK);
    return (double)loss;
}

/* A queue of `rows` keys with their groups, filled through two enqueues (the FIFO path). */
static void fill_queue_(clasp_queue *q, const float *keys, const int *groups, size_t rows, size_t K,
                        size_t D) {
    cr_assert_eq(clasp_queue_init(q, K, D), CLASP_OK);
    cr_assert_eq(clasp_queue_enqueue_groups(q, keys, groups, 2), CLASP_OK);
    cr_assert_eq(clasp_queue_enqueue_groups(q, keys + 2 * D, groups + 2, rows - 2), CLASP_OK);
    cr_assert_eq(q->count, rows);
}

Test(moco, symmetric_two_queues_match_pytorch_and_finite_differences) {
    lt_ref r = lt_ref_open("loss/moco_sym.safetensors");
    const size_t N = lt_dim(&r, "A", 0), D = lt_dim(&r, "A", 1);
    const size_t Ka = lt_dim(&r, "QA", 0), Kb = lt_dim(&r, "QB", 0);
    int *g = lt_ints_opt(&r, "groups"), *ga = lt_ints_opt(&r, "qa_groups"),
        *gb = lt_ints_opt(&r, "qb_groups");
    clasp_queue qa, qb;
    fill_queue_(&qa, lt_f(&r, "QA"), ga, Ka, Ka, D);     /* full */
    fill_queue_(&qb, lt_f(&r, "QB"), gb, Kb, Kb + 3, D); /* partly filled: 3 empty slots */
    sym_ctx c = {lt_alloc(N * D),
                 lt_alloc(N * D),
                 lt_f(&r, "log_scale")[0],
                 NULL,
                 lt_f(&r, "KA"),
                 lt_f(&r, "KB"),
                 &qa,
                 &qb,
                 g,
                 N,
                 D};
    memcpy(c.A, lt_f(&r, "A"), N * D * sizeof(float));
    memcpy(c.B, lt_f(&r, "B"), N * D * sizeof(float));
    c.work = lt_alloc(clasp_moco_sym_work_floats(N, N, Kb + 3));
    float loss, ds, *dA = lt_alloc(N * D), *dB = lt_alloc(N * D);
    cr_assert_eq(clasp_moco_sym(&loss, dA, dB, &ds, c.A, c.B, c.KA, c.KB, &qa, &qb, c.log_scale, g,
                                N, 0, N, D, c.work),
                 CLASP_OK, "%s", clasp_last_error());
    cr_assert(clasp_test_check_tensor("loss", &loss, lt_f(&r, "loss"), 1, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dA", dA, lt_f(&r, "dA"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dB", dB, lt_f(&r, "dB"), N * D, 1e-6, 1e-4));
    cr_assert(clasp_test_check_tensor("dlog_scale", &ds, lt_f(&r, "dlog_scale"), 1, 1e-5, 1e-4));
    /* softer logits for finite differences */
    c.log_scale = 0.7f;
    cr_assert_eq(clasp_moco_sym(&loss, dA, dB, &ds, c.A, c.B, c.KA, c.KB, &qa, &qb, c.log_scale, g,
                                N, 0, N, D, c.work),
                 CLASP_OK);
    cr_assert(lt_fd_check("moco_sym dA", sym_eval, &c, c.A, dA, N * D, 1e-2));
    cr_assert(lt_fd_check("moco_sym dB", sym_eval, &c, c.B, dB, N * D, 1e-2));
    cr_assert(lt_fd_check("moco_sym dlog_scale", sym_eval, &c, &c.log_scale, &ds, 1, 1e-3));
    /* rank parts: rows 0..2 and 3..5 sum to the whole, each writing its own rows */
    float l0, l1, s0, s1, *pa = lt_alloc(N * D), *pb = lt_alloc(N * D);
    const size_t h = N / 2;
    cr_assert_eq(clasp_moco_sym(&l0, pa, pb, &s0, c.A, c.B, c.KA, c.KB, &qa, &qb, c.log_scale, g, h,
                                0, N, D, c.work),
                 CLASP_OK);
    cr_assert_eq(clasp_moco_sym(&l1, pa + h * D, pb + h * D, &s1, c.A + h * D, c.B + h * D, c.KA,
                                c.KB, &qa, &qb, c.log_scale, g, N - h, h, N, D, c.work),
                 CLASP_OK);
    cr_assert(fabsf(l0 + l1 - loss) < 1e-5f && fabsf(s0 + s1 - ds) < 1e-5f);
    cr_assert(clasp_test_check_tensor("rank parts dA", pa, dA, N * D, 1e-6, 1e-5));
    cr_assert(clasp_test_check_tensor("rank parts dB", pb, dB, N * D, 1e-6, 1e-5));
    clasp_queue_free(&qa), clasp_queue_free(&qb);
    free(c.A), free(c.B), free(c.work), free(dA), free(dB), free(pa), free(pb);
    free(g), free(ga), free(gb);
    lt_ref_close(&r);
}

/* Queued keys of the query's own group are dropped: a queue holding only such keys gives the
 * loss of an empty queue; without groups nothing is masked. */
Test(moco, queued_keys_of_the_query_group_are_dropped) {
    enum { N = 4, D = 3, K = 8 };
    float *A = lt_randn(N * D, 3, 0), *B = lt_randn(N * D, 3, 1), *KA = lt_randn(N * D, 3, 2),
          *KB = lt_randn(N * D, 3, 3), *Q = lt_randn(K * D, 3, 4);
    lt_normalize_rows(A, N, D), lt_normalize_rows(B, N, D), lt_normalize_rows(KA, N, D);
    lt_normalize_rows(KB, N, D), lt_normalize_rows(Q, K, D);
    const int groups[N] = {7, 7, 7, 7}, qgroups[K] = {7, 7, 7, 7, 7, 7, 7, 7};
    clasp_queue empty, full;
    cr_assert_eq(clasp_queue_init(&empty, K, D), CLASP_OK);
    cr_assert_eq(clasp_queue_init(&full, K, D), CLASP_OK);
    cr_assert_eq(clasp_queue_enqueue_groups(&full, Q, qgroups, K), CLASP_OK);
    float *work = lt_alloc(clasp_moco_sym_work_floats(N, N, K)), l_empty, l_masked, l_plain;
    float dA[N * D], dB[N * D], dA2[N * D];
    cr_assert_eq(clasp_moco_sym(&l_empty, dA, dB, NULL, A, B, KA, KB, &empty, &empty, 1.0f, groups,
                                N, 0, N, D, work),
                 CLASP_OK);
    cr_assert_eq(clasp_moco_sym(&l_masked, dA2, dB, NULL, A, B, KA, KB, &full, &full, 1.0f, groups,
                                N, 0, N, D, work),
                 CLASP_OK);
    cr_assert(fabsf(l_masked - l_empty) < 1e-6f, "%g vs %g", (double)l_masked, (double)l_empty);
    cr_assert(clasp_test_check_tensor("masked dA", dA2, dA, N * D, 1e-6, 1e-5));
    cr_assert_eq(clasp_moco_sym(&l_plain, dA2, dB, NULL, A, B, KA, KB, &full, &full, 1.0f, NULL, N,
                                0, N, D, work),
                 CLASP_OK);
    cr_assert(l_plain > l_masked + 0.1f, "without groups the queue adds negatives: %g vs %g",
              (double)l_plain, (double)l_masked);
    cr_assert_eq(clasp_moco_sym(&l_plain, dA2, dB, NULL, A, B, KA, KB, &full, &empty, 1.0f, groups,
                                N, 1, N, D, work),
                 CLASP_ERR_ARG, "rows beyond the global batch");
    clasp_queue_free(&empty), clasp_queue_free(&full);
    free(A), free(B), free(KA), free(KB), free(Q), free(work);
}

Test(moco, queue_keeps_the_groups_of_its_keys_in_fifo_order) {
    clasp_queue q;
    cr_assert_eq(clasp_queue_init(&q, 3, 1), CLASP_OK);
    for (size_t s = 0; s < 3; s++) cr_assert_eq(clasp_queue_group(&q, s), CLASP_QUEUE_NO_GROUP);
    const float k[5] = {1, 2, 3, 4, 5};
    const int g[5] = {10, 20, 30, 40, 50};
    cr_assert_eq(clasp_queue_enqueue_groups(&q, k, g, 2), CLASP_OK);
    cr_assert_eq(clasp_queue_enqueue(&q, k + 2, 1), CLASP_OK);       /* no group */
    cr_assert_eq(clasp_queue_enqueue_groups(&q, k, g, 5), CLASP_OK); /* the newest 3 survive */
    cr_assert(q.head == 0 && q.count == 3);
    for (size_t s = 0; s < 3; s++) {
        cr_assert_eq(q.keys[s], k[2 + s]);
        cr_assert_eq(clasp_queue_group(&q, s), g[2 + s]);
    }
    cr_assert_eq(clasp_queue_enqueue_groups(&q, k, g, 1), CLASP_OK);
    cr_assert(q.keys[0] == 1.0f && clasp_queue_group(&q, 0) == 10 && q.head == 1);
    clasp_queue_free(&q);
}

/* infonce's --queue / --momentum: checks naming the flag, needs, state and its tensors. */
Test(moco, infonce_queue_options_state_and_checks) {
    clasp_loss_config cfg = {0};
    cr_assert_eq(clasp_moco_check(&cfg, 64), CLASP_OK);
    cr_assert_eq(clasp_loss_config_needs(&cfg), 0u, "no queue: plain InfoNCE");
    cr_assert_eq(clasp_loss_config_set(&cfg, "momentum", "0.9"), CLASP_OK);
    cr_assert_eq(clasp_moco_check(&cfg, 64), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "--momentum"), "%s", clasp_last_error());
    cr_assert_eq(clasp_loss_config_set(&cfg, "momentum", "1"), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "--momentum"), "%s", clasp_last_error());
    cr_assert_eq(clasp_loss_config_set(&cfg, "momentum", "-0.1"), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_config_set(&cfg, "queue", "32"), CLASP_OK);
    cr_assert_eq(clasp_moco_check(&cfg, 64), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "--queue 32 is smaller than the global batch 64"), "%s",
              clasp_last_error());
    cr_assert_eq(clasp_loss_config_set(&cfg, "queue", "64.5"), CLASP_OK);
    cr_assert_eq(clasp_moco_check(&cfg, 64), CLASP_ERR_ARG);
    cr_assert_eq(clasp_loss_config_set(&cfg, "queue", "128"), CLASP_OK);
    cr_assert_eq(clasp_moco_check(&cfg, 64), CLASP_OK);
    cr_assert(clasp_loss_config_needs(&cfg) & CLASP_LOSS_NEEDS_MOMENTUM_KEYS);
    const clasp_loss_def *d = clasp_loss_config_def(&cfg);
    clasp_loss_setup s = {.n = 32, .N = 64, .D = 4, .world = 2, .cfg = &cfg};
    void *st = NULL;
    cr_assert_eq(d->state_init(&st, &s), CLASP_OK);
    cr_assert_not_null(st);
    cr_assert_geq(d->work_floats(&s), clasp_moco_sym_work_floats(32, 64, 128));
    clasp_loss_tensor t[8];
    cr_assert_eq(d->state_tensors(st, t, 8), 5);
    const char *names[5] = {"loss.queue_a", "loss.queue_b", "loss.queue_a_groups",
                            "loss.queue_b_groups", "loss.queue_pos"};
    for (int i = 0; i < 5; i++) cr_assert_str_eq(t[i].name, names[i]);
    cr_assert(t[0].shape[0] == 128 && t[0].shape[1] == 4 && t[4].shape[0] == 4);
    t[4].data[1] = 129.0f; /* a corrupt checkpoint's count: refused by the next step */
    float a[32 * 4] = {0}, da[32 * 4], db[32 * 4], dsc = 0, lscale = 0;
    float *work = lt_alloc(d->work_floats(&s));
    clasp_loss_batch in = {.a = a,
                           .b = a,
                           .a_all = a,
                           .b_all = a,
                           .ka_all = a,
                           .kb_all = a,
                           .n = 32,
                           .N = 64,
                           .D = 4,
                           .world = 2,
                           .scalars = &lscale,
                           .cfg = &cfg,
                           .state = st,
                           .work = work};
    clasp_loss_grads out = {.da = da, .db = db, .dscalars = &dsc};
    cr_assert_eq(d->compute(&in, &out), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "loss.queue_pos"), "%s", clasp_last_error());
    d->state_free(st);
    free(work);
}
