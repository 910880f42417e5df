/* cmd_shards_build.c: `clasp shards build KIND [source] -o DIR ...`: builds WebDataset shards
 * with the builders in datasets/ and writes DIR/manifest.json. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "datasets/asterisk.h"
#include "datasets/emoji.h"
#include "datasets/espeak.h"
#include "datasets/files.h"
#include "datasets/fmnist.h"
#include "datasets/manifest.h"

/* The option values of one invocation; the table below points into it, and into the builders'
 * own options (which hold their defaults). */
typedef struct build_args {
    const char *kind, *source, *out;
    uint64_t maxcount, maxsize, limit, val_percent, variants;
    bool have_maxcount, json;
    clasp_fmnist_options fmnist;
    clasp_files_options files;
    clasp_asterisk_options asterisk;
    clasp_emoji_options emoji;
    clasp_espeak_options espeak;
} build_args;

static int on_maxcount_(void *ctx, const char *v) {
    (void)v;
    ((build_args *)ctx)->have_maxcount = true;
    return 0;
}

#define A(field) offsetof(build_args, field)
#define STR(name, field, meta, help)                                                               \
    { name, 0, CLASP_ARG_STRING, A(field), meta, help, NULL, 0, 0, 0, NULL, NULL }
#define NUM(name, field, meta, hi, help, fn)                                                       \
    { name, 0, CLASP_ARG_U64, A(field), meta, help, NULL, 0, 0, hi, NULL, fn }
#define FLAG(name, field, help)                                                                    \
    { name, 0, CLASP_ARG_FLAG, A(field), NULL, help, NULL, 0, 0, 0, NULL, NULL }
static const clasp_arg build_table[] = {
    CLASP_ARG_COMMAND(
        "shards build", "KIND [SOURCE] -o DIR [options]",
        "Writes WebDataset tar shards PREFIX-000000.tar ... and DIR/manifest.json.\n"
        "\n"
        "KIND:\n"
        "  fmnist     Fashion-MNIST from the Debian package dataset-fashion-mnist (SOURCE:\n"
        "             the IDX folder, default /usr/share/datasets/fashion-mnist); splits\n"
        "             train (60000) and test (10000): KEY.png KEY.cls KEY.txt [KEY.json];\n"
        "             also classnames.txt (lower-cased, as used in prompts),\n"
        "             classnames_official.txt and templates.txt\n"
        "  folder     SOURCE is a directory: files paired by basename (x.jpg + x.txt)\n"
        "  tsv        SOURCE is a TSV/CSV file with a header row naming the columns\n"
        "  asterisk   Asterisk core sound prompts (Debian asterisk-core-sounds-LANG[-wav])\n"
        "  emoji      emoji images + CLDR labels from the npm packages emoji-datasource-google,\n"
        "             emoji-datasource-twitter and emojibase-data (fetched with `npm pack` into\n"
        "             $CLASP_CACHE, $XDG_CACHE_HOME/clasp or ~/.cache/clasp; SOURCE: a folder\n"
        "             holding the PACKAGE-VERSION.tgz files instead): KEY.png KEY.txt KEY.json\n"
        "  espeak     espeak-ng speaks transcripts with several voices, speeds and pitches:\n"
        "             KEY.wav KEY.txt KEY.json (default transcripts: Asterisk English prompts\n"
        "             and emoji names when present)\n"
        "SOURCE is a path (a folder, or the TSV file); '-' is refused.\n",
        "exit status: 0 ok, 1 error, 2 usage error\n"),
    {"KIND", 0, CLASP_ARG_POS, A(kind), NULL, NULL, NULL, CLASP_ARG_REQ, 0, 0, NULL, NULL},
    {"SOURCE", 0, CLASP_ARG_POS, A(source), NULL, NULL, NULL, 0, 0, 0, NULL, NULL},
    {"out", 'o', CLASP_ARG_STRING, A(out), "DIR", "output directory (created if missing)",
     "options:", CLASP_ARG_REQ | CLASP_ARG_DIR, 0, 0, NULL, NULL},
    NUM("maxcount", maxcount, "N", 0,
        "samples per shard (default 10000 for fmnist, 1000 otherwise)", on_maxcount_),
    NUM("maxsize", maxsize, "B", 0,
        "bytes per shard file, headers and padding included; a shard exceeds it only when one "
        "sample alone does (default: none)",
        NULL),
    STR("prefix", files.prefix, "P", "shard name prefix for folder/tsv (default: shard)"),
    NUM("limit", limit, "N", 0, "at most N samples per split (quick trials, tests)", NULL),
    FLAG("all-captions", fmnist.all_captions, "fmnist: also write KEY.json with all 8 captions"),
    STR("url-col", files.url_col, "NAME", "tsv: column with the file path (default: url)"),
    STR("caption-col", files.caption_col, "NAME",
        "tsv: column with the caption (default: caption)"),
    STR("langs", asterisk.langs, "L1,L2", "asterisk: languages (default: en,es,fr,it,ru)"),
    NUM("val-percent", val_percent, "P", 100,
        "asterisk/emoji/espeak: validation share by hash of the name / emoji / transcript (default "
        "10)",
        NULL),
    STR("vendors", emoji.vendors, "V1,V2",
        "emoji: google,twitter (default both; apple and facebook are refused: their image licences "
        "do not allow it)"),
    STR("locales", emoji.locales, "L1,L2", "emoji: emojibase locales in KEY.json (default: all)"),
    FLAG("skins", emoji.skins, "emoji: also the skin-tone variations"),
    STR("from", espeak.from, "SRC[,SRC]",
        "espeak: asterisk, emoji, or a FILE of KEY<TAB>TEXT lines"),
    STR("voices", espeak.voices, "V1,V2",
        "espeak: espeak-ng voices (default " CLASP_ESPEAK_DEFAULT_VOICES ")"),
    STR("speeds", espeak.speeds, "S1,S2",
        "espeak: words per minute (default " CLASP_ESPEAK_DEFAULT_SPEEDS ")"),
    STR("pitches", espeak.pitches, "P1,P2",
        "espeak: 0..99 (default " CLASP_ESPEAK_DEFAULT_PITCHES ")"),
    NUM("variants", variants, "N", 0,
        "espeak: voice/speed/pitch cells per transcript (default 4, 0 = all)", NULL),
    NUM("seed", espeak.seed, "S", 0, "espeak: seed of the cell draw (default 0)", NULL),
    CLASP_ARG_JSON(A(json), "print the manifest summary as JSON on stdout"),
    CLASP_ARG_END,
};
#undef A
#undef STR
#undef NUM
#undef FLAG

/* The options every builder has, from the command line. */
#define SET_COMMON_(o, a)                                                                          \
    do {                                                                                           \
        (o).shards.out_dir = (a)->out;                                                             \
        if ((a)->have_maxcount) (o).shards.maxcount = (size_t)(a)->maxcount;                       \
        (o).shards.maxsize = (a)->maxsize;                                                         \
        (o).shards.limit = (size_t)(a)->limit;                                                     \
        (o).shards.progress = true;                                                                \
    } while (0)

/* Runs the builder of a->kind; CLASP_ERR_ARG for an unknown kind. */
static clasp_status build_(build_args *a, clasp_manifest *m) {
    const char *k = a->kind;
    if (!strcmp(k, "fmnist")) {
        SET_COMMON_(a->fmnist, a);
        a->fmnist.src_dir = a->source;
        return clasp_fmnist_build(&a->fmnist, m);
    }
    if (!strcmp(k, "folder") || !strcmp(k, "tsv")) {
        SET_COMMON_(a->files, a);
        a->files.source = a->source;
        return !strcmp(k, "tsv") ? clasp_tsv_build(&a->files, m) : clasp_folder_build(&a->files, m);
    }
    if (!strcmp(k, "asterisk")) {
        SET_COMMON_(a->asterisk, a);
        a->asterisk.src_root = a->source;
        a->asterisk.val_percent = (int)a->val_percent;
        return clasp_asterisk_build(&a->asterisk, m);
    }
    if (!strcmp(k, "emoji")) {
        SET_COMMON_(a->emoji, a);
        a->emoji.src_dir = a->source;
        a->emoji.val_percent = (int)a->val_percent;
        return clasp_emoji_build(&a->emoji, m);
    }
    if (!strcmp(k, "espeak")) {
        SET_COMMON_(a->espeak, a);
        a->espeak.src_root = a->source;
        a->espeak.variants = (size_t)a->variants;
        a->espeak.val_percent = (int)a->val_percent;
        return clasp_espeak_build(&a->espeak, m);
    }
    return clasp_set_error(CLASP_ERR_ARG, "unknown KIND '%s'", k);
}

int clasp_cmd_shards_build(int argc, char **argv) {
    static build_args a; /* the builders' options are large */
    a = (build_args){.val_percent = 10,
                     .variants = 4,
                     .fmnist = clasp_fmnist_default_options(),
                     .files = clasp_files_default_options(),
                     .asterisk = clasp_asterisk_default_options(),
                     .emoji = clasp_emoji_default_options(),
                     .espeak = clasp_espeak_default_options()};
    int rc;
    if (!clasp_args_parse(build_table, &a, argc, argv, &rc)) return rc;
    const char *kind = a.kind, *out = a.out;
    static const char *const kinds[] = {"fmnist", "folder", "tsv", "asterisk", "emoji", "espeak"};
    size_t k = 0;
    while (k < sizeof kinds / sizeof kinds[0] && strcmp(kinds[k], kind) != 0) k++;
    if (k == sizeof kinds / sizeof kinds[0])
        return clasp_args_usage_error(
            build_table, "unknown KIND '%s' (fmnist, folder, tsv, asterisk, emoji, espeak)", kind);
    if ((!strcmp(kind, "folder") || !strcmp(kind, "tsv")) && !a.source)
        return clasp_args_usage_error(build_table, "%s needs a SOURCE %s", kind,
                                      !strcmp(kind, "tsv") ? "file" : "directory");
    if (a.source && !strcmp(a.source, "-"))
        return clasp_args_usage_error(build_table, "SOURCE must be a path, not '-'");
    clasp_manifest m;
    clasp_status st = build_(&a, &m);
    if (st != CLASP_OK) {
        fprintf(stderr, "clasp shards build %s: error: %s\n", kind, clasp_last_error());
        return 1;
    }
    cJSON *sum = clasp_manifest_summary(&m, out);
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(sum, "total");
    fprintf(stderr,
            "clasp shards build %s: %.0f samples in %.0f shards (%.0f bytes), %zu skipped; "
            "%s/manifest.json\n",
            kind, cJSON_GetObjectItemCaseSensitive(tot, "samples")->valuedouble,
            cJSON_GetObjectItemCaseSensitive(tot, "shards")->valuedouble,
            cJSON_GetObjectItemCaseSensitive(tot, "bytes")->valuedouble, m.n_skipped, out);
    if (a.json)
        clasp_cli_print_json(sum, true);
    else
        cJSON_Delete(sum);
    clasp_manifest_free(&m);
    return 0;
}
