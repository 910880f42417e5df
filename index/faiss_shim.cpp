// faiss_shim.cpp: the C interface of index/internal.h over FAISS's C++ classes (libfaiss.a
// 1.7.3). Every entry point catches every exception and turns it into a clasp_status; the
// metric is always inner product (rows are L2-normalised by index/index.c, so scores are
// cosine similarities).
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/utils/distances.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <new>
#include <utility>
#include <vector>

// clasp's headers are C: their declarations get C linkage here.
extern "C" {
#include "core/status.h"
#include "index/index.h"
}
#include "index/internal.h"

struct clasp_faiss {
    faiss::Index *index; // for ivf-pq with refine: the IndexRefineFlat
    clasp_index_type type;
    int refine; // the k factor of an IndexRefineFlat over an IVF-PQ, else 0
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
    static const char *const names[] = {"flat", "hnsw", "ivf-pq", "ivf-flat"};
    return (unsigned)t < 4 ? names[t] : "?";
}

// ---- what FAISS's reader does not check ----
// faiss::read_index trusts the structure it reads: an HNSW graph whose neighbour ids or levels
// are out of range, or inverted lists whose sizes disagree, crash a later search
// (tests/fuzz/fuzz_index.c found the first). Each check below returns the problem, or NULL.

// A flat store of n float rows of dimension d, inner product.
const char *check_flat_(const faiss::Index *ix, faiss::Index::idx_t n, int d) {
    auto *f = dynamic_cast<const faiss::IndexFlat *>(ix);
    if (!f) return "the vector store is not a flat index";
    if (f->d != d || f->ntotal != n) return "the vector store's size disagrees with the index";
    if (f->code_size != (size_t)d * sizeof(float) || f->codes.size() != (size_t)n * f->code_size)
        return "the flat codes do not hold ntotal x d floats";
    return nullptr;
}

const char *check_hnsw_(const faiss::IndexHNSWFlat *h) {
    const faiss::HNSW &g = h->hnsw;
    const size_t n = (size_t)h->ntotal;
    if (const char *e = check_flat_(h->storage, h->ntotal, h->d)) return e;
    const std::vector<int> &cum = g.cum_nneighbor_per_level;
    if (cum.size() < 2 || cum[0] != 0 || g.assign_probas.size() != cum.size() - 1)
        return "HNSW level tables are inconsistent";
    for (size_t l = 1; l < cum.size(); l++)
        if (cum[l] < cum[l - 1] || cum[l] > (1 << 20)) return "HNSW neighbours per level";
    for (double p : g.assign_probas)
        if (!(p >= 0 && p <= 1)) return "HNSW level probabilities";
    if (g.levels.size() != n || g.offsets.size() != n + 1 || g.offsets[0] != 0)
        return "HNSW levels/offsets do not match ntotal";
    for (size_t i = 0; i < n; i++) {
        int lv = g.levels[i];
        if (lv < 1 || (size_t)lv >= cum.size()) return "HNSW node level out of range";
        if (g.offsets[i + 1] < g.offsets[i] || g.offsets[i + 1] - g.offsets[i] != (size_t)cum[lv])
            return "HNSW offsets disagree with node levels";
    }
    if (g.offsets[n] != g.neighbors.size()) return "HNSW neighbour table size";
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l < g.levels[i]; l++)
            for (size_t j = g.offsets[i] + (size_t)cum[l]; j < g.offsets[i] + (size_t)cum[l + 1];
                 j++) {
                int nb = g.neighbors[j];
                if (nb < -1 || nb >= (int)n) return "HNSW neighbour id out of range";
                // a neighbour at level l must itself have level l (search walks it there)
                if (nb >= 0 && g.levels[(size_t)nb] <= l) return "HNSW neighbour below its level";
            }
    if (n == 0 ? g.entry_point != -1
               : g.entry_point < 0 || (size_t)g.entry_point >= n ||
                     g.max_level != g.levels[(size_t)g.entry_point] - 1)
        return "HNSW entry point";
    if (g.upper_beam != 1) return "HNSW upper_beam (only 1 is written)";
    return nullptr;
}

// The coarse quantizer and in-memory inverted lists of an IVF index whose codes are code_size
// bytes a vector.
const char *check_ivf_lists_(const faiss::IndexIVF *p, size_t code_size) {
    if (p->nlist < 1 || p->nlist > (1u << 24)) return "IVF nlist";
    if (const char *e = check_flat_(p->quantizer, (faiss::Index::idx_t)p->nlist, p->d)) return e;
    if (p->code_size != code_size) return "IVF code size";
    auto *il = dynamic_cast<const faiss::ArrayInvertedLists *>(p->invlists);
    if (!il || il->nlist != p->nlist || il->code_size != p->code_size ||
        il->codes.size() != p->nlist || il->ids.size() != p->nlist)
        return "inverted lists (in-memory lists of nlist lists expected)";
    size_t total = 0;
    for (size_t l = 0; l < p->nlist; l++) {
        if (il->codes[l].size() != il->ids[l].size() * il->code_size)
            return "inverted list codes and ids disagree";
        for (faiss::Index::idx_t id : il->ids[l])
            if (id < 0 || id >= p->ntotal) return "inverted list id out of range";
        total += il->ids[l].size();
    }
    if (total != (size_t)p->ntotal) return "inverted lists do not hold ntotal vectors";
    if (p->direct_map.type != faiss::DirectMap::NoMap) return "IVF direct map (none is written)";
    return nullptr;
}

const char *check_ivfpq_(const faiss::IndexIVFPQ *p) {
    const faiss::ProductQuantizer &pq = p->pq;
    if (pq.d != (size_t)p->d || pq.M < 1 || pq.dsub * pq.M != pq.d || pq.nbits < 1 ||
        pq.nbits > 16 || pq.ksub != ((size_t)1 << pq.nbits) ||
        pq.centroids.size() != pq.d * pq.ksub || pq.code_size != (pq.M * pq.nbits + 7) / 8)
        return "product quantizer sizes";
    for (float c : pq.centroids)
        if (!std::isfinite(c)) return "product quantizer centroids not finite";
    if (const char *e = check_ivf_lists_(p, pq.code_size)) return e;
    size_t table = (size_t)p->nlist * pq.M * pq.ksub;
    if (p->use_precomputed_table == 1 ? p->precomputed_table.size() != table
                                      : p->precomputed_table.size() != 0)
        return "IVF-PQ precomputed table size";
    if (p->polysemous_ht != 0) return "IVF-PQ polysemous threshold (none is written)";
    return nullptr;
}

// An IndexRefineFlat over an IVF-PQ: both hold the same ntotal x d vectors, k_factor a whole
// number in [1, 1024] (clasp writes refine=R as k_factor R).
const char *check_refine_(const faiss::IndexRefineFlat *r) {
    auto *pq = dynamic_cast<const faiss::IndexIVFPQ *>(r->base_index);
    if (!pq) return "the refined index is not an IVF-PQ";
    if (pq->d != r->d || pq->ntotal != r->ntotal) return "refine base size disagrees";
    if (pq->metric_type != faiss::METRIC_INNER_PRODUCT || !pq->is_trained)
        return "refine base not a trained inner-product index";
    if (const char *e = check_ivfpq_(pq)) return e;
    if (const char *e = check_flat_(r->refine_index, r->ntotal, r->d)) return e;
    if (!(r->k_factor >= 1 && r->k_factor <= 1024 && r->k_factor == std::floor(r->k_factor)))
        return "refine k_factor";
    return nullptr;
}

// Re-scores the IVF-PQ's refine x k best of each query by the exact inner product with the
// kept vectors; best first, ties by smaller id, missing results id -1 / score -inf.
void refine_search_(const faiss::IndexRefineFlat *r, int refine, const float *q, int64_t nq, int k,
                    size_t nprobe, int64_t *ids, float *scores) {
    const int64_t kb64 = std::min<int64_t>((int64_t)k * refine, r->ntotal);
    const size_t kb = (size_t)std::max<int64_t>(kb64, 1);
    std::vector<faiss::Index::idx_t> cand((size_t)nq * kb);
    std::vector<float> approx((size_t)nq * kb);
    faiss::SearchParametersIVF sp;
    sp.nprobe = nprobe;
    r->base_index->search((faiss::Index::idx_t)nq, q, (faiss::Index::idx_t)kb, approx.data(),
                          cand.data(), &sp);
    auto *store = static_cast<const faiss::IndexFlat *>(r->refine_index);
    const float *xb = store->get_xb();
    const size_t d = (size_t)r->d;
    std::vector<std::pair<float, int64_t>> sc;
    for (int64_t i = 0; i < nq; i++) {
        sc.clear();
        for (size_t j = 0; j < kb; j++) {
            int64_t id = cand[(size_t)i * kb + j];
            if (id < 0) continue;
            sc.emplace_back(faiss::fvec_inner_product(q + (size_t)i * d, xb + (size_t)id * d, d),
                            id);
        }
        size_t keep = std::min(sc.size(), (size_t)k);
        std::partial_sort(
            sc.begin(), sc.begin() + (std::ptrdiff_t)keep, sc.end(),
            [](const std::pair<float, int64_t> &a, const std::pair<float, int64_t> &b) {
                return a.first > b.first || (a.first == b.first && a.second < b.second);
            });
        for (size_t j = 0; j < (size_t)k; j++) {
            ids[(size_t)i * (size_t)k + j] = j < keep ? sc[j].second : -1;
            scores[(size_t)i * (size_t)k + j] = j < keep ? sc[j].first : -INFINITY;
        }
    }
}

// A new IVF index T over a fresh inner-product coarse quantizer that it owns, with spec's nlist
// and default nprobe; extra = T's constructor arguments between nlist and the metric (PQ's m and
// nbits). The quantizer is freed if T's constructor throws.
template <typename T, typename... Extra>
T *new_ivf_(int dim, const clasp_index_spec *spec, Extra... extra) {
    auto *q = new faiss::IndexFlatIP(dim);
    T *p = nullptr;
    try {
        p = new T(q, (size_t)dim, (size_t)spec->ivf_nlist, extra..., faiss::METRIC_INNER_PRODUCT);
    } catch (...) {
        delete q;
        throw;
    }
    p->own_fields = true;
    p->nprobe = (size_t)spec->search_def;
    return p;
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
        } else if (spec->type == CLASP_INDEX_IVF_FLAT) {
            ix = new_ivf_<faiss::IndexIVFFlat>(dim, spec);
        } else {
            faiss::IndexIVFPQ *p =
                new_ivf_<faiss::IndexIVFPQ>(dim, spec, (size_t)spec->pq_m, (size_t)spec->pq_nbits);
            ix = p;
            if (spec->refine > 0) {
                faiss::IndexRefineFlat *r = nullptr;
                try {
                    r = new faiss::IndexRefineFlat(p);
                } catch (...) {
                    delete p;
                    throw;
                }
                r->own_fields = true;
                r->k_factor = (float)spec->refine;
                ix = r;
            }
        }
        *out = new clasp_faiss{ix, spec->type, spec->type == CLASP_INDEX_IVF_PQ ? spec->refine : 0};
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
        } else if (f->refine > 0) {
            refine_search_(static_cast<const faiss::IndexRefineFlat *>(f->index), f->refine, q, nq,
                           k, (size_t)param, ids, scores);
        } else if (f->type == CLASP_INDEX_IVF_PQ || f->type == CLASP_INDEX_IVF_FLAT) {
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
        if (f->refine > 0) {
            // the exact vectors the refinement keeps
            auto *r = static_cast<faiss::IndexRefineFlat *>(ix);
            r->refine_index->reconstruct_n(0, ix->ntotal, out);
            return CLASP_OK;
        }
        if (auto *p = dynamic_cast<faiss::IndexIVF *>(ix))
            if (p->direct_map.type == faiss::DirectMap::NoMap) p->make_direct_map(true);
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
                                         clasp_index_type *type, int *dim, int64_t *count,
                                         int *refine) {
    *out = nullptr;
    *refine = 0;
    return guarded(path, CLASP_ERR_FORMAT, [&]() {
        faiss::Index *ix = faiss::read_index(path);
        clasp_index_type t;
        int rf = 0;
        // Most derived first: IndexHNSWFlat and the IVF indexes are not IndexFlatIP.
        if (dynamic_cast<faiss::IndexHNSWFlat *>(ix))
            t = CLASP_INDEX_HNSW;
        else if (auto *r = dynamic_cast<faiss::IndexRefineFlat *>(ix)) {
            t = CLASP_INDEX_IVF_PQ;
            rf = r->k_factor >= 1 && r->k_factor <= 1024 ? (int)r->k_factor : -1;
        } else if (dynamic_cast<faiss::IndexIVFPQ *>(ix))
            t = CLASP_INDEX_IVF_PQ;
        else if (dynamic_cast<faiss::IndexIVFFlat *>(ix))
            t = CLASP_INDEX_IVF_FLAT;
        else if (dynamic_cast<faiss::IndexFlatIP *>(ix))
            t = CLASP_INDEX_FLAT;
        else {
            delete ix;
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: not a flat, hnsw, ivf-flat or ivf-pq FAISS index", path);
        }
        if (ix->metric_type != faiss::METRIC_INNER_PRODUCT || !ix->is_trained) {
            const char *why = ix->is_trained ? "of another metric" : "not trained";
            delete ix;
            return clasp_set_error(CLASP_ERR_FORMAT,
                                   "%s: a %s index %s (expected a trained inner-product index)",
                                   path, type_name(t), why);
        }
        const char *bad =
            t == CLASP_INDEX_HNSW       ? check_hnsw_(static_cast<faiss::IndexHNSWFlat *>(ix))
            : rf != 0                   ? check_refine_(static_cast<faiss::IndexRefineFlat *>(ix))
            : t == CLASP_INDEX_IVF_PQ   ? check_ivfpq_(static_cast<faiss::IndexIVFPQ *>(ix))
            : t == CLASP_INDEX_IVF_FLAT ? check_ivf_lists_(static_cast<faiss::IndexIVFFlat *>(ix),
                                                           (size_t)ix->d * sizeof(float))
                                        : check_flat_(ix, ix->ntotal, ix->d);
        if (bad) {
            delete ix;
            return clasp_set_error(CLASP_ERR_FORMAT, "%s: malformed %s index: %s", path,
                                   type_name(t), bad);
        }
        *out = new clasp_faiss{ix, t, rf};
        *type = t;
        *refine = rf;
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

extern "C" void clasp_faiss_set_threads(int n) {
    omp_set_num_threads(n > 0 ? n : 1);
}
