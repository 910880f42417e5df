/* testutil.h: the former name of tests/fixtures.h, kept for suites written against it. */
#ifndef CLASP_TESTS_TESTUTIL_H
#define CLASP_TESTS_TESTUTIL_H
#include "fixtures.h"
#endif
