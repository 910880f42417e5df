/* eval.h: evaluation of a contrastive model on shards: zero-shot classification (class
 * embedding = mean of the normalised prompt embeddings over the templates, renormalised;
 * OpenCLIP's zero_shot_classifier) and, later, retrieval. Shared by `clasp train --val` and
 * `clasp eval`. */
#ifndef CLASP_PIPELINE_EVAL_H
#define CLASP_PIPELINE_EVAL_H

#include <stdint.h>

#include "core/status.h"
#include "pipeline/engine.h"

typedef struct clasp_zeroshot_result {
    double top1, top5;  /* fraction of images whose class is in the top-1 / top-5 */
    double mean_recall; /* mean over classes of per-class top-1 recall */
    int64_t n;          /* images evaluated (with a label in range) */
    int n_classes;
    int64_t skipped; /* samples skipped (bad data, missing or out-of-range label) */
} clasp_zeroshot_result;

/* Reads class names (one per line) and templates (one per line with "{}" for the class name;
 * NULL = the class name alone), embeds the prompts, then every image of `spec` in order, and
 * scores argmax cosine against the labels in the samples' "cls" field. `workers` decode
 * threads. Errors name the file (empty class list, a template without "{}", unreadable
 * spec). */
clasp_status clasp_eval_zeroshot(clasp_engine *e, const char *spec, const char *classes_path,
                                 const char *templates_path, int workers,
                                 clasp_zeroshot_result *out);

/* Class embeddings (n_classes, D), normalised, from names and templates already in memory. */
clasp_status clasp_eval_class_embeddings(clasp_engine *e, char **names, int n_classes,
                                         char **templates, int n_templates, float *out);

/* Reads a text file into non-empty trimmed lines (caller frees with clasp_free_lines). */
clasp_status clasp_read_lines(const char *path, char ***lines, int *n);
void clasp_free_lines(char **lines, int n);

#endif
