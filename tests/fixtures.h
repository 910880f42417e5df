/* fixtures.h: the helpers every test suite shares, one place each: tensor comparison, paths
 * (reference files, scratch folders, the clasp binary), files (read, write, compare), images
 * (PNG of given pixels, PGM/PPM patterns), audio (WAV of given samples, in a file or in
 * memory), tar shards (write members, read them back), manifests, `clasp` runs with their
 * output and run folders (metrics.jsonl).
 *
 * No Criterion here: every helper returns a status (false / NULL / negative on failure, with
 * the reason on stderr) and the test asserts it, so bench programs can link this file too.
 * Memory a helper returns is the caller's: free() it, or the named _free for lists. */
#ifndef CLASP_TESTS_FIXTURES_H
#define CLASP_TESTS_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <archive.h>       /* ARCHIVE_FORMAT_* and ARCHIVE_FILTER_* for fx_write_tar */
#include <archive_entry.h> /* AE_IFDIR, AE_IFLNK */
#include <cjson/cJSON.h>

#include "core/safetensors.h"
#include "datasets/espeak.h"
#include "datasets/manifest.h"

/* ---- tensors ---------------------------------------------------------------------------- */

/* Compares got against want elementwise: |got - want| <= atol + rtol * |want|. On failure
 * prints the tensor name, the first bad index and the max abs/rel differences (llm.c's
 * check_tensor); always prints a one-line summary when CLASP_TEST_VERBOSE is set. */
bool clasp_test_check_tensor(const char *name, const float *got, const float *want, size_t n,
                             double atol, double rtol);
/* Same for double references (finite differences). */
bool clasp_test_check_tensor_f64(const char *name, const double *got, const double *want, size_t n,
                                 double atol, double rtol);
/* max |a[i] - b[i]| over n floats. */
double fx_max_abs_diff(const float *a, const float *b, size_t n);

/* ---- paths and runs --------------------------------------------------------------------- */

/* Absolute path of a file under tests/reference/ in the source tree, written into out[cap]. */
const char *clasp_test_ref_path(const char *rel, char *out, size_t cap);
/* Creates (if needed) and returns a scratch directory unique to this process and `name`,
 * under the build tree: <build>/tests/tmp/<name>-<pid>. */
const char *clasp_test_tmpdir(const char *name, char *out, size_t cap);
/* Opens the reference file tests/reference/REL (printf-style); NULL with clasp_last_error(). */
clasp_safetensors *fx_ref_open(const char *rel_fmt, ...) __attribute__((format(printf, 1, 2)));
/* A scratch folder and paths in it: clasp_test_tmpdir(name) into dir, then, for each pair
 * (char out[FX_PATH], const char *leaf) that follows up to a NULL, "dir/leaf" into out.
 * dir and every out hold at least FX_PATH bytes. Returns dir. */
#define FX_PATH 512
const char *fx_scratch(const char *name, char *dir, ...);
/* Path of the built clasp executable (env CLASP_BIN, set by ctest). */
const char *clasp_test_bin(void);
/* Runs cmd with /bin/sh; returns its exit status, or -1 when it did not exit normally. */
int fx_system(const char *cmd);
/* Runs `<clasp> ARGS` (printf-style, through /bin/sh: ARGS may redirect, e.g. "2>&1");
 * returns the exit status (-1 when it did not exit) and, when out is not NULL, its standard
 * output as a malloc'd string. */
int fx_clasp(char **out, const char *args_fmt, ...) __attribute__((format(printf, 2, 3)));
/* The python3 the tests use for tools/ and tests/reference/ scripts. */
#define FX_PYTHON "/usr/bin/python3"
/* tests/reference/read_shards.py DIR ARGS: its exit status, or FX_NO_PYTHON without python3. */
#define FX_NO_PYTHON (-2)
int fx_read_shards_py(const char *dir, const char *args);

/* ---- files ------------------------------------------------------------------------------ */

/* Reads a whole file into a malloc'd, NUL-terminated buffer of *n bytes (n may be NULL);
 * NULL when it cannot be read. */
uint8_t *fx_read(const char *path, size_t *n);
/* fx_read as text; an unreadable file gives "" (still malloc'd). */
char *fx_read_text(const char *path);
/* Writes the first n bytes of data to path (or to dir/name with fx_put). */
bool fx_write(const char *path, const void *data, size_t n);
bool fx_write_str(const char *path, const char *text);
bool fx_put(const char *dir, const char *name, const void *data, size_t n);
/* Whether two files hold the same bytes (false when either cannot be read). */
bool fx_same_file(const char *a, const char *b);

/* ---- images ----------------------------------------------------------------------------- */

/* A binary PGM (P5, channels 1) or PPM (P6, channels 3) of w x h with a pattern from `seed`.
 * Returns a malloc'd buffer of *n bytes. */
uint8_t *fx_pnm(int w, int h, int channels, unsigned seed, size_t *n);
/* PNG bytes of the given w x h x channels pixels (malloc'd, *n bytes); NULL on failure. */
uint8_t *fx_png(const uint8_t *pixels, int w, int h, int channels, size_t *n);
/* Writes pixels as a PNG file. */
bool fx_write_png(const char *path, const uint8_t *pixels, int w, int h, int channels);
/* w x h x channels bytes from the counter RNG (clasp_rng seeded with `seed`), malloc'd. */
uint8_t *fx_random_pixels(int w, int h, int channels, uint64_t seed);

/* ---- audio ------------------------------------------------------------------------------ */

/* Writes `frames` frames of interleaved float samples x (channels per frame) as a sound file
 * of libsndfile `format` (e.g. SF_FORMAT_WAV | SF_FORMAT_PCM_16) at `rate` Hz. */
bool fx_write_audio(const char *path, int format, int rate, int channels, const float *x,
                    int64_t frames);
/* A mono 16-bit WAV at `rate` of `frames` frames that repeats pattern[0..period). */
bool fx_write_wav16(const char *path, int rate, const short *pattern, size_t period,
                    int64_t frames);
/* The bytes fx_write_audio would write (malloc'd, *n of them); NULL on failure. */
uint8_t *fx_encode_audio(int format, int rate, int channels, const float *x, int64_t frames,
                         size_t *n);

/* ---- tar shards ------------------------------------------------------------------------- */

typedef struct fx_member {
    const char *name;
    const void *data; /* NULL with n > 0: n bytes of pattern */
    size_t n;
    int type; /* 0 = regular file, else AE_IFDIR / AE_IFLNK */
} fx_member;

/* Writes members to path with format (ARCHIVE_FORMAT_TAR_*) and filter (ARCHIVE_FILTER_*). */
bool fx_write_tar(const char *path, int format, int filter, const fx_member *m, size_t n);

/* One member read back from a tar: its name, its bytes (NUL-terminated) and its header. */
typedef struct fx_entry {
    char *name;
    char *data;
    size_t n;
    int64_t mtime;
    int64_t uid, gid;
    unsigned perm, filetype;
    const char *prefix; /* fx_read_shards' prefix argument (not copied) */
    int shard;          /* index of the shard it came from */
} fx_entry;

/* Appends every member of the tar at path, in order, to the n entries of *list (libarchive
 * warnings, such as a UTF-8 name the locale cannot show, are accepted). Returns the new
 * count, -1 when the file cannot be read. */
long fx_read_tar(const char *path, fx_entry **list, long n);
/* Appends every member of DIR/PREFIX-000000.tar, -000001.tar, ... up to the first missing
 * shard. Returns the new count, -1 when a shard cannot be read. */
long fx_read_shards(const char *dir, const char *prefix, fx_entry **list, long n);
void fx_entries_free(fx_entry *e, long n);
/* The first entry named `name`, or NULL. */
const fx_entry *fx_find_entry(const fx_entry *e, long n, const char *name);

/* ---- models ----------------------------------------------------------------------------- */

typedef struct clasp_tokenizer clasp_tokenizer;
/* Builds the model of a config file with random weights (clasp_model_init_weights(seed)) and
 * exports it to dir with the config's preprocessing (its tokenizer); tok, when not NULL, must
 * have the vocabulary size of the config's tokenizer. false with clasp_last_error() set. */
bool fx_export_model(const char *config_path, const clasp_tokenizer *tok, const char *dir,
                     uint64_t seed);
/* Builds the model of a config file (clasp_model_init_weights(seed)) and writes a checkpoint of
 * its parameters alone (no optimiser state) at `step` into the run folder `run` (created), with
 * the config (towers and preprocessing) as the trainer writes it. The model goes to *model when
 * not NULL (the caller frees it). false with clasp_last_error() set. */
typedef struct clasp_model clasp_model;
bool fx_checkpoint_model(const char *config_path, uint64_t seed, int64_t step, const char *run,
                         clasp_model *model);

/* espeak builder options that speak each transcript once (voice en-us, 170 words per minute,
 * pitch 40, no variant draw) into out_dir, from `from` ("asterisk", "emoji", or a file), with
 * the given validation share: the set-up of the split-agreement tests. */
clasp_espeak_options fx_espeak_once(const char *from, const char *out_dir, int val_percent);

/* ---- manifests and run folders ---------------------------------------------------------- */

/* After a dataset builder returned st into m: frees m; false (the error printed) unless st is
 * CLASP_OK; with `manifest`, also loads DIR/manifest.json into it (false when unreadable). */
bool fx_built(clasp_status st, clasp_manifest *m, const char *dir, cJSON **manifest);
/* DIR/manifest.json, parsed (cJSON_Delete it); NULL when it cannot be read. */
cJSON *fx_manifest_load(const char *dir);
/* "samples" of a manifest (or of its summary): of the split named, or the total with NULL;
 * -1 when absent. */
double fx_manifest_samples(const cJSON *manifest, const char *split);
/* Whether skipped.by_reason of a shard manifest holds the counts that follow as (const char
 * *reason, int count) pairs up to a NULL (a reason absent counts 0); each mismatch is printed. */
bool fx_manifest_reasons(const cJSON *manifest, ...);
/* Compares a rebuild: every shard DIR_B/manifest.json's splits name and manifest.json itself
 * must be byte-identical in dir_a and dir_b. Returns the number of shards compared, or -1
 * (the differing file printed). */
int fx_same_build(const char *dir_a, const char *dir_b);
/* The values of `field` on the lines of RUN/metrics.jsonl whose kind is `kind`, as printed,
 * each followed by '\n' (malloc'd); NULL when the file cannot be read. */
char *fx_metrics_values(const char *run, const char *kind, const char *field);
/* The same values parsed as numbers into v[0..cap); returns how many (-1: no metrics.jsonl). */
int fx_metrics_numbers(const char *run, const char *kind, const char *field, double *v, int cap);
/* Builds the Fashion-MNIST test shards (`clasp shards build fmnist -o DIR --limit 640
 * --maxcount 128`, 5 shards train-000000..000004.tar); returns its exit status. */
int fx_fmnist_shards(const char *dir);
/* Number of '\n' in s. */
int fx_count_lines(const char *s);
/* x (n, dim) = seeded clustered vectors, L2-normalised: n_clusters random unit centres (drawn
 * from `seed`), each row a centre (row % n_clusters) plus Gaussian noise of standard deviation
 * `spread` per component (drawn from noise_seed: data and queries share seed, not noise_seed).
 * The test and bench data of index/. */
void fx_clustered(float *x, int64_t n, int dim, int n_clusters, float spread, uint64_t seed,
                  uint64_t noise_seed);

#endif
