// faiss_shim.cpp: the C interface of index/internal.h over FAISS's C++ classes (libfaiss.a
// 1.7.3). Every entry point catches every exception and turns it into a clasp_status; the
// metric is always inner product (rows are L2-normalised by index/index.c, so scores are
// cosine similarities).
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>

#include <exception>
#include <new>

// clasp's headers are C: their declarations get C linkage here.
extern "C" {
#include "core/status.h"
#include "index/index.h"
}
#include "index/internal.h"

struct clasp_faiss {
    faiss::Index *index;
    clasp_index_type type;
};

namespace {

// Runs f, turning any exception into a status whose message names `what`.
template <typename F> clasp_status guarded(const char *what, clasp_status code, F f) {
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory in FAISS", what);
    } catch (const faiss::FaissException &e) {
        return clasp_set_error(code, "%s: FAISS: %s", what, e.msg.c_str());
    } catch (const std::exception &e) {
        return clasp_set_error(code, "%s: FAISS: %s", what, e.what());
    } catch (...) {
        return clasp_set_error(code, "%s: FAISS: unknown exception", what);
    }
}

const char *type_name(clasp_index_type t) {
    return t == CLASP_INDEX_FLAT ? "flat" : t == CLASP_INDEX_HNSW ? "hnsw" : "ivf-pq";
}

} // namespace

extern "C" clasp_status clasp_faiss_new(const clasp_index_spec *spec, int dim, clasp_faiss **out) {
    *out = nullptr;
    return guarded("index build", CLASP_ERR_ARG, [&]() {
        faiss::Index *ix = nullptr;
        if (spec->type == CLASP_INDEX_FLAT) {
            ix = new faiss::IndexFlatIP(dim);
        } else if (spec->type == CLASP_INDEX_HNSW) {
            auto *h = new faiss::IndexHNSWFlat(dim, spec->hnsw_m, faiss::METRIC_INNER_PRODUCT);
            h->hnsw.efConstruction = spec->hnsw_efc;
            h->hnsw.efSearch = spec->search_def;
            ix = h;
        } else {
            auto *q = new faiss::IndexFlatIP(dim);
            faiss::IndexIVFPQ *p = nullptr;
            try {
                p = new faiss::IndexIVFPQ(q, (size_t)dim, (size_t)spec->ivf_nlist,
                                          (size_t)spec->pq_m, (size_t)spec->pq_nbits,
                                          faiss::METRIC_INNER_PRODUCT);
            } catch (...) {
                delete q;
                throw;
            }
            p->own_fields = true;
            p->nprobe = (size_t)spec->search_def;
            ix = p;
        }
        *out = new clasp_faiss{ix, spec->type};
        return CLASP_OK;
    });
}

extern "C" clasp_status clasp_faiss_train(clasp_faiss *f, const float *x, int64_t n) {
    return guarded("index train", CLASP_ERR_ARG, [&]() {
        if (!f->index->is_trained) f->index->train((faiss::Index::idx_t)n, x);
        return CLASP_OK;
    });
}

extern "C" clasp_status clasp_faiss_add(clasp_faiss *f, const float *x, int64_t n) {
    return guarded("index add", CLASP_ERR_ARG, [&]() {
        f->index->add((faiss::Index::idx_t)n, x);
        return CLASP_OK;
    });
}

extern "C" clasp_status clasp_faiss_search(const clasp_faiss *f, const float *q, int64_t nq, int k,
                                           int param, int64_t *ids, float *scores) {
    return guarded("index search", CLASP_ERR_ARG, [&]() {
        faiss::Index::idx_t *labels = reinterpret_cast<faiss::Index::idx_t *>(ids);
        if (f->type == CLASP_INDEX_HNSW) {
            faiss::SearchParametersHNSW sp;
            sp.efSearch = param > k ? param : k;
            f->index->search((faiss::Index::idx_t)nq, q, k, scores, labels, &sp);
        } else if (f->type == CLASP_INDEX_IVF_PQ) {
            faiss::SearchParametersIVF sp;
            sp.nprobe = (size_t)param;
            f->index->search((faiss::Index::idx_t)nq, q, k, scores, labels, &sp);
        } else {
            f->index->search((faiss::Index::idx_t)nq, q, k, scores, labels);
        }
        return CLASP_OK;
    });
}

extern "C" clasp_status clasp_faiss_reconstruct_all(const clasp_faiss *f, float *out) {
    return guarded("index reconstruct", CLASP_ERR_STATE, [&]() {
        faiss::Index *ix = f->index;
        if (f->type == CLASP_INDEX_IVF_PQ) {
            auto *p = dynamic_cast<faiss::IndexIVFPQ *>(ix);
            if (p->direct_map.type == faiss::DirectMap::NoMap) p->make_direct_map(true);
        }
        ix->reconstruct_n(0, ix->ntotal, out);
        return CLASP_OK;
    });
}

extern "C" clasp_status clasp_faiss_write(const clasp_faiss *f, const char *path) {
    return guarded(path, CLASP_ERR_IO, [&]() {
        faiss::write_index(f->index, path);
        return CLASP_OK;
    });
}

extern "C" clasp_status clasp_faiss_read(const char *path, clasp_faiss **out,
                                         clasp_index_type *type, int *dim, int64_t *count) {
    *out = nullptr;
    return guarded(path, CLASP_ERR_FORMAT, [&]() {
        faiss::Index *ix = faiss::read_index(path);
        clasp_index_type t;
        // Most derived first: IndexHNSWFlat and IndexIVFPQ are not IndexFlatIP.
        if (dynamic_cast<faiss::IndexHNSWFlat *>(ix))
            t = CLASP_INDEX_HNSW;
        else if (dynamic_cast<faiss::IndexIVFPQ *>(ix))
            t = CLASP_INDEX_IVF_PQ;
        else if (dynamic_cast<faiss::IndexFlatIP *>(ix))
            t = CLASP_INDEX_FLAT;
        else {
            delete ix;
            return clasp_set_error(CLASP_ERR_FORMAT, "%s: not a flat, hnsw or ivf-pq FAISS index",
                                   path);
        }
        if (ix->metric_type != faiss::METRIC_INNER_PRODUCT || !ix->is_trained) {
            const char *why = ix->is_trained ? "of another metric" : "not trained";
            delete ix;
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: a %s index %s (expected a trained inner-product index)",
                                   path, type_name(t), why);
        }
        *out = new clasp_faiss{ix, t};
        *type = t;
        *dim = ix->d;
        *count = ix->ntotal;
        return CLASP_OK;
    });
}

extern "C" void clasp_faiss_free(clasp_faiss *f) {
    if (!f) return;
    delete f->index;
    delete f;
}
