/* main.c: the `clasp` command-line tool: dispatches to the subcommands in cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

#define CLASP_VERSION "0.1.0"

typedef struct command {
    const char *name;
    const char *sub; /* second word for two-word commands ("shards build"), or NULL */
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    /* One line per command; keep the list sorted. */
    {"embed", NULL, clasp_cmd_embed, "embed images or texts with an export into a .npy"},
    {"eval", NULL, clasp_cmd_eval, "zero-shot, retrieval and linear-probe evaluation"},
    {"export", NULL, clasp_cmd_export, "write a checkpoint as an export folder (C API, PyTorch)"},
    {"search", NULL, clasp_cmd_search, "top-k cosine search of a query in a .npy index"},
    {"shards", "build", clasp_cmd_shards_build,
     "build WebDataset shards (fmnist, folder, tsv, ...)"},
    {"shards", "inspect", clasp_cmd_shards_inspect,
     "count samples, fields and skips of a shard spec"},
    {"tokenizer", "train", clasp_cmd_tokenizer_train,
     "train a byte-level BPE tokenizer on captions"},
    {"train", NULL, clasp_cmd_train, "train a model on image-text shards (contrastive loss)"},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f,
            "clasp %s: contrastive training of image, text and audio encoders on CPUs\n\n"
            "usage: clasp COMMAND [options]   (clasp COMMAND --help for details)\n\n",
            CLASP_VERSION);
    for (size_t i = 0; commands[i].name; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", commands[i].name, commands[i].sub ? " " : "",
                 commands[i].sub ? commands[i].sub : "");
        fprintf(f, "  %-18s %s\n", name, commands[i].summary);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("clasp %s\n", CLASP_VERSION);
        return 0;
    }
    for (size_t i = 0; commands[i].name; i++) {
        const command *c = &commands[i];
        if (strcmp(argv[1], c->name) != 0) continue;
        if (!c->sub) return c->fn(argc - 1, argv + 1);
        if (argc >= 3 && !strcmp(argv[2], c->sub)) return c->fn(argc - 2, argv + 2);
    }
    fprintf(stderr, "clasp: unknown command '%s%s%s'\n\n", argv[1], argc >= 3 ? " " : "",
            argc >= 3 ? argv[2] : "");
    usage(stderr);
    return 2;
}
