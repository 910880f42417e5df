/* test_runstate.c: the run state <-> checkpoint module (train/runstate.h): the tensor list,
 * registered tensors, save/restore, the model-only reader; --init by name
 * (clasp_model_load_matching). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "core/safetensors.h"
#include "encoders/model.h"
#include "export/export.h"
#include "modalities/tokenizer.h"
#include "train/runstate.h"
#include "testutil.h"

/* fmnist-small with weights from `seed`. */
static void model_(clasp_model *m, cJSON **config_json, uint64_t seed) {
    char cfgp[1100];
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_model_config cfg;
    cr_assert_eq(clasp_model_config_load(cfgp, &cfg), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_init(m, &cfg), CLASP_OK);
    clasp_model_init_weights(m, seed);
    if (config_json) cr_assert_eq(clasp_model_config_to_json(&cfg, config_json), CLASP_OK);
}

Test(runstate, tensor_list_is_params_then_moments_then_registered) {
    clasp_model m;
    model_(&m, NULL, 1);
    clasp_adamw opt;
    cr_assert_eq(clasp_adamw_init(&opt, m.n_floats, clasp_adamw_default_config()), CLASP_OK);
    clasp_runstate rs;
    clasp_runstate_init(&rs, &m, &opt, NULL);
    float queue[12];
    int64_t shape[2] = {3, 4};
    cr_assert_eq(clasp_runstate_register(&rs, CLASP_CKPT_FILE_OPTIM, "loss.queue", 2, shape, queue),
                 CLASP_OK);
    clasp_ckpt_tensors l;
    cr_assert_eq(clasp_runstate_tensors(&rs, &l), CLASP_OK);
    cr_assert_eq(l.n[CLASP_CKPT_FILE_MODEL], m.n_params);
    cr_assert_eq(l.n[CLASP_CKPT_FILE_OPTIM], 2 * m.n_params + 1);
    for (int i = 0; i < m.n_params; i++) {
        char mn[128], vn[128];
        snprintf(mn, sizeof mn, "m.%s", m.info[i].name);
        snprintf(vn, sizeof vn, "v.%s", m.info[i].name);
        cr_assert_str_eq(l.t[0][i].name, m.info[i].name);
        cr_assert_eq(l.t[0][i].data, m.params + m.info[i].offset);
        cr_assert_str_eq(l.t[1][2 * i].name, mn);
        cr_assert_eq(l.t[1][2 * i].data, opt.m + m.info[i].offset);
        cr_assert_str_eq(l.t[1][2 * i + 1].name, vn);
        cr_assert_eq(l.t[1][2 * i + 1].data, opt.v + m.info[i].offset);
    }
    const clasp_named_tensor *q = &l.t[1][2 * m.n_params];
    cr_assert_str_eq(q->name, "loss.queue");
    cr_assert(q->ndim == 2 && q->shape[0] == 3 && q->shape[1] == 4 && q->data == queue);
    clasp_ckpt_tensors_free(&l);
    /* without an optimiser: the parameters alone */
    clasp_runstate_init(&rs, &m, NULL, NULL);
    cr_assert_eq(clasp_runstate_tensors(&rs, &l), CLASP_OK);
    cr_assert(l.n[0] == m.n_params && l.n[1] == 0);
    clasp_ckpt_tensors_free(&l);
    clasp_adamw_free(&opt);
    clasp_model_free(&m);
}

Test(runstate, save_restore_roundtrip_with_registered_tensor) {
    char run[1024], dir[4200];
    clasp_test_tmpdir("runstate_rt", run, sizeof run);
    clasp_model m;
    cJSON *cj;
    model_(&m, &cj, 2);
    clasp_adamw opt;
    cr_assert_eq(clasp_adamw_init(&opt, m.n_floats, clasp_adamw_default_config()), CLASP_OK);
    for (size_t i = 0; i < m.n_floats; i++) {
        opt.m[i] = (float)i * 1e-3f;
        opt.v[i] = (float)i * 2e-3f;
    }
    opt.t = 9;
    float queue[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[1] = {6};
    cJSON *key = cJSON_CreateObject();
    cJSON_AddNumberToObject(key, "batch_size", 64);
    clasp_runstate rs;
    clasp_runstate_init(&rs, &m, &opt, cj);
    rs.resume_key = key;
    rs.step = 4;
    rs.samples = 256;
    rs.skipped_steps = 1;
    cr_assert_eq(clasp_runstate_register(&rs, CLASP_CKPT_FILE_OPTIM, "loss.queue", 1, shape, queue),
                 CLASP_OK);
    cr_assert_eq(clasp_runstate_save(&rs, run, 0, dir, sizeof dir), CLASP_OK, "%s",
                 clasp_last_error());
    float *p0 = malloc(m.n_floats * sizeof(float)), *m0 = malloc(m.n_floats * sizeof(float));
    memcpy(p0, m.params, m.n_floats * sizeof(float));
    memcpy(m0, opt.m, m.n_floats * sizeof(float));
    /* scramble everything, then restore */
    memset(m.params, 0, m.n_floats * sizeof(float));
    memset(opt.m, 0, m.n_floats * sizeof(float));
    memset(queue, 0, sizeof queue);
    rs.step = rs.samples = rs.skipped_steps = 0;
    opt.t = 0;
    cr_assert_eq(clasp_runstate_restore(&rs, dir, "fmnist-small.json"), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert(rs.step == 4 && rs.samples == 256 && rs.skipped_steps == 1 && opt.t == 9);
    cr_assert(!memcmp(p0, m.params, m.n_floats * sizeof(float)));
    cr_assert(!memcmp(m0, opt.m, m.n_floats * sizeof(float)));
    for (int i = 0; i < 6; i++) cr_assert_eq(queue[i], (float)(i + 1));
    /* another resume key is refused naming the field */
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(key, "batch_size"), 32);
    cr_assert_eq(clasp_runstate_restore(&rs, dir, "fmnist-small.json"), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "resume_key.batch_size"), "%s", clasp_last_error());
    /* the model-only reader (export, embedder) */
    clasp_ckpt c;
    clasp_model_config cfg;
    int64_t step = 0;
    cr_assert_eq(clasp_runstate_open(dir, &c, &cfg, &step), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(step, 4);
    memset(m.params, 0, m.n_floats * sizeof(float));
    cr_assert_eq(clasp_runstate_load_model(&c, &m), CLASP_OK, "%s", clasp_last_error());
    cr_assert(!memcmp(p0, m.params, m.n_floats * sizeof(float)));
    clasp_ckpt_close(&c);
    free(p0);
    free(m0);
    cJSON_Delete(key);
    cJSON_Delete(cj);
    clasp_adamw_free(&opt);
    clasp_model_free(&m);
}

Test(runstate, init_by_name_refuses_another_shape) {
    char dir[1024], path[1200];
    clasp_test_tmpdir("runstate_init", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    clasp_model a, b;
    model_(&a, NULL, 6);
    model_(&b, NULL, 7);
    /* a file holding two of the model's tensors, one of them with another shape */
    const clasp_param_info *p0 = &a.info[0], *p1 = &a.info[1];
    clasp_st_writer *w = clasp_st_writer_new();
    cr_assert_eq(clasp_st_writer_add(w, p0->name, CLASP_DTYPE_F32, p0->ndim, p0->shape,
                                     a.params + p0->offset),
                 CLASP_OK);
    cr_assert_eq(clasp_st_writer_add(w, "not.in.the.model", CLASP_DTYPE_F32, p0->ndim, p0->shape,
                                     a.params + p0->offset),
                 CLASP_OK);
    cr_assert_eq(clasp_st_writer_write(w, path), CLASP_OK, "%s", clasp_last_error());
    clasp_st_writer_free(w);
    clasp_safetensors *st;
    cr_assert_eq(clasp_st_open(path, &st), CLASP_OK);
    int loaded = -1, kept = -1;
    cr_assert_eq(clasp_model_load_matching(&b, st, "--init a", &loaded, &kept), CLASP_OK, "%s",
                 clasp_last_error());
    cr_assert(loaded == 1 && kept == b.n_params - 1, "%d %d", loaded, kept);
    cr_assert(!memcmp(b.params + p0->offset, a.params + p0->offset, p0->numel * sizeof(float)));
    cr_assert(memcmp(b.params + p1->offset, a.params + p1->offset, p1->numel * sizeof(float)));
    clasp_st_free(st);
    /* the same name with another shape names the tensor and both shapes */
    int64_t wrong[4] = {p0->shape[0] + 1, 1, 1, 1};
    float *z = calloc((size_t)wrong[0], sizeof(float));
    w = clasp_st_writer_new();
    cr_assert_eq(clasp_st_writer_add(w, p0->name, CLASP_DTYPE_F32, 1, wrong, z), CLASP_OK);
    cr_assert_eq(clasp_st_writer_write(w, path), CLASP_OK);
    clasp_st_writer_free(w);
    cr_assert_eq(clasp_st_open(path, &st), CLASP_OK);
    cr_assert_eq(clasp_model_load_matching(&b, st, "--init a", NULL, NULL), CLASP_ERR_CONFIG);
    char want[256];
    snprintf(want, sizeof want, "--init a: tensor '%s' has shape [%lld]", p0->name,
             (long long)wrong[0]);
    cr_assert(strstr(clasp_last_error(), want), "%s", clasp_last_error());
    clasp_st_free(st);
    free(z);
    /* a file with no tensor of the model */
    w = clasp_st_writer_new();
    cr_assert_eq(clasp_st_writer_add(w, "not.in.the.model", CLASP_DTYPE_F32, p0->ndim, p0->shape,
                                     a.params + p0->offset),
                 CLASP_OK);
    cr_assert_eq(clasp_st_writer_write(w, path), CLASP_OK);
    clasp_st_writer_free(w);
    cr_assert_eq(clasp_st_open(path, &st), CLASP_OK);
    cr_assert_eq(clasp_model_load_matching(&b, st, "--init a", NULL, NULL), CLASP_ERR_CONFIG);
    cr_assert(strstr(clasp_last_error(), "--init a: holds no tensor of this model"), "%s",
              clasp_last_error());
    clasp_st_free(st);
    clasp_model_free(&a);
    clasp_model_free(&b);
}
