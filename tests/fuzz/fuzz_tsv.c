/* fuzz_tsv.c: libFuzzer target: arbitrary bytes as the table of `clasp shards build tsv` (and
 * csv: the first byte picks) -> header and RFC 4180 record parsing, column lookup, path checks,
 * one small image per row -> shards in a scratch folder. Two real files sit next to the table
 * (a.png, b.wav), so rows naming them reach the shard writer. */
#include <sys/stat.h>

#include "datasets/files.h"
#include "datasets/manifest.h"
#include "fuzz.h"

static char dir_[200];

static void init_(void) {
    fuzz_quiet();
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir_, sizeof dir_, "%s/clasp-fuzz-tsv-%ld", base, (long)getpid());
    mkdir(dir_, 0755);
    /* 1x1 gray PNG */
    static const uint8_t png[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
        0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00,
        0x00, 0x3a, 0x7e, 0x9b, 0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78,
        0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x48, 0xaf, 0xa4, 0x71, 0x00,
        0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
    char p[300];
    snprintf(p, sizeof p, "%s/a.png", dir_);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(png, 1, sizeof png, f) != sizeof png || fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir_[0]) init_();
    if (size > 1 << 16) return 0;
    bool csv = size > 0 && data[0] & 1;
    char table[300], out[300];
    snprintf(table, sizeof table, "%s/table.%s", dir_, csv ? "csv" : "tsv");
    snprintf(out, sizeof out, "%s/out", dir_);
    FILE *f = fopen(table, "wb");
    if (!f) return 0;
    size_t w = size > 1 ? fwrite(data + 1, 1, size - 1, f) : 0;
    if (fclose(f) != 0 || w != (size > 1 ? size - 1 : 0)) return 0;
    clasp_files_options o = {.source = table, .prefix = "fz"};
    o.shards.out_dir = out;
    o.shards.maxcount = 4;
    o.shards.limit = 16;
    clasp_manifest m;
    if (clasp_tsv_build(&o, &m) == CLASP_OK) clasp_manifest_free(&m); /* freed on error */
    return 0;
}
