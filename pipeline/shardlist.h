/* shardlist.h: shard specs and per-epoch shard order.
 *
 * A spec is one or more parts joined by "::". Each part is brace-expanded by clasp (not the
 * shell): ranges with zero padding "train-{000000..000099}.tar" (padding kept when either
 * end has a leading zero), lists "{a,b,c}", nested and repeated braces; a brace group that
 * is neither (e.g. "{x}") stays literal. A shard name is then a plain path, "-" (stdin) or
 * "pipe:COMMAND" (the tar is read from the command's stdout).
 *
 * Epoch order (clasp_shard_order_*): with exact epochs, the whole list is shuffled from
 * (seed, CLASP_RNG_SHUFFLE, epoch) and rank r of W takes positions r, r+W, r+2W, ...; with
 * resampling, position p of rank r draws a shard uniformly with replacement from
 * (seed, CLASP_RNG_RESAMPLE, epoch, rank, p), an endless stream. Both are pure functions,
 * which is what makes exact resume cheap. */
#ifndef CLASP_PIPELINE_SHARDLIST_H
#define CLASP_PIPELINE_SHARDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Upper bound on the number of names a spec may expand to: two million (a million-shard corpus
 * fits twice). It guards "{0..999999999}" and products of ranges; 10 million took over 10 s and
 * gigabytes under ASan before being refused (found by tests/fuzz/fuzz_shardspec.c). */
#define CLASP_SHARDLIST_MAX 2000000u

typedef struct clasp_shardlist {
    char **names; /* (n) NUL-terminated, owned */
    size_t n;
} clasp_shardlist;

/* Expands `spec` into `out` (zeroed first; free with clasp_shardlist_free even on error).
 * Returns CLASP_ERR_ARG for an empty spec or empty part ("a::"), an unbalanced brace or a
 * spec that expands to nothing, CLASP_ERR_OVERFLOW above CLASP_SHARDLIST_MAX names,
 * CLASP_ERR_NOMEM. */
clasp_status clasp_shardlist_expand(const char *spec, clasp_shardlist *out);
/* The same with another cap (CLASP_ERR_OVERFLOW above max_names). The fuzz target uses a small
 * one: at two million names one input takes a second and ASan's allocator keeps the memory. */
clasp_status clasp_shardlist_expand_max(const char *spec, size_t max_names, clasp_shardlist *out);
void clasp_shardlist_free(clasp_shardlist *l);

/* Whether "pipe:CMD" shards may run CMD (through /bin/sh, as the user running clasp): yes unless
 * the environment sets CLASP_NO_PIPE to a non-empty value other than "0". With pipes
 * forbidden, a spec naming one is refused by clasp_shardlist_expand (and by the tar reader),
 * so untrusted specs cannot run commands (docs/security.md). */
bool clasp_shard_pipes_allowed(void);

/* True for "pipe:..." names, "-" and paths; classify a name. */
bool clasp_shard_is_pipe(const char *name);
bool clasp_shard_is_stdin(const char *name);

/* One rank's shard order for one epoch. */
typedef struct clasp_shard_order {
    const clasp_shardlist *list; /* borrowed */
    uint64_t seed, epoch;
    int rank, world;
    bool shuffle;  /* false: list order (eval) */
    bool resample; /* true: endless draws with replacement */
    size_t *idx;   /* (n) exact epochs: list indices for this rank; NULL when resampling */
    size_t n;      /* exact epochs: number of shards of this rank; resampling: list->n */
} clasp_shard_order;

/* Builds the order. Errors: CLASP_ERR_ARG for an empty list, rank outside [0, world), and,
 * with exact epochs, when the list has fewer shards than ranks (some rank would get no
 * shard: the message says to add shards or use --samples-per-epoch). */
clasp_status clasp_shard_order_init(clasp_shard_order *o, const clasp_shardlist *list,
                                    uint64_t seed, uint64_t epoch, int rank, int world,
                                    bool shuffle, bool resample);
void clasp_shard_order_free(clasp_shard_order *o);
/* The name at position p of this rank's epoch; NULL past the end (exact epochs only). */
const char *clasp_shard_order_get(const clasp_shard_order *o, uint64_t p);

#endif
