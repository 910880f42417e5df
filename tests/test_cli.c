/* test_cli.c: the option parser shared by the `clasp` commands (cli/args.h), run through the
 * built binary (env CLASP_BIN): `--opt=value`, numbers checked with the flag and the value named,
 * unknown options and missing values with a usage hint, `clasp shards --help`, `clasp help
 * COMMAND`, '-' as stdin/stdout (embed --text - -o -, tokenizer train --lines - -o -, search
 * --index -) and refused for folders, and `--version` carrying the CMake project version and the
 * backend built. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/json.h"
#include "datasets/manifest.h"
#include "encoders/model.h"
#include "eval/retrieval.h"
#include "export/export.h"
#include "modalities/preprocess.h"
#include "train/checkpoint.h"
#include "train/runstate.h"
#include "fixtures.h"

#ifndef CLASP_SOURCE_DIR
#define CLASP_SOURCE_DIR "."
#endif

typedef struct run_result {
    int status;      /* exit status, or -1 when the command did not exit normally */
    char out[65536]; /* stdout (NUL-terminated, cut at the buffer size) */
    char err[16384]; /* stderr */
} run_result;

static char *slurp_(const char *path, size_t cap, char *buf) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    return buf;
}

/* Runs `clasp ARGS` in dir (stdin from in_path, or /dev/null) and collects its output. */
static void run_(run_result *r, const char *dir, const char *in_path, const char *fmt, ...) {
    char args[4096], cmd[20000], out[4200], err[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof out, "%s/stdout.txt", dir);
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s < '%s' > '%s' 2> '%s'", dir, clasp_test_bin(),
             args, in_path ? in_path : "/dev/null", out, err);
    int st = system(cmd);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    slurp_(out, sizeof r->out, r->out);
    slurp_(err, sizeof r->err, r->err);
}

static void write_text_(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static bool same_file_(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    cr_assert_eq(clasp_read_file(a, (size_t)1 << 26, &x, &nx), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_read_file(b, (size_t)1 << 26, &y, &ny), CLASP_OK, "%s", clasp_last_error());
    bool same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

Test(cli, opt_equals_value) {
    char d[4096], lines[4200];
    clasp_test_tmpdir("cli-eq", d, sizeof d);
    snprintf(lines, sizeof lines, "%s/captions.txt", d);
    write_text_(lines, "a red shirt\na blue bag\na red bag\n");
    run_result r;
    run_(&r, d, NULL, "tokenizer train --lines=%s --out=tok.json --vocab=262 --min-count 1", lines);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    char tok[4200];
    snprintf(tok, sizeof tok, "%s/tok.json", d);
    cJSON *j = NULL;
    cr_assert_eq(clasp_json_load(tok, &j), CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(cJSON_GetObjectItem(j, "vocab_size")->valueint, 262);
    cJSON_Delete(j);
}

/* Command lines that must fail with exit 2 and a message holding both strings, by group. */
static const struct usage_case {
    const char *group, *args, *must1, *must2;
} usage_cases[] = {
    /* numbers are checked; the message names the flag and the value */
    {"numbers", "eval --model none --data none --probe-l2 abc", "--probe-l2",
     "'abc' is not a number"},
    {"numbers", "eval --model none --data none --threads 2x", "--threads",
     "'2x' is not an integer"},
    {"numbers", "embed --model none --text t -o o.npy --batch-size=8x", "--batch-size", "'8x'"},
    {"numbers", "search --model none --index i.npy --text q -k ten", "-k", "'ten'"},
    {"numbers", "train --model m --train t --out o --steps 0", "--steps", "out of range"},
    {"numbers", "shards build fmnist -o x --val-percent 101", "--val-percent", "'101'"},
    {"numbers", "tokenizer train --lines l -o o --vocab 12", "--vocab", "'12'"},
    /* unknown options (no abbreviations), missing or extra values: a usage hint */
    {"unknown", "train --bogus", "unknown option '--bogus'", "usage: clasp train"},
    {"unknown", "eval --mod m --data d", "unknown option '--mod'", "usage: clasp eval"},
    {"unknown", "eval --data d --model", "--model needs a value", "usage: clasp eval"},
    {"unknown", "export run --json=yes -o x", "--json takes no value", "usage: clasp export"},
    {"unknown", "shards inspect a.tar --on-error maybe", "'maybe' is not one of skip|fail",
     "usage: clasp shards inspect"},
    {"unknown", "train --weight 2 --train t", "--weight applies to the preceding --train", ""},
    /* '-' cannot be a folder, and stdin can be read once */
    {"dash", "export run -o -", "-o", "folder"},
    {"dash", "shards build fmnist -o -", "--out", "folder"},
    {"dash", "train --model m --train t --out -", "--out", "folder"},
    {"dash", "eval --model - --data d", "--model", "folder"},
    {"dash", "eval --model m --data d --zeroshot - --templates -", "--templates", "one stdin"},
};

static void expect_usage_errors_(const char *group) {
    char d[4096], name[64];
    snprintf(name, sizeof name, "cli-%s", group);
    clasp_test_tmpdir(name, d, sizeof d);
    run_result r;
    for (size_t i = 0; i < sizeof usage_cases / sizeof usage_cases[0]; i++) {
        const struct usage_case *c = &usage_cases[i];
        if (strcmp(c->group, group) != 0) continue;
        run_(&r, d, NULL, "%s", c->args);
        cr_expect_eq(r.status, 2, "clasp %s: exit %d, stderr: %s", c->args, r.status, r.err);
        cr_expect(strstr(r.err, c->must1) && strstr(r.err, c->must2),
                  "clasp %s: stderr lacks \"%s\" or \"%s\": %s", c->args, c->must1, c->must2,
                  r.err);
    }
}

Test(cli, numbers_checked_with_flag_and_value) {
    expect_usage_errors_("numbers");
}

Test(cli, unknown_options_and_missing_values_give_a_usage_hint) {
    expect_usage_errors_("unknown");
}

Test(cli, shards_help_and_help_command) {
    char d[4096];
    clasp_test_tmpdir("cli-help", d, sizeof d);
    run_result r;
    run_(&r, d, NULL, "shards --help");
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.out, "shards build") && strstr(r.out, "shards inspect"), "%s", r.out);
    run_(&r, d, NULL, "help train");
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.out, "usage: clasp train --model") && strstr(r.out, "--batch-size B"), "%s",
              r.out);
    run_(&r, d, NULL, "help shards build");
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.out, "usage: clasp shards build KIND") && strstr(r.out, "--maxcount N"),
              "%s", r.out);
    run_(&r, d, NULL, "help nosuchcommand");
    cr_expect_eq(r.status, 2);
    /* every command's help comes from its table: options listed, exit 0 */
    const char *cmds[][2] = {{"train", "--zeroshot FILE"},   {"eval", "--probe-l2 X"},
                             {"embed", "--sidecar FILE"},    {"search", "-k, --k K"},
                             {"export", "-o DIR"},           {"report", "--queries N"},
                             {"shards inspect", "--decode"}, {"tokenizer train", "--min-count K"}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        run_(&r, d, NULL, "%s --help", cmds[i][0]);
        cr_expect_eq(r.status, 0, "%s --help: exit %d", cmds[i][0], r.status);
        cr_expect(strstr(r.out, cmds[i][1]), "%s --help lacks %s", cmds[i][0], cmds[i][1]);
    }
}

Test(cli, version_is_the_cmake_version_with_backend) {
    char d[4096], cm[4200], buf[8192];
    clasp_test_tmpdir("cli-version", d, sizeof d);
    snprintf(cm, sizeof cm, "%s/CMakeLists.txt", CLASP_SOURCE_DIR);
    const char *p = strstr(slurp_(cm, sizeof buf, buf), "project(clasp VERSION ");
    cr_assert(p, "no project(clasp VERSION ...) in %s", cm);
    char version[32];
    cr_assert_eq(sscanf(p, "project(clasp VERSION %31s", version), 1);
    run_result r;
    run_(&r, d, NULL, "--version");
    cr_expect_eq(r.status, 0);
    char want[64];
    snprintf(want, sizeof want, "clasp %s ", version);
    cr_expect(!strncmp(r.out, want, strlen(want)), "'%s' does not start with '%s'", r.out, want);
    cr_expect(strstr(r.out, "backend " CLASP_BACKEND_NAME) && strstr(r.out, "precisions fp32"),
              "%s", r.out);
    /* the newest version of every file format (HACKING.md "Format fields") */
    char formats[128];
    snprintf(formats, sizeof formats, "\nformats: manifest %d, checkpoint %d, run %d, export %d\n",
             CLASP_MANIFEST_FORMAT_VERSION, CLASP_CKPT_FORMAT_VERSION, CLASP_RUN_FORMAT_VERSION,
             CLASP_EXPORT_FORMAT_VERSION);
    cr_expect(strstr(r.out, formats), "'%s' lacks '%s'", r.out, formats + 1);
}

/* A fmnist-small export with random weights, made with the library. */
static void export_(const char *dir) {
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_model_config cfg;
    clasp_model m;
    clasp_preprocess pre;
    cr_assert_eq(clasp_model_config_load(cfg_path, &cfg), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_preprocess_load(cfg_path, &pre), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_init(&m, &cfg), CLASP_OK, "%s", clasp_last_error());
    clasp_model_init_weights(&m, 7);
    cr_assert_eq(clasp_export_model(&m, &pre, dir), CLASP_OK, "%s", clasp_last_error());
    clasp_preprocess_free(&pre);
    clasp_model_free(&m);
}

Test(cli, embed_text_from_stdin_npy_to_stdout) {
    char d[4096], exp[4200], texts[4200], a[4200], b[4200], side[4200], dash[4200];
    clasp_test_tmpdir("cli-embed", d, sizeof d);
    snprintf(exp, sizeof exp, "%s/export", d);
    export_(exp);
    snprintf(texts, sizeof texts, "%s/texts.txt", d);
    write_text_(texts, "a shirt\n\na bag\n");
    run_result r;
    run_(&r, d, NULL, "embed --model %s --text %s -o file.npy", exp, texts);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    run_(&r, d, texts, "embed --model %s --text - -o -", exp);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    snprintf(a, sizeof a, "%s/file.npy", d);
    snprintf(b, sizeof b, "%s/stdout.txt", d);
    cr_expect(same_file_(a, b), "the .npy on stdout differs from the one written to a file");
    snprintf(dash, sizeof dash, "%s/-", d);
    cr_expect_neq(access(dash, F_OK), 0, "a file named '-' was written");
    snprintf(dash, sizeof dash, "%s/-.json", d);
    cr_expect_neq(access(dash, F_OK), 0, "a sidecar named '-.json' was written");
    /* the sidecar of -o - goes where --sidecar says */
    run_(&r, d, texts, "embed --model %s --text - -o - --sidecar side.json", exp);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    snprintf(side, sizeof side, "%s/side.json", d);
    cJSON *j = NULL;
    cr_assert_eq(clasp_json_load(side, &j), CLASP_OK, "%s", clasp_last_error());
    cr_expect_eq(cJSON_GetObjectItem(j, "count")->valueint, 2);
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 1)->valuestring, "3");
    cJSON_Delete(j);
    /* the index from stdin, its keys from --sidecar */
    run_(&r, d, a, "search --model %s --index - --sidecar side.json --text 'a bag' -k 1", exp);
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.out, "  3\n"), "expected the key of line 3 first: %s", r.out);
    /* -o - and --json would both write stdout */
    run_(&r, d, texts, "embed --model %s --text - -o - --json", exp);
    cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "--json") && strstr(r.err, "stdout"), "%s", r.err);
}

Test(cli, dash_is_stdin_and_stdout_and_refused_for_folders) {
    char d[4096], lines[4200], a[4200], b[4200];
    clasp_test_tmpdir("cli-dash", d, sizeof d);
    snprintf(lines, sizeof lines, "%s/captions.txt", d);
    write_text_(lines, "a red shirt\na blue bag\na red bag\n");
    run_result r;
    run_(&r, d, NULL, "tokenizer train --lines %s -o tok.json --vocab 262 --min-count 1", lines);
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    run_(&r, d, lines, "tokenizer train --lines - -o - --vocab 262 --min-count 1");
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    snprintf(a, sizeof a, "%s/tok.json", d);
    snprintf(b, sizeof b, "%s/stdout.txt", d);
    cr_expect(same_file_(a, b), "tokenizer train -o - differs from -o FILE");
    expect_usage_errors_("dash");
}
