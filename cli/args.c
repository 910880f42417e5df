/* args.c: the option parser of the `clasp` commands (see args.h): getopt_long over a table,
 * checked numbers, '-' as stdin/stdout through temporary files, --help generated from the table. */
#include "cli/args.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"

#define MAX_ARGS   96 /* entries of one table */
#define MAX_TEMPS  4  /* temporary files of one invocation */
#define HELP_COL   24 /* column where an option's help text starts */
#define HELP_WIDTH 92 /* wrap the help text at this column */

/* Temporary files standing for '-' (stdin copied in, or to copy to stdout), and list storage. */
static struct {
    char path[MAX_TEMPS][64];
    bool to_stdout[MAX_TEMPS];
    int n;
    const char **lists[MAX_ARGS];
    int n_lists, argc;
} g_;

/* The struct being filled by the parse under way. */
static void *ctx_;

/* Where entry a's value goes. */
static void *dest_(const clasp_arg *a) {
    return (char *)ctx_ + a->off;
}

/* The option entries of a table (after its CLASP_ARG_COMMAND entry), ended by name NULL. */
static const clasp_arg *opts_(const clasp_arg *cmd) {
    return cmd + 1;
}

static int n_args_(const clasp_arg *a) {
    int n = 0;
    while (a[n].name) n++;
    return n;
}

static void usage_hint_(const clasp_arg *cmd) {
    size_t len = strcspn(cmd->meta, "\n");
    fprintf(stderr, "usage: clasp %s %.*s%s\n(clasp %s --help lists the options)\n", cmd->name,
            (int)len, cmd->meta, cmd->meta[len] ? " ..." : "", cmd->name);
}

int clasp_args_usage_error(const clasp_arg *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clasp %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    usage_hint_(cmd);
    return 2;
}

int clasp_args_fail(const clasp_arg *cmd) {
    fprintf(stderr, "clasp %s: %s\n", cmd->name, clasp_last_error());
    return 1;
}

/* "--name" or "-o" as the user may have typed it, for messages. */
static const char *spelling_(const clasp_arg *a, char *buf, size_t cap) {
    if (a->kind == CLASP_ARG_POS)
        snprintf(buf, cap, "%s", a->name);
    else if (a->name[0])
        snprintf(buf, cap, "--%s", a->name);
    else
        snprintf(buf, cap, "-%c", a->short_name);
    return buf;
}

static const char *range_text_(const clasp_arg *a, char *buf, size_t cap) {
    if (a->hi > a->lo)
        snprintf(buf, cap, "%.17g..%.17g", a->lo, a->hi);
    else
        snprintf(buf, cap, ">= %.17g", a->lo);
    return buf;
}

/* Checks and stores a number; returns 0 or 2 (after the message). */
static int store_number_(const clasp_arg *cmd, const clasp_arg *a, const char *v) {
    char name[64], range[96];
    spelling_(a, name, sizeof name);
    char *end = NULL;
    errno = 0;
    bool is_int = a->kind != CLASP_ARG_DOUBLE;
    long double x;
    if (!is_int) {
        x = (long double)strtod(v, &end);
    } else {
        x = (long double)strtoll(v, &end, 10);
        if (errno == ERANGE && a->kind == CLASP_ARG_U64 && v[0] != '-') { /* above INT64_MAX */
            errno = 0;
            x = (long double)strtoull(v, &end, 10);
        }
    }
    if (end == v || *end || (!is_int && !isfinite((double)x) && errno != ERANGE))
        return clasp_args_usage_error(cmd, "%s: '%s' is not %s", name, v,
                                      is_int ? "an integer" : "a number");
    long double hi = a->hi > a->lo                ? (long double)a->hi
                     : a->kind == CLASP_ARG_INT   ? (long double)INT_MAX
                     : a->kind == CLASP_ARG_INT64 ? (long double)INT64_MAX
                     : a->kind == CLASP_ARG_U64   ? (long double)UINT64_MAX
                                                  : (long double)INFINITY;
    if (errno == ERANGE || x < (long double)a->lo || x > hi)
        return clasp_args_usage_error(cmd, "%s: '%s' is out of range (expected %s)", name, v,
                                      range_text_(a, range, sizeof range));
    switch (a->kind) {
    case CLASP_ARG_INT:
        *(int *)dest_(a) = (int)x;
        break;
    case CLASP_ARG_INT64:
        *(int64_t *)dest_(a) = strtoll(v, NULL, 10);
        break;
    case CLASP_ARG_U64:
        *(uint64_t *)dest_(a) = strtoull(v, NULL, 10);
        break;
    default:
        *(double *)dest_(a) = strtod(v, NULL);
        break;
    }
    return 0;
}

static int store_choice_(const clasp_arg *cmd, const clasp_arg *a, const char *v) {
    int i = 0;
    size_t n = strlen(v);
    for (const char *c = a->choices; *c; i++) {
        size_t len = strcspn(c, "|");
        if (len == n && !strncmp(c, v, n)) {
            *(int *)dest_(a) = i;
            return 0;
        }
        c += len + (c[len] == '|');
    }
    char name[64];
    return clasp_args_usage_error(cmd, "%s: '%s' is not one of %s", spelling_(a, name, sizeof name),
                                  v, a->choices);
}

/* A list holds at most argc words: its array is allocated once, at that size, and freed by
 * clasp_args_finish. */
static int list_add_(clasp_arg_list *l, const char *v) {
    if (!l->v) {
        if (g_.n_lists == MAX_ARGS) return 1;
        l->v = calloc((size_t)g_.argc, sizeof *l->v);
        if (!l->v) return 1;
        g_.lists[g_.n_lists++] = l->v;
    }
    l->v[l->n++] = v;
    return 0;
}

/* Stores one value of entry a; returns 0 or 2. */
static int store_(const clasp_arg *cmd, const clasp_arg *a, const char *v) {
    char name[64];
    if (v && !strcmp(v, "-") && (a->flags & CLASP_ARG_DIR))
        return clasp_args_usage_error(cmd, "%s: '-' (stdin/stdout) cannot stand for a folder",
                                      spelling_(a, name, sizeof name));
    int rc = 0;
    switch (a->kind) {
    case CLASP_ARG_FLAG:
        *(bool *)dest_(a) = !(a->flags & CLASP_ARG_CLEAR);
        break;
    case CLASP_ARG_STRING:
    case CLASP_ARG_POS:
        *(const char **)dest_(a) = v;
        break;
    case CLASP_ARG_CHOICE:
        rc = store_choice_(cmd, a, v);
        break;
    case CLASP_ARG_LIST:
        if (v && list_add_((clasp_arg_list *)dest_(a), v)) {
            fprintf(stderr, "clasp %s: out of memory\n", cmd->name);
            return 2;
        }
        break;
    default:
        rc = store_number_(cmd, a, v);
        break;
    }
    if (rc == 0 && a->fn) rc = a->fn(ctx_, v);
    return rc;
}

/* Copies stdin into a new temporary file (or makes an empty one for stdout); returns its path
 * or NULL after a message. */
static const char *temp_(const clasp_arg *cmd, bool for_stdout) {
    if (g_.n == MAX_TEMPS) return NULL;
    const char *dir = getenv("TMPDIR");
    char *p = g_.path[g_.n];
    snprintf(p, sizeof g_.path[0], "%s/clasp-%s-XXXXXX", dir && *dir ? dir : "/tmp",
             for_stdout ? "stdout" : "stdin");
    int fd = mkstemp(p);
    if (fd < 0) {
        fprintf(stderr, "clasp %s: cannot create a temporary file %s: %s\n", cmd->name, p,
                strerror(errno));
        return NULL;
    }
    g_.to_stdout[g_.n++] = for_stdout;
    FILE *f = fdopen(fd, "wb");
    bool ok = f != NULL;
    char buf[65536];
    size_t got;
    while (ok && !for_stdout && (got = fread(buf, 1, sizeof buf, stdin)) > 0)
        ok = fwrite(buf, 1, got, f) == got;
    if (ok && !for_stdout && ferror(stdin)) ok = false;
    if (f ? fclose(f) != 0 : close(fd) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "clasp %s: cannot copy stdin to %s\n", cmd->name, p);
        return NULL;
    }
    return p;
}

/* After parsing: required entries, one stdin and one stdout at most, '-' to temporary files. */
static int check_streams_(const clasp_arg *cmd, const bool *seen) {
    char by[2][64] = {"", ""}, name[64]; /* who reads stdin, who writes stdout */
    const char *json_by = NULL;
    const clasp_arg *args = opts_(cmd);
    for (int i = 0; args[i].name; i++) {
        const clasp_arg *a = &args[i];
        spelling_(a, name, sizeof name);
        if ((a->flags & CLASP_ARG_REQ) && !seen[i])
            return clasp_args_usage_error(cmd, "%s is required", name);
        if ((a->flags & CLASP_ARG_STDOUT) && seen[i] && *(bool *)dest_(a)) json_by = a->name;
        bool io = a->flags & (CLASP_ARG_IN | CLASP_ARG_OUT);
        bool list = a->kind == CLASP_ARG_LIST;
        const char **vals = list ? ((clasp_arg_list *)dest_(a))->v : dest_(a);
        int n = list ? ((clasp_arg_list *)dest_(a))->n : 1;
        for (int k = 0; io && seen[i] && k < n; k++) {
            if (!vals[k] || strcmp(vals[k], "-") != 0) continue;
            int out = (a->flags & CLASP_ARG_OUT) != 0;
            if (by[out][0])
                return clasp_args_usage_error(cmd, "%s and %s cannot both be '-' (there is one %s)",
                                              by[out], name, out ? "stdout" : "stdin");
            snprintf(by[out], sizeof by[out], "%s", name);
            const char *t = temp_(cmd, out);
            if (!t) return 2;
            vals[k] = t;
        }
    }
    if (json_by && by[1][0])
        return clasp_args_usage_error(cmd, "--%s and %s - both write to stdout", json_by, by[1]);
    return 0;
}

/* The entry named by a long option as typed (up to '='), or -1; "help" is -2. */
static int find_long_(const clasp_arg *args, const char *typed) {
    size_t n = strcspn(typed, "=");
    if (n == 4 && !strncmp(typed, "help", 4)) return -2;
    for (int i = 0; args[i].name; i++)
        if (args[i].kind != CLASP_ARG_POS && strlen(args[i].name) == n &&
            !strncmp(args[i].name, typed, n) && n > 0)
            return i;
    return -1;
}

/* Builds getopt_long's tables; val = 256 + entry index, 'h' = help. */
static void build_(const clasp_arg *args, struct option *lo, char *so) {
    int k = 0, s = 0;
    so[s++] = '-'; /* words that are not options come back in order, as code 1 */
    so[s++] = ':'; /* a missing value comes back as ':' */
    so[s++] = 'h';
    for (int i = 0; args[i].name; i++) {
        const clasp_arg *a = &args[i];
        if (a->kind == CLASP_ARG_POS) continue;
        int has = a->kind == CLASP_ARG_FLAG || a->kind == CLASP_ARG_LIST ? no_argument
                                                                         : required_argument;
        if (a->name[0]) lo[k++] = (struct option){a->name, has, NULL, 256 + i};
        if (a->short_name) {
            so[s++] = a->short_name;
            if (has == required_argument) so[s++] = ':';
        }
    }
    lo[k++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[k] = (struct option){NULL, 0, NULL, 0};
    so[s] = '\0';
}

static int by_short_(const clasp_arg *args, int c) {
    for (int i = 0; args[i].name; i++)
        if (args[i].kind != CLASP_ARG_POS && args[i].short_name == c) return i;
    return -1;
}

/* A word that is not an option: into the open list, else the next positional. */
static int word_(const clasp_arg *cmd, int open_list, const char *w, bool *seen) {
    const clasp_arg *args = opts_(cmd);
    if (open_list >= 0) return store_(cmd, &args[open_list], w);
    for (int i = 0; args[i].name; i++)
        if (args[i].kind == CLASP_ARG_POS && !seen[i]) {
            seen[i] = true;
            return store_(cmd, &args[i], w);
        }
    return clasp_args_usage_error(cmd, "unexpected argument '%s'", w);
}

/* One getopt_long result c; returns 0 to go on, 2 on error, -1 after --help. */
static int one_(const clasp_arg *cmd, int c, int *open_list, bool *seen, char **argv) {
    const clasp_arg *args = opts_(cmd);
    char name[64];
    if (c == 1) return word_(cmd, *open_list, optarg, seen);
    *open_list = -1;
    if (c == 'h') return -1;
    if (c == ':' || c == '?') {
        int i = optopt >= 256 ? optopt - 256 : optopt ? by_short_(args, optopt) : -1;
        if (i < 0 && optopt) return clasp_args_usage_error(cmd, "unknown option '-%c'", optopt);
        if (i < 0) return clasp_args_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        return clasp_args_usage_error(cmd, c == ':' ? "%s needs a value" : "%s takes no value",
                                      spelling_(&args[i], name, sizeof name));
    }
    int i = c >= 256 ? c - 256 : by_short_(args, c);
    seen[i] = true;
    if (args[i].kind == CLASP_ARG_LIST) *open_list = i;
    return store_(cmd, &args[i], args[i].kind == CLASP_ARG_FLAG ? NULL : optarg);
}

bool clasp_args_parse(const clasp_arg *cmd, void *ctx, int argc, char **argv, int *rc) {
    ctx_ = ctx;
    struct option lo[MAX_ARGS + 2];
    char so[3 * MAX_ARGS + 4];
    bool seen[MAX_ARGS] = {false};
    int n = n_args_(opts_(cmd));
    if (n > MAX_ARGS) {
        fprintf(stderr, "clasp %s: internal error: more than %d options\n", cmd->name, MAX_ARGS);
        *rc = 2;
        return false;
    }
    build_(opts_(cmd), lo, so);
    g_.argc = argc;
    opterr = 0;
    optind = 0; /* full re-initialisation of getopt */
    int open_list = -1, r = 0;
    for (;;) {
        /* Long names must be spelt out: getopt_long would take a unique prefix ("--mod"). */
        int next = optind ? optind : 1;
        if (next < argc && !strncmp(argv[next], "--", 2) && argv[next][2] &&
            find_long_(opts_(cmd), argv[next] + 2) == -1) {
            r = clasp_args_usage_error(cmd, "unknown option '%.*s'", (int)strcspn(argv[next], "="),
                                       argv[next]);
            break;
        }
        int c = getopt_long(argc, argv, so, lo, NULL);
        if (c == -1) break;
        r = one_(cmd, c, &open_list, seen, argv);
        if (r) break;
    }
    for (int k = optind; r == 0 && k < argc; k++) r = word_(cmd, -1, argv[k], seen); /* after -- */
    if (r == -1) {
        clasp_args_help(cmd, stdout);
        *rc = 0;
        return false;
    }
    if (r == 0) r = check_streams_(cmd, seen);
    *rc = r;
    return r == 0;
}

/* Prints text wrapped at HELP_WIDTH, continuation lines indented by `indent`, starting at
 * column `col`; a '\n' in text starts a new line. */
static void wrap_(FILE *f, const char *text, int col, int indent) {
    const char *p = text;
    while (*p) {
        size_t word = strcspn(p, " \n");
        if (col > indent && col + 1 + (int)word > HELP_WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int)word, p);
        col += (int)word;
        p += word;
        if (*p == '\n') {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        }
        while (*p == ' ' || *p == '\n') p++;
    }
    fputc('\n', f);
}

static void help_entry_(FILE *f, const clasp_arg *a) {
    char head[128];
    const char *meta = a->meta ? a->meta : a->choices;
    int n;
    if (a->kind == CLASP_ARG_POS)
        n = snprintf(head, sizeof head, "  %s", a->name);
    else if (a->short_name && a->name[0])
        n = snprintf(head, sizeof head, "  -%c, --%s%s%s", a->short_name, a->name, meta ? " " : "",
                     meta ? meta : "");
    else if (a->short_name)
        n = snprintf(head, sizeof head, "  -%c%s%s", a->short_name, meta ? " " : "",
                     meta ? meta : "");
    else
        n = snprintf(head, sizeof head, "  --%s%s%s", a->name, meta ? " " : "", meta ? meta : "");
    fputs(head, f);
    if (n + 2 > HELP_COL) {
        fprintf(f, "\n%*s", HELP_COL, "");
    } else {
        fprintf(f, "%*s", HELP_COL - n, "");
    }
    char text[2048]; /* the help, and what '-' means for this entry */
    const char *dash = a->flags & CLASP_ARG_DIR   ? "; not '-'"
                       : a->flags & CLASP_ARG_IN  ? "; '-' = stdin"
                       : a->flags & CLASP_ARG_OUT ? "; '-' = stdout"
                                                  : "";
    snprintf(text, sizeof text, "%s%s", a->help, strstr(a->help, "'-'") ? "" : dash);
    wrap_(f, text, HELP_COL, HELP_COL);
}

void clasp_args_help(const clasp_arg *cmd, FILE *f) {
    /* usage: '\n' separates lines; a line starting with a space continues the form above */
    int pad = (int)strlen(cmd->name) + 14; /* strlen("usage: clasp ") + name + ' ' */
    const char *u = cmd->meta;
    for (bool first = true; *u; first = false) {
        size_t len = strcspn(u, "\n");
        if (first)
            fprintf(f, "usage: clasp %s %.*s\n", cmd->name, (int)len, u);
        else if (u[0] == ' ')
            fprintf(f, "%*s%.*s\n", pad - 1, "", (int)len, u);
        else
            fprintf(f, "       clasp %s %.*s\n", cmd->name, (int)len, u);
        u += len + (u[len] == '\n');
    }
    fputc('\n', f);
    if (cmd->help) fputs(cmd->help, f);
    const char *section = NULL;
    for (const clasp_arg *a = opts_(cmd); a->name; a++) {
        if (!a->help) continue;
        if (a->section && (!section || strcmp(section, a->section) != 0))
            fprintf(f, "\n%s\n", a->section);
        section = a->section;
        help_entry_(f, a);
    }
    fprintf(f, "  -h, --help%*sthis help\n", HELP_COL - 12, "");
    if (cmd->section) fprintf(f, "\n%s", cmd->section);
}

const char *clasp_args_display(const char *value) {
    for (int i = 0; value && i < g_.n; i++)
        if (!strcmp(value, g_.path[i])) return "-";
    return value;
}

int clasp_args_finish(int rc) {
    for (int i = 0; i < g_.n; i++) {
        if (rc == 0 && g_.to_stdout[i]) {
            FILE *f = fopen(g_.path[i], "rb");
            char buf[65536];
            size_t got;
            bool ok = f != NULL;
            while (ok && (got = fread(buf, 1, sizeof buf, f)) > 0)
                ok = fwrite(buf, 1, got, stdout) == got;
            if (f) fclose(f);
            if (!ok || fflush(stdout) != 0) {
                fprintf(stderr, "clasp: cannot write the output to stdout\n");
                rc = 1;
            }
        }
        remove(g_.path[i]);
    }
    g_.n = 0;
    for (int i = 0; i < g_.n_lists; i++) free(g_.lists[i]);
    g_.n_lists = 0;
    return rc;
}
