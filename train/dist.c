/* dist.c: the MPI layer of data-parallel training (see dist.h): init/finalize/abort,
 * rank/world, all-gather, all-reduce, reduce-scatter, broadcast, barrier and an equality check,
 * with MPI_ERRORS_RETURN and optional timeouts by polling non-blocking collectives. Without
 * CLASP_HAVE_MPI it is the single-rank implementation. */
#include "train/dist.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef CLASP_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_world = 1;
static bool g_inited;
static double g_timeout;
static clasp_dist_stats g_stats;

static double now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool clasp_dist_compiled(void) {
#ifdef CLASP_HAVE_MPI
    return true;
#else
    return false;
#endif
}

int clasp_dist_rank(void) {
    return g_rank;
}

int clasp_dist_world(void) {
    return g_world;
}

void clasp_dist_set_timeout(double seconds) {
    g_timeout = seconds > 0 ? seconds : 0;
}

double clasp_dist_timeout(void) {
    return g_timeout;
}

clasp_dist_stats clasp_dist_get_stats(void) {
    return g_stats;
}

void clasp_dist_reset_stats(void) {
    memset(&g_stats, 0, sizeof g_stats);
}

static void count_(bool gather, double t0, size_t nbytes) {
    double dt = now_() - t0;
    if (gather) {
        g_stats.gather_s += dt;
        g_stats.gather_bytes += nbytes;
        g_stats.n_gather++;
    } else {
        g_stats.reduce_s += dt;
        g_stats.reduce_bytes += nbytes;
        g_stats.n_reduce++;
    }
}

#ifdef CLASP_HAVE_MPI

static MPI_Comm g_comm = MPI_COMM_NULL; /* a duplicate of MPI_COMM_WORLD, errors returned */
static bool g_started;                  /* this layer called MPI_Init */

static clasp_status mpi_error_(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return clasp_set_error(CLASP_ERR_IO, "MPI %s failed on rank %d of %d: %s (error %d)", what,
                           g_rank, g_world, len ? msg : "unknown error", rc);
}

static bool launched_by_mpi_(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

clasp_status clasp_dist_init(void) {
    if (g_inited) return CLASP_OK;
    g_inited = true;
    int flag = 0;
    MPI_Initialized(&flag);
    if (!flag && !launched_by_mpi_()) return CLASP_OK; /* plain process: one rank, no MPI */
    if (!flag) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS)
            return clasp_set_error(CLASP_ERR_IO, "MPI_Init_thread failed (%d)", rc);
        g_started = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
    if (rc != MPI_SUCCESS) return mpi_error_(rc, "Comm_dup");
    MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g_comm, &g_rank);
    MPI_Comm_size(g_comm, &g_world);
    return CLASP_OK;
}

void clasp_dist_finalize(void) {
    if (g_comm != MPI_COMM_NULL) MPI_Comm_free(&g_comm);
    g_comm = MPI_COMM_NULL;
    if (g_started) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Finalize();
    }
    g_started = false;
    g_inited = false;
    g_rank = 0;
    g_world = 1;
}

void clasp_dist_abort(int code) {
    if (g_world > 1) MPI_Abort(g_comm != MPI_COMM_NULL ? g_comm : MPI_COMM_WORLD, code);
}

/* Waits for a started non-blocking collective: polls MPI_Test (which also drives OpenMPI's
 * progress engine), sleeping progressively longer (up to 0.5 ms) so a rank that waits does not
 * steal a core from one that computes. */
static clasp_status wait_(MPI_Request *rq, const char *what) {
    double t0 = now_();
    long sleep_ns = 2000;
    for (unsigned spins = 0;; spins++) {
        int done = 0;
        int rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_error_(rc, what);
        if (done) return CLASP_OK;
        if (now_() - t0 > g_timeout)
            return clasp_set_error(CLASP_ERR_IO,
                                   "MPI %s on rank %d of %d: no answer from the other ranks for "
                                   "%.0f s (a rank died or hangs; see --dist-timeout)",
                                   what, g_rank, g_world, g_timeout);
        if (spins >= 64) {
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
            if (sleep_ns < 500000) sleep_ns *= 2;
        }
    }
}

static clasp_status check_count_(size_t n, const char *what) {
    if (n > (size_t)INT_MAX)
        return clasp_set_error(CLASP_ERR_OVERFLOW,
                               "MPI %s of %zu elements exceeds the MPI count limit %d", what, n,
                               INT_MAX);
    return CLASP_OK;
}

/* Runs a blocking call, or starts the non-blocking one and waits with the timeout. */
#define DIST_RUN(what, blocking, nonblocking)                                                      \
    do {                                                                                           \
        int rc_;                                                                                   \
        if (g_timeout > 0) {                                                                       \
            MPI_Request rq_;                                                                       \
            rc_ = nonblocking;                                                                     \
            if (rc_ != MPI_SUCCESS) return mpi_error_(rc_, what);                                  \
            CLASP_TRY(wait_(&rq_, what));                                                          \
        } else {                                                                                   \
            rc_ = blocking;                                                                        \
            if (rc_ != MPI_SUCCESS) return mpi_error_(rc_, what);                                  \
        }                                                                                          \
    } while (0)

clasp_status clasp_dist_allgather(void *all, const void *local, size_t nbytes) {
    double t0 = now_();
    if (g_world == 1) {
        memmove(all, local, nbytes);
    } else {
        CLASP_TRY(check_count_(nbytes, "Allgather"));
        int n = (int)nbytes;
        DIST_RUN("Allgather", MPI_Allgather(local, n, MPI_BYTE, all, n, MPI_BYTE, g_comm),
                 MPI_Iallgather(local, n, MPI_BYTE, all, n, MPI_BYTE, g_comm, &rq_));
    }
    count_(true, t0, nbytes);
    return CLASP_OK;
}

static clasp_status allreduce_(void *buf, size_t n, MPI_Datatype type, MPI_Op op, size_t esize,
                               const char *what) {
    double t0 = now_();
    if (g_world > 1) {
        CLASP_TRY(check_count_(n, what));
        int c = (int)n;
        DIST_RUN(what, MPI_Allreduce(MPI_IN_PLACE, buf, c, type, op, g_comm),
                 MPI_Iallreduce(MPI_IN_PLACE, buf, c, type, op, g_comm, &rq_));
    }
    count_(false, t0, n * esize);
    return CLASP_OK;
}

clasp_status clasp_dist_allreduce_sum_f32(float *buf, size_t n) {
    return allreduce_(buf, n, MPI_FLOAT, MPI_SUM, sizeof(float), "Allreduce(float, sum)");
}

clasp_status clasp_dist_allreduce_sum_f64(double *buf, size_t n) {
    return allreduce_(buf, n, MPI_DOUBLE, MPI_SUM, sizeof(double), "Allreduce(double, sum)");
}

clasp_status clasp_dist_allreduce_max_i64(int64_t *buf, size_t n) {
    return allreduce_(buf, n, MPI_INT64_T, MPI_MAX, sizeof(int64_t), "Allreduce(int64, max)");
}

clasp_status clasp_dist_reduce_scatter_sum_f32(float *out, const float *in, size_t n) {
    double t0 = now_();
    if (g_world == 1) {
        memmove(out, in, n * sizeof(float));
    } else {
        CLASP_TRY(check_count_(n, "Reduce_scatter_block"));
        int c = (int)n;
        DIST_RUN("Reduce_scatter_block",
                 MPI_Reduce_scatter_block(in, out, c, MPI_FLOAT, MPI_SUM, g_comm),
                 MPI_Ireduce_scatter_block(in, out, c, MPI_FLOAT, MPI_SUM, g_comm, &rq_));
    }
    count_(false, t0, n * (size_t)g_world * sizeof(float));
    return CLASP_OK;
}

clasp_status clasp_dist_bcast(void *buf, size_t nbytes, int root) {
    if (root < 0 || root >= g_world)
        return clasp_set_error(CLASP_ERR_ARG, "MPI Bcast: root %d outside 0..%d", root,
                               g_world - 1);
    double t0 = now_();
    if (g_world > 1) {
        /* in pieces below INT_MAX bytes: parameter blocks of large models can exceed it */
        const size_t piece = (size_t)1 << 30;
        for (size_t at = 0; at < nbytes; at += piece) {
            int c = (int)(nbytes - at < piece ? nbytes - at : piece);
            char *p = (char *)buf + at;
            DIST_RUN("Bcast", MPI_Bcast(p, c, MPI_BYTE, root, g_comm),
                     MPI_Ibcast(p, c, MPI_BYTE, root, g_comm, &rq_));
        }
    }
    count_(true, t0, nbytes);
    return CLASP_OK;
}

clasp_status clasp_dist_barrier(void) {
    if (g_world > 1) DIST_RUN("Barrier", MPI_Barrier(g_comm), MPI_Ibarrier(g_comm, &rq_));
    return CLASP_OK;
}

#else /* ---- single rank, no MPI ---------------------------------------------------------- */

clasp_status clasp_dist_init(void) {
    g_inited = true;
    return CLASP_OK;
}

void clasp_dist_finalize(void) {
    g_inited = false;
}

void clasp_dist_abort(int code) {
    (void)code;
}

clasp_status clasp_dist_allgather(void *all, const void *local, size_t nbytes) {
    double t0 = now_();
    memmove(all, local, nbytes);
    count_(true, t0, nbytes);
    return CLASP_OK;
}

clasp_status clasp_dist_allreduce_sum_f32(float *buf, size_t n) {
    (void)buf;
    count_(false, now_(), n * sizeof(float));
    return CLASP_OK;
}

clasp_status clasp_dist_allreduce_sum_f64(double *buf, size_t n) {
    (void)buf;
    count_(false, now_(), n * sizeof(double));
    return CLASP_OK;
}

clasp_status clasp_dist_allreduce_max_i64(int64_t *buf, size_t n) {
    (void)buf;
    count_(false, now_(), n * sizeof(int64_t));
    return CLASP_OK;
}

clasp_status clasp_dist_reduce_scatter_sum_f32(float *out, const float *in, size_t n) {
    double t0 = now_();
    memmove(out, in, n * sizeof(float));
    count_(false, t0, n * sizeof(float));
    return CLASP_OK;
}

clasp_status clasp_dist_bcast(void *buf, size_t nbytes, int root) {
    (void)buf;
    if (root != 0) return clasp_set_error(CLASP_ERR_ARG, "broadcast: root %d outside 0..0", root);
    count_(true, now_(), nbytes);
    return CLASP_OK;
}

clasp_status clasp_dist_barrier(void) {
    return CLASP_OK;
}

#endif

clasp_status clasp_dist_check_equal(uint64_t value, const char *what) {
    if (g_world == 1) return CLASP_OK;
    uint64_t *all = malloc((size_t)g_world * sizeof *all);
    if (!all) return clasp_set_error(CLASP_ERR_NOMEM, "dist: out of memory");
    clasp_status s = clasp_dist_allgather(all, &value, sizeof value);
    for (int r = 1; s == CLASP_OK && r < g_world; r++)
        if (all[r] != all[0])
            s = clasp_set_error(CLASP_ERR_STATE,
                                "ranks disagree on %s: rank 0 has %016" PRIx64
                                ", rank %d has %016" PRIx64,
                                what, all[0], r, all[r]);
    free(all);
    return s;
}
