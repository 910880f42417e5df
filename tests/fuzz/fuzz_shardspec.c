/* fuzz_shardspec.c: libFuzzer target: arbitrary bytes as a --train/--data shard spec ->
 * brace expansion ({a..b}, {x,y}, zero padding, "::" lists, pipe: and "-" names). The
 * expansion is capped, here at 20,000 names (CLASP_SHARDLIST_MAX, two million, made one input
 * take a second and ASan's allocator kept what it freed, so a 15-minute run reached the 1 GiB
 * RSS limit without any input needing it; tests/test_shardlist.c checks the real cap); the
 * fuzzer's -rss_limit_mb catches a cap that does not hold. */
#include "fuzz.h"
#include "pipeline/shardlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size > 4096) return 0;
    char *spec = fuzz_cstr(data, size);
    if (!spec) return 0;
    clasp_shardlist l;
    if (clasp_shardlist_expand_max(spec, 20000, &l) == CLASP_OK)
        for (size_t i = 0; i < l.n; i++) {
            if (!l.names[i] || !l.names[i][0]) abort(); /* an empty name is never produced */
            (void)clasp_shard_is_pipe(l.names[i]);
            (void)clasp_shard_is_stdin(l.names[i]);
        }
    clasp_shardlist_free(&l);
    free(spec);
    return 0;
}
