/* shards.c: build rate of the Fashion-MNIST and emoji shard builders (samples/s, MB/s) and the
 * raw read rate of each result (libarchive, every member's bytes read, no decoding).
 *
 *     bench_shards [OUT_DIR] [LIMIT]     (default OUT_DIR /tmp/clasp_bench_shards, LIMIT 0 = all)
 *
 * fmnist is written to OUT_DIR, emoji (both vendors, from the npm packages in the cache; npm
 * fetches them when missing) to OUT_DIR-emoji. A builder whose source is missing is reported
 * and skipped.
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/json.h"
#include "datasets/emoji.h"
#include "datasets/fmnist.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Prints the read rate of the shards listed by manifest m (in dir); samples have
 * `fields` members each. */
static int read_rate(const char *kind, const char *dir, const clasp_manifest *m, double fields) {
    double n_bytes = 0;
    const cJSON *split;
    static char names[256][300];
    int n_shards = 0;
    cJSON_ArrayForEach(split, m->splits) {
        const cJSON *sh;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItem(split, "shards")) {
            n_bytes += cJSON_GetObjectItem(sh, "bytes")->valuedouble;
            if (n_shards < 256)
                snprintf(names[n_shards++], sizeof names[0], "%s/%s", dir,
                         cJSON_GetObjectItem(sh, "name")->valuestring);
        }
    }
    static char buf[1 << 16];
    double members = 0, payload = 0;
    double t0 = now();
    for (int i = 0; i < n_shards; i++) {
        struct archive *a = archive_read_new();
        archive_read_support_format_tar(a);
        if (archive_read_open_filename(a, names[i], 1 << 16) != ARCHIVE_OK) {
            fprintf(stderr, "bench_shards: %s: %s\n", names[i], archive_error_string(a));
            archive_read_free(a);
            return 1;
        }
        struct archive_entry *e;
        while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
            la_ssize_t k;
            while ((k = archive_read_data(a, buf, sizeof buf)) > 0) payload += (double)k;
            members++;
        }
        archive_read_free(a);
    }
    double t_read = now() - t0;
    printf("%s read (libarchive, page cache warm): %.0f members (%.0f samples), %.1f MB in "
           "%.3f s: %.0f samples/s, %.1f MB/s of tar\n",
           kind, members, members / fields, n_bytes / 1e6, t_read, members / fields / t_read,
           n_bytes / 1e6 / t_read);
    printf("%s payload %.1f MB (%.0f%% of tar bytes)\n", kind, payload / 1e6,
           100 * payload / n_bytes);
    return 0;
}

static void build_rate(const char *kind, const clasp_manifest *m, double t_build) {
    double n_samples = 0, n_bytes = 0;
    const cJSON *split;
    cJSON_ArrayForEach(split, m->splits) {
        n_samples += cJSON_GetObjectItem(split, "samples")->valuedouble;
        const cJSON *sh;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItem(split, "shards")) n_bytes +=
            cJSON_GetObjectItem(sh, "bytes")->valuedouble;
    }
    printf("%s build: %.0f samples, %.1f MB in %.2f s: %.0f samples/s, %.1f MB/s\n", kind,
           n_samples, n_bytes / 1e6, t_build, n_samples / t_build, n_bytes / 1e6 / t_build);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp/clasp_bench_shards";
    size_t limit = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 0;
    int rc = 0;
    if (clasp_mkdir_p(dir) != CLASP_OK) {
        fprintf(stderr, "bench_shards: %s\n", clasp_last_error());
        return 1;
    }
    clasp_fmnist_options o = clasp_fmnist_default_options();
    o.shards.out_dir = dir;
    o.shards.limit = limit;
    clasp_manifest m;
    double t0 = now();
    if (clasp_fmnist_build(&o, &m) != CLASP_OK) {
        printf("fmnist: skipped: %s\n", clasp_last_error());
    } else {
        build_rate("fmnist", &m, now() - t0);
        rc |= read_rate("fmnist", dir, &m, 3);
        clasp_manifest_free(&m);
    }

    char edir[4096];
    snprintf(edir, sizeof edir, "%s-emoji", dir);
    clasp_emoji_options eo = clasp_emoji_default_options();
    eo.shards.out_dir = edir;
    eo.shards.limit = limit;
    /* Fetch (if needed) before timing, so the rate is the build's, not the download's. */
    char tgz[4096];
    if (clasp_emoji_package(&eo, "emojibase-data", CLASP_EMOJIBASE_VERSION, tgz, sizeof tgz) !=
            CLASP_OK ||
        clasp_emoji_package(&eo, "emoji-datasource-google", CLASP_EMOJI_DATASOURCE_VERSION, tgz,
                            sizeof tgz) != CLASP_OK ||
        clasp_emoji_package(&eo, "emoji-datasource-twitter", CLASP_EMOJI_DATASOURCE_VERSION, tgz,
                            sizeof tgz) != CLASP_OK) {
        printf("emoji: skipped: %s\n", clasp_last_error());
        return rc;
    }
    t0 = now();
    if (clasp_emoji_build(&eo, &m) != CLASP_OK) {
        fprintf(stderr, "bench_shards: emoji: %s\n", clasp_last_error());
        return 1;
    }
    build_rate("emoji", &m, now() - t0);
    rc |= read_rate("emoji", edir, &m, 3);
    clasp_manifest_free(&m);
    return rc;
}
