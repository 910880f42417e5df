/* test_datasets_split.c: the one train/validation split rule of the shard builders
 * (datasets/split.h): known ids land in known splits, with the hash checked against XXH64
 * computed here, at every percent boundary; percentages outside 0..100 are refused. The
 * builders' agreement on real outputs is tested in test_datasets_asterisk.c and
 * test_datasets_emoji.c (each against espeak). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "datasets/split.h"

/* XXH64(id, seed 0) and its value % 100, written down once: the rule may not drift. */
typedef struct known_id {
    const char *id;
    uint64_t xxh64;
    int bucket;
} known_id;

static const known_id KNOWN[] = {
    {"en/vm-hi_x", 0xea61ccb804c424b6ull, 42}, /* asterisk key */
    {"en/hello", 0x8aa28fe3b6d1360aull, 70},   {"en/digits/one", 0x1edb198e2596ec38ull, 40},
    {"1F600", 0xc3fc02790474449eull, 6}, /* emoji split id */
    {"2764", 0xaa434d8366f4db6eull, 90},       {"1F44D", 0xb670a6c607b1df90ull, 64},
    {"one_a", 0xa83c93d8303e38b7ull, 35}, /* espeak FILE key */
    {"", 0xef46db3751d8e999ull, 21},
};

Test(datasets_split, known_ids_fall_in_known_splits) {
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++) {
        const known_id *k = &KNOWN[i];
        uint64_t h = XXH64(k->id, strlen(k->id), 0);
        cr_assert_eq(h, k->xxh64, "'%s': xxh64 %016llx", k->id, (unsigned long long)h);
        cr_assert_eq((int)(h % 100), k->bucket);
        const int percents[] = {0, 1, k->bucket, k->bucket + 1, 50, 99, 100};
        for (size_t p = 0; p < sizeof percents / sizeof percents[0]; p++) {
            bool want = k->bucket < percents[p];
            cr_assert_eq(clasp_split_is_validation(k->id, percents[p]), want,
                         "'%s' (bucket %d) at val_percent %d: want %s", k->id, k->bucket,
                         percents[p], want ? "validation" : "train");
        }
    }
}

Test(datasets_split, percent_outside_0_to_100_is_refused) {
    cr_assert_eq(clasp_split_check_percent("asterisk", 0), CLASP_OK);
    cr_assert_eq(clasp_split_check_percent("asterisk", 100), CLASP_OK);
    cr_assert_eq(clasp_split_check_percent("emoji", 101), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "emoji: val_percent 101 not in 0..100"), "%s",
              clasp_last_error());
    cr_assert_eq(clasp_split_check_percent("espeak", -1), CLASP_ERR_ARG);
}
