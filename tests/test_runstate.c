/* test_runstate.c: the run state <-> checkpoint module (train/runstate.h): the tensor list,
 * registered tensors, save/restore, the model-only reader; format versions of checkpoints, run
 * folders and exports (a newer version is refused naming the file and both versions, a file
 * without the field reads as version 1); --init by name (clasp_model_load_matching). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/json.h"
#include "core/safetensors.h"
#include "encoders/model.h"
#include "export/export.h"
#include "modalities/tokenizer.h"
#include "train/runstate.h"
#include "modalities/preprocess.h"
#include "fixtures.h"

/* fmnist-small with weights from `seed`. */
static void model_(clasp_model *m, cJSON **config_json, uint64_t seed) {
    char cfgp[1100];
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_model_config cfg;
    cr_assert_eq(clasp_model_config_load(cfgp, &cfg), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_model_init(m, &cfg), CLASP_OK);
    clasp_model_init_weights(m, seed);
    if (config_json) {
        /* the config a checkpoint holds: towers and preprocessing, as the trainer writes it */
        cr_assert_eq(clasp_model_config_to_json(&cfg, config_json), CLASP_OK);
        clasp_preprocess pre;
        cr_assert_eq(clasp_preprocess_load(cfgp, &pre), CLASP_OK, "%s", clasp_last_error());
        cr_assert_eq(clasp_preprocess_add_json(&pre, *config_json), CLASP_OK);
        clasp_preprocess_free(&pre);
    }
}

/* Sets (value > 0) or removes (value 0) "format_version" of a JSON file. */
static void set_version_(const char *path, int value) {
    cJSON *j = NULL;
    cr_assert_eq(clasp_json_load(path, &j), CLASP_OK, "%s", clasp_last_error());
    cJSON_DeleteItemFromObjectCaseSensitive(j, "format_version");
    if (value > 0) cJSON_AddNumberToObject(j, "format_version", value);
    cr_assert_eq(clasp_json_save(path, j), CLASP_OK);
    cJSON_Delete(j);
}

/* The "format_version" of a JSON file (-1 when absent). */
static double version_of_(const char *path) {
    cJSON *j = NULL;
    cr_assert_eq(clasp_json_load(path, &j), CLASP_OK, "%s", clasp_last_error());
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "format_version");
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(j);
    return d;
}

/* A run folder (tmpdir `name`) with one checkpoint (dir) of m's parameters alone at step 2. */
static void model_only_run_(const char *name, char *run, size_t run_cap, char *dir, size_t dir_cap,
                            clasp_model *m, cJSON **cj) {
    clasp_test_tmpdir(name, run, run_cap);
    model_(m, cj, 3);
    clasp_runstate rs;
    clasp_runstate_init(&rs, m, NULL, *cj);
    rs.step = 2;
    cr_assert_eq(clasp_runstate_save(&rs, run, 0, dir, dir_cap), CLASP_OK, "%s",
                 clasp_last_error());
}

static void expect_newer_(clasp_status s, const char *file) {
    char want[1400];
    snprintf(want, sizeof want, "%s: format_version 2 is newer than this clasp reads (1)", file);
    cr_assert_eq(s, CLASP_ERR_UNSUPPORTED, "%s", clasp_last_error());
    cr_assert(strstr(clasp_last_error(), want), "got '%s', want '%s'", clasp_last_error(), want);
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

Test(runstate, checkpoint_version_newer_refused_absent_is_1) {
    char run[1024], dir[4200], sp[4400];
    clasp_model m;
    cJSON *cj;
    model_only_run_("runstate_ver", run, sizeof run, dir, sizeof dir, &m, &cj);
    clasp_runstate rs;
    clasp_runstate_init(&rs, &m, NULL, cj);
    snprintf(sp, sizeof sp, "%s/state.json", dir);
    cr_assert_eq(version_of_(sp), CLASP_CKPT_FORMAT_VERSION);
    clasp_ckpt c;
    clasp_model_config cfg;
    int64_t step;
    set_version_(sp, 2);
    expect_newer_(clasp_runstate_open(dir, &c, &cfg, &step), sp);
    expect_newer_(clasp_runstate_restore(&rs, dir, "x.json"), sp);
    clasp_embedder em;
    expect_newer_(clasp_embedder_open(run, 1, 4, &em), sp);
    set_version_(sp, 0); /* checkpoints written before versions: version 1 */
    cr_assert_eq(clasp_runstate_open(dir, &c, &cfg, &step), CLASP_OK, "%s", clasp_last_error());
    clasp_ckpt_close(&c);
    cr_assert_eq(clasp_embedder_open(run, 1, 4, &em), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(em.step, 2);
    clasp_embedder_close(&em);
    cJSON_Delete(cj);
    clasp_model_free(&m);
}

Test(runstate, run_folder_version_newer_refused_absent_is_1) {
    char run[1024], dir[4200], op[1200];
    clasp_model m;
    cJSON *cj, *o;
    model_only_run_("runstate_runver", run, sizeof run, dir, sizeof dir, &m, &cj);
    cr_assert_eq(clasp_run_check_version(run), CLASP_OK); /* no options.json: version 1 */
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "lr", 0.001);
    cr_assert_eq(clasp_run_write_options(run, o), CLASP_OK, "%s", clasp_last_error());
    cJSON_Delete(o);
    snprintf(op, sizeof op, "%s/options.json", run);
    cr_assert_eq(version_of_(op), CLASP_RUN_FORMAT_VERSION);
    cr_assert_eq(clasp_json_load(op, &o), CLASP_OK);
    cr_assert(cJSON_GetObjectItemCaseSensitive(o, "lr"));
    cJSON_Delete(o);
    cr_assert_eq(clasp_run_check_version(run), CLASP_OK);
    set_version_(op, 2);
    expect_newer_(clasp_run_check_version(run), op);
    clasp_embedder em;
    expect_newer_(clasp_embedder_open(run, 1, 4, &em), op);
    set_version_(op, 0);
    cr_assert_eq(clasp_run_check_version(run), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_embedder_open(run, 1, 4, &em), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
    cJSON_Delete(cj);
    clasp_model_free(&m);
}

Test(runstate, export_version_newer_refused_absent_is_1) {
    char dir[1024], cp[1200];
    clasp_test_tmpdir("runstate_export", dir, sizeof dir);
    strcat(dir, "/exp");
    clasp_model m;
    model_(&m, NULL, 5);
    char cfgp[1100];
    snprintf(cfgp, sizeof cfgp, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    clasp_preprocess pre;
    cr_assert_eq(clasp_preprocess_load(cfgp, &pre), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(clasp_export_model(&m, &pre, dir), CLASP_OK, "%s", clasp_last_error());
    snprintf(cp, sizeof cp, "%s/config.json", dir);
    cr_assert_eq(version_of_(cp), CLASP_EXPORT_FORMAT_VERSION);
    clasp_embedder em;
    cr_assert_eq(clasp_embedder_open(dir, 1, 4, &em), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
    set_version_(cp, 2);
    expect_newer_(clasp_embedder_open(dir, 1, 4, &em), cp);
    /* tools/clasp_torch.py refuses it too, naming the file and both versions */
    char cmd[4096], log[1200];
    snprintf(log, sizeof log, "%s/../torch.log", dir);
    snprintf(cmd, sizeof cmd,
             FX_PYTHON " -c 'import sys; sys.path.insert(0, \"%s/tools\"); import clasp_torch; "
                       "clasp_torch.load_export(\"%s\")' 2>%s",
             CLASP_SOURCE_DIR, dir, log);
    cr_assert_neq(fx_system(cmd), 0, "clasp_torch.py loaded a format_version 2 export");
    char *err = fx_read_text(log);
    cr_assert(err &&
                  strstr(err, "config.json: format_version 2 is newer than this script reads (1)"),
              "clasp_torch.py said: %s", err ? err : "(nothing)");
    free(err);
    set_version_(cp, 0); /* exports written before versions: version 1 */
    cr_assert_eq(clasp_embedder_open(dir, 1, 4, &em), CLASP_OK, "%s", clasp_last_error());
    clasp_embedder_close(&em);
    clasp_preprocess_free(&pre);
    clasp_model_free(&m);
}

/* clasp train --resume refuses a run folder or a checkpoint of a newer version; a checkpoint
 * without the field resumes. */
Test(runstate, train_resume_checks_versions) {
    char tmp[1024], data[1100], run[1100], cmd[8192], sp[4400], op[1200];
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    clasp_test_tmpdir("runstate_train", tmp, sizeof tmp);
    snprintf(data, sizeof data, "%s/fmnist", tmp);
    snprintf(run, sizeof run, "%s/run", tmp);
    snprintf(cmd, sizeof cmd,
             "%s shards build fmnist -o %s --limit 256 --maxcount 128 >/dev/null 2>&1",
             clasp_test_bin(), data);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    const char *fmt = "%s train --model %s/configs/fmnist-small.json --train "
                      "'%s/train-{000000..000001}.tar' --out %s --batch-size 64 --steps 3 "
                      "--no-progress --threads 1 %s >%s/log 2>&1";
    snprintf(cmd, sizeof cmd, fmt, clasp_test_bin(), CLASP_SOURCE_DIR, data, run, "--stop-after 1",
             tmp);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0, "--stop-after exits non-zero");
    snprintf(op, sizeof op, "%s/options.json", run);
    snprintf(sp, sizeof sp, "%s/checkpoints/step-00000001/state.json", run);
    snprintf(cmd, sizeof cmd, fmt, clasp_test_bin(), CLASP_SOURCE_DIR, data, run, "--resume latest",
             tmp);
    char logp[1100];
    snprintf(logp, sizeof logp, "%s/log", tmp);
    const char *files[2] = {op, sp};
    for (int i = 0; i < 2; i++) {
        set_version_(files[i], 2);
        cr_assert_neq(system(cmd), 0);
        char *log = NULL;
        size_t n;
        cr_assert_eq(clasp_read_file(logp, 1 << 20, &log, &n), CLASP_OK);
        char want[1400];
        snprintf(want, sizeof want, "%s: format_version 2 is newer than this clasp reads (1)",
                 files[i]);
        cr_assert(strstr(log, want), "log '%s' lacks '%s'", log, want);
        free(log);
        set_version_(files[i], 0);
    }
    cr_assert_eq(system(cmd), 0, "%s", cmd); /* neither file has the field: version 1 */
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
