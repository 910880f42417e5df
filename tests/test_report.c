/* test_report.c: `clasp report` (eval/report.h): the page's data from a run folder (a run still
 * training, no checkpoint, no evaluation data), HTML-safe JSON, and the page in headless
 * Chromium (tests/report_browser.sh): every chart drawn on a short real run, strings with
 * </script> and quotes shown as text, and the self-test failing on a broken chart or a
 * missing chart library. */
#include <archive.h>
#include <criterion/criterion.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/json.h"
#include "eval/report.h"
#include "tests/fixtures.h"

static const char *const nasty = "</script><script>window.claspErrors.push('injected')</script>"
                                 "\"' & <b>bold</b> \u2028";

/* A short real run: fmnist shards (640 samples), 6 steps logged every step, zero-shot at steps
 * 3 and 6; then the run's metrics.jsonl gets a half-written line, as while training. */
static void train_run_(const char *data, const char *run) {
    cr_assert_eq(fx_fmnist_shards(data), 0);
    cr_assert_eq(
        fx_clasp(NULL,
                 "train --model %s/configs/fmnist-small.json --train %s/train-0000{00..03}.tar "
                 "--val %s/train-000004.tar --zeroshot %s/classnames.txt --templates "
                 "%s/templates.txt --batch-size 32 --steps 6 --log-every 1 --val-every 3 "
                 "--threads 2 --warmup 2 --out %s --no-progress 2>/dev/null",
                 CLASP_SOURCE_DIR, data, data, data, data, run),
        0);
    char m[FX_PATH + 32];
    snprintf(m, sizeof m, "%s/metrics.jsonl", run);
    FILE *f = fopen(m, "a");
    cr_assert_not_null(f);
    fputs("{\"kind\":\"train\",\"step\":7,\"loss\":1", f);
    fclose(f);
}

/* tests/report_browser.sh on html (screenshot when shot is not NULL): exit status, status line
 * into status. */
static int browser_(const char *html, const char *shot, char *status, size_t cap) {
    char cmd[3 * FX_PATH];
    snprintf(cmd, sizeof cmd, "sh %s/tests/report_browser.sh %s %s", CLASP_SOURCE_DIR, html,
             shot ? shot : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    status[0] = '\0';
    if (!fgets(status, (int)cap, p)) status[0] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const cJSON *path_(const cJSON *j, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

Test(report, json_text_is_html_safe) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "caption", nasty);
    cJSON_AddStringToObject(j, nasty, "key");
    char *t = clasp_report_json_text(j);
    cr_assert_not_null(t);
    cr_assert_null(strpbrk(t, "<>&"), "%s", t);
    cJSON *back = cJSON_Parse(t);
    cr_assert(cJSON_Compare(back, j, true), "%s", t);
    cJSON_Delete(back);
    cJSON_Delete(j);
    free(t);
}

Test(report, no_run_folder_is_an_error_naming_it) {
    char dir[FX_PATH], html[FX_PATH];
    fx_scratch("report_none", dir, html, "r.html", NULL);
    clasp_report_options o = {.run_dir = "/nonexistent/run", .out_path = html, .threads = 1};
    cr_assert_eq(clasp_report(&o), CLASP_ERR_NOT_FOUND);
    cr_assert(strstr(clasp_last_error(), "/nonexistent/run"), "%s", clasp_last_error());
    cr_assert_eq(fx_clasp(NULL, "report /nonexistent/run -o %s 2>/dev/null", html), 1);
    cr_assert_eq(fx_clasp(NULL, "report --queries 0 %s -o %s 2>/dev/null", dir, html), 2);
}

/* A run that has only begun: options.json, two metrics lines and a third being written; no
 * checkpoint, no --val. Curves from the two lines; the model sections say why not. */
Test(report, run_still_training_without_checkpoint) {
    char run[FX_PATH], m[FX_PATH], opt[FX_PATH], html[FX_PATH];
    fx_scratch("report_young", run, m, "metrics.jsonl", opt, "options.json", html, "r.html", NULL);
    cr_assert(fx_write_str(opt, "{\"format_version\": 1, \"total_steps\": 100, \"threads\": 2}"));
    /* two sources: the loss chart also draws each pair's loss */
    cr_assert(fx_write_str(m, "{\"kind\":\"train\",\"step\":1,\"loss\":4.5,\"lr\":1e-4,"
                              "\"sources\":[{\"pair\":\"image-text\",\"loss\":4.6},"
                              "{\"pair\":\"audio-text\",\"loss\":3.25}]}\n"
                              "{\"kind\":\"train\",\"step\":2,\"loss\":4.4,\"lr\":2e-4,"
                              "\"sources\":[{\"pair\":\"image-text\",\"loss\":4.5},"
                              "{\"pair\":\"audio-text\",\"loss\":null}]}\n"
                              "{\"kind\":\"train\",\"st"));
    clasp_report_options o = {.run_dir = run, .out_path = html, .threads = 1};
    cJSON *d;
    cr_assert_eq(clasp_report_data(&o, &d), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(cJSON_GetArraySize(path_(d, "metrics", "train")), 2);
    cr_assert_eq(cJSON_GetNumberValue(path_(d, "metrics", "ignored")), 1);
    cr_assert(strstr(cJSON_GetStringValue(path_(d, "metrics", "ignored_why")), "being written"));
    cr_assert(strstr(cJSON_GetStringValue(path_(d, "status", NULL)), "step 2 of 100"));
    cr_assert(cJSON_IsFalse(path_(d, "zeroshot", "available")));
    cr_assert(strstr(cJSON_GetStringValue(path_(d, "gallery", "why")), "no evaluation data"), "%s",
              cJSON_GetStringValue(path_(d, "gallery", "why")));
    cJSON_Delete(d);
    /* with --data but still no checkpoint: the embedder's error */
    o.data = "/nonexistent/shard.tar";
    cr_assert_eq(clasp_report_data(&o, &d), CLASP_OK);
    const char *why = cJSON_GetStringValue(path_(d, "zeroshot", "why"));
    cr_assert(why && strstr(why, "the run has no checkpoint yet") && strstr(why, run), "%s",
              why ? why : "(none)");
    cJSON_Delete(d);
    /* the page: the two curves' charts draw, the model sections say why */
    cr_assert_eq(clasp_report(&o), CLASP_OK);
    char status[4096];
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 0, "%s", status);
    cr_assert(strstr(status, "SELFTEST OK: 2 charts"), "%s", status);
    /* a source whose losses are all missing draws nothing: the self-test says so */
    char *page = fx_read_text(html), *p = page;
    while ((p = strstr(p, "\"loss\":3.25"))) memcpy(p, "\"loss\":null", 11);
    cr_assert(fx_write_str(html, page));
    free(page);
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 1, "%s", status);
    cr_assert(strstr(status, "series 'loss audio-text' drew nothing"), "%s", status);
}

/* The quickstart-like run, end to end through `clasp report`: every section present, every chart
 * drawn, nothing loaded from the network; a screenshot at build/tests/report.png. */
Test(report, short_run_renders_in_chromium, .timeout = 300) {
    char dir[FX_PATH], data[FX_PATH], run[FX_PATH], html[FX_PATH], shot[FX_PATH];
    fx_scratch("report_run", dir, data, "data", run, "run", html, "report.html", NULL);
    /* the screenshot, for people to look at: build/tests/report.png */
    snprintf(shot, sizeof shot, "%s/tests/report.png", CLASP_BINARY_DIR);
    train_run_(data, run);
    cr_assert_eq(fx_clasp(NULL, "report %s -o %s --threads 2 --queries 4 2>/dev/null", run, html),
                 0);
    char *page = fx_read_text(html);
    cr_assert_not_null(page);
    cr_assert(strstr(page, "uPlot") && strstr(page, "MIT"));
    cr_assert_null(strstr(page, "<link"), "an external stylesheet");
    cr_assert_null(strstr(page, "src=\"http"), "an external script");
    cr_assert(strstr(page, "\"available\":true,\"classes_file\""), "zero-shot section missing");
    cr_assert(strstr(page, "\"image\":\"data:image/png;base64,"), "no thumbnail");
    cr_assert(strstr(page, "\"ignored\":1"), "the half-written line was not ignored");
    free(page);
    char status[4096];
    cr_assert_eq(browser_(html, shot, status, sizeof status), 0, "%s", status);
    /* 7 curves + zero-shot over evaluations + recall per class */
    cr_assert(strstr(status, "SELFTEST OK: 9 charts"), "%s", status);
    size_t n = 0;
    free(fx_read(shot, &n));
    cr_assert_gt(n, 10000, "screenshot %s: %zu bytes", shot, n);

    /* a thumbnail the browser cannot decode fails the self-test */
    page = fx_read_text(html);
    char *png = strstr(page, "\"image\":\"data:image/png;base64,iVBOR");
    cr_assert_not_null(png);
    memcpy(png + 31, "AAAAA", 5);
    cr_assert(fx_write_str(html, page));
    free(page);
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 1, "%s", status);
    cr_assert(strstr(status, "thumbnail 1 ("), "%s", status);

    /* strings with </script> and quotes in the config, a caption and a key stay text */
    clasp_report_options o = {.run_dir = run, .out_path = html, .threads = 2, .queries = 2};
    cJSON *d;
    cr_assert_eq(clasp_report_data(&o, &d), CLASP_OK, "%s", clasp_last_error());
    cJSON *q = cJSON_GetArrayItem(path_(d, "gallery", "queries"), 0);
    cr_assert_not_null(q);
    cJSON_ReplaceItemInObject(q, "text", cJSON_CreateString(nasty));
    cJSON_AddStringToObject(cJSON_GetObjectItem(d, "options"), nasty, nasty);
    cJSON_ReplaceItemInObject(d, "title", cJSON_CreateString(nasty));
    cr_assert_eq(clasp_report_write_html(d, html), CLASP_OK);
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 0, "%s", status);

    /* a broken chart fails the self-test: the loss values are not numbers */
    cJSON *line;
    cJSON_ArrayForEach(line, path_(d, "metrics", "train"))
        cJSON_ReplaceItemInObject(line, "loss", cJSON_CreateString("broken"));
    cr_assert_eq(clasp_report_write_html(d, html), CLASP_OK);
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 1, "%s", status);
    cr_assert(strstr(status, "loss: series 'loss' drew nothing"), "%s", status);
    cJSON_Delete(d);

    /* and so does a page whose chart library is missing */
    page = fx_read_text(html);
    char *lib = strstr(page, "var uPlot=");
    cr_assert_not_null(lib);
    memcpy(lib, "var uPlXt=", 10);
    cr_assert(fx_write_str(html, page));
    free(page);
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 1, "%s", status);
    cr_assert(strstr(status, "uPlot is not defined"), "%s", status);
}

/* An audio-text model (configs/speech-small.json, random weights) on six tone clips: the gallery
 * has audio queries as data: URIs with their top-5 captions; zero-shot says why not. */
Test(report, audio_model_gallery_has_players, .timeout = 120) {
    char run[FX_PATH], shard[FX_PATH], html[FX_PATH], cfg[FX_PATH];
    fx_scratch("report_audio", run, shard, "audio-000000.tar", html, "r.html", NULL);
    snprintf(cfg, sizeof cfg, "%s/configs/speech-small.json", CLASP_SOURCE_DIR);
    cr_assert(fx_checkpoint_model(cfg, 5, 4, run, NULL), "%s", clasp_last_error());
    enum { N = 6, FRAMES = 4000 };
    fx_member m[2 * N];
    char names[2 * N][32], captions[N][32];
    uint8_t *wav[N];
    float x[FRAMES];
    for (int k = 0; k < N; k++) {
        for (int i = 0; i < FRAMES; i++)
            x[i] = (float)(0.4 * sin(2 * M_PI * (200.0 + 300.0 * k) * i / 8000.0));
        size_t n;
        wav[k] = fx_encode_audio(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, x, FRAMES, &n);
        cr_assert_not_null(wav[k]);
        snprintf(names[2 * k], 32, "clip%d.wav", k);
        snprintf(names[2 * k + 1], 32, "clip%d.txt", k);
        snprintf(captions[k], 32, "a tone of %d hertz", 200 + 300 * k);
        m[2 * k] = (fx_member){names[2 * k], wav[k], n, 0};
        m[2 * k + 1] = (fx_member){names[2 * k + 1], captions[k], strlen(captions[k]), 0};
    }
    cr_assert(fx_write_tar(shard, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 2 * N));
    for (int k = 0; k < N; k++) free(wav[k]);
    clasp_report_options o = {
        .run_dir = run, .out_path = html, .data = shard, .threads = 1, .queries = 3};
    cJSON *d;
    cr_assert_eq(clasp_report_data(&o, &d), CLASP_OK, "%s", clasp_last_error());
    cr_assert(strstr(cJSON_GetStringValue(path_(d, "zeroshot", "why")), "no image tower"));
    const cJSON *qs = path_(d, "gallery", "queries");
    cr_assert(cJSON_IsTrue(path_(d, "gallery", "available")), "%s",
              cJSON_GetStringValue(path_(d, "gallery", "why")));
    cr_assert_eq(cJSON_GetArraySize(qs), 3);
    const cJSON *q;
    int k = 0;
    cJSON_ArrayForEach(q, qs) {
        cr_assert(
            !strncmp(cJSON_GetStringValue(path_(q, "audio", NULL)), "data:audio/wav;base64,", 22));
        cr_assert_str_eq(cJSON_GetStringValue(path_(q, "text", NULL)), captions[k]);
        const cJSON *r, *res = path_(q, "results", NULL);
        cr_assert_eq(cJSON_GetArraySize(res), 5);
        int hits = 0;
        cJSON_ArrayForEach(r, res) {
            cr_assert(strstr(cJSON_GetStringValue(path_(r, "text", NULL)), "a tone of "));
            hits += cJSON_IsTrue(path_(r, "hit", NULL));
        }
        cr_assert_leq(hits, 1);
        k++;
    }
    cJSON_Delete(d);
    /* the page draws (two logged lines: loss and lr) with the players */
    char mp[FX_PATH + 32], status[4096];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", run);
    cr_assert(fx_write_str(mp, "{\"kind\":\"train\",\"step\":1,\"loss\":2.5,\"lr\":1e-4}\n"
                               "{\"kind\":\"train\",\"step\":2,\"loss\":2.4,\"lr\":2e-4}\n"));
    cr_assert_eq(clasp_report(&o), CLASP_OK, "%s", clasp_last_error());
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 0, "%s", status);
    cr_assert(strstr(status, "SELFTEST OK: 2 charts"), "%s", status);
    /* a clip the browser cannot decode fails the self-test (WAV's "RIFF" header broken) */
    char *page = fx_read_text(html), *p = page;
    while ((p = strstr(p, "data:audio/wav;base64,UklG"))) memcpy(p + 22, "AAAA", 4);
    cr_assert(fx_write_str(html, page));
    free(page);
    cr_assert_eq(browser_(html, NULL, status, sizeof status), 1, "%s", status);
    cr_assert(strstr(status, "audio player 1: error"), "%s", status);
}

/* Gallery thumbnails: a small PNG goes in as it is; a PPM (no browser shows it) and a large
 * image become PNG thumbnails. Data without labels or class names: queries are the first
 * distinct captions, zero-shot says why not. */
Test(report, thumbnails_of_other_formats_and_large_images) {
    char run[FX_PATH], shard[FX_PATH], html[FX_PATH], cfg[FX_PATH];
    fx_scratch("report_thumbs", run, shard, "data/shard.tar", html, "r.html", NULL);
    snprintf(cfg, sizeof cfg, "%s/configs/fmnist-small.json", CLASP_SOURCE_DIR);
    cr_assert(fx_checkpoint_model(cfg, 9, 2, run, NULL), "%s", clasp_last_error());
    size_t n[3];
    uint8_t *px = fx_random_pixels(28, 28, 1, 4), *big_px = fx_random_pixels(400, 300, 3, 5);
    uint8_t *img[3] = {fx_png(px, 28, 28, 1, &n[0]), fx_pnm(300, 200, 3, 6, &n[1]),
                       fx_png(big_px, 400, 300, 3, &n[2])};
    cr_assert(n[2] > 100000, "the large PNG has %zu bytes", n[2]);
    fx_member m[] = {{"s0.png", img[0], n[0], 0}, {"s0.txt", "a small png", 11, 0},
                     {"s1.ppm", img[1], n[1], 0}, {"s1.txt", "a ppm", 5, 0},
                     {"s2.png", img[2], n[2], 0}, {"s2.txt", "a large png", 11, 0}};
    char dir[FX_PATH + 8];
    snprintf(dir, sizeof dir, "%s/data", run);
    cr_assert_eq(clasp_mkdir_p(dir), CLASP_OK);
    cr_assert(fx_write_tar(shard, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, m, 6));
    clasp_report_options o = {.run_dir = run, .out_path = html, .data = shard, .threads = 1};
    cJSON *d;
    cr_assert_eq(clasp_report_data(&o, &d), CLASP_OK, "%s", clasp_last_error());
    cr_assert(strstr(cJSON_GetStringValue(path_(d, "zeroshot", "why")), "no class names"));
    const cJSON *qs = path_(d, "gallery", "queries");
    cr_assert_eq(cJSON_GetArraySize(qs), 3);
    const cJSON *r;
    int seen = 0;
    cJSON_ArrayForEach(r, path_(cJSON_GetArrayItem(qs, 0), "results", NULL)) {
        const char *key = cJSON_GetStringValue(path_(r, "key", NULL));
        const char *uri = cJSON_GetStringValue(path_(r, "image", NULL));
        cr_assert(uri && !strncmp(uri, "data:image/png;base64,", 22), "%s: %.40s", key,
                  uri ? uri : "(none)");
        size_t b64 = strlen(uri) - 22;
        if (!strcmp(key, "s0")) cr_assert_eq(b64, 4 * ((n[0] + 2) / 3), "s0 is not the PNG itself");
        if (!strcmp(key, "s2")) cr_assert_lt(b64, n[2] / 2, "s2 was not made smaller");
        /* a 128 x 128 PNG: "iVBORw0KGgoAAAANSUhEUgAAAIAAAACA" = signature, IHDR, 128, 128 */
        if (strcmp(key, "s0"))
            cr_assert(!strncmp(uri + 22, "iVBORw0KGgoAAAANSUhEUgAAAIAAAACA", 32), "%s", key);
        seen |= 1 << (key[1] - '0');
    }
    cr_assert_eq(seen, 7);
    cJSON_Delete(d);
    for (int i = 0; i < 3; i++) free(img[i]);
    free(px);
    free(big_px);
}
