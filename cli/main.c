/* main.c: the `clasp` command-line tool: dispatches to the subcommands in cmd_*.c, answers
 * `clasp help [COMMAND]`, `clasp GROUP --help` and `--version`. */
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "core/compute.h"
#include "cli/commands.h"
#include "datasets/manifest.h"
#include "export/export.h"
#include "train/checkpoint.h"
#include "train/runstate.h"

/* Set by cli/CMakeLists.txt from the CMake project and the compute backend built. */
#ifndef CLASP_VERSION
#error "CLASP_VERSION must come from CMake (PROJECT_VERSION)"
#endif
#ifndef CLASP_BACKEND
#error "CLASP_BACKEND must come from CMake"
#endif
#ifndef CLASP_PRECISIONS
#error "CLASP_PRECISIONS must come from CMake"
#endif

typedef struct command {
    const char *name;
    const char *sub; /* second word for two-word commands ("shards build"), or NULL */
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    /* One line per command; keep the list sorted. */
    {"drift", NULL, clasp_cmd_drift, "embedding drift between two models or over time windows"},
    {"embed", NULL, clasp_cmd_embed, "embed images, texts or audio with an export into a .npy"},
    {"eval", NULL, clasp_cmd_eval, "zero-shot, retrieval and linear-probe evaluation"},
    {"export", NULL, clasp_cmd_export, "write a checkpoint as an export folder (C API, PyTorch)"},
    {"import", "openclip", clasp_cmd_import_openclip,
     "import an OpenCLIP / OpenAI CLIP ViT checkpoint as an export"},
    {"index", "add", clasp_cmd_index_add, "add embeddings to an ANN index (same model only)"},
    {"index", "build", clasp_cmd_index_build,
     "build a versioned ANN index (FAISS flat/HNSW/IVF-PQ) of embeddings"},
    {"index", "eval", clasp_cmd_index_eval, "recall, QPS and latency of an index vs exact search"},
    {"index", "info", clasp_cmd_index_info, "what an index folder records (model, type, count)"},
    {"report", NULL, clasp_cmd_report, "one self-contained HTML page about a run: curves, gallery"},
    {"search", NULL, clasp_cmd_search,
     "top-k cosine search: exact over a .npy, or in an index folder"},
    {"serve", NULL, clasp_cmd_serve, "HTTP server: /embed, /search (an index), /metrics"},
    {"shards", "build", clasp_cmd_shards_build,
     "build WebDataset shards (fmnist, folder, tsv, ...)"},
    {"shards", "inspect", clasp_cmd_shards_inspect,
     "count samples, fields and skips of a shard spec"},
    {"tokenizer", "encode", clasp_cmd_tokenizer_encode,
     "print the token ids of texts (bytes, bpe or clip_bpe tokenizer)"},
    {"tokenizer", "train", clasp_cmd_tokenizer_train,
     "train a byte-level BPE tokenizer on captions"},
    {"train", NULL, clasp_cmd_train,
     "train towers on paired shards (image, text, audio) with a contrastive loss"},
    {NULL, NULL, NULL, NULL},
};

/* Lists the commands whose first word is `group` (all when NULL). */
static void usage(FILE *f, const char *group) {
    if (group)
        fprintf(f, "usage: clasp %s COMMAND [options]   (clasp %s COMMAND --help for details)\n\n",
                group, group);
    else
        fprintf(f,
                "clasp %s: contrastive training of image, text and audio encoders on CPUs\n\n"
                "usage: clasp COMMAND [options]   (clasp COMMAND --help or clasp help COMMAND "
                "for details)\n"
                "       clasp --version\n\n",
                CLASP_VERSION);
    for (size_t i = 0; commands[i].name; i++) {
        if (group && strcmp(group, commands[i].name) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", commands[i].name, commands[i].sub ? " " : "",
                 commands[i].sub ? commands[i].sub : "");
        fprintf(f, "  %-18s %s\n", name, commands[i].summary);
    }
}

static bool is_help_(const char *a) {
    return !strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help");
}

/* Runs the command named by argv[0] (and argv[1] for a group), or prints why not. */
static int dispatch_(int argc, char **argv) {
    bool group = false;
    for (size_t i = 0; commands[i].name; i++) {
        const command *c = &commands[i];
        if (strcmp(argv[0], c->name) != 0) continue;
        if (!c->sub) return c->fn(argc, argv);
        group = true;
        if (argc >= 2 && !strcmp(argv[1], c->sub)) return c->fn(argc - 1, argv + 1);
    }
    if (group && (argc < 2 || is_help_(argv[1]))) {
        usage(argc < 2 ? stderr : stdout, argv[0]);
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "clasp: unknown command '%s%s%s'\n\n", argv[0], argc >= 2 && group ? " " : "",
            argc >= 2 && group ? argv[1] : "");
    usage(stderr, group ? argv[0] : NULL);
    return 2;
}

int main(int argc, char **argv) {
    /* Above RLIMIT_FSIZE a write then fails with EFBIG, which clasp reports naming the file,
     * instead of the default SIGXFSZ killing the process mid-write (docs/security.md). */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        (!strcmp(argv[1], "help") && argc == 2)) {
        usage(argc < 2 ? stderr : stdout, NULL);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        /* whether bf16 has kernels on this CPU (else clasp emulates it: same numbers, slower) */
        int native = 0;
        bool bf16 = clasp_compute_check(CLASP_BF16, &native) == CLASP_OK;
        printf("clasp %s (backend %s; precisions %s%s)\n", CLASP_VERSION, CLASP_BACKEND,
               CLASP_PRECISIONS,
               !bf16    ? ""
               : native ? "; bf16 kernels on this CPU"
                        : "; bf16 emulated: no bf16 kernels on this CPU");
        /* the newest version of each file clasp writes that this build reads (HACKING.md) */
        printf("formats: manifest %d, checkpoint %d, run %d, export %d\n",
               CLASP_MANIFEST_FORMAT_VERSION, CLASP_CKPT_FORMAT_VERSION, CLASP_RUN_FORMAT_VERSION,
               CLASP_EXPORT_FORMAT_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "help")) { /* clasp help COMMAND [SUB]: that command's --help */
        char *words[4] = {argv[2], argc >= 4 ? argv[3] : "--help", "--help", NULL};
        return dispatch_(argc >= 4 ? 3 : 2, words);
    }
    return clasp_args_finish(dispatch_(argc - 1, argv + 1));
}
