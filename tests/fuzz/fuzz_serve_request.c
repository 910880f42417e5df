/* fuzz_serve_request.c: libFuzzer target: arbitrary bytes as the JSON body of `clasp serve`'s
 * POST /embed ({"texts": [...]}) and POST /search ({"text": ..} | {"vector": [..]}, "k"), and
 * as its ?k= argument, Content-Type and Authorization header (serve/request.h). The first byte
 * picks the vector dimension the search parser expects (1..64). */
#include "fuzz.h"
#include "serve/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        fuzz_quiet();
        init = 1;
    }
    if (size < 1) return 0;
    int dim = 1 + data[0] % 64;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char **texts;
    int n;
    if (clasp_serve_parse_texts(body, len, &texts, &n) == CLASP_OK) {
        volatile size_t sink = 0;
        for (int i = 0; i < n; i++) sink += strlen(texts[i]);
        (void)sink;
        free(texts);
    }
    clasp_serve_query q;
    if (clasp_serve_parse_search(body, len, dim, 10, &q) == CLASP_OK) {
        volatile float sink = 0;
        for (int i = 0; q.vector && i < dim; i++) sink += q.vector[i];
        (void)sink;
        clasp_serve_query_free(&q);
    }
    char *s = fuzz_cstr((const uint8_t *)body, len);
    if (!s) return 0;
    int k;
    (void)clasp_serve_parse_k(s, 10, &k);
    (void)clasp_serve_body_kind(s);
    (void)clasp_serve_bearer_ok(s, "token");
    free(s);
    return 0;
}
