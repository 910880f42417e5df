/* split.c: the train/validation split rule and the pair of writers it feeds (see split.h). */
#include "datasets/split.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "datasets/internal.h"

bool clasp_split_is_validation(const char *split_id, int val_percent) {
    return clasp_hash_str(split_id, 0) % 100 < (uint64_t)val_percent;
}

clasp_status clasp_split_check_percent(const char *builder, int val_percent) {
    if (val_percent < 0 || val_percent > 100)
        return clasp_set_error(CLASP_ERR_ARG, "%s: val_percent %d not in 0..100", builder,
                               val_percent);
    return CLASP_OK;
}

void clasp_split_options(cJSON *opt, int val_percent, const char *rule,
                         const clasp_shards_options *s) {
    cJSON_AddNumberToObject(opt, "val_percent", val_percent);
    cJSON_AddStringToObject(opt, "split_rule", rule);
    clasp_shards_options_to_json(opt, s);
}

clasp_status clasp_split_writers_open(clasp_split_writers *w, clasp_manifest *m,
                                      const clasp_shards_options *s, int val_percent) {
    *w = (clasp_split_writers){.m = m, .val_percent = val_percent};
    CLASP_TRY(clasp_mkdir_p(s->out_dir));
    clasp_shard_writer_config train = clasp_shards_writer_config(s, "train");
    clasp_shard_writer_config val = clasp_shards_writer_config(s, "validation");
    CLASP_TRY(clasp_shard_writer_open(&train, &w->train));
    return clasp_shard_writer_open(&val, &w->val);
}

clasp_status clasp_split_writers_add(clasp_split_writers *w, const char *split_id, const char *key,
                                     const char *item, const clasp_shard_field *fields,
                                     size_t n_fields, size_t *written) {
    bool is_val = clasp_split_is_validation(split_id, w->val_percent);
    clasp_status st = clasp_shard_writer_add(is_val ? w->val : w->train, key, fields, n_fields);
    if (st == CLASP_ERR_ARG) return clasp_manifest_skip(w->m, "bad_name", item, clasp_last_error());
    if (st == CLASP_OK) (*written)++;
    return st;
}

clasp_status clasp_split_writers_add_speech(clasp_split_writers *w, const char *split_id,
                                            const char *key, const char *item, cJSON *meta,
                                            const char *text, const void *wav, size_t wn,
                                            size_t *written) {
    char *js = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    if (!js) return clasp_set_error(CLASP_ERR_NOMEM, "%s: out of memory", key);
    clasp_shard_field f[3] = {
        {"json", js, strlen(js)}, {"txt", text, strlen(text)}, {"wav", wav, wn}};
    clasp_status st = clasp_split_writers_add(w, split_id, key, item, f, 3, written);
    free(js);
    return st;
}

clasp_status clasp_split_writers_finish(clasp_split_writers *w, const char *dir) {
    CLASP_TRY(clasp_shard_writer_close(w->train));
    CLASP_TRY(clasp_shard_writer_close(w->val));
    CLASP_TRY(clasp_manifest_add_split(w->m, "train", w->train));
    CLASP_TRY(clasp_manifest_add_split(w->m, "validation", w->val));
    return clasp_manifest_save(w->m, dir);
}

void clasp_split_writers_free(clasp_split_writers *w) {
    clasp_shard_writer_free(w->train);
    clasp_shard_writer_free(w->val);
    w->train = w->val = NULL;
}
