/* cmd_import.c: `clasp import openclip CKPT --arch NAME|--arch-config FILE [--vocab MERGES] -o
 * DIR`: an OpenCLIP / OpenAI CLIP ViT checkpoint as a clasp export (export/openclip.h,
 * docs/import.md). */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/json.h"
#include "export/openclip.h"

/* The source tree's configs/ (cli/CMakeLists.txt), searched after ./configs. */
#ifndef CLASP_CONFIG_DIR
#define CLASP_CONFIG_DIR "configs"
#endif

#define MERGES_NAME "bpe_simple_vocab_16e6.txt.gz"

typedef struct import_args {
    const char *ckpt, *arch, *arch_config, *vocab, *out;
    bool json;
} import_args;

#define A(field) offsetof(import_args, field)
static const clasp_arg import_table[] = {
    CLASP_ARG_COMMAND(
        "import openclip",
        "CKPT.safetensors --arch NAME -o DIR [--vocab MERGES] [--json]\n"
        "CKPT.safetensors --arch-config FILE -o DIR [--vocab MERGES] [--json]",
        "Imports an OpenCLIP or OpenAI CLIP ViT checkpoint (a safetensors state dict in\n"
        "OpenCLIP's names, F32, F16 or BF16; tools/openclip_to_safetensors.py converts a\n"
        ".pt/.bin) as a clasp export: every tensor is mapped and its shape checked (a\n"
        "missing, extra or misshaped tensor is an error naming it), with the CLIP BPE\n"
        "tokenizer and OpenAI's image preprocessing. The export works with `clasp embed`,\n"
        "`clasp train --init`, include/clasp.h and tools/clasp_torch.py. See docs/import.md.\n\n",
        "--arch NAME reads configs/openclip/NAME.json (ViT-B-32, ViT-B-32-quickgelu, ViT-B-16,\n"
        "ViT-L-14; OpenAI's released weights need a -quickgelu config or quick_gelu: true),\n"
        "looked up in ./configs, then in the source tree's configs.\n"),
    {"CKPT", 0, CLASP_ARG_POS, A(ckpt), NULL, NULL, NULL, CLASP_ARG_REQ, 0, 0, NULL, NULL},
    {"arch", 0, CLASP_ARG_STRING, A(arch), "NAME", "architecture: configs/openclip/NAME.json", NULL,
     0, 0, 0, NULL, NULL},
    {"arch-config", 0, CLASP_ARG_STRING, A(arch_config), "FILE",
     "architecture: an OpenCLIP model config JSON (embed_dim, vision_cfg, text_cfg)", NULL,
     CLASP_ARG_IN, 0, 0, NULL, NULL},
    {"vocab", 0, CLASP_ARG_STRING, A(vocab), "MERGES",
     "the CLIP BPE merges file (default: " MERGES_NAME " beside CKPT)", NULL, 0, 0, 0, NULL, NULL},
    {"", 'o', CLASP_ARG_STRING, A(out), "DIR", "output export folder (required)", NULL,
     CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL, NULL},
    CLASP_ARG_JSON(A(json), "machine-readable summary on stdout"),
    CLASP_ARG_END,
};
#undef A

/* configs/openclip/NAME.json in ./configs, then CLASP_CONFIG_DIR; false when neither exists. */
static bool find_arch_(const char *name, char *out, size_t cap) {
    const char *dirs[2] = {"configs", CLASP_CONFIG_DIR};
    for (int i = 0; i < 2; i++) {
        int k = snprintf(out, cap, "%s/openclip/%s.json", dirs[i], name);
        if (k > 0 && (size_t)k < cap && clasp_is_file(out)) return true;
    }
    return false;
}

/* MERGES_NAME in CKPT's folder. */
static bool default_vocab_(const char *ckpt, char *out, size_t cap) {
    const char *slash = strrchr(ckpt, '/');
    int k = slash ? snprintf(out, cap, "%.*s/%s", (int)(slash - ckpt), ckpt, MERGES_NAME)
                  : snprintf(out, cap, "%s", MERGES_NAME);
    return k > 0 && (size_t)k < cap && clasp_is_file(out);
}

static void print_json_(const import_args *o, const char *arch, const clasp_openclip_report *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "checkpoint", o->ckpt);
    cJSON_AddStringToObject(j, "arch", arch);
    cJSON_AddStringToObject(j, "export", o->out);
    cJSON_AddNumberToObject(j, "tensors", r->n_tensors);
    cJSON_AddNumberToObject(j, "f32", r->n_f32);
    cJSON_AddNumberToObject(j, "f16", r->n_f16);
    cJSON_AddNumberToObject(j, "bf16", r->n_bf16);
    cJSON_AddStringToObject(j, "ignored", r->ignored);
    cJSON_AddNumberToObject(j, "logit_scale", r->logit_scale);
    clasp_cli_print_json(j, false);
}

int clasp_cmd_import_openclip(int argc, char **argv) {
    import_args o = {0};
    int rc;
    if (!clasp_args_parse(import_table, &o, argc, argv, &rc)) return rc;
    if (!o.arch == !o.arch_config)
        return clasp_args_usage_error(import_table, "give exactly one of --arch and --arch-config");
    char arch[4200], vocab[4200];
    if (o.arch) {
        if (strchr(o.arch, '/') || !o.arch[0] || o.arch[0] == '.')
            return clasp_args_usage_error(import_table, "--arch: '%s' is not a name", o.arch);
        if (!find_arch_(o.arch, arch, sizeof arch))
            return clasp_args_usage_error(
                import_table, "--arch: no configs/openclip/%s.json (use --arch-config FILE)",
                o.arch);
    } else {
        snprintf(arch, sizeof arch, "%s", o.arch_config);
    }
    if (o.vocab) {
        snprintf(vocab, sizeof vocab, "%s", o.vocab);
    } else if (!default_vocab_(o.ckpt, vocab, sizeof vocab)) {
        return clasp_args_usage_error(import_table,
                                      "no " MERGES_NAME " beside %s: give --vocab MERGES", o.ckpt);
    }
    clasp_openclip_arch a;
    clasp_openclip_report r;
    if (clasp_openclip_arch_load(arch, &a) != CLASP_OK ||
        clasp_openclip_import(o.ckpt, &a, vocab, o.out, &r) != CLASP_OK)
        return clasp_args_fail(import_table);
    fprintf(stderr,
            "clasp import openclip: %s (%s) -> %s: %d tensors (%d F32, %d F16, %d BF16), "
            "logit scale %.4f\n",
            o.ckpt, arch, o.out, r.n_tensors, r.n_f32, r.n_f16, r.n_bf16, r.logit_scale);
    if (r.n_ignored)
        fprintf(stderr, "  ignored %d buffer%s: %s\n", r.n_ignored, r.n_ignored > 1 ? "s" : "",
                r.ignored);
    fprintf(stderr, "  embed with: clasp embed --model %s --image FILES... -o images.npy\n", o.out);
    if (o.json) print_json_(&o, arch, &r);
    return 0;
}
