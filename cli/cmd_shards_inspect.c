/* cmd_shards_inspect.c: `clasp shards inspect SPEC [--decode] [--require FIELDS] [--json]`:
 * reads every sample of a shard spec as training would and reports shards, bytes, counts per
 * field and extension, skips per reason and the first few skipped samples (shard + key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "pipeline/loader.h"
#include "pipeline/shardlist.h"
#include "pipeline/tar_reader.h"

#define MAX_EXTS 64

typedef struct ext_count {
    char ext[32];
    unsigned long long n;
} ext_count;

static void usage_(FILE *f) {
    fprintf(f, "usage: clasp shards inspect SPEC [--decode] [--require FIELDS] [--json]\n"
               "                            [--on-error skip|fail]\n\n"
               "Reads every sample of SPEC (braces, '::', pipe:CMD, '-') as training would.\n"
               "  --decode          decode each field (images, captions, audio, labels)\n"
               "  --require FIELDS  fields a usable sample needs: image,text or audio,text ...\n"
               "  --json            machine-readable summary on stdout\n"
               "  --on-error P      missing/unreadable shard: skip (default) or fail\n"
               "Exit status: 0 when the spec could be read (bad samples are counts), 1 when no\n"
               "shard could be read or --on-error fail met a bad shard, 2 for a bad spec.\n");
}

static void count_ext_(ext_count *ec, size_t *n_ec, const char *ext) {
    for (size_t i = 0; i < *n_ec; i++)
        if (!strcmp(ec[i].ext, ext)) {
            ec[i].n++;
            return;
        }
    if (*n_ec == MAX_EXTS) return;
    snprintf(ec[*n_ec].ext, sizeof ec[0].ext, "%s", ext);
    ec[(*n_ec)++].n = 1;
}

int clasp_cmd_shards_inspect(int argc, char **argv) {
    const char *spec = NULL, *require = NULL;
    bool decode = false, json = false, fail = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--decode")) {
            decode = true;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--require") && i + 1 < argc) {
            require = argv[++i];
        } else if (!strcmp(argv[i], "--on-error") && i + 1 < argc) {
            const char *p = argv[++i];
            if (strcmp(p, "skip") && strcmp(p, "fail")) {
                fprintf(stderr, "clasp shards inspect: --on-error: expected skip or fail\n");
                return 2;
            }
            fail = !strcmp(p, "fail");
        } else if (argv[i][0] == '-' && argv[i][1] != 0) {
            fprintf(stderr, "clasp shards inspect: unknown option '%s'\n", argv[i]);
            usage_(stderr);
            return 2;
        } else if (!spec) {
            spec = argv[i];
        } else {
            fprintf(stderr, "clasp shards inspect: one SPEC only (join several with '::')\n");
            return 2;
        }
    }
    if (!spec) {
        usage_(stderr);
        return 2;
    }
    unsigned need = 0;
    if (clasp_field_parse_required(require, &need) != CLASP_OK) {
        fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
        return 2;
    }
    clasp_shardlist list;
    if (clasp_shardlist_expand(spec, &list) != CLASP_OK) {
        fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
        clasp_shardlist_free(&list);
        return 2;
    }

    clasp_loader_config cfg = clasp_loader_default_config();
    cfg.eval = true; /* no augmentation: decode as evaluation would */
    clasp_tokenizer *tok = NULL;
    clasp_decoder *decoders[16] = {NULL}; /* one per required-field mask */
    clasp_data_stats st;
    clasp_data_stats_init(&st);
    ext_count exts[MAX_EXTS];
    size_t n_exts = 0;
    unsigned long long kinds[CLASP_FIELD_N] = {0};
    int rc = 0;
    if (decode && clasp_tokenizer_new_bytes(&tok) != CLASP_OK) {
        fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
        rc = 1;
    }
    clasp_sample s = {0};
    unsigned long long member_bytes = 0; /* from the headers, so also without --decode */
    for (size_t k = 0; k < list.n && rc == 0; k++) {
        clasp_tar_reader *r;
        if (clasp_tar_open(list.names[k], &st, 0, &r) != CLASP_OK) {
            if (fail) {
                fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
                rc = 1;
            }
            continue;
        }
        bool got;
        uint64_t n_in_shard = 0;
        while (clasp_tar_next(r, decode, &s, &got) == CLASP_OK && got) {
            n_in_shard++;
            unsigned present = 0;
            for (size_t i = 0; i < s.n_fields; i++) {
                clasp_field_kind kd = clasp_field_map_kind(&cfg.fields, s.fields[i].ext);
                kinds[kd]++;
                count_ext_(exts, &n_exts, s.fields[i].ext);
                member_bytes += s.fields[i].n;
                if (kd < CLASP_FIELD_JSON) present |= 1u << kd;
                if (kd == CLASP_FIELD_JSON) present |= CLASP_NEED_TEXT;
            }
            if (s.truncated) {
                clasp_data_stats_skip(&st, CLASP_SKIP_TRUNCATED, s.shard, s.key, "member data cut");
                continue;
            }
            if (s.too_large) {
                clasp_data_stats_skip(&st, CLASP_SKIP_TOO_LARGE, s.shard, s.key, NULL);
                continue;
            }
            if (!decode) {
                if ((need & present) != need) {
                    clasp_data_stats_skip(&st, CLASP_SKIP_MISSING_FIELD, s.shard, s.key,
                                          "a required field is absent");
                    continue;
                }
                clasp_data_stats_add(&st, &st.samples_ok, 1);
                continue;
            }
            /* With --decode, decode the required fields, or every field present. */
            unsigned mask = need ? need : present;
            mask &= 15u;
            if (!decoders[mask]) {
                clasp_loader_config c = cfg;
                c.required = mask;
                if (clasp_decoder_new(&c, tok, &decoders[mask]) != CLASP_OK) {
                    fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
                    rc = 1;
                    break;
                }
            }
            bool ok;
            clasp_skip_reason why;
            if (clasp_decoder_run(decoders[mask], &s, 0, &st, NULL, &ok, &why) != CLASP_OK) {
                fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
                rc = 1;
                break;
            }
            if (ok) clasp_data_stats_add(&st, &st.samples_ok, 1);
        }
        if (fail && clasp_tar_failed(r) && n_in_shard == 0) {
            fprintf(stderr, "clasp shards inspect: shard %s is not a readable tar\n",
                    list.names[k]);
            rc = 1;
        }
        clasp_tar_close(r);
    }
    clasp_sample_clear(&s);
    if (rc == 0 && st.shards_opened == 0) {
        fprintf(stderr, "clasp shards inspect: none of the %zu shard(s) of '%s' could be read\n",
                list.n, spec);
        rc = 1;
    }

    st.bytes = member_bytes;
    cJSON *o = clasp_data_stats_to_json(&st);
    if (o) {
        cJSON_AddStringToObject(o, "spec", spec);
        cJSON_AddNumberToObject(o, "shards", (double)list.n);
        cJSON_AddNumberToObject(o, "shards_read", (double)st.shards_opened);
        cJSON_AddBoolToObject(o, "decoded", decode);
        cJSON *f = cJSON_AddObjectToObject(o, "fields");
        for (int i = 0; i < CLASP_FIELD_N; i++)
            cJSON_AddNumberToObject(f, clasp_field_kind_name((clasp_field_kind)i),
                                    (double)kinds[i]);
        cJSON *e = cJSON_AddObjectToObject(o, "extensions");
        for (size_t i = 0; i < n_exts; i++)
            cJSON_AddNumberToObject(e, exts[i].ext, (double)exts[i].n);
    }
    if (!o) {
        fprintf(stderr, "clasp shards inspect: out of memory\n");
        rc = 1;
    } else if (json) {
        char *txt = cJSON_Print(o);
        if (txt) printf("%s\n", txt);
        free(txt);
    } else {
        printf("spec: %s\n", spec);
        printf("shards: %zu (%llu read, %llu with errors)\n", list.n,
               (unsigned long long)st.shards_opened,
               (unsigned long long)clasp_data_stats_total_shard_errors(&st));
        printf("bytes: %llu (member data)\n", (unsigned long long)st.bytes);
        printf("samples: %llu read, %llu ok, %llu skipped\n", (unsigned long long)st.samples_read,
               (unsigned long long)st.samples_ok,
               (unsigned long long)clasp_data_stats_total_skipped(&st));
        printf("fields:");
        for (int i = 0; i < CLASP_FIELD_N; i++)
            if (kinds[i]) printf(" %s=%llu", clasp_field_kind_name((clasp_field_kind)i), kinds[i]);
        printf("\nextensions:");
        for (size_t i = 0; i < n_exts; i++) printf(" %s=%llu", exts[i].ext, exts[i].n);
        printf("\n");
        for (int i = 0; i < CLASP_SKIP_N; i++)
            if (st.skipped[i])
                printf("skipped %s: %llu\n", clasp_skip_reason_name((clasp_skip_reason)i),
                       (unsigned long long)st.skipped[i]);
        for (int i = 0; i < CLASP_SHARD_N; i++)
            if (st.shard_errors[i])
                printf("shard errors %s: %llu\n", clasp_shard_error_name((clasp_shard_error)i),
                       (unsigned long long)st.shard_errors[i]);
        if (st.repeated_ext)
            printf("repeated extensions (sample split): %llu\n",
                   (unsigned long long)st.repeated_ext);
        for (size_t i = 0; i < st.n_first_skips; i++)
            printf("first skips: %s\n", st.first_skips[i]);
    }
    cJSON_Delete(o);
    for (int i = 0; i < 16; i++) clasp_decoder_free(decoders[i]);
    clasp_tokenizer_free(tok);
    clasp_data_stats_free(&st);
    clasp_shardlist_free(&list);
    return rc;
}
