/* cmd_export.c: `clasp export CKPT|RUN -o DIR`: writes an export (model.safetensors,
 * config.json, tokenizer.json, preprocess.json; see export/export.h) of a checkpoint. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/hash.h"
#include "core/json.h"
#include "export/export.h"

static void usage_(FILE *f) {
    fprintf(f, "usage: clasp export CKPT|RUN -o DIR [--json]\n\n"
               "Writes the model of a checkpoint (a checkpoint folder, or a run folder: its\n"
               "latest checkpoint) as an export folder: model.safetensors (encoders,\n"
               "projections, logit scale; no optimiser state), config.json, tokenizer.json and\n"
               "preprocess.json. DIR is replaced atomically. Load it with `clasp embed --model\n"
               "DIR`, include/clasp.h, or tools/clasp_torch.py.\n"
               "  -o DIR     output folder (required)\n"
               "  --json     machine-readable summary on stdout\n");
}

int clasp_cmd_export(int argc, char **argv) {
    const char *src = NULL, *out = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "clasp export: unknown option %s\n", argv[i]);
            usage_(stderr);
            return 2;
        } else if (!src) {
            src = argv[i];
        } else {
            fprintf(stderr, "clasp export: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!src || !out) {
        fprintf(stderr, "clasp export: need CKPT|RUN and -o DIR\n");
        usage_(stderr);
        return 2;
    }
    char ckpt[4096];
    if (clasp_export_checkpoint(src, out, ckpt, sizeof ckpt) != CLASP_OK) {
        fprintf(stderr, "clasp export: %s\n", clasp_last_error());
        return 1;
    }
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/model.safetensors", out);
    uint64_t h = 0;
    char hex[17] = "";
    if (clasp_file_hash(mp, &h) == CLASP_OK) clasp_hash_hex(h, hex);
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
        char *txt = cJSON_PrintUnformatted(j);
        if (txt) printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(j);
    }
    return 0;
}
