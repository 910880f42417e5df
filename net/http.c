/* http.c: the route-table HTTP server over libmicrohttpd. See http.h. */
#include "net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct clasp_http_server {
    struct MHD_Daemon *d;
    clasp_http_route routes[CLASP_HTTP_MAX_ROUTES];
    int n_routes;
    size_t max_body;
    int port;
};

/* One request's body as it arrives. */
typedef struct request_ctx {
    char *body;
    size_t len, cap;
    bool too_large;
} request_ctx;

clasp_http_config clasp_http_default_config(void) {
    return (clasp_http_config){
        .max_body = (size_t)1 << 20, .threads = 1, .timeout_s = 30, .max_connections = 64};
}

const char *clasp_http_header(const clasp_http_request *req, const char *name) {
    return MHD_lookup_connection_value(req->conn_, MHD_HEADER_KIND, name);
}

const char *clasp_http_query(const clasp_http_request *req, const char *key) {
    return MHD_lookup_connection_value(req->conn_, MHD_GET_ARGUMENT_KIND, key);
}

clasp_status clasp_http_respond_text(clasp_http_response *res, int status, const char *content_type,
                                     const char *text) {
    size_t n = strlen(text);
    char *body = malloc(n + 1);
    if (!body) {
        clasp_http_respond_take(res, 500, NULL, NULL, 0);
        return clasp_set_error(CLASP_ERR_NOMEM, "http: out of memory (%zu bytes)", n);
    }
    memcpy(body, text, n + 1);
    clasp_http_respond_take(res, status, content_type, body, n);
    return CLASP_OK;
}

void clasp_http_respond_take(clasp_http_response *res, int status, const char *content_type,
                             char *body, size_t len) {
    free(res->body);
    res->status = status;
    res->content_type = content_type;
    res->body = body;
    res->body_len = body ? len : 0;
}

/* ---- addresses ----------------------------------------------------------------------------- */

static bool is_loopback_(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

/* "HOST:PORT" / "[V6]:PORT" into host[cap] and *port. */
static clasp_status split_addr_(const char *addr, char *host, size_t cap, int *port) {
    const char *colon = NULL;
    const char *h = addr;
    size_t hn;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return clasp_set_error(CLASP_ERR_ARG, "'%s': expected [IPv6]:PORT", addr);
        h = addr + 1;
        hn = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || strchr(addr, ':') != colon)
            return clasp_set_error(CLASP_ERR_ARG, "'%s': expected HOST:PORT (e.g. 127.0.0.1:9108)",
                                   addr);
        hn = (size_t)(colon - addr);
    }
    if (hn == 0 || hn >= cap)
        return clasp_set_error(CLASP_ERR_ARG, "'%s': expected HOST:PORT with a host", addr);
    memcpy(host, h, hn);
    host[hn] = '\0';
    const char *p = colon + 1;
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 0 || v > 65535 || *p == '-' || *p == '+')
        return clasp_set_error(CLASP_ERR_ARG, "'%s': port '%s' is not a number from 0 to 65535",
                               addr, p);
    *port = (int)v;
    return CLASP_OK;
}

/* A listening socket on c->addr; *fd_out, or an error naming the address. */
static clasp_status listen_(const clasp_http_config *c, int *fd_out, int *family) {
    char host[256], port_s[8];
    int port = 0;
    CLASP_TRY(split_addr_(c->addr, host, sizeof host, &port));
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int rc = getaddrinfo(host, port_s, &hints, &ai);
    if (rc != 0 || !ai)
        return clasp_set_error(CLASP_ERR_ARG, "'%s': cannot resolve host '%s': %s", c->addr, host,
                               gai_strerror(rc));
    clasp_status s = CLASP_OK;
    if (!c->allow_remote && !is_loopback_(ai->ai_addr)) {
        s = clasp_set_error(CLASP_ERR_ARG,
                            "'%s' is not a loopback address: metrics and search servers bind to "
                            "127.0.0.1 or ::1 unless remote access is allowed explicitly",
                            c->addr);
    } else {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        int one = 1;
        if (fd < 0) {
            s = clasp_set_error(CLASP_ERR_IO, "'%s': socket: %s", c->addr, strerror(errno));
        } else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
                   bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            s = clasp_set_error(CLASP_ERR_IO, "'%s': cannot listen: %s", c->addr, strerror(errno));
            close(fd);
        } else {
            *fd_out = fd;
            *family = ai->ai_family;
        }
    }
    freeaddrinfo(ai);
    return s;
}

static int bound_port_(int fd) {
    struct sockaddr_storage ss;
    socklen_t n = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &n) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    return -1;
}

/* ---- requests ------------------------------------------------------------------------------ */

static enum MHD_Result send_(struct MHD_Connection *conn, clasp_http_response *res) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(res->body_len, res->body ? res->body : (void *)"",
                                        res->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(res->body);
        return MHD_NO;
    }
    res->body = NULL; /* the response owns it now */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            res->content_type ? res->content_type : "text/plain; charset=utf-8");
    if (res->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res->allow);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)(res->status ? res->status : 200), r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result error_(struct MHD_Connection *conn, int status, const char *text) {
    clasp_http_response res = {0};
    clasp_http_respond_text(&res, status, NULL, text);
    return send_(conn, &res);
}

/* The route for (method, path): *route, or NULL with the response status (404/405) in res. */
static const clasp_http_route *route_(const clasp_http_server *s, const char *method,
                                      const char *path, clasp_http_response *res, char *allow,
                                      size_t cap) {
    allow[0] = '\0';
    for (int i = 0; i < s->n_routes; i++) {
        if (strcmp(s->routes[i].path, path) != 0) continue;
        if (!strcmp(s->routes[i].method, method)) return &s->routes[i];
        size_t n = strlen(allow);
        snprintf(allow + n, cap - n, "%s%s", n ? ", " : "", s->routes[i].method);
    }
    if (allow[0]) {
        clasp_http_respond_text(res, 405, NULL, "method not allowed\n");
        res->allow = allow;
    } else {
        clasp_http_respond_text(res, 404, NULL, "not found\n");
    }
    return NULL;
}

/* Appends an upload piece to the request body, or marks it too large. */
static void take_upload_(const clasp_http_server *s, request_ctx *rc, const char *data, size_t n) {
    if (rc->too_large || n > s->max_body - rc->len) {
        rc->too_large = true;
        return;
    }
    if (rc->len + n + 1 > rc->cap) {
        size_t cap = rc->cap ? rc->cap : 4096;
        while (cap < rc->len + n + 1) cap *= 2;
        char *p = realloc(rc->body, cap);
        if (!p) {
            rc->too_large = true; /* cannot hold it: refused like an oversized body */
            return;
        }
        rc->body = p;
        rc->cap = cap;
    }
    memcpy(rc->body + rc->len, data, n);
    rc->len += n;
    rc->body[rc->len] = '\0';
}

static enum MHD_Result access_(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    (void)version;
    clasp_http_server *s = cls;
    request_ctx *rc = *con_cls;
    if (!rc) { /* the headers are in: check the announced length before any body arrives */
        rc = calloc(1, sizeof *rc);
        if (!rc) return MHD_NO;
        *con_cls = rc;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->max_body) {
            rc->too_large = true;
            return error_(conn, 413, "request body too large\n");
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        take_upload_(s, rc, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rc->too_large) return error_(conn, 413, "request body too large\n");
    clasp_http_response res = {0};
    char allow[128];
    const clasp_http_route *r = route_(s, method, url, &res, allow, sizeof allow);
    if (r) {
        clasp_http_request req = {.method = method,
                                  .path = url,
                                  .content_type = MHD_lookup_connection_value(
                                      conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
                                  .body = rc->body ? rc->body : "",
                                  .body_len = rc->len,
                                  .conn_ = conn};
        r->fn(r->user, &req, &res);
    }
    return send_(conn, &res);
}

static void completed_(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    request_ctx *rc = *con_cls;
    if (rc) free(rc->body);
    free(rc);
    *con_cls = NULL;
}

/* ---- the server ---------------------------------------------------------------------------- */

static clasp_status check_config_(const clasp_http_config *c) {
    if (!c->addr) return clasp_set_error(CLASP_ERR_ARG, "http: no address");
    if (c->n_routes < 1 || c->n_routes > CLASP_HTTP_MAX_ROUTES || !c->routes)
        return clasp_set_error(CLASP_ERR_ARG, "http: %d routes (1 to %d)", c->n_routes,
                               CLASP_HTTP_MAX_ROUTES);
    for (int i = 0; i < c->n_routes; i++) {
        const clasp_http_route *r = &c->routes[i];
        if (!r->method || !r->path || r->path[0] != '/' || !r->fn)
            return clasp_set_error(CLASP_ERR_ARG,
                                   "http: route %d needs a method, a path starting with '/' and "
                                   "a handler",
                                   i);
    }
    if (c->threads < 1 || c->threads > 256)
        return clasp_set_error(CLASP_ERR_ARG, "http: %d threads (1 to 256)", c->threads);
    return CLASP_OK;
}

clasp_status clasp_http_start(const clasp_http_config *c, clasp_http_server **out) {
    *out = NULL;
    CLASP_TRY(check_config_(c));
    clasp_http_server *s = calloc(1, sizeof *s);
    if (!s) return clasp_set_error(CLASP_ERR_NOMEM, "http: out of memory");
    memcpy(s->routes, c->routes, (size_t)c->n_routes * sizeof *c->routes);
    s->n_routes = c->n_routes;
    s->max_body = c->max_body;
    int fd = -1, family = AF_INET;
    clasp_status st = listen_(c, &fd, &family);
    if (st != CLASP_OK) {
        free(s);
        return st;
    }
    s->port = bound_port_(fd);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | (family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, access_, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_NOTIFY_COMPLETED, completed_, (void *)NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(c->timeout_s ? c->timeout_s : 30), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(c->max_connections ? c->max_connections : 64), MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(c->threads > 1 ? c->threads : 0), MHD_OPTION_END);
    if (!s->d) {
        close(fd);
        free(s);
        return clasp_set_error(CLASP_ERR_IO, "'%s': the HTTP server (libmicrohttpd) did not start",
                               c->addr);
    }
    *out = s;
    return CLASP_OK;
}

int clasp_http_port(const clasp_http_server *s) {
    return s ? s->port : -1;
}

void clasp_http_stop(clasp_http_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d); /* closes the listening socket and every connection */
    free(s);
}
