/* eval.h: evaluation of a contrastive model on shards, shared by `clasp train --val` and
 * `clasp eval`:
 *   - one pass that embeds every sample of a spec in order (clasp_eval_collect): image
 *     features, labels, keys, and the text features of the first caption or of every caption;
 *   - zero-shot classification (class embedding = mean of the normalised prompt embeddings over
 *     the templates, renormalised; OpenCLIP's zero_shot_classifier): top-1/5/10 and recall per
 *     class;
 *   - retrieval both ways with OpenCLIP's definitions (eval/retrieval.h);
 *   - a linear probe: multinomial logistic regression on frozen image features (probe.c);
 *   - k-nearest-neighbour accuracy on frozen image features (knn.c). */
#ifndef CLASP_EVAL_EVAL_H
#define CLASP_EVAL_EVAL_H

#include <stdint.h>

#include "core/status.h"
#include "train/engine.h"
#include "train/trainer.h"
#include "eval/retrieval.h"

typedef struct clasp_zeroshot_result {
    double top1, top5;  /* fraction of images whose class is in the top-1 / top-5 */
    double top10;       /* ... top-10 (1 when there are <= 10 classes) */
    double mean_recall; /* mean over classes of per-class top-1 recall */
    int64_t n;          /* images evaluated (with a label in range) */
    int n_classes;
    int64_t skipped; /* samples skipped (bad data, missing or out-of-range label) */
} clasp_zeroshot_result;

/* clasp_eval_zeroshot in the shape of clasp_train_eval_fn (train/trainer.h): the trainer's
 * evaluation during and after training. */
clasp_status clasp_eval_zeroshot_for_train(clasp_engine *e, const clasp_preprocess *pre,
                                           const char *val_spec, const char *classes,
                                           const char *templates, int workers,
                                           clasp_train_eval_result *out);

/* Reads class names (one per line) and templates (one per line with "{}" for the class name;
 * NULL = the class name alone), embeds the prompts, then every image of `spec` in order, and
 * scores argmax cosine against the labels in the samples' "cls" field. Texts and images are
 * preprocessed per `pre` (the model config's, modalities/preprocess.h). `workers` decode
 * threads. Errors name the file (empty class list, a template without "{}", unreadable
 * spec). */
clasp_status clasp_eval_zeroshot(clasp_engine *e, const clasp_preprocess *pre, const char *spec,
                                 const char *classes_path, const char *templates_path, int workers,
                                 clasp_zeroshot_result *out);

/* Class embeddings (n_classes, D), normalised, from names and templates already in memory,
 * tokenized with pre's tokenizer and context length. */
clasp_status clasp_eval_class_embeddings(clasp_engine *e, const clasp_preprocess *pre, char **names,
                                         int n_classes, char **templates, int n_templates,
                                         float *out);

/* ---- one embedding pass over a spec ---------------------------------------------------- */

typedef enum clasp_eval_text {
    CLASP_EVAL_TEXT_NONE = 0,  /* images only (zero-shot, probe): samples need no caption */
    CLASP_EVAL_TEXT_FIRST = 1, /* the first caption of each sample (the loader's eval choice,
                                  pipeline/captions.h) */
    CLASP_EVAL_TEXT_ALL = 2    /* every caption of the caption rule (pipeline/captions.h:
                                  text field, json "captions", json "text"; at most 64):
                                  multi-caption retrieval */
} clasp_eval_text;

/* Features of a spec's samples, in shard order, samples that fail to decode left out. */
typedef struct clasp_eval_set {
    int64_t n; /* images */
    int D;
    float *img;           /* (n, D) L2-normalised */
    int64_t *labels;      /* (n) "cls" label, -1 when absent */
    char **keys;          /* (n) sample keys */
    int64_t n_txt;        /* texts (0 with CLASP_EVAL_TEXT_NONE) */
    float *txt;           /* (n_txt, D) L2-normalised */
    int64_t *txt_owner;   /* (n_txt) image row of each text */
    int64_t skipped;      /* samples skipped by the loader (bad data, missing field) */
    int64_t bad_captions; /* extra captions dropped (invalid UTF-8, empty) with TEXT_ALL */
    uint64_t *txt_group;  /* (n_txt) hash of each text's tokens, the loader's group id: equal
                             captions (after normalisation) have equal ids */
} clasp_eval_set;

/* Embeds every sample of `spec` (evaluation order, no augmentation, preprocessed per `pre`)
 * with the engine's model:
 * `workers` decode threads. Errors: an unreadable spec, no usable sample (CLASP_ERR_FORMAT
 * naming the spec), CLASP_ERR_NOMEM. Free with clasp_eval_set_free. */
clasp_status clasp_eval_collect(clasp_engine *e, const clasp_preprocess *pre, const char *spec,
                                clasp_eval_text text, int workers, clasp_eval_set *out);
void clasp_eval_set_free(clasp_eval_set *s);

/* Zero-shot scores of a collected set against class embeddings cls (n_classes, D): fills r
 * (top1/top5/top10/mean_recall over images with a label in [0, n_classes); others counted in
 * r->skipped) and, when not NULL, per-class recall (n_classes; NaN for a class without
 * images) and per-class image counts (n_classes). CLASP_ERR_FORMAT when no image has a label in
 * range. */
clasp_status clasp_eval_zeroshot_set(const clasp_eval_set *set, const float *cls, int n_classes,
                                     clasp_zeroshot_result *r, double *per_class_recall,
                                     int64_t *per_class_count);

/* ---- class-aware retrieval ----------------------------------------------------------------- */

/* What makes a retrieved row a hit beyond the query's own partner. */
typedef enum clasp_eval_match {
    CLASP_EVAL_MATCH_CLASS = 0,  /* same "cls" label: a caption counts for every image of the
                                    class of the image it belongs to */
    CLASP_EVAL_MATCH_CAPTION = 1 /* same caption text: equal tokens after normalisation */
} clasp_eval_match;

/* Retrieval of a collected set (with texts) over its DISTINCT captions, where relevance is
 * shared by a class or a caption text: for data whose captions repeat (Fashion-MNIST: ten class
 * names under eight templates, so 10,000 captions are 80 distinct texts, each ~125 times). The
 * own-caption R@1 (clasp_retrieval_metrics) cannot exceed a few percent there whatever the
 * model, and over all captions a misclassified image would find ~125 identical copies of a
 * wrong caption first; so, as clasp_eval_pair_retrieval does for audio:
 *   the caption gallery is the set's distinct captions (equal txt_group: the same tokens after
 *   normalisation, i.e. the same model input), one embedding each (its first occurrence's), in
 *   order of first occurrence; i2t->n_gallery is their number.
 *   image -> text: every image queries the distinct captions;
 *   text -> image: every distinct caption queries all images.
 * A query's rank is the best rank of its relevant rows (eval/retrieval.h's
 * clasp_retrieval_by_relevance: all gallery rows competing, ties to the lower index).
 *   CLASS:   distinct caption c and image i (label y) are relevant to each other when some
 *            image of label y has c among its captions (a text used by several classes is
 *            relevant to each of them). Images without a label (-1) are nobody's answer and,
 *            as queries, left out (counted in `unmatched`), as is a caption only they use.
 *   CAPTION: an image's caption is its first one (the one CLASP_EVAL_TEXT_FIRST embeds);
 *            distinct caption c and image i are relevant when c is i's caption.
 * Chance levels are those of what is measured: for a query with m relevant rows among the N of
 * its gallery, R@k = 1 - C(N-m, k) / C(N, k) and mean rank (N+1)/(m+1), averaged over the
 * scored queries (Fashion-MNIST by class: image -> text m = 8 of N = 80, text -> image m =
 * 1,000 of 10,000).
 * Errors: CLASP_ERR_ARG for a set without texts, CLASP_ERR_FORMAT when no query has a
 * relevant row (CLASS on data without labels), CLASP_ERR_NOMEM. */
clasp_status clasp_eval_retrieval_match(const clasp_eval_set *set, clasp_eval_match match,
                                        clasp_group_retrieval *i2t, clasp_group_retrieval *t2i);

/* ---- any two towers, through an embedder (audio-text, audio-image, ...) ---------------- */

struct clasp_embedder; /* export/export.h */

/* Features of a spec's samples for towers ta and (optionally) tb, in shard order. Every sample
 * must carry ta's field, tb's field and a caption (text field or json captions/text): the
 * caption gives each row its group id, the loader's hash of the caption's tokens, so rows
 * whose captions normalise and tokenize the same share a group (label matching across
 * sources: a spoken emoji name and the emoji image with the same label). */
typedef struct clasp_eval_towers {
    int64_t n;
    int D;
    clasp_tower ta, tb; /* tb == CLASP_N_TOWERS: only ta collected */
    float *a, *b;       /* (n, D) L2-normalised features of ta, tb (b NULL without tb) */
    uint64_t *group;    /* (n) caption group ids */
    int64_t *labels;    /* (n) "cls" labels, -1 when absent (k-NN, probe) */
    char **keys;        /* (n) */
    int64_t skipped;    /* samples the loader skipped (bad data, missing field) */
} clasp_eval_towers;

/* Collects with the embedder's eval-mode preprocessing, `workers` decode threads. Errors: a tower
 * the model lacks (CLASP_ERR_CONFIG), an unreadable spec, no usable sample (CLASP_ERR_FORMAT
 * naming the spec). Free with clasp_eval_towers_free. */
clasp_status clasp_eval_collect_towers(struct clasp_embedder *em, const char *spec, clasp_tower ta,
                                       clasp_tower tb, int workers, clasp_eval_towers *out);
void clasp_eval_towers_free(clasp_eval_towers *t);

/* Cross-modal retrieval between the two towers of one collected set over UNIQUE captions: the
 * gallery of b features keeps the first row of each group (for audio-text: one row per distinct
 * transcript), so several recordings of one transcript do not compete with each other.
 * a_to_b: every row's a feature queries the unique-caption gallery; b_to_a: each unique
 * caption queries all a rows, any row of its group counting (best rank). Chance levels
 * as retrieval.h's clasp_retrieval_by_group. */
typedef struct clasp_eval_pair_result {
    int64_t n_unique; /* distinct groups */
    clasp_group_retrieval a_to_b, b_to_a;
} clasp_eval_pair_result;
clasp_status clasp_eval_pair_retrieval(const clasp_eval_towers *t, clasp_eval_pair_result *out);

/* ---- linear probe (probe.c) ------------------------------------------------------------ */

typedef struct clasp_probe_options {
    double l2;    /* L2 penalty lambda on the weights (not the biases); default 1e-4 */
    int max_iter; /* full-batch iterations; default 1000 */
    double tol;   /* stop when the gradient's max-norm falls below; default 1e-6 */
} clasp_probe_options;

clasp_probe_options clasp_probe_default_options(void);

typedef struct clasp_probe_result {
    int n_classes;           /* 1 + the largest training label */
    int64_t n_train, n_test; /* rows with a label (>= 0) */
    double train_accuracy, test_accuracy;
    double loss; /* final training objective (mean cross-entropy + l2/2 |W|^2) */
    int iterations;
} clasp_probe_result;

/* Multinomial logistic regression (softmax, with biases) on frozen features xtr (ntr, D) with
 * labels ytr, minimising mean cross-entropy + l2/2 |W|^2 by full-batch Nesterov-accelerated
 * gradient descent with step 1/L, L = max_i |(x_i, 1)|^2 / 2 + l2 (a bound on the Hessian,
 * Boehning 1992) and adaptive restart (momentum reset when the objective rises); then accuracy
 * on xte (nte, D) / yte. Rows with a negative label are ignored; a test label the training set
 * never had counts as an error. Deterministic (fixed order, no randomness). Errors:
 * CLASP_ERR_ARG (no labelled training row, fewer than 2 classes), CLASP_ERR_NOMEM. */
clasp_status clasp_linear_probe(const float *xtr, const int64_t *ytr, int64_t ntr, const float *xte,
                                const int64_t *yte, int64_t nte, int D,
                                const clasp_probe_options *o, clasp_probe_result *r);

/* ---- k-nearest-neighbour accuracy (knn.c) ---------------------------------------------- */

typedef struct clasp_knn_result {
    int k;                   /* neighbours used (k, or fewer when the reference set is smaller) */
    double tau;              /* vote weight exp(s / tau); 0: plain majority */
    int n_classes;           /* 1 + the largest reference label */
    int64_t n_train, n_test; /* rows with a label (>= 0) */
    double accuracy;         /* fraction of the labelled queries whose vote is their label */
} clasp_knn_result;

/* k-NN classification of the queries xte (nte, D) against the reference rows xtr (ntr, D), both
 * L2-normalised, so the similarity s is the cosine (dot product). For each labelled query: the
 * k most similar labelled reference rows (equal similarities: the lower reference row first),
 * and a vote per class of the sum of exp(s / tau) over the neighbours of that class (the
 * weighted k-NN of Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric
 * Instance Discrimination", tau = 0.07 there; tau <= 0: every neighbour weighs 1, plain
 * majority); the class with the largest vote wins, equal votes going to the lowest class.
 * Rows with a negative label are left out on both sides. Deterministic. Errors: CLASP_ERR_ARG
 * (k < 1, no labelled reference row), CLASP_ERR_NOMEM. */
clasp_status clasp_knn(const float *xtr, const int64_t *ytr, int64_t ntr, const float *xte,
                       const int64_t *yte, int64_t nte, int D, int k, double tau,
                       clasp_knn_result *r);

/* Reads a text file into non-empty trimmed lines (caller frees with clasp_free_lines). */
clasp_status clasp_read_lines(const char *path, char ***lines, int *n);
void clasp_free_lines(char **lines, int n);

#endif
