/* common.c: output helpers shared by the `clasp` commands (see common.h). */
#include "cli/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void clasp_cli_print_json(cJSON *j, bool pretty) {
    char *text = j ? (pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j)) : NULL;
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(j);
}

void clasp_cli_add_numbers(cJSON *o, const char *const *names, const double *values, size_t n) {
    for (size_t i = 0; i < n; i++) cJSON_AddNumberToObject(o, names[i], values[i]);
}

void clasp_cli_sidecar_path(const char *npy, char *out, size_t cap) {
    size_t len = strlen(npy);
    if (len > 4 && !strcmp(npy + len - 4, ".npy"))
        snprintf(out, cap, "%.*s.json", (int)(len - 4), npy);
    else
        snprintf(out, cap, "%s.json", npy);
}

int clasp_cli_append_metrics(const char *who, const char *run_dir, const char *line) {
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(mp, "a");
    bool ok = f && fprintf(f, "%s\n", line) >= 0;
    if (f && fclose(f) != 0) ok = false;
    fprintf(stderr, ok ? "clasp %s: appended to %s\n" : "clasp %s: cannot append to %s\n", who, mp);
    return ok ? 0 : 1;
}

clasp_status clasp_cli_open_embedder(const char *path, int threads, int batch, int precision,
                                     bool lazy, clasp_embedder *em) {
    CLASP_TRY(lazy ? clasp_embedder_open_lazy(path, threads, batch, em)
                   : clasp_embedder_open(path, threads, batch, em));
    clasp_status s = clasp_embedder_set_precision(em, (clasp_precision)precision);
    if (s != CLASP_OK) clasp_embedder_close(em);
    return s;
}
