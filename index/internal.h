/* internal.h: the C interface of the FAISS shim (index/faiss_shim.cpp), private to index/.
 *
 * Debian's libfaiss-dev ships FAISS as a static C++ library without the faiss_* C API symbols,
 * so these few functions wrap the C++ classes. Every function catches every C++ exception
 * (faiss::FaissException, std::bad_alloc, ...) and returns a clasp_status with the message set;
 * nothing is thrown through them. Vectors are float32 rows; the metric is inner product.
 */
#ifndef CLASP_INDEX_INTERNAL_H
#define CLASP_INDEX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "index/index.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clasp_faiss clasp_faiss; /* one faiss::Index */

/* A new empty index of spec's type for dim-dimensional rows (ivf-pq with refine > 0: an
 * IndexRefineFlat over the IndexIVFPQ). The caller passes nlist already capped by the rows. */
clasp_status clasp_faiss_new(const clasp_index_spec *spec, int dim, clasp_faiss **out);
/* Trains (ivf-*: coarse k-means (+ PQ) on the n rows; others: nothing). */
clasp_status clasp_faiss_train(clasp_faiss *f, const float *x, int64_t n);
clasp_status clasp_faiss_add(clasp_faiss *f, const float *x, int64_t n);
/* k nearest of nq rows q; param = efSearch / nprobe (> 0) passed as per-call search
 * parameters, so concurrent searches never write the index. Missing results are id -1. With
 * refine R, the IVF-PQ's R x k best are re-scored by their exact inner product here (FAISS
 * 1.7.3's IndexRefineFlat::search takes no per-call parameters). */
clasp_status clasp_faiss_search(const clasp_faiss *f, const float *q, int64_t nq, int k, int param,
                                int64_t *ids, float *scores);
/* All rows reconstructed into out (ntotal, dim). */
clasp_status clasp_faiss_reconstruct_all(const clasp_faiss *f, float *out);
clasp_status clasp_faiss_write(const clasp_faiss *f, const char *path);
/* Reads path; *type, *dim, *count and *refine (0 unless an IndexRefineFlat over an IVF-PQ)
 * describe what was read. CLASP_ERR_FORMAT naming path for an index FAISS refuses or one that
 * is not of the four types (inner product). */
clasp_status clasp_faiss_read(const char *path, clasp_faiss **out, clasp_index_type *type, int *dim,
                              int64_t *count, int *refine);
void clasp_faiss_free(clasp_faiss *f);
/* omp_set_num_threads(n) (n >= 1). */
void clasp_faiss_set_threads(int n);

/* The fixed header FAISS writes first (impl/index_write.cpp write_index_header): fourcc, d
 * (int32), ntotal (int64), two int64 placeholders, is_trained (1 byte), metric_type (int32). */
#define CLASP_FAISS_HEADER_BYTES 37
/* Checks the header of an index file's first n bytes against the type (and refine), dim and
 * count meta.json records. CLASP_ERR_FORMAT naming `file` and the field. */
clasp_status clasp_faiss_check_header(const unsigned char *p, size_t n, const char *file,
                                      const clasp_index_spec *spec, int dim, int64_t count);

#ifdef __cplusplus
}
#endif

#endif
