/* cmd_eval.c: `clasp eval --model EXPORT|CKPT|RUN --data SPEC [--zeroshot classes.txt
 * [--templates t.txt]] [--retrieval [--all-captions]] [--probe-train SPEC [--knn K]]`: zero-shot
 * classification, retrieval both ways, a linear probe and k-NN accuracy (eval/eval.h,
 * retrieval.h).
 * Human text goes to stderr, the JSON result to stdout with --json; when the model is a
 * checkpoint inside a run folder the result is also appended to RUN/metrics.jsonl as one line
 * with "kind": "eval". */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/hash.h"
#include "eval/eval.h"
#include "export/export.h"
#include "eval/retrieval.h"

/* The option values of one invocation; the table below points into it. */
typedef struct eval_args {
    const char *model, *data, *zs, *tmpl, *probe, *gallery;
    int pair, match; /* CHOICE indexes; pair -1: not given */
    bool retrieval, all_caps, json;
    int threads, batch, workers;
    int precision;
    clasp_probe_options po;
    int knn;        /* --knn K (0: not asked) */
    double knn_tau; /* --knn-tau T */
} eval_args;

#define A(field) offsetof(eval_args, field)
static const char s_audio[] = "audio (models with an audio tower)";
static const clasp_arg eval_table[] = {
    CLASP_ARG_COMMAND(
        "eval",
        "--model EXPORT|CKPT|RUN --data SPEC [--zeroshot classes.txt\n"
        " [--templates t.txt]] [--retrieval [--all-captions]]\n"
        " [--probe-train SPEC [--probe-l2 X] [--probe-iters N] [--knn K [--knn-tau T]]]\n"
        " [--threads N] [--batch-size B] [--workers W] [--json]",
        "Evaluates a model on the samples of SPEC (in shard order, no augmentation). Human text "
        "goes\n"
        "to stderr; when the model is a checkpoint of a run folder the result is also appended to\n"
        "RUN/metrics.jsonl.\n\n",
        NULL),
    {"model", 0, CLASP_ARG_STRING, A(model), "EXPORT|CKPT|RUN",
     "the model: an export folder, a checkpoint, or a run folder (its latest checkpoint)", NULL,
     CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL, NULL},
    {"data", 0, CLASP_ARG_STRING, A(data), "SPEC", "the evaluation shards", NULL, CLASP_ARG_REQ, 0,
     0, NULL, NULL},
    {"zeroshot", 0, CLASP_ARG_STRING, A(zs), "FILE",
     "zero-shot classification: class names (one per line, line i = label i of the samples' .cls); "
     "top-1/5/10, recall per class",
     NULL, CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"templates", 0, CLASP_ARG_STRING, A(tmpl), "FILE",
     "zero-shot prompts with '{}' (class embedding = mean of the normalised prompt embeddings, "
     "renormalised)",
     NULL, CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"retrieval", 0, CLASP_ARG_FLAG, A(retrieval), NULL,
     "image<->text retrieval R@1/5/10, mean and median rank (OpenCLIP's definitions); the default "
     "when nothing else is asked",
     NULL, 0, 0, 0, NULL, NULL},
    {"all-captions", 0, CLASP_ARG_FLAG, A(all_caps), NULL,
     "every caption of a sample's json 'captions' list is a retrieval query (implies "
     "--retrieval); image->text counts the best-ranked caption of an image",
     NULL, 0, 0, 0, NULL, NULL},
    {"probe-train", 0, CLASP_ARG_STRING, A(probe), "SPEC",
     "linear probe: logistic regression on frozen image features of SPEC (labels from .cls), "
     "accuracy on --data's features (audio features in the audio evaluations: --pair "
     "audio-text, or a model without an image tower)",
     NULL, 0, 0, 0, NULL, NULL},
    {"probe-l2", 0, CLASP_ARG_DOUBLE, A(po.l2), "X", "L2 penalty of the probe (default 1e-4)", NULL,
     0, 0, 0, NULL, NULL},
    {"probe-iters", 0, CLASP_ARG_INT, A(po.max_iter), "N", "iterations of the probe (default 1000)",
     NULL, 0, 1, 0, NULL, NULL},
    {"knn", 0, CLASP_ARG_INT, A(knn), "K",
     "k-NN accuracy of --data's image (or audio) features against the labelled features of "
     "--probe-train "
     "(the reference set): the K most similar by cosine vote, each with weight exp(s/T) (Wu et "
     "al. 2018; ties: the lower reference row, then the lower class)",
     NULL, 0, 1, 0, NULL, NULL},
    {"knn-tau", 0, CLASP_ARG_DOUBLE, A(knn_tau), "T",
     "temperature of the k-NN vote weights (default 0.07; 0 = plain majority)", NULL, 0, 0, 0, NULL,
     NULL},
    CLASP_ARG_PRECISION(A(precision), "fp32"),
    CLASP_ARG_THREADS(A(threads), "2"),
    CLASP_ARG_BATCH(A(batch)),
    CLASP_ARG_WORKERS(A(workers), ""),
    CLASP_ARG_JSON(A(json), "result as JSON on stdout"),
    {"pair", 0, CLASP_ARG_CHOICE, A(pair), NULL,
     "audio-text: audio<->text retrieval on --data (the default for a model without an image "
     "tower): every clip queries the distinct captions of --data (audio->text), every distinct "
     "caption queries all clips, any clip of that caption counting (text->audio); R@1/5/10, "
     "mean/median rank, chance levels",
     s_audio, 0, 0, 0, "audio-text|image-text", NULL},
    {"gallery", 0, CLASP_ARG_STRING, A(gallery), "SPEC",
     "audio->image retrieval: each clip of --data queries the images of SPEC; the relevant images "
     "are those whose caption equals the clip's (--match text: same tokens after the model's "
     "normalisation, e.g. a spoken emoji name and the emoji's label); R@1/5/10 and chance (1 - "
     "C(N-m,k)/C(N,k))",
     s_audio, 0, 0, 0, NULL, NULL},
    {"match", 0, CLASP_ARG_CHOICE, A(match), NULL, "how --gallery images match a clip", s_audio, 0,
     0, 0, "text", NULL},
    CLASP_ARG_END,
};
#undef A

static cJSON *rank_json_(const clasp_rank_stats *r);

static cJSON *group_json_(const clasp_group_retrieval *g) {
    cJSON *o = rank_json_(&g->stats);
    static const char *const names[] = {"n_gallery", "unmatched",  "mean_relevant",   "chance_r1",
                                        "chance_r5", "chance_r10", "chance_mean_rank"};
    const double values[] = {(double)g->n_gallery, (double)g->unmatched, g->mean_relevant,
                             g->chance_r1,         g->chance_r5,         g->chance_r10,
                             g->chance_mean_rank};
    clasp_cli_add_numbers(o, names, values, sizeof values / sizeof values[0]);
    return o;
}

static void group_print_(const char *what, const clasp_group_retrieval *g) {
    fprintf(stderr,
            "  %-14s R@1 %6.2f%%  R@5 %6.2f%%  R@10 %6.2f%%  mean rank %.1f  median rank %.0f  "
            "(%lld queries, gallery %lld)\n"
            "  %-14s R@1 %6.2f%%  R@5 %6.2f%%  R@10 %6.2f%%  mean rank %.1f  (chance)\n",
            what, 100 * g->stats.r1, 100 * g->stats.r5, 100 * g->stats.r10, g->stats.mean_rank,
            g->stats.median_rank, (long long)g->stats.n, (long long)g->n_gallery, "",
            100 * g->chance_r1, 100 * g->chance_r5, 100 * g->chance_r10, g->chance_mean_rank);
}

/* Class-aware retrieval over the distinct captions (eval.h's clasp_eval_retrieval_match) into
 * r: "by_class" when some image has a label, "by_caption" always; prints the first of them. */
static clasp_status retrieval_match_(const clasp_eval_set *set, cJSON *r) {
    bool labelled = false;
    for (int64_t i = 0; i < set->n && !labelled; i++) labelled = set->labels[i] >= 0;
    static const char *const key[2] = {"by_class", "by_caption"};
    static const char *const hit[2] = {"a caption of the image's class (.cls)",
                                       "the image's own caption text"};
    for (int m = labelled ? 0 : 1; m < 2; m++) {
        clasp_group_retrieval i2t, t2i;
        CLASP_TRY(clasp_eval_retrieval_match(set, (clasp_eval_match)m, &i2t, &t2i));
        cJSON *o = cJSON_AddObjectToObject(r, key[m]);
        cJSON_AddItemToObject(o, "image_to_text", group_json_(&i2t));
        cJSON_AddItemToObject(o, "text_to_image", group_json_(&t2i));
        cJSON_AddNumberToObject(o, "n_images", (double)set->n);
        cJSON_AddNumberToObject(o, "n_captions", (double)i2t.n_gallery); /* distinct */
        if (m == 1 && labelled) continue;
        fprintf(
            stderr,
            "class-aware retrieval over the %lld distinct captions (%lld images; a hit = %s):\n",
            (long long)i2t.n_gallery, (long long)set->n, hit[m]);
        group_print_("image->text", &i2t);
        group_print_("text->image", &t2i);
    }
    return CLASP_OK;
}

/* audio<->text on --data, or audio->image against --gallery; adds to res. */
static clasp_status audio_eval_(clasp_embedder *em, const char *data, const char *gallery,
                                int workers, cJSON *res) {
    clasp_eval_towers ta, tg;
    memset(&tg, 0, sizeof tg);
    clasp_status s;
    if (!gallery) {
        s = clasp_eval_collect_towers(em, data, CLASP_TOWER_AUDIO, CLASP_TOWER_TEXT, workers, &ta);
        if (s != CLASP_OK) return s;
        clasp_eval_pair_result pr;
        s = clasp_eval_pair_retrieval(&ta, &pr);
        if (s == CLASP_OK) {
            cJSON_AddNumberToObject(res, "n", (double)ta.n);
            cJSON_AddNumberToObject(res, "skipped", (double)ta.skipped);
            cJSON *r = cJSON_AddObjectToObject(res, "retrieval");
            cJSON_AddStringToObject(r, "pair", "audio-text");
            cJSON_AddNumberToObject(r, "n_audio", (double)ta.n);
            cJSON_AddNumberToObject(r, "n_captions", (double)pr.n_unique);
            cJSON_AddItemToObject(r, "audio_to_text", group_json_(&pr.a_to_b));
            cJSON_AddItemToObject(r, "text_to_audio", group_json_(&pr.b_to_a));
            fprintf(stderr, "retrieval (%lld clips, %lld distinct captions, %lld skipped):\n",
                    (long long)ta.n, (long long)pr.n_unique, (long long)ta.skipped);
            group_print_("audio->text", &pr.a_to_b);
            group_print_("text->audio", &pr.b_to_a);
        }
        clasp_eval_towers_free(&ta);
        return s;
    }
    s = clasp_eval_collect_towers(em, data, CLASP_TOWER_AUDIO, CLASP_N_TOWERS, workers, &ta);
    if (s == CLASP_OK)
        s = clasp_eval_collect_towers(em, gallery, CLASP_TOWER_IMAGE, CLASP_N_TOWERS, workers, &tg);
    clasp_group_retrieval g;
    if (s == CLASP_OK)
        s = clasp_retrieval_by_group(ta.a, ta.group, ta.n, tg.a, tg.group, tg.n, ta.D, &g);
    if (s == CLASP_OK) {
        cJSON_AddNumberToObject(res, "n", (double)ta.n);
        cJSON_AddNumberToObject(res, "skipped", (double)(ta.skipped + tg.skipped));
        cJSON_AddStringToObject(res, "gallery", gallery);
        cJSON *o = group_json_(&g);
        cJSON_AddStringToObject(o, "match", "text");
        cJSON_AddItemToObject(res, "audio_to_image", o);
        fprintf(stderr,
                "audio->image (%lld clips of %s, %lld images of %s; %lld clips without a "
                "matching image left out; %.2f relevant images per clip):\n",
                (long long)ta.n, data, (long long)tg.n, gallery, (long long)g.unmatched,
                g.mean_relevant);
        group_print_("audio->image", &g);
    }
    clasp_eval_towers_free(&ta);
    clasp_eval_towers_free(&tg);
    return s;
}

static cJSON *rank_json_(const clasp_rank_stats *r) {
    cJSON *o = cJSON_CreateObject();
    static const char *const names[] = {"n", "r1", "r5", "r10", "mean_rank", "median_rank"};
    const double values[] = {(double)r->n, r->r1, r->r5, r->r10, r->mean_rank, r->median_rank};
    clasp_cli_add_numbers(o, names, values, sizeof values / sizeof values[0]);
    return o;
}

static double now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Zero-shot on a collected set; adds "zeroshot" to res. */
static clasp_status zeroshot_(clasp_embedder *em, const clasp_eval_set *set, const char *classes,
                              const char *templates, cJSON *res) {
    char **names = NULL, **tmpls = NULL;
    int nc = 0, nt = 0;
    CLASP_TRY(clasp_read_lines(classes, &names, &nc));
    clasp_status s = CLASP_OK;
    if (nc < 2) s = clasp_set_error(CLASP_ERR_FORMAT, "%s: needs at least 2 class names", classes);
    if (s == CLASP_OK && templates) {
        s = clasp_read_lines(templates, &tmpls, &nt);
        for (int t = 0; t < nt && s == CLASP_OK; t++)
            if (!strstr(tmpls[t], "{}"))
                s = clasp_set_error(CLASP_ERR_FORMAT, "%s: line %d ('%s') has no '{}'", templates,
                                    t + 1, tmpls[t]);
    }
    float *cls = malloc((size_t)(nc ? nc : 1) * (size_t)em->engine.D * sizeof(float));
    double *rec = malloc((size_t)(nc ? nc : 1) * sizeof(double));
    int64_t *cnt = malloc((size_t)(nc ? nc : 1) * sizeof(int64_t));
    if (s == CLASP_OK && (!cls || !rec || !cnt))
        s = clasp_set_error(CLASP_ERR_NOMEM, "out of memory");
    if (s == CLASP_OK)
        s = clasp_eval_class_embeddings(&em->engine, &em->pre, names, nc, tmpls, nt, cls);
    clasp_zeroshot_result zr;
    if (s == CLASP_OK) s = clasp_eval_zeroshot_set(set, cls, nc, &zr, rec, cnt);
    if (s == CLASP_OK) {
        cJSON *z = cJSON_AddObjectToObject(res, "zeroshot");
        cJSON_AddNumberToObject(z, "n", (double)zr.n);
        cJSON_AddNumberToObject(z, "n_classes", zr.n_classes);
        cJSON_AddNumberToObject(z, "n_templates", nt ? nt : 1);
        cJSON_AddNumberToObject(z, "top1", zr.top1);
        cJSON_AddNumberToObject(z, "top5", zr.top5);
        cJSON_AddNumberToObject(z, "top10", zr.top10);
        cJSON_AddNumberToObject(z, "mean_per_class_recall", zr.mean_recall);
        cJSON_AddNumberToObject(z, "skipped", (double)zr.skipped);
        cJSON *pc = cJSON_AddArrayToObject(z, "per_class");
        for (int c = 0; c < nc; c++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", names[c]);
            cJSON_AddNumberToObject(o, "n", (double)cnt[c]);
            if (cnt[c])
                cJSON_AddNumberToObject(o, "recall", rec[c]);
            else
                cJSON_AddNullToObject(o, "recall");
            cJSON_AddItemToArray(pc, o);
        }
        fprintf(stderr,
                "zero-shot (%lld images, %d classes): top-1 %.2f%%  top-5 %.2f%%  "
                "top-10 %.2f%%  mean per-class recall %.2f%%\n",
                (long long)zr.n, nc, 100 * zr.top1, 100 * zr.top5, 100 * zr.top10,
                100 * zr.mean_recall);
        for (int c = 0; c < nc; c++)
            if (cnt[c])
                fprintf(stderr, "  %-24s %6.2f%%  (%lld)\n", names[c], 100 * rec[c],
                        (long long)cnt[c]);
    }
    free(cls), free(rec), free(cnt);
    clasp_free_lines(names, nc);
    clasp_free_lines(tmpls, nt);
    return s;
}

/* Labelled features of one side of the probe / k-NN: (n, D) rows and their labels. */
typedef struct feats_ {
    const float *x;
    const int64_t *y;
    int64_t n;
} feats_;

/* The linear probe and, with --knn, the k-NN accuracy of the test features te against the
 * labelled reference features tr (of --probe-train); adds "probe" and "knn" to res. */
static clasp_status probe_knn_(const eval_args *e, feats_ tr, feats_ te, int D, cJSON *res) {
    const char *probe = e->probe;
    const clasp_probe_options po = e->po;
    clasp_probe_result pr;
    clasp_status s = clasp_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, D, &po, &pr);
    if (s == CLASP_OK) {
        cJSON *p = cJSON_AddObjectToObject(res, "probe");
        cJSON_AddStringToObject(p, "train", probe);
        cJSON_AddNumberToObject(p, "n_train", (double)pr.n_train);
        cJSON_AddNumberToObject(p, "n_test", (double)pr.n_test);
        cJSON_AddNumberToObject(p, "n_classes", pr.n_classes);
        cJSON_AddNumberToObject(p, "accuracy", pr.test_accuracy);
        cJSON_AddNumberToObject(p, "train_accuracy", pr.train_accuracy);
        cJSON_AddNumberToObject(p, "loss", pr.loss);
        cJSON_AddNumberToObject(p, "l2", po.l2);
        cJSON_AddNumberToObject(p, "iterations", pr.iterations);
        fprintf(stderr,
                "linear probe (%lld train, %lld test, %d classes): accuracy %.2f%% (train "
                "%.2f%%, %d iterations)\n",
                (long long)pr.n_train, (long long)pr.n_test, pr.n_classes, 100 * pr.test_accuracy,
                100 * pr.train_accuracy, pr.iterations);
    }
    clasp_knn_result kr;
    if (s == CLASP_OK && e->knn > 0)
        s = clasp_knn(tr.x, tr.y, tr.n, te.x, te.y, te.n, D, e->knn, e->knn_tau, &kr);
    if (s == CLASP_OK && e->knn > 0) {
        cJSON *k = cJSON_AddObjectToObject(res, "knn");
        cJSON_AddStringToObject(k, "train", probe);
        cJSON_AddNumberToObject(k, "k", kr.k);
        cJSON_AddNumberToObject(k, "tau", kr.tau);
        cJSON_AddStringToObject(k, "weighting", kr.tau > 0 ? "exp(s/tau)" : "majority");
        cJSON_AddNumberToObject(k, "n_train", (double)kr.n_train);
        cJSON_AddNumberToObject(k, "n_test", (double)kr.n_test);
        cJSON_AddNumberToObject(k, "n_classes", kr.n_classes);
        cJSON_AddNumberToObject(k, "accuracy", kr.accuracy);
        fprintf(stderr,
                "%d-NN (%lld reference, %lld test, %d classes, weights %s): accuracy %.2f%%\n",
                kr.k, (long long)kr.n_train, (long long)kr.n_test, kr.n_classes,
                kr.tau > 0 ? "exp(s/tau)" : "1 (majority)", 100 * kr.accuracy);
    }
    return s;
}

/* probe_knn_ on image features: --data's (set) against --probe-train's. */
static clasp_status probe_knn_image_(clasp_embedder *em, const eval_args *e,
                                     const clasp_eval_set *set, cJSON *res) {
    clasp_eval_set tr;
    clasp_status s =
        clasp_eval_collect(&em->engine, &em->pre, e->probe, CLASP_EVAL_TEXT_NONE, e->workers, &tr);
    if (s != CLASP_OK) return s;
    s = probe_knn_(e, (feats_){tr.img, tr.labels, tr.n}, (feats_){set->img, set->labels, set->n},
                   set->D, res);
    clasp_eval_set_free(&tr);
    return s;
}

/* probe_knn_ on audio features: --data's clips against --probe-train's (samples with audio, a
 * caption and, to count, a .cls label). */
static clasp_status probe_knn_audio_(clasp_embedder *em, const eval_args *e, cJSON *res) {
    clasp_eval_towers te, tr;
    memset(&tr, 0, sizeof tr);
    clasp_status s =
        clasp_eval_collect_towers(em, e->data, CLASP_TOWER_AUDIO, CLASP_N_TOWERS, e->workers, &te);
    if (s == CLASP_OK)
        s = clasp_eval_collect_towers(em, e->probe, CLASP_TOWER_AUDIO, CLASP_N_TOWERS, e->workers,
                                      &tr);
    if (s == CLASP_OK) {
        cJSON_AddStringToObject(res, "features", "audio");
        s = probe_knn_(e, (feats_){tr.a, tr.labels, tr.n}, (feats_){te.a, te.labels, te.n}, te.D,
                       res);
    }
    clasp_eval_towers_free(&te);
    clasp_eval_towers_free(&tr);
    return s;
}

/* Prints the result (--json) and appends it to the run's metrics; returns the exit code. */
static int finish_(cJSON *res, const eval_args *e, const clasp_embedder *em, double t0,
                   clasp_status s) {
    int rc = 0;
    if (s != CLASP_OK) {
        fprintf(stderr, "clasp eval: %s\n", clasp_last_error());
        rc = 1;
    } else {
        cJSON_AddNumberToObject(res, "seconds", now_() - t0);
        char *line = cJSON_PrintUnformatted(res);
        if (e->json && line) printf("%s\n", line);
        if (line && em->run_dir[0]) rc = clasp_cli_append_metrics("eval", em->run_dir, line);
        cJSON_free(line);
    }
    cJSON_Delete(res);
    return rc;
}

/* The fields every result starts with. */
static cJSON *result_head_(const clasp_embedder *em, const char *data) {
    cJSON *res = cJSON_CreateObject();
    char hex[17];
    clasp_hash_hex(em->model_hash, hex);
    cJSON_AddStringToObject(res, "kind", "eval");
    cJSON_AddStringToObject(res, "model", em->path);
    cJSON_AddStringToObject(res, "source",
                            em->kind == CLASP_SOURCE_EXPORT ? "export" : "checkpoint");
    cJSON_AddStringToObject(res, "model_hash", hex);
    if (em->step >= 0) cJSON_AddNumberToObject(res, "step", (double)em->step);
    cJSON_AddStringToObject(res, "data", data);
    return res;
}

int clasp_cmd_eval(int argc, char **argv) {
    eval_args e = {.pair = -1,
                   .threads = 2,
                   .batch = 256,
                   .workers = 1,
                   .po = clasp_probe_default_options(),
                   .knn_tau = 0.07};
    int prc;
    if (!clasp_args_parse(eval_table, &e, argc, argv, &prc)) return prc;
    if (e.tmpl && !e.zs)
        return clasp_args_usage_error(eval_table, "--templates only with --zeroshot");
    if (e.knn > 0 && !e.probe)
        return clasp_args_usage_error(eval_table,
                                      "--knn K needs --probe-train SPEC (the labelled reference "
                                      "set)");
    if (!(e.knn_tau >= 0))
        return clasp_args_usage_error(eval_table, "--knn-tau %g: expected a number >= 0",
                                      e.knn_tau);
    const char *data = e.data, *zs = e.zs, *tmpl = e.tmpl, *probe = e.probe;
    bool retrieval = e.retrieval, all_caps = e.all_caps;
    int workers = e.workers;
    if (!zs && !probe) retrieval = true;
    if (all_caps) retrieval = true;
    double t0 = now_();
    clasp_embedder em;
    if (clasp_cli_open_embedder(e.model, e.threads, e.batch, e.precision, false, &em) != CLASP_OK)
        return clasp_args_fail(eval_table);
    cJSON *res = result_head_(&em, data);
    bool audio_mode = e.gallery || e.pair == 0 ||
                      (e.pair < 0 && !clasp_embedder_has(&em, CLASP_TOWER_IMAGE) &&
                       clasp_embedder_has(&em, CLASP_TOWER_AUDIO));
    if (audio_mode) {
        clasp_status as = CLASP_OK;
        if (zs || all_caps)
            as = clasp_set_error(CLASP_ERR_ARG,
                                 "--zeroshot and --all-captions are image evaluations; not with "
                                 "audio");
        if (as == CLASP_OK && (!probe || e.retrieval || e.gallery))
            as = audio_eval_(&em, data, e.gallery, workers, res);
        if (as == CLASP_OK && probe) as = probe_knn_audio_(&em, &e, res);
        int arc = finish_(res, &e, &em, t0, as);
        clasp_embedder_close(&em);
        return arc;
    }
    clasp_eval_set set;
    clasp_eval_text want = !retrieval ? CLASP_EVAL_TEXT_NONE
                           : all_caps ? CLASP_EVAL_TEXT_ALL
                                      : CLASP_EVAL_TEXT_FIRST;
    clasp_status s = clasp_eval_collect(&em.engine, &em.pre, data, want, workers, &set);
    if (s == CLASP_OK) {
        cJSON_AddNumberToObject(res, "n", (double)set.n);
        cJSON_AddNumberToObject(res, "skipped", (double)set.skipped);
        fprintf(stderr, "clasp eval: %lld samples of %s (%lld skipped)\n", (long long)set.n, data,
                (long long)set.skipped);
    }
    if (s == CLASP_OK && zs) s = zeroshot_(&em, &set, zs, tmpl, res);
    if (s == CLASP_OK && retrieval) {
        clasp_retrieval_result rr;
        s = clasp_retrieval_metrics(set.img, set.n, set.txt, set.txt_owner, set.n_txt, set.D, &rr);
        if (s == CLASP_OK) {
            cJSON *r = cJSON_AddObjectToObject(res, "retrieval");
            cJSON_AddNumberToObject(r, "n_images", (double)rr.n_images);
            cJSON_AddNumberToObject(r, "n_texts", (double)rr.n_texts);
            cJSON_AddBoolToObject(r, "all_captions", all_caps);
            cJSON_AddItemToObject(r, "image_to_text", rank_json_(&rr.i2t));
            cJSON_AddItemToObject(r, "text_to_image", rank_json_(&rr.t2i));
            fprintf(stderr,
                    "retrieval (%lld images, %lld texts; a hit = the image's own caption):\n"
                    "  image->text R@1 %.2f%%  R@5 %.2f%%  R@10 %.2f%%  mean rank %.1f  median "
                    "rank %.0f\n"
                    "  text->image R@1 %.2f%%  R@5 %.2f%%  R@10 %.2f%%  mean rank %.1f  median "
                    "rank %.0f\n",
                    (long long)rr.n_images, (long long)rr.n_texts, 100 * rr.i2t.r1, 100 * rr.i2t.r5,
                    100 * rr.i2t.r10, rr.i2t.mean_rank, rr.i2t.median_rank, 100 * rr.t2i.r1,
                    100 * rr.t2i.r5, 100 * rr.t2i.r10, rr.t2i.mean_rank, rr.t2i.median_rank);
            s = retrieval_match_(&set, r);
        }
    }
    if (s == CLASP_OK && probe) s = probe_knn_image_(&em, &e, &set, res);
    clasp_eval_set_free(&set);
    int rc = finish_(res, &e, &em, t0, s);
    clasp_embedder_close(&em);
    return rc;
}
