/* args.h: the one option parser of the `clasp` commands, on getopt_long.
 *
 * Each command declares ONE static table: CLASP_ARG_COMMAND (name, usage lines, description,
 * footer), then its options (clasp_arg: where each value goes is an offset into the command's
 * own struct of option values), then CLASP_ARG_END; clasp_args_parse fills that struct and
 * `--help` is printed from the same table. Rules shared by every command:
 *   - `--opt value` and `--opt=value` both work; long names must be spelt out in full.
 *   - Numbers are read with strtol/strtod, the end pointer and the range of the entry; an error
 *     names the command, the flag and the value ("clasp eval: --probe-l2: 'abc' is not a
 *     number") and the command exits with 2, as for an unknown option or a missing value.
 *   - Options are handled in the order given, so an entry's callback may depend on the ones
 *     before it (clasp train's --pair applies to the preceding --train).
 *   - A word that is not an option is appended to the open CLASP_ARG_LIST (the last option seen,
 *     if it was one: `--image a.png b.png`), else fills the next CLASP_ARG_POS entry.
 *   - `-` is stdin for an entry flagged CLASP_ARG_IN and stdout for one flagged CLASP_ARG_OUT:
 *     the value is replaced by a temporary file (stdin copied into it; or copied to stdout by
 *     clasp_args_finish when the command succeeded), so library functions that take a path
 *     work unchanged. CLASP_ARG_DIR refuses `-` (a folder cannot be a stream). At most one
 *     entry may read stdin and one write stdout; a CLASP_ARG_STDOUT flag (--json) conflicts
 *     with an output `-`.
 * Only main exits: the parser returns the exit code to use. */
#ifndef CLASP_CLI_ARGS_H
#define CLASP_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What an entry's value is; "dest" is the field at the entry's offset. An option given twice
 * keeps its last value, except a LIST (the words add up) and an entry with a callback (called
 * each time: clasp train's repeated --train). */
typedef enum clasp_arg_kind {
    CLASP_ARG_FLAG,   /* no value; dest bool*, set to true (false with CLASP_ARG_CLEAR) */
    CLASP_ARG_STRING, /* dest const char ** */
    CLASP_ARG_INT,    /* dest int*, range lo..hi (hi 0: INT_MAX) */
    CLASP_ARG_INT64,  /* dest int64_t*, range lo..hi (hi 0: INT64_MAX) */
    CLASP_ARG_U64,    /* dest uint64_t*, range lo..hi (hi 0: UINT64_MAX) */
    CLASP_ARG_DOUBLE, /* dest double*, finite, range lo..hi (hi 0: none) */
    CLASP_ARG_CHOICE, /* dest int*: index of the value in choices ("skip|fail") */
    CLASP_ARG_LIST,   /* dest clasp_arg_list*: the words after the option, up to the next option */
    CLASP_ARG_POS,    /* a positional word; dest const char ** (filled in table order) */
    CLASP_ARG_CMD,    /* the table's first entry: see CLASP_ARG_COMMAND */
} clasp_arg_kind;

enum {
    CLASP_ARG_IN = 1u << 0,     /* a file read: '-' = stdin */
    CLASP_ARG_OUT = 1u << 1,    /* a file written: '-' = stdout */
    CLASP_ARG_DIR = 1u << 2,    /* a folder: '-' is refused */
    CLASP_ARG_REQ = 1u << 3,    /* must be given */
    CLASP_ARG_STDOUT = 1u << 4, /* the command then writes to stdout (--json) */
    CLASP_ARG_CLEAR = 1u << 5,  /* a FLAG that sets its bool to false (--no-progress) */
};

typedef struct clasp_arg_list {
    const char **v;
    int n;
} clasp_arg_list;

typedef struct clasp_arg {
    const char *name;    /* long name without "--"; NULL ends the table (for POS: help name) */
    char short_name;     /* one-letter alias ('o' for -o), or 0 */
    clasp_arg_kind kind; /* what the value is */
    size_t off;          /* where the value goes: offset in the command's ctx (see the kinds) */
    const char *meta;    /* value placeholder in --help ("FILE"); choices when NULL */
    const char *help;    /* help text, wrapped when printed; NULL: not listed */
    const char *section; /* heading printed above the entry when it differs from the previous */
    unsigned flags;      /* CLASP_ARG_IN ... */
    double lo, hi;       /* range of numbers (see the kinds) */
    const char *choices; /* CHOICE: the accepted values, '|'-separated */
    /* Called after the value is stored (for a CHOICE or number: after checking it), in command
     * line order; returns 0, or 2 after printing an error. */
    int (*fn)(void *ctx, const char *value);
} clasp_arg;

/* The first entry of a table: the command's name ("train", "shards build"), its usage lines
 * (after "usage: clasp NAME "; '\n' separates lines, a line starting with a space continues the
 * form above it, another starts a second form), its description (printed after the usage,
 * verbatim) and a footer printed after the options (or NULL). */
#define CLASP_ARG_COMMAND(name, usage, about, footer)                                              \
    { name, 0, CLASP_ARG_CMD, 0, usage, about, footer, 0, 0, 0, NULL, NULL }

/* The end of a table, and options several commands share (one wording for each). */
#define CLASP_ARG_END                                                                              \
    { NULL, 0, CLASP_ARG_FLAG, 0, NULL, NULL, NULL, 0, 0, 0, NULL, NULL }
#define CLASP_ARG_MODEL(off, meta)                                                                 \
    {                                                                                              \
        "model", 0, CLASP_ARG_STRING, off, meta, "an export (or a checkpoint or run folder)",      \
            NULL, CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL, NULL                                  \
    }
#define CLASP_ARG_THREADS(off, dflt)                                                               \
    {                                                                                              \
        "threads", 0, CLASP_ARG_INT, off, "N", "compute threads (default " dflt ")", NULL, 0, 1,   \
            0, NULL, NULL                                                                          \
    }
/* --precision fp32|bf16 into an int holding a clasp_precision (core/compute.h) */
#define CLASP_ARG_PRECISION(off, dflt)                                                             \
    {                                                                                              \
        "precision", 0, CLASP_ARG_CHOICE, off, NULL,                                               \
            "precision of the matrix products: fp32, or bf16 inputs with fp32 accumulation "       \
            "(default " dflt ")",                                                                  \
            NULL, 0, 0, 0, "fp32|bf16", NULL                                                       \
    }
#define CLASP_ARG_WORKERS(off, what)                                                               \
    {                                                                                              \
        "workers", 0, CLASP_ARG_INT, off, "W", "decode threads" what " (default 1)", NULL, 0, 1,   \
            0, NULL, NULL                                                                          \
    }
#define CLASP_ARG_BATCH(off)                                                                       \
    {                                                                                              \
        "batch-size", 0, CLASP_ARG_INT, off, "B", "rows per engine call (default 256)", NULL, 0,   \
            1, 0, NULL, NULL                                                                       \
    }
#define CLASP_ARG_JSON(off, help)                                                                  \
    { "json", 0, CLASP_ARG_FLAG, off, NULL, help, NULL, CLASP_ARG_STDOUT, 0, 0, NULL, NULL }

/* Parses argv[1..argc-1] (argv[0] is the command word) into ctx, the struct the table's offsets
 * point into (also passed to the callbacks). Returns true when the command should run; false when
 * it should return *rc: 0 after --help, 2 after a usage error (already printed with a usage
 * hint). */
bool clasp_args_parse(const clasp_arg *cmd, void *ctx, int argc, char **argv, int *rc);

/* Prints the --help text generated from cmd's table. */
void clasp_args_help(const clasp_arg *cmd, FILE *f);

/* Prints "clasp NAME: <message>" and the short usage hint; returns 2 (for `return
 * clasp_args_usage_error(...)` in a command's own checks). */
int clasp_args_usage_error(const clasp_arg *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "clasp NAME: <clasp_last_error()>" to stderr and returns 1 (a runtime error). */
int clasp_args_fail(const clasp_arg *cmd);

/* "-" when value is the temporary file standing for stdin or stdout, else value (for messages
 * and keys). */
const char *clasp_args_display(const char *value);

/* Run by main after the command: a CLASP_ARG_OUT '-' has its temporary file copied to stdout
 * when rc is 0; temporary files are removed and lists freed. Returns rc, or 1 when the copy
 * failed. */
int clasp_args_finish(int rc);

#endif
