/* rng.c: Philox-4x32-10.
 * ref: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC 2011);
 * constants as in Random123 philox.h. */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void clasp_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void clasp_rng_init(clasp_rng *r, uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b) {
    /* The key mixes seed and purpose; the counter words 1..3 carry a mix of a and b, and
     * word 0 counts blocks, so a stream has 2^32 blocks (2^34 numbers) before it repeats. */
    uint64_t k =
        clasp_splitmix64(seed ^ clasp_splitmix64((uint64_t)purpose * 0x9E3779B97F4A7C15ull));
    uint64_t am = clasp_splitmix64(a ^ 0xA5A5A5A5DEADBEEFull);
    r->key[0] = (uint32_t)k;
    r->key[1] = (uint32_t)(k >> 32);
    r->ctr[0] = 0; /* block counter, low */
    r->ctr[1] = (uint32_t)am;
    r->ctr[2] = (uint32_t)b;
    r->ctr[3] = (uint32_t)(b >> 32) ^ (uint32_t)(am >> 32);
    r->pos = 4;
}

static void refill_(clasp_rng *r) {
    clasp_philox4x32(r->buf, r->ctr, r->key);
    r->ctr[0]++;
    r->pos = 0;
}

uint32_t clasp_rng_u32(clasp_rng *r) {
    if (r->pos >= 4) refill_(r);
    return r->buf[r->pos++];
}

uint64_t clasp_rng_u64(clasp_rng *r) {
    uint64_t hi = clasp_rng_u32(r);
    return (hi << 32) | clasp_rng_u32(r);
}

float clasp_rng_uniform(clasp_rng *r) {
    return (float)(clasp_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

double clasp_rng_uniform_f64(clasp_rng *r) {
    return (double)(clasp_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t clasp_rng_below(clasp_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    uint64_t x;
    do x = clasp_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double clasp_rng_normal(clasp_rng *r) {
    double u1 = clasp_rng_uniform_f64(r);
    double u2 = clasp_rng_uniform_f64(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
