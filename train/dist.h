/* dist.h: the process layer of data-parallel training: MPI (OpenMPI) when clasp is built with
 * -DCLASP_MPI=ON and started by mpirun, one rank otherwise.
 *
 * Everything MPI lives in dist.c; the rest of clasp calls these functions and never includes
 * <mpi.h>. In a build without MPI (the default) or a process not started by mpirun, the layer
 * is a single rank: rank 0 of 1, gathers and broadcasts copy, reductions return their input.
 *
 * Lifecycle (the program's main thread only; other threads never call in):
 *
 *     clasp_dist_init();                    // MPI_Init_thread(FUNNELED) when under mpirun
 *     ... clasp_dist_rank(), clasp_dist_world(), collectives ...
 *     clasp_dist_finalize();                // or, after an error on any rank:
 *     clasp_dist_abort(1);                  //   MPI_Abort: mpirun stops every rank
 *
 * Failures and timeouts. The communicator returns errors (MPI_ERRORS_RETURN) instead of
 * aborting inside MPI, so a failed collective becomes a clasp_status with MPI's message. With
 * a timeout set (clasp_dist_set_timeout, seconds > 0) every collective is started non-blocking
 * and polled until done or until the timeout passes: then it returns CLASP_ERR_IO ("no answer
 * from the other ranks") and the caller aborts the job. A collective cannot be cancelled, so
 * after such an error the only valid calls are clasp_dist_abort / exit. When a rank process
 * dies, OpenMPI's mpirun itself notices and kills the other ranks (SIGTERM, then SIGKILL) and
 * exits non-zero ("mpirun noticed that process rank 1 ... exited on signal 9"); the timeout
 * covers what mpirun cannot see: a rank that stays alive but stops taking part (a hang, a
 * stuck filesystem). With timeout 0 the blocking collectives are used (OpenMPI's tuned
 * algorithms, no polling): a hang then waits forever.
 *
 * Determinism: collectives run in OpenMPI's fixed algorithm for a given world size and
 * message size, and floating-point addition is commutative, so every rank receives the same
 * bits from a sum (the trainer checks it with clasp_dist_check_equal on a parameter hash).
 * Counts above INT_MAX elements are refused with CLASP_ERR_OVERFLOW.
 */
#ifndef CLASP_TRAIN_DIST_H
#define CLASP_TRAIN_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* True when this binary was built with MPI (CLASP_MPI=ON). */
bool clasp_dist_compiled(void);

/* Starts MPI when the process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE
 * or PMIX_RANK in the environment) and the build has MPI; otherwise a single rank. Idempotent.
 * Returns CLASP_ERR_IO with MPI's message when MPI_Init fails. */
clasp_status clasp_dist_init(void);

/* Finalizes MPI if clasp_dist_init started it. Call on every rank after the last collective. */
void clasp_dist_finalize(void);

/* Ends the whole job after an error on this rank: MPI_Abort(code) when world > 1 (mpirun then
 * kills every rank and exits non-zero); does nothing with one rank (the caller then returns
 * its error as usual). */
void clasp_dist_abort(int code);

int clasp_dist_rank(void);  /* 0 .. world-1 */
int clasp_dist_world(void); /* >= 1 */

/* Seconds a collective may wait for the other ranks before it fails (0 = no limit, blocking
 * MPI calls). Default 0 until set; clasp train sets --dist-timeout (default 600 s). */
void clasp_dist_set_timeout(double seconds);
double clasp_dist_timeout(void);

/* Time and volume spent in collectives since the last reset: all-gathers (incl. broadcast)
 * and reductions (all-reduce, reduce-scatter), wall seconds on this rank (waiting for slower
 * ranks included) and bytes this rank contributed. */
typedef struct clasp_dist_stats {
    double gather_s, reduce_s;
    uint64_t gather_bytes, reduce_bytes;
    int64_t n_gather, n_reduce;
} clasp_dist_stats;
clasp_dist_stats clasp_dist_get_stats(void);
void clasp_dist_reset_stats(void);

/* All-gather of equal-sized blocks: rank r's `nbytes` bytes of `local` land at
 * all + r * nbytes on every rank. all holds world * nbytes bytes; local must not overlap it. */
clasp_status clasp_dist_allgather(void *all, const void *local, size_t nbytes);

/* In-place element-wise sums over ranks: buf (n) on every rank becomes the sum of all ranks'
 * buf. f32 for gradients, f64 for scalars (loss parts). */
clasp_status clasp_dist_allreduce_sum_f32(float *buf, size_t n);
clasp_status clasp_dist_allreduce_sum_f64(double *buf, size_t n);
/* In-place element-wise maximum over ranks (agreeing on flags: stop, error). */
clasp_status clasp_dist_allreduce_max_i64(int64_t *buf, size_t n);

/* Reduce-scatter of a sum: in (world * n) on every rank; out (n) on rank r receives the sum over
 * ranks of in[r*n .. r*n + n). in and out must not overlap. */
clasp_status clasp_dist_reduce_scatter_sum_f32(float *out, const float *in, size_t n);

/* Broadcast of nbytes from rank `root` to every rank. */
clasp_status clasp_dist_bcast(void *buf, size_t nbytes, int root);

/* Every rank waits for the others. */
clasp_status clasp_dist_barrier(void);

/* Checks that every rank passes the same value (e.g. a hash of the parameters); on a
 * difference returns CLASP_ERR_STATE on every rank, naming `what`, the first differing rank
 * and both values. */
clasp_status clasp_dist_check_equal(uint64_t value, const char *what);

#endif
