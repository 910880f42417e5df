/* testutil.h: helpers shared by the Criterion tests. */
#ifndef CLASP_TESTS_TESTUTIL_H
#define CLASP_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Compares got against want elementwise: |got - want| <= atol + rtol * |want|. On failure
 * prints the tensor name, the first bad index and the max abs/rel differences (llm.c's
 * check_tensor); always prints a one-line summary when CLASP_TEST_VERBOSE is set. */
bool clasp_test_check_tensor(const char *name, const float *got, const float *want, size_t n,
                             double atol, double rtol);
/* Same for double references (finite differences). */
bool clasp_test_check_tensor_f64(const char *name, const double *got, const double *want, size_t n,
                                 double atol, double rtol);

/* Absolute path of a file under tests/reference/ in the source tree (static buffer per call
 * site is NOT used: writes into out[cap]). */
const char *clasp_test_ref_path(const char *rel, char *out, size_t cap);
/* Creates (if needed) and returns a scratch directory unique to this process and `name`,
 * under the build tree: <build>/tests/tmp/<name>-<pid>. */
const char *clasp_test_tmpdir(const char *name, char *out, size_t cap);
/* Path of the built clasp executable (env CLASP_BIN, set by ctest). */
const char *clasp_test_bin(void);

#endif
