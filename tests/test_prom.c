/* test_prom.c: the Prometheus text format (net/prom.h), the HTTP server (net/http.h), the
 * training snapshot (train/prom.h), and `clasp train --metrics-addr / --metrics-textfile` on a
 * real run scraped with curl and checked with promtool while it trains. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "net/http.h"
#include "net/prom.h"
#include "train/prom.h"

static char g_data[4200]; /* the Fashion-MNIST test shards (build_data_) */

/* ---- helpers ------------------------------------------------------------------------------ */

/* `promtool check metrics < path`: its exit status; its output into *out (malloc'd). */
static int promtool_(const char *path, char **out) {
    char cmd[2400], log[1100];
    snprintf(log, sizeof log, "%s.promtool", path);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1", path, log);
    int rc = fx_system(cmd);
    if (out) *out = fx_read_text(log);
    return rc;
}

/* Writes text to a scratch file and runs promtool on it; fails the test on a complaint. */
static void expect_promtool_ok_(const char *text, const char *name) {
    char dir[FX_PATH], path[FX_PATH];
    fx_scratch(name, dir, path, "scrape.txt", NULL);
    cr_assert(fx_write_str(path, text));
    char *out = NULL;
    int rc = promtool_(path, &out);
    cr_assert_eq(rc, 0, "promtool check metrics failed (%d):\n%s\non:\n%s", rc, out, text);
    free(out);
}

/* `curl` of url with method and optional body: the HTTP status; the body into *body (malloc'd)
 * and the headers into *headers when not NULL. -1 when curl could not connect. */
static int curl_(const char *method, const char *url, const char *data, char **body,
                 char **headers) {
    char dir[FX_PATH], b[FX_PATH], h[FX_PATH], d[FX_PATH], st[FX_PATH], cmd[4 * FX_PATH + 256];
    fx_scratch("curl", dir, b, "body", h, "headers", d, "data", st, "status", NULL);
    char extra[FX_PATH + 32] = "";
    if (data) {
        cr_assert(fx_write_str(d, data));
        snprintf(extra, sizeof extra, "--data-binary @%s", d);
    }
    snprintf(cmd, sizeof cmd, "curl -s -m 20 -X %s %s -o %s -D %s -w '%%{http_code}' '%s' > %s",
             method, extra, b, h, url, st);
    int rc = fx_system(cmd);
    char *status = fx_read_text(st);
    int code = rc == 0 ? atoi(status) : -1;
    free(status);
    if (body) *body = fx_read_text(b);
    if (headers) *headers = fx_read_text(h);
    return code;
}

/* A TCP connection to 127.0.0.1:port with `partial` sent and never finished (a slow client). */
static int slow_client_(int port, const char *partial) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    cr_assert_eq(send(fd, partial, strlen(partial), 0), (ssize_t)strlen(partial));
    return fd;
}

/* The value of the sample line that starts with `series` followed by a space, or NaN. */
static double value_(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return NAN;
}

/* ---- text format ---------------------------------------------------------------------------- */

Test(prom, writes_families_samples_and_escapes) {
    clasp_prom_buf b;
    clasp_prom_init(&b);
    clasp_prom_family(&b, "x_total", CLASP_PROM_COUNTER, "Help with \\ and\nnewline.");
    clasp_prom_label l[] = {{"path", "a\"b\\c\nd"}, {"code", "200"}};
    clasp_prom_sample(&b, "x_total", l, 2, 3);
    clasp_prom_metric(&b, "g", CLASP_PROM_GAUGE, "G.", 0.1);
    clasp_prom_sample(&b, "g", NULL, 0, NAN);
    clasp_prom_sample(&b, "g", NULL, 0, -HUGE_VAL);
    clasp_prom_sample(&b, "g", NULL, 0, 1e300);
    clasp_prom_sample(&b, "g", NULL, 0, 12345678901.0);
    cr_assert_eq(clasp_prom_finish(&b), CLASP_OK);
    const char *want = "# HELP x_total Help with \\\\ and\\nnewline.\n"
                       "# TYPE x_total counter\n"
                       "x_total{path=\"a\\\"b\\\\c\\nd\",code=\"200\"} 3\n"
                       "# HELP g G.\n"
                       "# TYPE g gauge\n"
                       "g 0.1\n"
                       "g NaN\n"
                       "g -Inf\n"
                       "g 1e+300\n"
                       "g 12345678901\n";
    cr_assert_str_eq(b.data, want);
    clasp_prom_free(&b);
    clasp_prom_free(NULL);
}

Test(prom, refuses_bad_names) {
    const char *bad_metric[] = {"", "1abc", "a-b", "a b", "é"};
    for (size_t i = 0; i < sizeof bad_metric / sizeof *bad_metric; i++) {
        clasp_prom_buf b;
        clasp_prom_init(&b);
        clasp_prom_metric(&b, bad_metric[i], CLASP_PROM_GAUGE, "h", 1);
        cr_assert_eq(clasp_prom_finish(&b), CLASP_ERR_ARG, "'%s' accepted", bad_metric[i]);
        cr_assert(strstr(clasp_last_error(), "not a valid metric name"), "%s", clasp_last_error());
        clasp_prom_free(&b);
    }
    const char *bad_label[] = {"", "__reserved", "a:b", "9x"};
    for (size_t i = 0; i < sizeof bad_label / sizeof *bad_label; i++) {
        clasp_prom_buf b;
        clasp_prom_init(&b);
        clasp_prom_label l = {bad_label[i], "v"};
        clasp_prom_sample(&b, "ok_name", &l, 1, 1);
        cr_assert_eq(clasp_prom_finish(&b), CLASP_ERR_ARG, "label '%s' accepted", bad_label[i]);
        cr_assert(strstr(clasp_last_error(), "ok_name"), "%s", clasp_last_error());
        clasp_prom_free(&b);
    }
    cr_assert(clasp_prom_valid_metric_name("a:b_c9"));
    cr_assert(clasp_prom_valid_label_name("le"));
}

Test(prom, histogram_buckets_are_cumulative) {
    static const double bounds[] = {0.005, 0.1, 1};
    clasp_prom_histogram h;
    cr_assert_eq(clasp_prom_histogram_init(&h, bounds, 3), CLASP_OK);
    const double obs[] = {0.001, 0.005, 0.05, 0.5, 2, 3};
    for (size_t i = 0; i < sizeof obs / sizeof *obs; i++) clasp_prom_histogram_observe(&h, obs[i]);
    clasp_prom_buf b;
    clasp_prom_init(&b);
    clasp_prom_family(&b, "req_duration_seconds", CLASP_PROM_HISTOGRAM, "Latency.");
    clasp_prom_label l[] = {{"route", "/search"}};
    clasp_prom_write_histogram(&b, "req_duration_seconds", l, 1, &h);
    cr_assert_eq(clasp_prom_finish(&b), CLASP_OK);
    const char *want = "# HELP req_duration_seconds Latency.\n"
                       "# TYPE req_duration_seconds histogram\n"
                       "req_duration_seconds_bucket{route=\"/search\",le=\"0.005\"} 2\n"
                       "req_duration_seconds_bucket{route=\"/search\",le=\"0.1\"} 3\n"
                       "req_duration_seconds_bucket{route=\"/search\",le=\"1\"} 4\n"
                       "req_duration_seconds_bucket{route=\"/search\",le=\"+Inf\"} 6\n"
                       "req_duration_seconds_sum{route=\"/search\"} 5.556\n"
                       "req_duration_seconds_count{route=\"/search\"} 6\n";
    cr_assert_str_eq(b.data, want);
    expect_promtool_ok_(b.data, "prom_hist");
    clasp_prom_free(&b);
    clasp_prom_histogram_free(&h);
    static const double unsorted[] = {1, 0.5};
    cr_assert_eq(clasp_prom_histogram_init(&h, unsorted, 2), CLASP_ERR_ARG);
    cr_assert_eq(clasp_prom_histogram_init(&h, bounds, 0), CLASP_ERR_ARG);
}

/* What a server of issue 17 writes (counters by route and status, a histogram) passes promtool,
 * label values with quotes and newlines included. */
Test(prom, promtool_accepts_counters_gauges_histograms) {
    clasp_prom_buf b;
    clasp_prom_init(&b);
    clasp_prom_family(&b, "srv_requests_total", CLASP_PROM_COUNTER, "Requests by route.");
    clasp_prom_label a[] = {{"route", "/embed"}, {"status", "200"}};
    clasp_prom_label c[] = {{"route", "we\"ird\\\npath"}, {"status", "404"}};
    clasp_prom_sample(&b, "srv_requests_total", a, 2, 10);
    clasp_prom_sample(&b, "srv_requests_total", c, 2, 1);
    clasp_prom_metric(&b, "srv_index_vectors", CLASP_PROM_GAUGE, "Vectors.", 1e6);
    static const double bounds[] = {0.001, 0.01};
    clasp_prom_histogram h;
    cr_assert_eq(clasp_prom_histogram_init(&h, bounds, 2), CLASP_OK);
    clasp_prom_histogram_observe(&h, 0.002);
    clasp_prom_family(&b, "srv_latency_seconds", CLASP_PROM_HISTOGRAM, "Latency.");
    clasp_prom_write_histogram(&b, "srv_latency_seconds", a, 1, &h);
    clasp_prom_write_histogram(&b, "srv_latency_seconds", c, 1, &h);
    cr_assert_eq(clasp_prom_finish(&b), CLASP_OK);
    expect_promtool_ok_(b.data, "prom_promtool");
    clasp_prom_free(&b);
    clasp_prom_histogram_free(&h);
}

/* ---- the training snapshot --------------------------------------------------------------- */

/* Every series of docs/metrics.md that a run with a checkpoint and an evaluation has. */
static const char *const k_train_series[] = {
    "clasp_train_ready",
    "clasp_train_step",
    "clasp_train_total_steps",
    "clasp_train_epoch",
    "clasp_train_samples_total",
    "clasp_train_skipped_steps_total",
    "clasp_train_world_size",
    "clasp_train_start_time_seconds",
    "clasp_train_learning_rate",
    "clasp_train_logit_scale",
    "clasp_train_temperature",
    "clasp_train_grad_norm",
    "clasp_train_samples_per_second",
    "clasp_train_data_wait_ratio",
    "clasp_train_flops_per_second",
    "clasp_train_loss{source=\"0\",pair=\"image-text\"}",
    "clasp_train_feature_std{tower=\"image\"}",
    "clasp_train_feature_std{tower=\"text\"}",
    "clasp_train_alignment",
    "clasp_train_uniformity",
    "clasp_train_positive_similarity",
    "clasp_train_hardest_negative_similarity",
    "clasp_train_skipped_samples_total{reason=\"truncated\"}",
    "clasp_train_skipped_samples_total{reason=\"bad_image\"}",
    "clasp_train_skipped_samples_total{reason=\"bad_text\"}",
    "clasp_train_last_checkpoint_step",
    "clasp_train_last_checkpoint_timestamp_seconds",
    "clasp_train_last_checkpoint_age_seconds",
    "clasp_train_zeroshot_step",
    "clasp_train_zeroshot_accuracy_ratio{k=\"1\"}",
    "clasp_train_zeroshot_accuracy_ratio{k=\"5\"}",
    "clasp_train_zeroshot_mean_recall_ratio",
    "clasp_train_zeroshot_images",
    "clasp_train_zeroshot_duration_seconds",
    "clasp_train_retrieval_recall_ratio{direction=\"image_to_text\",k=\"1\"}",
    "clasp_train_retrieval_recall_ratio{direction=\"image_to_text\",k=\"5\"}",
    "clasp_train_retrieval_recall_ratio{direction=\"text_to_image\",k=\"1\"}",
    "clasp_train_retrieval_recall_ratio{direction=\"text_to_image\",k=\"5\"}",
};
#define N_SERIES (sizeof k_train_series / sizeof *k_train_series)

Test(prom, train_snapshot_renders_every_series) {
    clasp_train_snapshot s;
    clasp_train_snapshot_init(&s);
    clasp_prom_buf b;
    clasp_prom_init(&b);
    clasp_train_prom_render(&s, 0, &b); /* not ready: one series */
    cr_assert_str_eq(b.data, "# HELP clasp_train_ready 1 once the trainer has published its "
                             "figures (set up and training).\n# TYPE clasp_train_ready "
                             "gauge\nclasp_train_ready 0\n");
    clasp_prom_free(&b);
    s.ready = true;
    s.step = 10;
    s.n_sources = 2;
    snprintf(s.pair[0], sizeof s.pair[0], "image-text");
    snprintf(s.pair[1], sizeof s.pair[1], "audio-text");
    s.loss[0] = 2.5; /* source 1 had no step yet: NaN */
    s.feat_std[CLASP_TOWER_IMAGE] = 0.05;
    s.feat_std[CLASP_TOWER_TEXT] = 0.06;
    s.logit_scale = 20;
    s.skipped[CLASP_SKIP_BAD_IMAGE] = 3;
    s.ckpt_step = 8;
    s.ckpt_unix = 1000;
    s.eval_step = 10;
    s.zs_top1 = 0.5;
    s.has_retrieval = true;
    s.i2t_r1 = 0.25;
    clasp_train_prom_render(&s, 1012.5, &b);
    cr_assert_eq(clasp_prom_finish(&b), CLASP_OK);
    for (size_t i = 0; i < N_SERIES; i++)
        cr_assert(isfinite(value_(b.data, k_train_series[i])), "%s missing in\n%s",
                  k_train_series[i], b.data);
    cr_assert(isnan(value_(b.data, "clasp_train_loss{source=\"1\",pair=\"audio-text\"}")));
    cr_assert(isnan(value_(b.data, "clasp_train_feature_std{tower=\"audio\"}")) &&
                  !strstr(b.data, "tower=\"audio\""),
              "a tower never logged has no series");
    cr_assert_eq(value_(b.data, "clasp_train_last_checkpoint_age_seconds"), 12.5);
    cr_assert_eq(value_(b.data, "clasp_train_temperature"), 0.05);
    cr_assert_eq(value_(b.data, "clasp_train_skipped_samples_total{reason=\"bad_image\"}"), 3);
    expect_promtool_ok_(b.data, "prom_snapshot");
    clasp_prom_free(&b);
    /* before a checkpoint and an evaluation, their series are absent, not zero */
    s.ckpt_step = -1;
    s.eval_step = -1;
    clasp_train_prom_render(&s, 0, &b);
    cr_assert_null(strstr(b.data, "checkpoint"));
    cr_assert_null(strstr(b.data, "zeroshot"));
    cr_assert_null(strstr(b.data, "retrieval"));
    clasp_prom_free(&b);
}

Test(prom, textfile_is_replaced_atomically) {
    char dir[FX_PATH], path[FX_PATH], bad[FX_PATH];
    fx_scratch("prom_textfile", dir, path, "clasp.prom", bad, "missing/dir/clasp.prom", NULL);
    clasp_train_snapshot s;
    clasp_train_snapshot_init(&s);
    s.ready = true;
    s.step = 7;
    cr_assert_eq(clasp_train_prom_write_textfile(path, &s), CLASP_OK, "%s", clasp_last_error());
    s.step = 8;
    cr_assert_eq(clasp_train_prom_write_textfile(path, &s), CLASP_OK);
    char *text = fx_read_text(path);
    cr_assert_eq(value_(text, "clasp_train_step"), 8);
    free(text);
    char cmd[FX_PATH + 64];
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", dir); /* no temp file left */
    cr_assert_eq(fx_system(cmd), 0);
    cr_assert_eq(clasp_train_prom_write_textfile(bad, &s), CLASP_ERR_IO);
    cr_assert(strstr(clasp_last_error(), "missing/dir/clasp.prom"), "%s", clasp_last_error());
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static void hello_(void *user, const clasp_http_request *req, clasp_http_response *res) {
    const char *q = clasp_http_query(req, "name");
    char text[128];
    snprintf(text, sizeof text, "%s %s\n", (const char *)user, q ? q : "world");
    clasp_http_respond_text(res, 200, "text/plain", text);
}

/* POST /echo: 201 with the body and its content type. */
static void echo_(void *user, const clasp_http_request *req, clasp_http_response *res) {
    (void)user;
    char *copy = malloc(req->body_len + 64);
    int n = snprintf(copy, 64, "%s|", req->content_type ? req->content_type : "-");
    memcpy(copy + n, req->body, req->body_len + 1);
    clasp_http_respond_take(res, 201, "application/octet-stream", copy, (size_t)n + req->body_len);
}

static clasp_http_server *start_(size_t max_body) {
    static clasp_http_route routes[] = {{"GET", "/hello", hello_, "hello"},
                                        {"POST", "/echo", echo_, NULL},
                                        {"PUT", "/hello", hello_, "put"}};
    clasp_http_config c = clasp_http_default_config();
    c.addr = "127.0.0.1:0";
    c.routes = routes;
    c.n_routes = 3;
    c.max_body = max_body;
    clasp_http_server *s = NULL;
    cr_assert_eq(clasp_http_start(&c, &s), CLASP_OK, "%s", clasp_last_error());
    cr_assert_gt(clasp_http_port(s), 0);
    return s;
}

Test(http, routes_statuses_and_bodies) {
    clasp_http_server *s = start_(64);
    char url[128], *body = NULL, *hdr = NULL;
    int port = clasp_http_port(s);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hello?name=clasp", port);
    cr_assert_eq(curl_("GET", url, NULL, &body, &hdr), 200);
    cr_assert_str_eq(body, "hello clasp\n");
    cr_assert(strstr(hdr, "Content-Type: text/plain"), "%s", hdr);
    free(body);
    free(hdr);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
    cr_assert_eq(curl_("POST", url, "payload", &body, NULL), 201);
    cr_assert_str_eq(body, "application/x-www-form-urlencoded|payload");
    free(body);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nowhere", port);
    cr_assert_eq(curl_("GET", url, NULL, NULL, NULL), 404);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hello", port);
    cr_assert_eq(curl_("DELETE", url, NULL, NULL, &hdr), 405);
    cr_assert(strstr(hdr, "Allow: GET, PUT"), "%s", hdr);
    free(hdr);
    /* above the body limit: 413 by Content-Length, the handler never sees it */
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", port);
    cr_assert_eq(curl_("POST", url, big, &body, NULL), 413);
    cr_assert_str_eq(body, "request body too large\n");
    free(body);
    clasp_http_stop(s);
    clasp_http_stop(NULL);
}

/* A chunked body (no Content-Length) above the limit is refused as it arrives. */
Test(http, chunked_body_over_the_limit_is_413) {
    clasp_http_server *s = start_(64);
    char dir[FX_PATH], data[FX_PATH], cmd[3 * FX_PATH];
    fx_scratch("http_chunked", dir, data, "data", NULL);
    char big[1000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert(fx_write_str(data, big));
    snprintf(cmd, sizeof cmd,
             "test \"$(curl -s -m 20 -o /dev/null -w '%%{http_code}' -H 'Transfer-Encoding: "
             "chunked' --data-binary @%s http://127.0.0.1:%d/echo)\" = 413",
             data, clasp_http_port(s));
    cr_assert_eq(fx_system(cmd), 0, "%s", cmd);
    clasp_http_stop(s);
}

/* A client that sends half a request and waits holds its own connection only. */
Test(http, a_slow_client_blocks_no_one) {
    clasp_http_server *s = start_(64);
    int port = clasp_http_port(s);
    int slow = slow_client_(port, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    int slow_body =
        slow_client_(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nab");
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hello", port);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(curl_("GET", url, NULL, &body, NULL), 200, "request %d behind a slow client",
                     i);
        cr_assert_str_eq(body, "hello world\n");
        free(body);
    }
    close(slow);
    close(slow_body);
    clasp_http_stop(s);
}

Test(http, addresses) {
    static clasp_http_route r[] = {{"GET", "/", hello_, "x"}};
    clasp_http_config c = clasp_http_default_config();
    c.routes = r;
    c.n_routes = 1;
    clasp_http_server *s = NULL;
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:x",  "127.0.0.1:70000",
                         ":9108",     "[::1]9108",  "127.0.0.1:-1", "no.such.host.invalid:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        c.addr = bad[i];
        cr_assert_eq(clasp_http_start(&c, &s), CLASP_ERR_ARG, "'%s' accepted", bad[i]);
        cr_assert(strstr(clasp_last_error(), bad[i]), "%s", clasp_last_error());
        cr_assert_null(s);
    }
    c.addr = "0.0.0.0:0";
    cr_assert_eq(clasp_http_start(&c, &s), CLASP_ERR_ARG);
    cr_assert(strstr(clasp_last_error(), "not a loopback address"), "%s", clasp_last_error());
    c.allow_remote = true;
    cr_assert_eq(clasp_http_start(&c, &s), CLASP_OK, "%s", clasp_last_error());
    clasp_http_stop(s);
    c.allow_remote = false;
    c.addr = "localhost:0";
    cr_assert_eq(clasp_http_start(&c, &s), CLASP_OK, "%s", clasp_last_error());
    /* the port now in use */
    char busy[64];
    snprintf(busy, sizeof busy, "127.0.0.1:%d", clasp_http_port(s));
    clasp_http_server *s2 = NULL;
    c.addr = busy;
    cr_assert_eq(clasp_http_start(&c, &s2), CLASP_ERR_IO);
    cr_assert(strstr(clasp_last_error(), "in use"), "%s", clasp_last_error());
    clasp_http_stop(s);
    c.addr = "[::1]:0";
    if (clasp_http_start(&c, &s) == CLASP_OK) { /* IPv6 loopback, where the machine has it */
        char url[64];
        snprintf(url, sizeof url, "http://[::1]:%d/", clasp_http_port(s));
        cr_assert_eq(curl_("GET", url, NULL, NULL, NULL), 200);
        clasp_http_stop(s);
    }
    c.addr = "127.0.0.1:0";
    c.n_routes = 0;
    cr_assert_eq(clasp_http_start(&c, &s), CLASP_ERR_ARG);
}

/* ---- clasp train --metrics-addr ------------------------------------------------------------ */

static void build_data_(const char *dir) {
    snprintf(g_data, sizeof g_data, "%s/fmnist", dir);
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    cr_assert_eq(fx_fmnist_shards(g_data), 0, "building %s failed", g_data);
}

/* `clasp train` on the test shards with `extra`, in the background; stderr to log. */
static pid_t spawn_train_(const char *out, const char *extra, const char *log) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no training behind */
        char cmd[40000];
        snprintf(cmd, sizeof cmd,
                 "exec %s train --model %s/configs/fmnist-small.json --train "
                 "'%s/train-{000000..000004}.tar' --out %s --batch-size 64 --warmup 2 "
                 "--log-every 1 --no-progress %s >%s 2>&1",
                 clasp_test_bin(), CLASP_SOURCE_DIR, g_data, out, extra, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void sleep_ms_(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The port of "metrics on http://127.0.0.1:PORT/metrics" in log, waiting up to 60 s. */
static int wait_port_(const char *log) {
    for (int i = 0; i < 600; i++) {
        char *text = fx_read_text(log);
        const char *p = strstr(text, "metrics on http://127.0.0.1:");
        int port = p ? atoi(p + strlen("metrics on http://127.0.0.1:")) : 0;
        free(text);
        if (port > 0) return port;
        sleep_ms_(100);
    }
    cr_assert_fail("no metrics address in %s", log);
    return 0;
}

/* Scrapes until the text has every series (a checkpoint and an evaluation done); 120 s. */
static char *scrape_all_(const char *url) {
    for (int i = 0; i < 1200; i++) {
        char *body = NULL;
        if (curl_("GET", url, NULL, &body, NULL) == 200) {
            size_t k = 0;
            while (k < N_SERIES && isfinite(value_(body, k_train_series[k]))) k++;
            if (k == N_SERIES) return body;
        }
        free(body);
        sleep_ms_(100);
    }
    cr_assert_fail("%s never showed every series", url);
    return NULL;
}

/* Values that a few steps of this run must show. */
static void expect_sane_(const char *t) {
    double step = value_(t, "clasp_train_step"), scale = value_(t, "clasp_train_logit_scale");
    cr_assert_geq(step, 1);
    cr_assert_eq(value_(t, "clasp_train_samples_total"), 64 * step, "%s", t);
    cr_assert_eq(value_(t, "clasp_train_total_steps"), 5000);
    cr_assert_eq(value_(t, "clasp_train_epoch"), 1);
    cr_assert_eq(value_(t, "clasp_train_ready"), 1);
    cr_assert_eq(value_(t, "clasp_train_world_size"), 1);
    double loss = value_(t, "clasp_train_loss{source=\"0\",pair=\"image-text\"}");
    cr_assert(loss > 0 && loss < 10, "loss %g", loss);
    cr_assert_gt(value_(t, "clasp_train_learning_rate"), 0);
    cr_assert(scale > 1 && scale <= 100, "logit scale %g", scale);
    cr_assert_float_eq(value_(t, "clasp_train_temperature"), 1 / scale, 1e-12);
    cr_assert_gt(value_(t, "clasp_train_samples_per_second"), 0);
    double wait = value_(t, "clasp_train_data_wait_ratio");
    cr_assert(wait >= 0 && wait <= 1, "data wait %g", wait);
    cr_assert_gt(value_(t, "clasp_train_flops_per_second"), 1e6);
    const char *unit[] = {"clasp_train_feature_std{tower=\"image\"}",
                          "clasp_train_feature_std{tower=\"text\"}"};
    for (int i = 0; i < 2; i++) {
        double v = value_(t, unit[i]);
        cr_assert(v > 0 && v <= 1, "%s %g", unit[i], v);
    }
    double al = value_(t, "clasp_train_alignment"), un = value_(t, "clasp_train_uniformity");
    cr_assert(al >= 0 && al <= 4 && un <= 0 && un >= -4, "alignment %g uniformity %g", al, un);
    double pos = value_(t, "clasp_train_positive_similarity");
    double neg = value_(t, "clasp_train_hardest_negative_similarity");
    cr_assert(pos >= -1 && pos <= 1 && neg >= -1 && neg <= 1, "similarities %g %g", pos, neg);
    cr_assert_eq(value_(t, "clasp_train_skipped_samples_total{reason=\"bad_image\"}"), 0);
    double ck = value_(t, "clasp_train_last_checkpoint_step");
    cr_assert(ck >= 3 && ck <= step && fmod(ck, 3) == 0, "checkpoint step %g", ck);
    double age = value_(t, "clasp_train_last_checkpoint_age_seconds");
    cr_assert(age >= 0 && age < 300, "checkpoint age %g", age);
    double top1 = value_(t, "clasp_train_zeroshot_accuracy_ratio{k=\"1\"}");
    double top5 = value_(t, "clasp_train_zeroshot_accuracy_ratio{k=\"5\"}");
    cr_assert(top1 >= 0 && top1 <= top5 && top5 <= 1, "zero-shot %g %g", top1, top5);
    cr_assert_eq(value_(t, "clasp_train_zeroshot_images"), 128);
    static const char *const dirs[] = {"image_to_text", "text_to_image"};
    for (int d = 0; d < 2; d++) { /* by class over the validation captions */
        char n1[160], n5[160];
        snprintf(n1, sizeof n1, "clasp_train_retrieval_recall_ratio{direction=\"%s\",k=\"1\"}",
                 dirs[d]);
        snprintf(n5, sizeof n5, "clasp_train_retrieval_recall_ratio{direction=\"%s\",k=\"5\"}",
                 dirs[d]);
        double r1 = value_(t, n1), r5 = value_(t, n5);
        cr_assert(r1 >= 0 && r1 <= r5 && r5 <= 1, "%s: R@1 %g R@5 %g", dirs[d], r1, r5);
    }
}

Test(train_metrics, scraped_while_training_and_promtool_passes, .timeout = 400) {
    char base[FX_PATH], run[FX_PATH], log[FX_PATH], tf[FX_PATH], scrape[FX_PATH];
    build_data_(fx_scratch("prom_train", base, run, "run", log, "run.log", tf, "clasp.prom", scrape,
                           "scrape.txt", NULL));
    char extra[4 * sizeof g_data + FX_PATH + 512];
    snprintf(extra, sizeof extra,
             "--steps 5000 --save-every 3 --val %s/test-000000.tar --zeroshot %s/classnames.txt "
             "--templates %s/templates.txt --val-every 4 --metrics-addr 127.0.0.1:0 "
             "--metrics-textfile %s",
             g_data, g_data, g_data, tf);
    pid_t pid = spawn_train_(run, extra, log);
    int port = wait_port_(log);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    /* a client that never finishes its request, held open for the rest of the run */
    int slow = slow_client_(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
    char *t = scrape_all_(url);
    expect_sane_(t);
    cr_assert(fx_write_str(scrape, t));
    char *out = NULL;
    cr_assert_eq(promtool_(scrape, &out), 0, "promtool on the scrape:\n%s", out);
    free(out);
    /* steps go on while the slow client holds its connection, and each train line publishes
     * (not only checkpoints every 3 and evaluations every 4 steps) */
    double step = value_(t, "clasp_train_step"), later = step;
    bool logged = false;
    for (int i = 0; i < 600 && !logged; i++) {
        char *u = NULL;
        if (curl_("GET", url, NULL, &u, NULL) == 200) later = value_(u, "clasp_train_step");
        free(u);
        logged = later > step && fmod(later, 3) != 0 && fmod(later, 4) != 0;
        sleep_ms_(50);
    }
    cr_assert(logged,
              "no train line published after step %g (last seen %g) while a client held "
              "a connection",
              step, later);
    cr_assert_eq(promtool_(tf, &out), 0, "promtool on the textfile:\n%s", out);
    free(out);
    char *tt = fx_read_text(tf);
    cr_assert_geq(value_(tt, "clasp_train_step"), step, "%s", tt);
    cr_assert(isfinite(value_(tt, "clasp_train_zeroshot_accuracy_ratio{k=\"1\"}")), "%s", tt);
    free(tt);
    close(slow);
    kill(pid, SIGTERM); /* a signal ends training with a checkpoint, exit 3 */
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3, "exit status %d", st);
    free(t);
}

/* A bad --metrics-addr is a usage error (exit 2) naming the flag, before any training. */
Test(train_metrics, bad_address_is_a_usage_error) {
    char base[FX_PATH], run[FX_PATH];
    fx_scratch("prom_badaddr", base, run, "run", NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    char busy[64];
    snprintf(busy, sizeof busy, "127.0.0.1:%d", ntohs(a.sin_port));
    const struct {
        const char *addr, *says;
    } cases[] = {{"127.0.0.1", "HOST:PORT"},
                 {"127.0.0.1:99999", "port"},
                 {"0.0.0.0:9108", "not a loopback address"},
                 {busy, "in use"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = NULL;
        int rc = fx_clasp(&out,
                          "train --model %s/configs/fmnist-small.json --train x.tar --out %s "
                          "--metrics-addr '%s' 2>&1",
                          CLASP_SOURCE_DIR, run, cases[i].addr);
        cr_assert_eq(rc, 2, "%s: exit %d: %s", cases[i].addr, rc, out);
        cr_assert(strstr(out, "--metrics-addr") && strstr(out, cases[i].says), "%s: %s",
                  cases[i].addr, out);
        free(out);
    }
    close(fd);
    char *out = NULL;
    int rc = fx_clasp(&out,
                      "train --model %s/configs/fmnist-small.json --train x.tar --out %s "
                      "--metrics-allow-remote 2>&1",
                      CLASP_SOURCE_DIR, run);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--metrics-allow-remote needs --metrics-addr"), "%s", out);
    free(out);
}

/* A textfile that cannot be written stops the run at its start, naming the flag. */
Test(train_metrics, unwritable_textfile_is_an_error) {
    char base[FX_PATH], run[FX_PATH], tf[FX_PATH];
    build_data_(fx_scratch("prom_badtf", base, run, "run", tf, "no/such/dir/x.prom", NULL));
    char *out = NULL;
    int rc = fx_clasp(&out,
                      "train --model %s/configs/fmnist-small.json --train "
                      "'%s/train-{000000..000004}.tar' --out %s --batch-size 64 --steps 2 "
                      "--no-progress --metrics-textfile %s 2>&1",
                      CLASP_SOURCE_DIR, g_data, run, tf);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "--metrics-textfile") && strstr(out, "no/such/dir/x.prom"), "%s", out);
    free(out);
}
