/* test_shardlist.c: shard spec expansion and per-epoch shard orders. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/shardlist.h"
#include "pipeline/tar_reader.h"

/* Expands spec and checks the names against the ones that follow, up to a NULL. */
static void expect_(const char *spec, ...) {
    const char *want[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, spec);
    for (const char *w; (w = va_arg(ap, const char *)) != NULL && n < 16;) want[n++] = w;
    va_end(ap);
    clasp_shardlist l;
    clasp_status st = clasp_shardlist_expand(spec, &l);
    cr_assert_eq(st, CLASP_OK, "%s: %s", spec, clasp_last_error());
    cr_assert_eq(l.n, n, "%s: %zu names, want %zu", spec, l.n, n);
    for (size_t i = 0; i < n; i++) cr_assert_str_eq(l.names[i], want[i], "%s: name %zu", spec, i);
    clasp_shardlist_free(&l);
}

Test(shardlist, plain_path_and_stdin) {
    expect_("data/x.tar", "data/x.tar", NULL);
    expect_("-", "-", NULL);
}

Test(shardlist, zero_padded_range) {
    expect_("train-{000008..000010}.tar", "train-000008.tar", "train-000009.tar",
            "train-000010.tar", NULL);
    expect_("s{9..11}", "s9", "s10", "s11", NULL);
    expect_("s{03..02}", "s03", "s02", NULL);
}

Test(shardlist, lists_nested_and_multiple) {
    expect_("{a,b}-{0..1}.tar", "a-0.tar", "a-1.tar", "b-0.tar", "b-1.tar", NULL);
    expect_("{x{1,2},y}", "x1", "x2", "y", NULL);
    expect_("{a,}.tar", "a.tar", ".tar", NULL);
}

Test(shardlist, literal_braces_kept) {
    expect_("f{x}.tar", "f{x}.tar", NULL);
    expect_("f{a..b}{1,2}", "f{a..b}1", "f{a..b}2", NULL);
}

Test(shardlist, double_colon_joins_specs) {
    expect_("a{0..1}::pipe:cat b{0..1}.tar::-", "a0", "a1", "pipe:cat b0.tar", "pipe:cat b1.tar",
            "-", NULL);
}

Test(shardlist, errors) {
    clasp_shardlist l;
    cr_assert_eq(clasp_shardlist_expand("", &l), CLASP_ERR_ARG);
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand("a::", &l), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "empty part"));
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand("a{0..3", &l), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "unbalanced"));
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand("a{0..999999999}", &l), CLASP_ERR_OVERFLOW);
    clasp_shardlist_free(&l);
    /* another cap: a product of ranges and a "::" list count against it as a whole */
    cr_assert_eq(clasp_shardlist_expand_max("s{1..5}{1..5}", 25, &l), CLASP_OK);
    cr_assert_eq(l.n, 25);
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand_max("s{1..5}{1..5}", 24, &l), CLASP_ERR_OVERFLOW);
    cr_assert(strstr(clasp_last_error(), "more than 24 names"));
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand_max("s{1..20}::t{1..5}", 24, &l), CLASP_ERR_OVERFLOW);
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand_max("s{1..30}", 24, &l), CLASP_ERR_OVERFLOW);
    cr_assert(strstr(clasp_last_error(), "max 24"));
    clasp_shardlist_free(&l);
}

static void make_list_(clasp_shardlist *l, size_t n) {
    char spec[64];
    snprintf(spec, sizeof spec, "s{0..%zu}", n - 1);
    cr_assert_eq(clasp_shardlist_expand(spec, l), CLASP_OK);
}

Test(shardlist, epoch_order_is_permutation_split_by_rank) {
    clasp_shardlist l;
    make_list_(&l, 10);
    int seen[10] = {0};
    for (int r = 0; r < 3; r++) {
        clasp_shard_order o;
        cr_assert_eq(clasp_shard_order_init(&o, &l, 42, 1, r, 3, true, false), CLASP_OK);
        cr_assert_eq(o.n, r == 0 ? 4u : 3u);
        for (size_t p = 0; p < o.n; p++) seen[atoi(clasp_shard_order_get(&o, p) + 1)]++;
        cr_assert_null(clasp_shard_order_get(&o, o.n));
        clasp_shard_order_free(&o);
    }
    for (int i = 0; i < 10; i++) cr_assert_eq(seen[i], 1, "shard %d seen %d times", i, seen[i]);
    clasp_shardlist_free(&l);
}

Test(shardlist, epoch_order_depends_on_seed_and_epoch_only) {
    clasp_shardlist l;
    make_list_(&l, 20);
    clasp_shard_order a, b, c;
    clasp_shard_order_init(&a, &l, 7, 3, 0, 1, true, false);
    clasp_shard_order_init(&b, &l, 7, 3, 0, 1, true, false);
    clasp_shard_order_init(&c, &l, 7, 4, 0, 1, true, false);
    cr_assert_eq(memcmp(a.idx, b.idx, 20 * sizeof(size_t)), 0);
    cr_assert_neq(memcmp(a.idx, c.idx, 20 * sizeof(size_t)), 0);
    clasp_shard_order u;
    clasp_shard_order_init(&u, &l, 7, 3, 0, 1, false, false);
    for (size_t i = 0; i < 20; i++) cr_assert_eq(u.idx[i], i);
    clasp_shard_order_free(&a);
    clasp_shard_order_free(&b);
    clasp_shard_order_free(&c);
    clasp_shard_order_free(&u);
    clasp_shardlist_free(&l);
}

Test(shardlist, rank_without_shard_is_an_error_unless_resampling) {
    clasp_shardlist l;
    make_list_(&l, 2);
    clasp_shard_order o;
    cr_assert_eq(clasp_shard_order_init(&o, &l, 1, 0, 0, 4, true, false), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "no shard"), "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), "--samples-per-epoch"));
    clasp_shard_order_free(&o);
    cr_assert_eq(clasp_shard_order_init(&o, &l, 1, 0, 3, 4, true, true), CLASP_OK);
    /* Resampling draws with replacement, deterministically, from the whole list. */
    for (uint64_t p = 0; p < 50; p++) {
        const char *s = clasp_shard_order_get(&o, p);
        cr_assert(!strcmp(s, "s0") || !strcmp(s, "s1"));
        cr_assert_str_eq(s, clasp_shard_order_get(&o, p));
    }
    clasp_shard_order_free(&o);
    cr_assert_eq(clasp_shard_order_init(&o, &l, 1, 0, 4, 4, true, false), CLASP_ERR_ARG);
    clasp_shardlist_free(&l);
}

Test(shardlist, empty_list_is_an_error) {
    clasp_shardlist l = {0};
    clasp_shard_order o;
    cr_assert_eq(clasp_shard_order_init(&o, &l, 1, 0, 0, 1, true, true), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "empty shard list"));
}

/* CLASP_NO_PIPE forbids pipe: shards: the spec is refused before anything runs, and the tar
 * reader refuses one too (a shard list built another way). */
Test(shardlist, no_pipe_refuses_pipe_shards) {
    clasp_shardlist l;
    cr_assert_eq(clasp_shardlist_expand("a.tar::pipe:touch /tmp/clasp-no-pipe-ran", &l), CLASP_OK);
    clasp_shardlist_free(&l);
    setenv("CLASP_NO_PIPE", "1", 1);
    cr_assert_not(clasp_shard_pipes_allowed());
    cr_assert_eq(clasp_shardlist_expand("a.tar::pipe:touch /tmp/clasp-no-pipe-ran", &l),
                 CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "CLASP_NO_PIPE"), "%s", clasp_last_error());
    clasp_shardlist_free(&l);
    cr_assert_eq(clasp_shardlist_expand("a-{0..3}.tar", &l), CLASP_OK, "plain files still work");
    clasp_shardlist_free(&l);
    unlink("/tmp/clasp-no-pipe-ran");
    clasp_tar_reader *r = NULL;
    cr_assert_eq(clasp_tar_open("pipe:touch /tmp/clasp-no-pipe-ran", NULL, 1 << 20, &r),
                 CLASP_ERR_ARG);
    cr_assert_null(r);
    cr_assert(access("/tmp/clasp-no-pipe-ran", F_OK) != 0, "the command ran");
    setenv("CLASP_NO_PIPE", "0", 1);
    cr_assert(clasp_shard_pipes_allowed());
}
