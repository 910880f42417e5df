/* cmd_shards_inspect.c: `clasp shards inspect SPEC [--decode] [--require FIELDS] [--json]`:
 * reads every sample of a shard spec as training would and reports shards, bytes, counts per
 * field and extension, skips per reason and the first few skipped samples (shard + key). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "pipeline/loader.h"
#include "pipeline/shardlist.h"
#include "pipeline/tar_reader.h"

#define MAX_EXTS 64

typedef struct ext_count {
    char ext[32];
    unsigned long long n;
} ext_count;

/* The option values of one invocation; the table below points into it. */
typedef struct inspect_args {
    const char *spec, *require;
    bool decode, json;
    int on_error; /* CHOICE index of skip|fail */
} inspect_args;

#define A(field) offsetof(inspect_args, field)
static const clasp_arg inspect_table[] = {
    CLASP_ARG_COMMAND(
        "shards inspect", "SPEC [--decode] [--require FIELDS] [--json]\n [--on-error skip|fail]",
        "Reads every sample of SPEC (braces, '::', pipe:CMD, '-' = a tar on stdin) as training\n"
        "would.\n\n",
        "Exit status: 0 when the spec could be read (bad samples are counts), 1 when no\n"
        "shard could be read or --on-error fail met a bad shard, 2 for a bad spec.\n"),
    {"SPEC", 0, CLASP_ARG_POS, A(spec), NULL, NULL, NULL, CLASP_ARG_REQ, 0, 0, NULL, NULL},
    {"decode", 0, CLASP_ARG_FLAG, A(decode), NULL,
     "decode each field (images, captions, audio, labels)", NULL, 0, 0, 0, NULL, NULL},
    {"require", 0, CLASP_ARG_STRING, A(require), "FIELDS",
     "fields a usable sample needs: image,text or audio,text ...", NULL, 0, 0, 0, NULL, NULL},
    {"json", 0, CLASP_ARG_FLAG, A(json), NULL, "machine-readable summary on stdout", NULL, 0, 0, 0,
     NULL, NULL},
    {"on-error", 0, CLASP_ARG_CHOICE, A(on_error), "P",
     "missing/unreadable shard: skip (default) or fail", NULL, 0, 0, 0, "skip|fail", NULL},
    CLASP_ARG_END,
};
#undef A

/* What a scan counts, and the decoders it needs. */
typedef struct inspect_state {
    const inspect_args *a;
    unsigned need; /* required-field mask */
    clasp_loader_config cfg;
    clasp_tokenizer *tok;
    clasp_decoder *decoders[16]; /* one per required-field mask */
    clasp_data_stats st;
    ext_count exts[MAX_EXTS];
    size_t n_exts;
    unsigned long long kinds[CLASP_FIELD_N];
    unsigned long long member_bytes; /* from the headers, so also without --decode */
} inspect_state;

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

/* Counts one sample (decoding it with --decode); returns 0, or 1 on a runtime error. */
static int sample_(inspect_state *x, clasp_sample *s) {
    clasp_data_stats *st = &x->st;
    unsigned present = 0;
    for (size_t i = 0; i < s->n_fields; i++) {
        clasp_field_kind kd = clasp_field_map_kind(&x->cfg.fields, s->fields[i].ext);
        x->kinds[kd]++;
        count_ext_(x->exts, &x->n_exts, s->fields[i].ext);
        x->member_bytes += s->fields[i].n;
        if (kd < CLASP_FIELD_JSON) present |= 1u << kd;
        if (kd == CLASP_FIELD_JSON) present |= CLASP_NEED_TEXT;
    }
    if (s->truncated) {
        clasp_data_stats_skip(st, CLASP_SKIP_TRUNCATED, s->shard, s->key, "member data cut");
        return 0;
    }
    if (s->too_large) {
        clasp_data_stats_skip(st, CLASP_SKIP_TOO_LARGE, s->shard, s->key, NULL);
        return 0;
    }
    if (!x->a->decode) {
        if ((x->need & present) != x->need) {
            clasp_data_stats_skip(st, CLASP_SKIP_MISSING_FIELD, s->shard, s->key,
                                  "a required field is absent");
            return 0;
        }
        clasp_data_stats_add(st, &st->samples_ok, 1);
        return 0;
    }
    /* With --decode, decode the required fields, or every field present. */
    unsigned mask = x->need ? x->need : present;
    mask &= 15u;
    if (!x->decoders[mask]) {
        clasp_loader_config c = x->cfg;
        c.required = mask;
        if (clasp_decoder_new(&c, x->tok, &x->decoders[mask]) != CLASP_OK) return 1;
    }
    bool ok;
    clasp_skip_reason why;
    if (clasp_decoder_run(x->decoders[mask], s, 0, st, NULL, &ok, &why) != CLASP_OK) return 1;
    if (ok) clasp_data_stats_add(st, &st->samples_ok, 1);
    return 0;
}

/* Reads every shard of list; returns the exit code so far. */
static int scan_(inspect_state *x, const clasp_shardlist *list) {
    bool fail = x->a->on_error == 1;
    int rc = 0;
    clasp_sample s = {0};
    for (size_t k = 0; k < list->n && rc == 0; k++) {
        clasp_tar_reader *r;
        if (clasp_tar_open(list->names[k], &x->st, 0, &r) != CLASP_OK) {
            if (fail) rc = 1;
            continue;
        }
        bool got;
        uint64_t n_in_shard = 0;
        while (rc == 0 && clasp_tar_next(r, x->a->decode, &s, &got) == CLASP_OK && got) {
            n_in_shard++;
            rc = sample_(x, &s);
        }
        if (rc == 0 && fail && clasp_tar_failed(r) && n_in_shard == 0) {
            clasp_set_error(CLASP_ERR_IO, "shard %s is not a readable tar", list->names[k]);
            rc = 1;
        }
        clasp_tar_close(r);
    }
    clasp_sample_clear(&s);
    if (rc) fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
    if (rc == 0 && x->st.shards_opened == 0) {
        fprintf(stderr, "clasp shards inspect: none of the %zu shard(s) of '%s' could be read\n",
                list->n, x->a->spec);
        rc = 1;
    }
    return rc;
}

static cJSON *to_json_(inspect_state *x, const clasp_shardlist *list) {
    cJSON *o = clasp_data_stats_to_json(&x->st);
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "spec", x->a->spec);
    cJSON_AddNumberToObject(o, "shards", (double)list->n);
    cJSON_AddNumberToObject(o, "shards_read", (double)x->st.shards_opened);
    cJSON_AddBoolToObject(o, "decoded", x->a->decode);
    cJSON *f = cJSON_AddObjectToObject(o, "fields");
    for (int i = 0; i < CLASP_FIELD_N; i++)
        cJSON_AddNumberToObject(f, clasp_field_kind_name((clasp_field_kind)i), (double)x->kinds[i]);
    cJSON *e = cJSON_AddObjectToObject(o, "extensions");
    for (size_t i = 0; i < x->n_exts; i++)
        cJSON_AddNumberToObject(e, x->exts[i].ext, (double)x->exts[i].n);
    return o;
}

static void print_text_(const inspect_state *x, const clasp_shardlist *list) {
    const clasp_data_stats *st = &x->st;
    printf("spec: %s\n", x->a->spec);
    printf("shards: %zu (%llu read, %llu with errors)\n", list->n,
           (unsigned long long)st->shards_opened,
           (unsigned long long)clasp_data_stats_total_shard_errors(st));
    printf("bytes: %llu (member data)\n", (unsigned long long)st->bytes);
    printf("samples: %llu read, %llu ok, %llu skipped\n", (unsigned long long)st->samples_read,
           (unsigned long long)st->samples_ok,
           (unsigned long long)clasp_data_stats_total_skipped(st));
    printf("fields:");
    for (int i = 0; i < CLASP_FIELD_N; i++)
        if (x->kinds[i])
            printf(" %s=%llu", clasp_field_kind_name((clasp_field_kind)i), x->kinds[i]);
    printf("\nextensions:");
    for (size_t i = 0; i < x->n_exts; i++) printf(" %s=%llu", x->exts[i].ext, x->exts[i].n);
    printf("\n");
    for (int i = 0; i < CLASP_SKIP_N; i++)
        if (st->skipped[i])
            printf("skipped %s: %llu\n", clasp_skip_reason_name((clasp_skip_reason)i),
                   (unsigned long long)st->skipped[i]);
    for (int i = 0; i < CLASP_SHARD_N; i++)
        if (st->shard_errors[i])
            printf("shard errors %s: %llu\n", clasp_shard_error_name((clasp_shard_error)i),
                   (unsigned long long)st->shard_errors[i]);
    if (st->repeated_ext)
        printf("repeated extensions (sample split): %llu\n", (unsigned long long)st->repeated_ext);
    for (size_t i = 0; i < st->n_first_skips; i++) printf("first skips: %s\n", st->first_skips[i]);
}

int clasp_cmd_shards_inspect(int argc, char **argv) {
    inspect_args a = {0};
    int rc;
    if (!clasp_args_parse(inspect_table, &a, argc, argv, &rc)) return rc;
    static inspect_state x; /* large (counters, decoders): not on the stack */
    memset(&x, 0, sizeof x);
    x.a = &a;
    if (clasp_field_parse_required(a.require, &x.need) != CLASP_OK) {
        fprintf(stderr, "clasp shards inspect: %s\n", clasp_last_error());
        return 2;
    }
    clasp_shardlist list;
    if (clasp_shardlist_expand(a.spec, &list) != CLASP_OK) {
        clasp_shardlist_free(&list);
        return clasp_args_usage_error(inspect_table, "%s", clasp_last_error());
    }
    x.cfg = clasp_loader_default_config();
    x.cfg.eval = true; /* no augmentation: decode as evaluation would */
    clasp_data_stats_init(&x.st);
    rc = 0;
    if (a.decode && clasp_tokenizer_new_bytes(&x.tok) != CLASP_OK)
        rc = clasp_args_fail(inspect_table);
    if (rc == 0) rc = scan_(&x, &list);
    x.st.bytes = x.member_bytes;
    cJSON *o = to_json_(&x, &list);
    if (!o) {
        fprintf(stderr, "clasp shards inspect: out of memory\n");
        rc = 1;
    } else if (a.json) {
        clasp_cli_print_json(o, true);
        o = NULL;
    } else {
        print_text_(&x, &list);
    }
    cJSON_Delete(o);
    for (int i = 0; i < 16; i++) clasp_decoder_free(x.decoders[i]);
    clasp_tokenizer_free(x.tok);
    clasp_data_stats_free(&x.st);
    clasp_shardlist_free(&list);
    return rc;
}
