/* cmd_export.c: `clasp export CKPT|RUN -o DIR`: writes an export (model.safetensors,
 * config.json, tokenizer.json, preprocess.json; see export/export.h) of a checkpoint. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/hash.h"
#include "core/json.h"
#include "export/export.h"

/* The option values of one invocation; the table below points into it. */
typedef struct export_args {
    const char *src, *out;
    bool json;
} export_args;

#define A(field) offsetof(export_args, field)
static const clasp_arg export_table[] = {
    CLASP_ARG_COMMAND(
        "export", "CKPT|RUN -o DIR [--json]",
        "Writes the model of a checkpoint (a checkpoint folder, or a run folder: its\n"
        "latest checkpoint) as an export folder: model.safetensors (encoders,\n"
        "projections, logit scale; no optimiser state), config.json, tokenizer.json and\n"
        "preprocess.json. DIR is replaced atomically. Load it with `clasp embed --model\n"
        "DIR`, include/clasp.h, or tools/clasp_torch.py.\n\n",
        NULL),
    {"CKPT|RUN", 0, CLASP_ARG_POS, A(src), NULL, NULL, NULL, CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0,
     NULL, NULL},
    {"", 'o', CLASP_ARG_STRING, A(out), "DIR", "output folder (required)", NULL,
     CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL, NULL},
    CLASP_ARG_JSON(A(json), "machine-readable summary on stdout"),
    CLASP_ARG_END,
};
#undef A

int clasp_cmd_export(int argc, char **argv) {
    export_args e = {0};
    int rc;
    if (!clasp_args_parse(export_table, &e, argc, argv, &rc)) return rc;
    const char *src = e.src, *out = e.out;
    bool json = e.json;
    char ckpt[4096];
    if (clasp_export_checkpoint(src, out, ckpt, sizeof ckpt) != CLASP_OK)
        return clasp_args_fail(export_table);
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/model.safetensors", out);
    uint64_t h = 0;
    char hex[17] = "";
    if (clasp_hash_file(mp, &h) == CLASP_OK) clasp_hash_hex(h, hex);
    /* how to use it, for the modalities the model has */
    char cp[4200];
    snprintf(cp, sizeof cp, "%s/config.json", out);
    cJSON *cfg = NULL;
    bool has_img = true, has_txt = true, has_aud = false;
    if (clasp_json_load(cp, &cfg) == CLASP_OK) {
        has_img = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cfg, "image"));
        has_txt = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cfg, "text"));
        has_aud = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cfg, "audio"));
        cJSON_Delete(cfg);
    }
    fprintf(stderr, "clasp export: %s -> %s\n", ckpt, out);
    const char *lead = "  embed with: ";
    if (has_img) {
        fprintf(stderr, "%sclasp embed --model %s --image FILES... -o images.npy\n", lead, out);
        lead = "              ";
    }
    if (has_aud) {
        fprintf(stderr, "%sclasp embed --model %s --audio FILES... -o audio.npy\n", lead, out);
        lead = "              ";
    }
    if (has_txt)
        fprintf(stderr, "%sclasp embed --model %s --text lines.txt -o texts.npy\n", lead, out);
    if (has_txt && (has_img || has_aud))
        fprintf(stderr,
                "  search:     clasp search --model %s --index %s --text \"a query\" -k 5\n", out,
                has_img ? "images.npy" : "audio.npy");
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "checkpoint", ckpt);
        cJSON_AddStringToObject(j, "export", out);
        cJSON_AddStringToObject(j, "model_hash", hex);
        clasp_cli_print_json(j, false);
    }
    return 0;
}
