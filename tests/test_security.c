/* test_security.c: the trust boundaries of docs/security.md that no other suite owns: an export
 * names only its own files. (Pipes: test_shardlist.c; one writer per run folder: test_train.c;
 * hostile inputs: the fuzz targets and test_fuzz_regressions.c.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "export/export.h"
#include "fixtures.h"
#include "modalities/tokenizer.h"

/* An export of the emoji config (a BPE tokenizer named by a relative path) opens; the same
 * export with its tokenizer path made absolute or climbing out with ".." is refused, naming
 * the field. */
Test(security, export_names_only_its_own_files) {
    char base[4096], dir[4200], cfgp[4400];
    fx_scratch("security_export", base, dir, "export", NULL);
    char cfg_src[4096];
    snprintf(cfg_src, sizeof cfg_src, "%s/configs/emoji-small.json", CLASP_SOURCE_DIR);
    char tok_src[4096];
    snprintf(tok_src, sizeof tok_src, "%s/configs/emoji-bpe.json", CLASP_SOURCE_DIR);
    clasp_tokenizer *tok = NULL;
    cr_assert_eq(clasp_tokenizer_load(tok_src, &tok), CLASP_OK, "%s", clasp_last_error());
    cr_assert(fx_export_model(cfg_src, tok, dir, 1), "%s", clasp_last_error());
    clasp_tokenizer_free(tok);
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(dir, 1, 8, &em), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    const char *bad[] = {"/etc/passwd", "../tokenizer.json", "sub/../../x.json", ".."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *cfg = NULL;
        cr_assert_eq(clasp_json_load(cfgp, &cfg), CLASP_OK);
        cJSON *tk = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "text"),
                                                     "tokenizer");
        cr_assert_not_null(tk);
        cJSON_DeleteItemFromObjectCaseSensitive(tk, "path");
        cJSON_AddStringToObject(tk, "path", bad[i]);
        cr_assert_eq(clasp_json_save(cfgp, cfg), CLASP_OK);
        cJSON_Delete(cfg);
        cr_assert_eq(clasp_embedder_open(dir, 1, 8, &em), CLASP_ERR_CONFIG, "%s", bad[i]);
        cr_assert(strstr(clasp_last_error(), "text.tokenizer.path") &&
                      strstr(clasp_last_error(), "outside the export"),
                  "%s", clasp_last_error());
    }
}
