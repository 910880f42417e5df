/* index.h: versioned approximate-nearest-neighbour indexes of embeddings (FAISS), kept in an
 * index folder that records which model made the vectors.
 *
 * Implements: parsing an index type ("flat", "hnsw:M=32,efc=200", "ivf-pq:nlist=4096,m=16,
 * nbits=8"), building an index folder from L2-normalised embeddings, adding rows to it,
 * opening it (every file checked) and searching it by cosine similarity.
 *
 * The index folder IDX:
 *     IDX/current -> vN        a symlink, swapped with rename(2): the version readers open
 *     IDX/vN/meta.json         model hash, tower, dim, precision, type + params, count, created
 *                              (UTC), clasp version, default search parameter, index version
 *     IDX/vN/index.faiss       the FAISS index (faiss::write_index)
 *     IDX/vN/keys.txt          one key per line, row i = FAISS id i
 * A build or an add writes IDX/vN.tmp-PID, fsyncs its files and the folder, renames it to IDX/vN,
 * then points IDX/current at it (a temporary symlink renamed over current) and fsyncs IDX. A
 * reader resolves current once and reads that version, so it sees the old or the new index,
 * never half of one; a failed build leaves current (the old index) untouched. Versions older
 * than the previous one are removed after a successful swap.
 *
 * Lifecycle:
 *     clasp_index_spec spec;    clasp_index_spec_parse("hnsw:M=32", &spec);
 *     clasp_index_origin o = {model_hash, "text", "fp32"};
 *     clasp_index_build("IDX", &spec, &o, x, n, dim, keys);       // or clasp_index_add(...)
 *     clasp_index *ix;          clasp_index_open("IDX", &ix);
 *     clasp_index_search(ix, q, nq, k, 0, ids, scores);  clasp_index_key(ix, ids[0]);
 *     clasp_index_close(ix);
 *
 * Thread contract: an opened clasp_index is read-only; clasp_index_search, clasp_index_key and
 * clasp_index_get_meta may be called from many threads at once on the same index. Errors go
 * through core/status.h (thread-local message naming the file and field); FAISS exceptions are
 * caught and returned as statuses, never thrown through this API.
 */
#ifndef CLASP_INDEX_INDEX_H
#define CLASP_INDEX_INDEX_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/status.h"

typedef struct clasp_index clasp_index; /* opaque; searches are thread-safe */

typedef enum clasp_index_type {
    CLASP_INDEX_FLAT = 0,    /* exact inner product (IndexFlatIP) */
    CLASP_INDEX_HNSW = 1,    /* IndexHNSWFlat, inner product */
    CLASP_INDEX_IVF_PQ = 2,  /* IndexIVFPQ, inner product, trained on a sample; with refine > 0
                                an IndexRefineFlat over it that keeps the full vectors */
    CLASP_INDEX_IVF_FLAT = 3 /* IndexIVFFlat: coarse cells, full vectors, exact scores */
} clasp_index_type;

/* A parsed type string. Unused fields are 0. */
typedef struct clasp_index_spec {
    clasp_index_type type;
    int hnsw_m;     /* hnsw: neighbours per node (M, default 32) */
    int hnsw_efc;   /* hnsw: efConstruction (efc, default 200) */
    int ivf_nlist;  /* ivf-pq, ivf-flat: coarse cells (nlist, default 4096, capped at rows / 39) */
    int pq_m;       /* ivf-pq: sub-quantizers (m, default 16; must divide dim) */
    int pq_nbits;   /* ivf-pq: bits per code (nbits, default 8) */
    int search_def; /* default efSearch (hnsw, default 64) or nprobe (ivf-*, default 16);
                       "ef=" / "nprobe=" in the string; 0 for flat */
    int refine;     /* ivf-pq: re-rank refine x k PQ candidates by their exact cosine (the full
                       vectors are kept beside the codes); 0 = PQ scores (default) */
} clasp_index_spec;

/* Parses "flat", "hnsw[:M=..,efc=..,ef=..]", "ivf-flat[:nlist=..,nprobe=..]",
 * "ivf-pq[:nlist=..,m=..,nbits=..,nprobe=..,refine=..]".
 * CLASP_ERR_ARG naming the unknown type, key or bad value. */
clasp_status clasp_index_spec_parse(const char *s, clasp_index_spec *out);
/* The build parameters of a spec ("M=32,efc=200"; the search default is meta.json's
 * search_default, not part of it), as meta.json's "params" stores them. */
void clasp_index_spec_params(const clasp_index_spec *spec, char *buf, int cap);

/* What made the vectors: recorded at build, checked at add and at search. */
typedef struct clasp_index_origin {
    uint64_t model_hash;   /* the export's model hash (clasp_embedder.model_hash) */
    const char *tower;     /* "image", "text", "audio" or "" (vectors of unknown origin) */
    const char *precision; /* "fp32" / "bf16" */
} clasp_index_origin;

typedef struct clasp_index_meta {
    char type[16];          /* "flat", "hnsw", "ivf-flat", "ivf-pq" */
    char params[128];       /* clasp_index_spec_params of the build */
    int dim;                /* embedding dimension */
    int64_t count;          /* vectors = keys */
    uint64_t model_hash;    /* xxh64 of the export's model.safetensors */
    char tower[16];         /* tower that embedded the vectors ("" unknown) */
    char precision[16];     /* precision they were embedded in */
    char created[32];       /* UTC, ISO 8601 ("2026-12-04T17:30:00Z") */
    char clasp_version[32]; /* the clasp that wrote it */
    int search_def;         /* default efSearch / nprobe (0 for flat) */
    int64_t generation;     /* N of IDX/vN: grows by one per build or add */
    uint64_t index_version; /* xxh64 of index.faiss: names the exact index content */
} clasp_index_meta;

/* The fields of m as a JSON object (hashes as 16 hex digits), as meta.json stores them and
 * `clasp index info --json` prints them; NULL when out of memory. Caller deletes. */
cJSON *clasp_index_meta_json(const clasp_index_meta *m);

/* Builds an index of n rows x (n, dim) into the index folder `dir` (created if missing; an
 * existing index there is replaced atomically, see above). Rows are L2-normalised by the build
 * (a zero or non-finite row is CLASP_ERR_NUMERIC naming its row). keys (n) may be NULL: keys
 * are then the row numbers "0".."n-1"; a key may not contain a newline. n = 0 is CLASP_ERR_ARG
 * ("empty embedding set"). */
clasp_status clasp_index_build(const char *dir, const clasp_index_spec *spec,
                               const clasp_index_origin *origin, const float *x, int64_t n, int dim,
                               const char *const *keys);

/* Adds n rows (with keys, NULL = continuing row numbers) to the index in `dir` as a new
 * version. Refuses (CLASP_ERR_CONFIG naming both hashes) vectors of another model hash, and a
 * dim other than the index's (CLASP_ERR_FORMAT). */
clasp_status clasp_index_add(const char *dir, const clasp_index_origin *origin, const float *x,
                             int64_t n, int dim, const char *const *keys);

/* Stores `search_def` as the default search parameter of the index in `dir` (a new version;
 * meta.json changes only). CLASP_ERR_ARG for flat or search_def < 1. */
clasp_status clasp_index_set_default(const char *dir, int search_def);

/* Opens the current version of `dir` (reads it fully into memory). Checks everything: meta.json
 * fields and types, index.faiss readable and of the recorded type, dim and count, keys.txt
 * count; a failure is CLASP_ERR_FORMAT (or _IO / _NOT_FOUND) naming the file and field. */
clasp_status clasp_index_open(const char *dir, clasp_index **out);
/* Frees the index; accepts NULL. */
void clasp_index_close(clasp_index *ix);
const clasp_index_meta *clasp_index_get_meta(const clasp_index *ix);
/* The folder of the version opened (dir/vN). */
const char *clasp_index_path(const clasp_index *ix);

/* The k nearest rows of each of the nq queries q (nq, dim) by cosine similarity (queries are
 * L2-normalised by the search), best first: ids (nq, k) and scores (nq, k); when fewer than k
 * are found the tail is id -1, score -INFINITY. search_param is efSearch (hnsw) or nprobe
 * (ivf-flat, ivf-pq), 0 = the stored default; ignored by flat. CLASP_ERR_ARG for nq, k < 1,
 * CLASP_ERR_NUMERIC for a zero or non-finite query (naming its row). */
clasp_status clasp_index_search(const clasp_index *ix, const float *q, int nq, int k,
                                int search_param, int64_t *ids, float *scores);

/* FAISS's OpenMP threads for the searches and builds the calling thread makes from now on
 * (omp_set_num_threads: a per-thread setting). A server whose workers each search one query
 * sets 1 in every worker, so the workers do not each start a team of threads. */
void clasp_index_set_threads(int n);

/* The key of row id; NULL if id is out of range. */
const char *clasp_index_key(const clasp_index *ix, int64_t id);

/* CLASP_OK when model_hash is the index's; otherwise CLASP_ERR_CONFIG with a message naming
 * both hashes (hex) and the index folder. */
clasp_status clasp_index_check_model(const clasp_index *ix, uint64_t model_hash);

/* Reads the vectors back (flat, hnsw, ivf-flat and ivf-pq with refine keep them exactly; plain
 * ivf-pq gives its reconstruction)
 * into a malloc'd (count, dim) buffer the caller frees. */
clasp_status clasp_index_vectors(const clasp_index *ix, float **out);

/* ---- measuring an index against exact search (`clasp index eval`, bench/index) ---- */

typedef struct clasp_index_eval {
    int search_param;      /* efSearch / nprobe used (0 for flat) */
    int k;                 /* results asked per query */
    double recall1;        /* fraction of queries whose first result is the exact first */
    double recall10;       /* mean |approx top-10 ∩ exact top-10| / 10 (top-k when k < 10) */
    double qps;            /* queries per second, one query per call, one thread */
    double p50_ms, p99_ms; /* latency percentiles of those calls */
} clasp_index_eval;

/* The exact answer of nq queries: eval/retrieval.h clasp_search_topk over the vectors the
 * index holds (the caller computes it: index/ does not depend on eval/). */
typedef struct clasp_index_truth {
    const int64_t *ids;  /* (nq, k) exact top-k rows, best first */
    const float *scores; /* (nq, k) their cosines, or NULL */
    int k;
} clasp_index_truth;

/* Searches the nq queries q (nq, dim) one at a time with search_param (0 = stored default),
 * asking min(k, 10) results, and compares them with truth. A result is a hit when its row is in
 * the exact top; with truth->scores, for every type but plain ivf-pq (whose PQ scores are
 * approximations; the others give exact cosines), also
 * when its score ties the exact one at that cut (within 1e-5): equal vectors make any of them a
 * right answer. CLASP_ERR_ARG for nq < 1 or truth->k < 1. */
clasp_status clasp_index_evaluate(const clasp_index *ix, const float *q, int nq,
                                  const clasp_index_truth *truth, int search_param,
                                  clasp_index_eval *out);

/* The smallest search parameter (efSearch for hnsw from min(k, 10) up, nprobe for ivf-* from
 * 1 up, doubling then bisecting) whose recall@10 reaches target; *found = 0 and out = the best
 * measured when none does (efSearch up to 4096, nprobe up to nlist). Flat: one evaluation. */
clasp_status clasp_index_tune(const clasp_index *ix, const float *q, int nq,
                              const clasp_index_truth *truth, double target, clasp_index_eval *out,
                              int *found);

/* This process's resident memory in bytes (/proc/self/statm), 0 when unknown. */
int64_t clasp_index_rss_bytes(void);

#endif
