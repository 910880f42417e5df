/* build.c: the options every shard builder has (see build.h). */
#include "datasets/build.h"

clasp_shard_writer_config clasp_shards_writer_config(const clasp_shards_options *s,
                                                     const char *prefix) {
    return (clasp_shard_writer_config){
        .dir = s->out_dir, .prefix = prefix, .maxcount = s->maxcount, .maxsize = s->maxsize};
}

void clasp_shards_options_to_json(cJSON *opt, const clasp_shards_options *s) {
    cJSON_AddNumberToObject(opt, "maxcount", (double)s->maxcount);
    cJSON_AddNumberToObject(opt, "maxsize", (double)s->maxsize);
    cJSON_AddNumberToObject(opt, "limit", (double)s->limit);
}
