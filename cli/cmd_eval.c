/* cmd_eval.c: `clasp eval --model EXPORT|CKPT|RUN --data SPEC [--zeroshot classes.txt
 * [--templates t.txt]] [--retrieval [--all-captions]] [--probe-train SPEC]`: zero-shot
 * classification, retrieval both ways and a linear probe (eval/eval.h, retrieval.h).
 * Human text goes to stderr, the JSON result to stdout with --json; when the model is a
 * checkpoint inside a run folder the result is also appended to RUN/metrics.jsonl as one line
 * with "kind": "eval". */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "core/hash.h"
#include "eval/eval.h"
#include "export/export.h"
#include "eval/retrieval.h"

static void usage_(FILE *f) {
    fprintf(f, "usage: clasp eval --model EXPORT|CKPT|RUN --data SPEC [--zeroshot classes.txt\n"
               "                  [--templates t.txt]] [--retrieval [--all-captions]]\n"
               "                  [--probe-train SPEC [--probe-l2 X] [--probe-iters N]]\n"
               "                  [--threads N] [--batch-size B] [--workers W] [--json]\n\n"
               "Evaluates a model on the samples of SPEC (in shard order, no augmentation).\n"
               "  --zeroshot FILE     zero-shot classification: class names (one per line, line i\n"
               "                      = label i of the samples' .cls); --templates FILE: prompts\n"
               "                      with '{}' (class embedding = mean of the normalised prompt\n"
               "                      embeddings, renormalised). top-1/5/10, recall per class.\n"
               "  --retrieval         image<->text retrieval R@1/5/10, mean and median rank\n"
               "                      (OpenCLIP's definitions); the default when nothing else is\n"
               "                      asked. --all-captions: every caption of a sample's json\n"
               "                      'captions' list is a query; image->text counts the best.\n"
               "  --probe-train SPEC  linear probe: logistic regression on frozen image features\n"
               "                      of SPEC (labels from .cls), accuracy on --data's features.\n"
               "                      --probe-l2 (default 1e-4), --probe-iters (default 1000).\n"
               "  --threads N         compute threads (default 2); --batch-size B (default 256);\n"
               "  --workers W         decode threads (default 1)\n"
               "  --json              result as JSON on stdout\n");
    fprintf(f, "audio (models with an audio tower)\n"
               "  --pair audio-text   audio<->text retrieval on --data (the default for a model\n"
               "                      without an image tower): every clip queries the distinct\n"
               "                      captions of --data (audio->text), every distinct caption\n"
               "                      queries all clips, any clip of that caption counting\n"
               "                      (text->audio); R@1/5/10, mean/median rank, chance levels\n"
               "  --gallery SPEC      audio->image retrieval: each clip of --data queries the\n"
               "                      images of SPEC; the relevant images are those whose caption\n"
               "                      equals the clip's (--match text: same tokens after the\n"
               "                      model's normalisation, e.g. a spoken emoji name and the\n"
               "                      emoji's label); R@1/5/10 and chance (1 - C(N-m,k)/C(N,k))\n");
}

static cJSON *rank_json_(const clasp_rank_stats *r);

static cJSON *group_json_(const clasp_group_retrieval *g) {
    cJSON *o = rank_json_(&g->stats);
    cJSON_AddNumberToObject(o, "n_gallery", (double)g->n_gallery);
    cJSON_AddNumberToObject(o, "unmatched", (double)g->unmatched);
    cJSON_AddNumberToObject(o, "mean_relevant", g->mean_relevant);
    cJSON_AddNumberToObject(o, "chance_r1", g->chance_r1);
    cJSON_AddNumberToObject(o, "chance_r5", g->chance_r5);
    cJSON_AddNumberToObject(o, "chance_r10", g->chance_r10);
    cJSON_AddNumberToObject(o, "chance_mean_rank", g->chance_mean_rank);
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

/* Class-aware retrieval (eval.h's clasp_eval_retrieval_match) into r: "by_class" when some
 * image has a label, "by_caption" always; prints the first of them. */
static clasp_status retrieval_match_(const clasp_eval_set *set, cJSON *r) {
    bool labelled = false;
    for (int64_t i = 0; i < set->n && !labelled; i++) labelled = set->labels[i] >= 0;
    static const char *const key[2] = {"by_class", "by_caption"};
    static const char *const hit[2] = {"any caption of the image's class (.cls)",
                                       "any caption with the same text"};
    for (int m = labelled ? 0 : 1; m < 2; m++) {
        clasp_group_retrieval i2t, t2i;
        CLASP_TRY(clasp_eval_retrieval_match(set, (clasp_eval_match)m, &i2t, &t2i));
        cJSON *o = cJSON_AddObjectToObject(r, key[m]);
        cJSON_AddItemToObject(o, "image_to_text", group_json_(&i2t));
        cJSON_AddItemToObject(o, "text_to_image", group_json_(&t2i));
        if (m == 1 && labelled) continue;
        fprintf(stderr, "class-aware retrieval (a hit = %s):\n", hit[m]);
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
    cJSON_AddNumberToObject(o, "n", (double)r->n);
    cJSON_AddNumberToObject(o, "r1", r->r1);
    cJSON_AddNumberToObject(o, "r5", r->r5);
    cJSON_AddNumberToObject(o, "r10", r->r10);
    cJSON_AddNumberToObject(o, "mean_rank", r->mean_rank);
    cJSON_AddNumberToObject(o, "median_rank", r->median_rank);
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

int clasp_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *zs = NULL, *tmpl = NULL, *probe = NULL;
    const char *gallery = NULL, *pair = NULL, *match = "text";
    bool retrieval = false, all_caps = false, json = false;
    int threads = 2, batch = 256, workers = 1;
    clasp_probe_options po = clasp_probe_default_options();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && more) {
            model = argv[++i];
        } else if (!strcmp(a, "--data") && more) {
            data = argv[++i];
        } else if (!strcmp(a, "--gallery") && more) {
            gallery = argv[++i];
        } else if (!strcmp(a, "--pair") && more) {
            pair = argv[++i];
        } else if (!strcmp(a, "--match") && more) {
            match = argv[++i];
        } else if (!strcmp(a, "--zeroshot") && more) {
            zs = argv[++i];
        } else if (!strcmp(a, "--templates") && more) {
            tmpl = argv[++i];
        } else if (!strcmp(a, "--retrieval")) {
            retrieval = true;
        } else if (!strcmp(a, "--all-captions")) {
            all_caps = true;
        } else if (!strcmp(a, "--probe-train") && more) {
            probe = argv[++i];
        } else if (!strcmp(a, "--probe-l2") && more) {
            po.l2 = atof(argv[++i]);
        } else if (!strcmp(a, "--probe-iters") && more) {
            po.max_iter = atoi(argv[++i]);
        } else if (!strcmp(a, "--threads") && more) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(a, "--batch-size") && more) {
            batch = atoi(argv[++i]);
        } else if (!strcmp(a, "--workers") && more) {
            workers = atoi(argv[++i]);
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            fprintf(stderr, "clasp eval: unknown or incomplete option %s\n", a);
            usage_(stderr);
            return 2;
        }
    }
    if (!model || !data || threads < 1 || batch < 1 || workers < 1 || po.l2 < 0 ||
        po.max_iter < 1 || (tmpl && !zs)) {
        fprintf(stderr, "clasp eval: need --model and --data (positive --threads, --batch-size, "
                        "--workers; --templates only with --zeroshot)\n");
        usage_(stderr);
        return 2;
    }
    if (strcmp(match, "text") != 0 ||
        (pair && strcmp(pair, "audio-text") != 0 && strcmp(pair, "image-text") != 0)) {
        fprintf(stderr, "clasp eval: --match must be text; --pair audio-text or image-text\n");
        return 2;
    }
    if (!zs && !probe) retrieval = true;
    if (all_caps) retrieval = true;
    double t0 = now_();
    clasp_embedder em;
    if (clasp_embedder_open(model, threads, batch, &em) != CLASP_OK) {
        fprintf(stderr, "clasp eval: %s\n", clasp_last_error());
        return 1;
    }
    cJSON *res = cJSON_CreateObject();
    char hex[17];
    clasp_hash_hex(em.model_hash, hex);
    cJSON_AddStringToObject(res, "kind", "eval");
    cJSON_AddStringToObject(res, "model", em.path);
    cJSON_AddStringToObject(res, "source",
                            em.kind == CLASP_SOURCE_EXPORT ? "export" : "checkpoint");
    cJSON_AddStringToObject(res, "model_hash", hex);
    if (em.step >= 0) cJSON_AddNumberToObject(res, "step", (double)em.step);
    cJSON_AddStringToObject(res, "data", data);
    bool audio_mode = gallery || (pair && !strcmp(pair, "audio-text")) ||
                      (!pair && !clasp_embedder_has(&em, CLASP_TOWER_IMAGE) &&
                       clasp_embedder_has(&em, CLASP_TOWER_AUDIO));
    if (audio_mode) {
        clasp_status as = CLASP_OK;
        if (zs || probe || all_caps)
            as = clasp_set_error(CLASP_ERR_ARG, "--zeroshot, --probe-train and --all-captions are "
                                                "image evaluations; not with audio");
        if (as == CLASP_OK) as = audio_eval_(&em, data, gallery, workers, res);
        int arc = 0;
        if (as != CLASP_OK) {
            fprintf(stderr, "clasp eval: %s\n", clasp_last_error());
            arc = 1;
        } else {
            cJSON_AddNumberToObject(res, "seconds", now_() - t0);
            char *line = cJSON_PrintUnformatted(res);
            if (json && line) printf("%s\n", line);
            if (line && em.run_dir[0]) {
                char mp[4200];
                snprintf(mp, sizeof mp, "%s/metrics.jsonl", em.run_dir);
                FILE *f = fopen(mp, "a");
                if (!f || fprintf(f, "%s\n", line) < 0) arc = 1;
                if (f) fclose(f);
            }
            cJSON_free(line);
        }
        cJSON_Delete(res);
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
    if (s == CLASP_OK && probe) {
        clasp_eval_set tr;
        s = clasp_eval_collect(&em.engine, &em.pre, probe, CLASP_EVAL_TEXT_NONE, workers, &tr);
        clasp_probe_result pr;
        if (s == CLASP_OK)
            s = clasp_linear_probe(tr.img, tr.labels, tr.n, set.img, set.labels, set.n, set.D, &po,
                                   &pr);
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
                    (long long)pr.n_train, (long long)pr.n_test, pr.n_classes,
                    100 * pr.test_accuracy, 100 * pr.train_accuracy, pr.iterations);
        }
        clasp_eval_set_free(&tr);
    }
    clasp_eval_set_free(&set);
    int rc = 0;
    if (s != CLASP_OK) {
        fprintf(stderr, "clasp eval: %s\n", clasp_last_error());
        rc = 1;
    } else {
        cJSON_AddNumberToObject(res, "seconds", now_() - t0);
        char *line = cJSON_PrintUnformatted(res);
        if (json && line) printf("%s\n", line);
        if (line && em.run_dir[0]) {
            char mp[4200];
            snprintf(mp, sizeof mp, "%s/metrics.jsonl", em.run_dir);
            FILE *f = fopen(mp, "a");
            if (!f || fprintf(f, "%s\n", line) < 0) {
                fprintf(stderr, "clasp eval: cannot append to %s\n", mp);
                rc = 1;
            } else {
                fprintf(stderr, "clasp eval: appended to %s\n", mp);
            }
            if (f) fclose(f);
        }
        cJSON_free(line);
    }
    cJSON_Delete(res);
    clasp_embedder_close(&em);
    return rc;
}
