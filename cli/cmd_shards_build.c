/* cmd_shards_build.c: `clasp shards build KIND [source] -o DIR ...`: builds WebDataset shards
 * with the builders in datasets/ and writes DIR/manifest.json. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "datasets/asterisk.h"
#include "datasets/emoji.h"
#include "datasets/espeak.h"
#include "datasets/files.h"
#include "datasets/fmnist.h"
#include "datasets/manifest.h"

static void help(FILE *f) {
    fprintf(
        f,
        "usage: clasp shards build KIND [SOURCE] -o DIR [options]\n"
        "\n"
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
        "\n"
        "options:\n"
        "  -o, --out DIR        output directory (created if missing)\n"
        "  --maxcount N         samples per shard (default 10000 for fmnist, 1000 otherwise)\n"
        "  --maxsize B          bytes per shard file, headers and padding included; a shard\n"
        "                       exceeds it only when one sample alone does (default: none)\n"
        "  --prefix P           shard name prefix for folder/tsv (default: shard)\n"
        "  --limit N            at most N samples per split (quick trials, tests)\n"
        "  --all-captions       fmnist: also write KEY.json with all 8 captions\n"
        "  --url-col NAME       tsv: column with the file path (default: url)\n"
        "  --caption-col NAME   tsv: column with the caption (default: caption)\n"
        "  --langs L1,L2        asterisk: languages (default: en,es,fr,it,ru)\n"
        "  --val-percent P      asterisk/emoji/espeak: validation share by hash of the\n"
        "                       name / emoji / transcript (default 10)\n"
        "  --vendors V1,V2      emoji: google,twitter (default both; apple and facebook\n"
        "                       are refused: their image licences do not allow it)\n"
        "  --locales L1,L2      emoji: emojibase locales in KEY.json (default: all)\n"
        "  --skins              emoji: also the skin-tone variations\n"
        "  --from SRC[,SRC]     espeak: asterisk, emoji, or a FILE of KEY<TAB>TEXT lines\n"
        "  --voices V1,V2       espeak: espeak-ng voices (default " CLASP_ESPEAK_DEFAULT_VOICES
        ")\n"
        "  --speeds S1,S2       espeak: words per minute (default " CLASP_ESPEAK_DEFAULT_SPEEDS
        ")\n"
        "  --pitches P1,P2      espeak: 0..99 (default " CLASP_ESPEAK_DEFAULT_PITCHES ")\n"
        "  --variants N         espeak: voice/speed/pitch cells per transcript (default 4,\n"
        "                       0 = all)\n"
        "  --seed S             espeak: seed of the cell draw (default 0)\n"
        "  --json               print the manifest summary as JSON on stdout\n"
        "  -h, --help           this help\n"
        "\n"
        "exit status: 0 ok, 1 error, 2 usage error\n");
}

static int parse_u64(const char *flag, const char *v, uint64_t *out) {
    if (!v || !*v || *v == '-') {
        fprintf(stderr, "clasp shards build: %s needs a non-negative integer\n", flag);
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) {
        fprintf(stderr, "clasp shards build: %s: not an integer: '%s'\n", flag, v);
        return 0;
    }
    *out = x;
    return 1;
}

int clasp_cmd_shards_build(int argc, char **argv) {
    const char *kind = NULL, *source = NULL, *out = NULL, *prefix = NULL;
    const char *url_col = NULL, *caption_col = NULL, *langs = NULL;
    const char *vendors = NULL, *locales = NULL, *from = NULL, *voices = NULL, *speeds = NULL,
               *pitches = NULL;
    uint64_t maxcount = 0, maxsize = 0, limit = 0, val_percent = 10, variants = 4, seed = 0;
    bool have_maxcount = false, json = false, all_captions = false, skins = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--all-captions")) {
            all_captions = true;
        } else if (!strcmp(a, "--skins")) {
            skins = true;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "--prefix") ||
                   !strcmp(a, "--url-col") || !strcmp(a, "--caption-col") ||
                   !strcmp(a, "--langs") || !strcmp(a, "--vendors") || !strcmp(a, "--locales") ||
                   !strcmp(a, "--from") || !strcmp(a, "--voices") || !strcmp(a, "--speeds") ||
                   !strcmp(a, "--pitches")) {
            if (!v) {
                fprintf(stderr, "clasp shards build: %s needs a value\n", a);
                return 2;
            }
            if (!strcmp(a, "--prefix"))
                prefix = v;
            else if (!strcmp(a, "--url-col"))
                url_col = v;
            else if (!strcmp(a, "--caption-col"))
                caption_col = v;
            else if (!strcmp(a, "--langs"))
                langs = v;
            else if (!strcmp(a, "--vendors"))
                vendors = v;
            else if (!strcmp(a, "--locales"))
                locales = v;
            else if (!strcmp(a, "--from"))
                from = v;
            else if (!strcmp(a, "--voices"))
                voices = v;
            else if (!strcmp(a, "--speeds"))
                speeds = v;
            else if (!strcmp(a, "--pitches"))
                pitches = v;
            else
                out = v;
            i++;
        } else if (!strcmp(a, "--maxcount") || !strcmp(a, "--maxsize") || !strcmp(a, "--limit") ||
                   !strcmp(a, "--val-percent") || !strcmp(a, "--variants") ||
                   !strcmp(a, "--seed")) {
            uint64_t x;
            if (!parse_u64(a, v, &x)) return 2;
            if (!strcmp(a, "--maxcount")) {
                maxcount = x;
                have_maxcount = true;
            } else if (!strcmp(a, "--maxsize")) {
                maxsize = x;
            } else if (!strcmp(a, "--limit")) {
                limit = x;
            } else if (!strcmp(a, "--variants")) {
                variants = x;
            } else if (!strcmp(a, "--seed")) {
                seed = x;
            } else {
                if (x > 100) {
                    fprintf(stderr, "clasp shards build: --val-percent must be 0..100\n");
                    return 2;
                }
                val_percent = x;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "clasp shards build: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (!kind) {
            kind = a;
        } else if (!source) {
            source = a;
        } else {
            fprintf(stderr, "clasp shards build: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!kind || !out) {
        fprintf(stderr, "clasp shards build: need KIND and -o DIR\n\n");
        help(stderr);
        return 2;
    }

    clasp_manifest m;
    clasp_status st;
    if (!strcmp(kind, "fmnist")) {
        clasp_fmnist_options o = clasp_fmnist_default_options();
        o.src_dir = source;
        o.out_dir = out;
        if (have_maxcount) o.maxcount = (size_t)maxcount;
        o.maxsize = maxsize;
        o.limit = (size_t)limit;
        o.all_captions = all_captions;
        o.progress = true;
        st = clasp_fmnist_build(&o, &m);
    } else if (!strcmp(kind, "folder") || !strcmp(kind, "tsv")) {
        if (!source) {
            fprintf(stderr, "clasp shards build %s: need a SOURCE %s\n", kind,
                    !strcmp(kind, "tsv") ? "file" : "directory");
            return 2;
        }
        clasp_files_options o = clasp_files_default_options();
        o.source = source;
        o.out_dir = out;
        if (prefix) o.prefix = prefix;
        if (have_maxcount) o.maxcount = (size_t)maxcount;
        o.maxsize = maxsize;
        o.limit = (size_t)limit;
        if (url_col) o.url_col = url_col;
        if (caption_col) o.caption_col = caption_col;
        o.progress = true;
        st = !strcmp(kind, "tsv") ? clasp_tsv_build(&o, &m) : clasp_folder_build(&o, &m);
    } else if (!strcmp(kind, "asterisk")) {
        clasp_asterisk_options o = clasp_asterisk_default_options();
        o.src_root = source;
        o.out_dir = out;
        if (have_maxcount) o.maxcount = (size_t)maxcount;
        o.maxsize = maxsize;
        o.limit = (size_t)limit;
        if (langs) o.langs = langs;
        o.val_percent = (int)val_percent;
        o.progress = true;
        st = clasp_asterisk_build(&o, &m);
    } else if (!strcmp(kind, "emoji")) {
        clasp_emoji_options o = clasp_emoji_default_options();
        o.src_dir = source;
        o.out_dir = out;
        if (have_maxcount) o.maxcount = (size_t)maxcount;
        o.maxsize = maxsize;
        o.limit = (size_t)limit;
        if (vendors) o.vendors = vendors;
        o.locales = locales;
        o.skins = skins;
        o.val_percent = (int)val_percent;
        o.progress = true;
        st = clasp_emoji_build(&o, &m);
    } else if (!strcmp(kind, "espeak")) {
        clasp_espeak_options o = clasp_espeak_default_options();
        o.src_root = source;
        o.out_dir = out;
        if (have_maxcount) o.maxcount = (size_t)maxcount;
        o.maxsize = maxsize;
        o.limit = (size_t)limit;
        o.from = from;
        if (voices) o.voices = voices;
        if (speeds) o.speeds = speeds;
        if (pitches) o.pitches = pitches;
        o.variants = (size_t)variants;
        o.seed = seed;
        o.val_percent = (int)val_percent;
        o.progress = true;
        st = clasp_espeak_build(&o, &m);
    } else {
        fprintf(stderr,
                "clasp shards build: unknown KIND '%s' (fmnist, folder, tsv, asterisk, emoji, "
                "espeak)\n",
                kind);
        return 2;
    }
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
    if (json) {
        char *s = cJSON_Print(sum);
        if (s) printf("%s\n", s);
        free(s);
    }
    cJSON_Delete(sum);
    clasp_manifest_free(&m);
    return 0;
}
