/* test_checkpoint.c: atomic checkpoint folders, latest, retention, corruption detection. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "train/checkpoint.h"
#include "fixtures.h"

static float g_w[6] = {1, 2, 3, 4, 5, 6}, g_s[1] = {2.5f}, g_m[6], g_v[6];

static void tensors_(clasp_named_tensor *model, clasp_named_tensor *optim) {
    model[0] = (clasp_named_tensor){"image.fc1.weight", 2, {2, 3}, g_w};
    model[1] = (clasp_named_tensor){"logit_scale", 0, {0}, g_s};
    optim[0] = (clasp_named_tensor){"m.image.fc1.weight", 2, {2, 3}, g_m};
    optim[1] = (clasp_named_tensor){"v.image.fc1.weight", 2, {2, 3}, g_v};
}

static int exists_(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

Test(checkpoint, save_resolve_open_roundtrip_and_keep) {
    char run[4096], dir[4200], path[4400];
    clasp_test_tmpdir("ckpt_rt", run, sizeof run);
    clasp_named_tensor model[2], optim[2];
    tensors_(model, optim);
    for (int i = 0; i < 6; i++) g_m[i] = 0.1f * (float)i, g_v[i] = 0.01f * (float)i;
    cJSON *state = cJSON_CreateObject();
    cJSON_AddNumberToObject(state, "epoch", 1);
    for (int step = 10; step <= 40; step += 10) {
        g_w[0] = (float)step;
        cr_assert_eq(clasp_ckpt_save(run, step, model, 2, optim, 2, state, 2, dir, sizeof dir),
                     CLASP_OK, "%s", clasp_last_error());
    }
    cJSON_Delete(state);
    snprintf(path, sizeof path, "%s/checkpoints/step-00000010", run);
    cr_assert(!exists_(path), "keep=2 must prune the oldest");
    snprintf(path, sizeof path, "%s/checkpoints/step-00000030", run);
    cr_assert(exists_(path));
    char resolved[4200];
    cr_assert_eq(clasp_ckpt_resolve(run, resolved, sizeof resolved), CLASP_OK);
    cr_assert_str_eq(resolved, dir);
    clasp_ckpt c;
    cr_assert_eq(clasp_ckpt_open(resolved, &c), CLASP_OK, "%s", clasp_last_error());
    int64_t step;
    cr_assert_eq(clasp_json_int(c.state, "step", "state.json", "", 0, 1000, &step), CLASP_OK);
    cr_assert_eq(step, 40);
    float w[6] = {0}, s[1] = {0}, m[6] = {0}, v[6] = {0};
    clasp_named_tensor lm[2] = {{"image.fc1.weight", 2, {2, 3}, w}, {"logit_scale", 0, {0}, s}};
    clasp_named_tensor lo[2] = {{"m.image.fc1.weight", 2, {2, 3}, m},
                                {"v.image.fc1.weight", 2, {2, 3}, v}};
    cr_assert_eq(clasp_ckpt_load_tensors(&c, 0, lm, 2), CLASP_OK);
    cr_assert_eq(clasp_ckpt_load_tensors(&c, 1, lo, 2), CLASP_OK);
    cr_assert_eq(w[0], 40.0f);
    cr_assert_eq(memcmp(w + 1, g_w + 1, 5 * sizeof(float)), 0);
    cr_assert_eq(s[0], 2.5f);
    cr_assert_eq(memcmp(m, g_m, sizeof m), 0);
    cr_assert_eq(memcmp(v, g_v, sizeof v), 0);
    /* a missing tensor and a wrong shape name the tensor */
    clasp_named_tensor missing[1] = {{"text.proj.weight", 2, {2, 3}, w}};
    cr_assert_eq(clasp_ckpt_load_tensors(&c, 0, missing, 1), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "'text.proj.weight' is missing"), "%s",
              clasp_last_error());
    clasp_named_tensor wrong[1] = {{"image.fc1.weight", 2, {3, 2}, w}};
    cr_assert_eq(clasp_ckpt_load_tensors(&c, 0, wrong, 1), CLASP_ERR_FORMAT);
    clasp_ckpt_close(&c);
}

Test(checkpoint, corrupt_file_is_detected_and_named) {
    char run[4096], dir[4200], path[4400];
    clasp_test_tmpdir("ckpt_corrupt", run, sizeof run);
    clasp_named_tensor model[2], optim[2];
    tensors_(model, optim);
    cr_assert_eq(clasp_ckpt_save(run, 5, model, 2, optim, 2, NULL, 0, dir, sizeof dir), CLASP_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "r+b");
    fseek(f, -3, SEEK_END);
    fputc('X', f);
    fclose(f);
    clasp_ckpt c;
    cr_assert_eq(clasp_ckpt_open(dir, &c), CLASP_ERR_FORMAT);
    cr_assert(strstr(clasp_last_error(), "model.safetensors: checksum mismatch"), "%s",
              clasp_last_error());
    /* a deleted file */
    snprintf(path, sizeof path, "%s/optim.safetensors", dir);
    unlink(path);
    cr_assert_neq(clasp_ckpt_open(dir, &c), CLASP_OK);
    /* nothing there at all */
    char empty[4096];
    clasp_test_tmpdir("ckpt_none", empty, sizeof empty);
    cr_assert_eq(clasp_ckpt_resolve(empty, dir, sizeof dir), CLASP_ERR_NOT_FOUND);
}

Test(checkpoint, leftover_temporary_folder_is_ignored) {
    char run[4096], dir[4200], path[4400];
    clasp_test_tmpdir("ckpt_tmp", run, sizeof run);
    clasp_named_tensor model[2], optim[2];
    tensors_(model, optim);
    cr_assert_eq(clasp_ckpt_save(run, 1, model, 2, optim, 2, NULL, 0, dir, sizeof dir), CLASP_OK);
    /* a crash while writing step 2 leaves step-00000002.tmp behind */
    snprintf(path, sizeof path, "%s/checkpoints/step-00000002.tmp", run);
    mkdir(path, 0755);
    char resolved[4200];
    cr_assert_eq(clasp_ckpt_resolve(run, resolved, sizeof resolved), CLASP_OK);
    cr_assert_str_eq(resolved, dir);
    cr_assert_eq(clasp_ckpt_save(run, 2, model, 2, optim, 2, NULL, 0, dir, sizeof dir), CLASP_OK);
    cr_assert(!exists_(path), "the stale temporary folder is replaced");
}
