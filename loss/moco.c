/* moco.c: the queue options of the infonce registry entry (see moco.h). */
#include "loss/moco.h"

#include <math.h>
#include <stdlib.h>

#include "loss/infonce.h"
#include "loss/internal.h"
#include "loss/queue.h"

typedef struct moco_state {
    clasp_queue qa, qb; /* past keys of the a side (negatives of b queries), of the b side */
    float pos[4];       /* head_a, count_a, head_b, count_b: the queues' positions as saved */
} moco_state;

/* The --queue value (0 without a queue). */
static double queue_option_(const clasp_loss_config *cfg) {
    const clasp_loss_def *d = clasp_loss_config_def(cfg);
    int i = clasp_loss_option_index(d, "queue");
    return i >= 0 ? clasp_loss_config_get(cfg, i) : 0.0;
}

unsigned clasp_moco_needs(const clasp_loss_config *cfg) {
    /* with a queue, one tower may pair with itself (two views: MoCo's unimodal form) */
    return queue_option_(cfg) > 0
               ? (unsigned)(CLASP_LOSS_NEEDS_MOMENTUM_KEYS | CLASP_LOSS_NEEDS_TWO_VIEWS)
               : 0u;
}

size_t clasp_moco_infonce_work_floats(const clasp_loss_setup *s) {
    size_t plain = clasp_infonce_batch_work_floats(s);
    double K = queue_option_(s->cfg);
    if (!(K > 0)) return plain;
    size_t moco = clasp_moco_sym_work_floats(s->n, s->N, (size_t)K);
    if (plain == 0 || moco == 0) return 0;
    return plain > moco ? plain : moco;
}

clasp_status clasp_moco_check(const clasp_loss_config *cfg, size_t N) {
    const clasp_loss_def *d = clasp_loss_config_def(cfg);
    double K = queue_option_(cfg);
    int mi = clasp_loss_option_index(d, "momentum");
    if (!(K > 0)) {
        if (mi >= 0 && cfg && (cfg->set >> mi & 1u))
            return clasp_set_error(CLASP_ERR_ARG, "--momentum applies only with --queue N > 0");
        return CLASP_OK;
    }
    float beta, tau_plus;
    if (clasp__loss_hardneg_options(cfg, &beta, &tau_plus))
        return clasp_set_error(CLASP_ERR_ARG,
                               "--hard-negatives/--tau-plus do not combine with --queue (the "
                               "queue's MoCo loss has no hard-negative form here)");
    if (K != floor(K))
        return clasp_set_error(CLASP_ERR_ARG, "--queue: %g is not a whole number of keys", K);
    if (K < (double)N)
        return clasp_set_error(CLASP_ERR_ARG,
                               "--queue %g is smaller than the global batch %zu (each step "
                               "enqueues the batch's keys)",
                               K, N);
    return CLASP_OK;
}

clasp_status clasp_moco_state_init(void **state, const clasp_loss_setup *s) {
    *state = NULL;
    CLASP_TRY(clasp_moco_check(s->cfg, s->N));
    double K = queue_option_(s->cfg);
    if (!(K > 0)) return CLASP_OK;
    moco_state *m = calloc(1, sizeof *m);
    if (!m) return clasp_set_error(CLASP_ERR_NOMEM, "moco: out of memory");
    clasp_status st = clasp_queue_init(&m->qa, (size_t)K, s->D);
    if (st == CLASP_OK) st = clasp_queue_init(&m->qb, (size_t)K, s->D);
    if (st != CLASP_OK) {
        clasp_moco_state_free(m);
        return st;
    }
    *state = m;
    return CLASP_OK;
}

void clasp_moco_state_free(void *state) {
    moco_state *m = state;
    if (!m) return;
    clasp_queue_free(&m->qa);
    clasp_queue_free(&m->qb);
    free(m);
}

int clasp_moco_state_tensors(void *state, clasp_loss_tensor *out, int max) {
    moco_state *m = state;
    if (!m || max < 5) return 0;
    const int64_t K = (int64_t)m->qa.K, D = (int64_t)m->qa.D;
    out[0] = (clasp_loss_tensor){"loss.queue_a", 2, {K, D}, m->qa.keys};
    out[1] = (clasp_loss_tensor){"loss.queue_b", 2, {K, D}, m->qb.keys};
    out[2] = (clasp_loss_tensor){"loss.queue_a_groups", 1, {K}, m->qa.gbits};
    out[3] = (clasp_loss_tensor){"loss.queue_b_groups", 1, {K}, m->qb.gbits};
    out[4] = (clasp_loss_tensor){"loss.queue_pos", 1, {4}, m->pos};
    return 5;
}

/* The queues' head and count from pos (restored by a checkpoint), checked. */
static clasp_status load_pos_(moco_state *m) {
    clasp_queue *q[2] = {&m->qa, &m->qb};
    for (int k = 0; k < 2; k++) {
        float h = m->pos[2 * k], c = m->pos[2 * k + 1];
        if (!(h >= 0 && h < (float)q[k]->K && c >= 0 && c <= (float)q[k]->K && h == floorf(h) &&
              c == floorf(c)))
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "loss.queue_pos: head %g / count %g outside the queue of %zu",
                                   (double)h, (double)c, q[k]->K);
        q[k]->head = (size_t)h;
        q[k]->count = (size_t)c;
    }
    return CLASP_OK;
}

clasp_status clasp_moco_infonce_batch(const clasp_loss_batch *in, clasp_loss_grads *out) {
    moco_state *m = in->state;
    if (!m) return clasp_infonce_batch(in, out);
    if (!in->ka_all || !in->kb_all)
        return clasp_set_error(CLASP_ERR_ARG, "infonce --queue: no momentum keys from the engine");
    CLASP_TRY(load_pos_(m));
    bool learnable;
    const float s = clasp_loss_log_scale(in, &learnable); /* fixed or scheduled temperature */
    CLASP_TRY(clasp_moco_sym(&out->loss, out->da, out->db, &out->dscalars[0], in->a, in->b,
                             in->ka_all, in->kb_all, &m->qa, &m->qb, s, in->groups, in->n,
                             in->offset, in->N, in->D, in->work));
    if (!learnable) out->dscalars[0] = 0.0f;
    out->wrote = CLASP_LOSS_WROTE_A | CLASP_LOSS_WROTE_B;
    CLASP_TRY(clasp_queue_enqueue_groups(&m->qa, in->ka_all, in->groups, in->N));
    CLASP_TRY(clasp_queue_enqueue_groups(&m->qb, in->kb_all, in->groups, in->N));
    m->pos[0] = (float)m->qa.head, m->pos[1] = (float)m->qa.count;
    m->pos[2] = (float)m->qb.head, m->pos[3] = (float)m->qb.count;
    return CLASP_OK;
}
