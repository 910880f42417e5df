/* rng.h: counter-based random numbers (Philox-4x32-10, Salmon et al. 2011) and splitmix64.
 *
 * A stream is a pure function of its key: (seed, purpose, a, b), e.g. (run seed,
 * CLASP_RNG_AUGMENT, epoch, hash of the sample key). The same key gives the same numbers on
 * any thread, in any order of creation; different keys give independent streams. Nothing is
 * global, so loader threads never share state.
 *
 *     clasp_rng r;
 *     clasp_rng_init(&r, seed, CLASP_RNG_AUGMENT, epoch, clasp_hash_str(key, 0));
 *     float u = clasp_rng_uniform(&r);     // [0, 1)
 */
#ifndef CLASP_CORE_RNG_H
#define CLASP_CORE_RNG_H

#include <stdint.h>

/* Purposes: the second part of every key, so streams for different jobs never collide. */
enum clasp_rng_purpose {
    CLASP_RNG_INIT = 1,     /* parameter init: a = hash of parameter name */
    CLASP_RNG_SHUFFLE = 2,  /* shard order / shuffle buffer: a = epoch */
    CLASP_RNG_AUGMENT = 3,  /* per-sample augmentation: a = epoch, b = hash of key */
    CLASP_RNG_DROPOUT = 4,  /* dropout masks: a = step, b = layer */
    CLASP_RNG_CAPTION = 5,  /* caption choice: a = epoch, b = hash of key */
    CLASP_RNG_RESAMPLE = 6, /* sampling with replacement: a = epoch */
    CLASP_RNG_DATASET = 7,  /* dataset building: a = index */
    CLASP_RNG_DRIFT = 8,    /* drift metrics' sampled pairs: a = stream, b = rows */
    CLASP_RNG_TEST = 100    /* tests */
};

typedef struct clasp_rng {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0..1] = block counter (64-bit), ctr[2..3] = b */
    uint32_t buf[4];
    int pos; /* next unused word in buf; 4 = empty */
} clasp_rng;

/* One Philox-4x32-10 block: out = philox(ctr, key). */
void clasp_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

void clasp_rng_init(clasp_rng *r, uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b);
uint32_t clasp_rng_u32(clasp_rng *r);
uint64_t clasp_rng_u64(clasp_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float clasp_rng_uniform(clasp_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double clasp_rng_uniform_f64(clasp_rng *r);
/* Uniform integer in [0, n), unbiased (rejection); n > 0. */
uint64_t clasp_rng_below(clasp_rng *r, uint64_t n);
/* Standard normal (Box-Muller on two doubles). */
double clasp_rng_normal(clasp_rng *r);

/* The standard one-shot splitmix64 mix (matches ../shared/bench/ref_clip_fmnist.py). */
static inline uint64_t clasp_splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
