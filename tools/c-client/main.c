/*
 * pemis-c-client - a minimal client of the PEMIS wire protocol, version 1 (docs/PROTOCOL.md).
 *
 *   pemis-c-client HOST PORT health
 *   pemis-c-client HOST PORT echo TEXT [--timeout-ms N] [--delay-ms N]
 *   pemis-c-client HOST PORT children --user NAME [--kindergarten CODE] [--class-id ID]
 *   ... [--tls] [--ca-file PEM]   TLS (OpenSSL) before HELLO, the server verified (docs/CONFIGURATION.md)
 *
 * One connection, unary calls one after another on streams 1, 3, 5, ..., blocking I/O. `children`
 * logs in (password from PEMIS_PASSWORD, else the first line of standard input), then lists the
 * kindergarten's children page by page with the session token in the call metadata.
 * Exit status: 0 success, 1 usage, 2 a call ended with a non-OK status, 3 connection or protocol
 * failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "wire.h"
#include "pemis/v1/children.pb-c.h"
#include "pemis/v1/echo.pb-c.h"
#include "pemis/v1/health.pb-c.h"
#include "pemis/v1/session.pb-c.h"
#include "pemis/wire/v1/wire.pb-c.h"

#define EXIT_USAGE 1
#define EXIT_CALL_FAILED 2
#define EXIT_CONN_FAILED 3

#define PROTOCOL_VERSION 1u
#define CLIENT_MAX_FRAME_SIZE (4u * 1024u * 1024u) /* 4 MiB, announced in our HELLO */
#define CLIENT_STREAM_WINDOW 64u                   /* MESSAGE frames the server may send per call */
#define CLIENT_AGENT "pemis-c-client/1"
#define FIRST_STREAM_ID 1u /* client stream ids: odd, increasing (section 5) */
#define MAX_PASSWORD 1024
#define HANDSHAKE_TIMEOUT_US (10 * 1000000LL) /* waiting for the server's HELLO */
#define DRAIN_TIMEOUT_US (1000000LL)          /* waiting for the server to close after our GOAWAY */

#define STATUS_OK 0u
#define STATUS_DEADLINE_EXCEEDED 4u
#define STATUS_RESOURCE_EXHAUSTED 8u

#define GOAWAY_NO_ERROR PEMIS__WIRE__V1__GO_AWAY__CODE__NO_ERROR
#define GOAWAY_PROTOCOL_ERROR PEMIS__WIRE__V1__GO_AWAY__CODE__PROTOCOL_ERROR
#define GOAWAY_FRAME_TOO_LARGE PEMIS__WIRE__V1__GO_AWAY__CODE__FRAME_TOO_LARGE
#define GOAWAY_UNSUPPORTED_VERSION PEMIS__WIRE__V1__GO_AWAY__CODE__UNSUPPORTED_VERSION

static const char *const status_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};

static const char *status_name(uint32_t code)
{
    return code < sizeof status_names / sizeof status_names[0] ? status_names[code] : "UNRECOGNIZED";
}

static const char *goaway_code_name(uint32_t code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&pemis__wire__v1__go_away__code__descriptor, (int)code);
    return v != NULL ? v->name : "UNRECOGNIZED";
}

/* ------------------------------------------------------------------ options */

enum command { CMD_HEALTH, CMD_ECHO, CMD_CHILDREN };

typedef struct {
    const char *host;
    const char *port;
    enum command cmd;
    const char *text;
    const char *method; /* full method path (health, echo) */
    const char *user;         /* children: who logs in */
    const char *kindergarten; /* children: institution code, or NULL for the user's own */
    const char *class_id;     /* children: one class only, or NULL */
    int has_timeout;
    uint64_t timeout_ms;
    uint32_t delay_ms;
    int trace;             /* hidden: --trace, frames on stderr */
    int tls;               /* --tls, or implied by --ca-file */
    const char *ca_file;   /* --ca-file: CA certificates (PEM) to verify the server; NULL: system store */
    int no_local_deadline; /* hidden: --no-local-deadline, rely on the server's deadline only */
} options;

static void usage(FILE *out)
{
    fputs("usage: pemis-c-client HOST PORT health [--timeout-ms N]\n"
          "       pemis-c-client HOST PORT echo TEXT [--timeout-ms N] [--delay-ms N]\n"
          "       pemis-c-client HOST PORT children --user NAME [--kindergarten CODE] [--class-id ID]\n"
          "                      [--timeout-ms N]   (password: PEMIS_PASSWORD, else a line on stdin)\n"
          "options for all: --tls (verify against the system's CAs) or --ca-file PEM (against these)\n"
          "exit status: 0 ok, 1 usage, 2 call failed (non-OK status), 3 connection/protocol error\n",
          out);
}

/* Parses a decimal number in [0, max]; no sign, no spaces. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Returns 0, or EXIT_USAGE after printing why. */
static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        exit(0);
    }
    if (argc < 4) {
        usage(stderr);
        return EXIT_USAGE;
    }
    o->host = argv[1];
    o->port = argv[2];
    uint64_t port;
    if (parse_uint(o->port, 65535, &port) != 0 || port == 0) {
        fprintf(stderr, "error: invalid port '%s'\n", o->port);
        return EXIT_USAGE;
    }
    if (strcmp(argv[3], "health") == 0) {
        o->cmd = CMD_HEALTH;
        o->method = "/pemis.v1.Health/Check";
    } else if (strcmp(argv[3], "echo") == 0) {
        o->cmd = CMD_ECHO;
        o->method = "/pemis.v1.Echo/Get";
    } else if (strcmp(argv[3], "children") == 0) {
        o->cmd = CMD_CHILDREN;
        o->method = "/pemis.v1.ChildRecords/ListChildren";
    } else {
        fprintf(stderr, "error: unknown command '%s'\n", argv[3]);
        usage(stderr);
        return EXIT_USAGE;
    }

    int only_positional = 0, has_delay = 0;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i];
        if (!only_positional && strncmp(a, "--", 2) == 0) {
            if (strcmp(a, "--") == 0) {
                only_positional = 1;
                continue;
            }
            if (strcmp(a, "--help") == 0) {
                usage(stdout);
                exit(0);
            }
            if (strcmp(a, "--trace") == 0) {
                o->trace = 1;
                continue;
            }
            if (strcmp(a, "--tls") == 0) {
                o->tls = 1;
                continue;
            }
            if (strcmp(a, "--no-local-deadline") == 0) {
                o->no_local_deadline = 1;
                continue;
            }
            /* Options with a value: "--name N" or "--name=N". */
            const char *name = a, *value = NULL;
            size_t name_len = strlen(a);
            const char *eq = strchr(a, '=');
            if (eq != NULL) {
                name_len = (size_t)(eq - a);
                value = eq + 1;
            }
            int is_timeout = name_len == 12 && strncmp(name, "--timeout-ms", 12) == 0;
            int is_delay = name_len == 10 && strncmp(name, "--delay-ms", 10) == 0;
            int is_method = name_len == 8 && strncmp(name, "--method", 8) == 0; /* hidden, debug */
            int is_user = name_len == 6 && strncmp(name, "--user", 6) == 0;
            int is_kindergarten = name_len == 14 && strncmp(name, "--kindergarten", 14) == 0;
            int is_class = name_len == 10 && strncmp(name, "--class-id", 10) == 0;
            int is_ca_file = name_len == 9 && strncmp(name, "--ca-file", 9) == 0;
            if ((is_user || is_kindergarten || is_class) && o->cmd != CMD_CHILDREN) {
                fprintf(stderr, "error: option '%.*s' applies to children only\n", (int)name_len, name);
                return EXIT_USAGE;
            }
            if (!is_timeout && !is_delay && !is_method && !is_user && !is_kindergarten && !is_class && !is_ca_file) {
                fprintf(stderr, "error: unknown option '%s'\n", a);
                return EXIT_USAGE;
            }
            if (value == NULL) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "error: option '%s' needs a value\n", a);
                    return EXIT_USAGE;
                }
                value = argv[++i];
            }
            uint64_t v;
            if (is_ca_file) {
                o->tls = 1;
                o->ca_file = value;
            } else if (is_method) {
                o->method = value;
            } else if (is_user) {
                o->user = value;
            } else if (is_kindergarten) {
                o->kindergarten = value;
            } else if (is_class) {
                o->class_id = value;
            } else if (is_timeout) {
                if (parse_uint(value, UINT64_MAX / 1000, &v) != 0) {
                    fprintf(stderr, "error: invalid --timeout-ms '%s'\n", value);
                    return EXIT_USAGE;
                }
                o->has_timeout = 1;
                o->timeout_ms = v;
            } else {
                if (parse_uint(value, UINT32_MAX, &v) != 0) {
                    fprintf(stderr, "error: invalid --delay-ms '%s'\n", value);
                    return EXIT_USAGE;
                }
                has_delay = 1;
                o->delay_ms = (uint32_t)v;
            }
            continue;
        }
        if (o->cmd == CMD_ECHO && o->text == NULL) {
            o->text = a;
            continue;
        }
        fprintf(stderr, "error: unexpected argument '%s'\n", a);
        return EXIT_USAGE;
    }
    if (o->cmd == CMD_ECHO && o->text == NULL) {
        fprintf(stderr, "error: echo needs a TEXT argument\n");
        return EXIT_USAGE;
    }
    if (o->cmd != CMD_ECHO && has_delay) {
        fprintf(stderr, "error: --delay-ms applies to echo only\n");
        return EXIT_USAGE;
    }
    if (o->cmd == CMD_CHILDREN && (o->user == NULL || *o->user == '\0')) {
        fprintf(stderr, "error: children needs --user NAME\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* ------------------------------------------------------------------ connection */

typedef struct {
    wire_conn conn;
    uint32_t server_max_frame_size;   /* payload limit the server announced */
    uint32_t server_stream_window;    /* MESSAGE frames we may send per call */
    uint32_t server_max_streams;
    uint32_t server_version;
    uint32_t next_stream_id;          /* the id of our next call */
} client;

/* Prints "error: ..." to stderr. */
static void report(const char *fmt, ...)
{
    va_list ap;
    fputs("error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static wire_status send_goaway(client *c, uint32_t code, const char *reason)
{
    Pemis__Wire__V1__GoAway ga = PEMIS__WIRE__V1__GO_AWAY__INIT;
    ga.last_stream_id = 0; /* a client accepts no server-initiated streams */
    ga.code = (Pemis__Wire__V1__GoAway__Code)code;
    ga.reason = (char *)reason;
    return wire_send_message(&c->conn, WIRE_GOAWAY, 0, 0, &ga.base);
}

/*
 * The server broke the protocol: send GOAWAY with the code and reason (section 8: "before closing
 * because of an error, a side sends GOAWAY"), report, and return EXIT_CONN_FAILED.
 * The caller closes the connection.
 */
static int protocol_error(client *c, uint32_t goaway_code, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    (void)send_goaway(c, goaway_code, reason);
    report("protocol error (sent GOAWAY %s): %s", goaway_code_name(goaway_code), reason);
    return EXIT_CONN_FAILED;
}

static int frame_too_large(client *c, const wire_frame *f)
{
    return protocol_error(c, GOAWAY_FRAME_TOO_LARGE,
                          "%s frame on stream %" PRIu32 " has a %" PRIu32
                          "-byte payload, over the limit of %u bytes",
                          wire_kind_name(f->kind), f->stream_id, f->length, CLIENT_MAX_FRAME_SIZE);
}

static int io_failure(client *c, wire_status st, const char *when)
{
    report("%s: %s", when, wire_status_text(&c->conn, st));
    return EXIT_CONN_FAILED;
}

/*
 * Handles a GOAWAY frame's payload; prints and returns EXIT_CONN_FAILED, or 0 to go on.
 * stream_id is the call in progress (0 during the handshake).
 */
static int handle_goaway(client *c, const wire_frame *f, int handshake, uint32_t stream_id)
{
    Pemis__Wire__V1__GoAway *ga = pemis__wire__v1__go_away__unpack(NULL, f->length, f->payload);
    if (ga == NULL)
        return protocol_error(c, GOAWAY_PROTOCOL_ERROR, "malformed GOAWAY payload (%" PRIu32 " bytes)",
                              f->length);
    int rc = 0;
    if (handshake || ga->code != GOAWAY_NO_ERROR) {
        report("server sent GOAWAY code=%u (%s) last_stream_id=%" PRIu32 " reason=%s",
               (unsigned)ga->code, goaway_code_name((uint32_t)ga->code), ga->last_stream_id,
               ga->reason);
        rc = EXIT_CONN_FAILED;
    } else if (ga->last_stream_id < stream_id) {
        /* Section 8: our call was not processed; it fails with UNAVAILABLE and may be retried. */
        report("server is going away (GOAWAY NO_ERROR, last_stream_id=%" PRIu32
               ", reason=%s): the call on stream %" PRIu32 " was not processed (UNAVAILABLE); retry "
               "on a new connection",
               ga->last_stream_id, ga->reason, stream_id);
        rc = EXIT_CONN_FAILED;
    }
    /* Otherwise a graceful shutdown that still covers our call: it runs to completion. */
    pemis__wire__v1__go_away__free_unpacked(ga, NULL);
    return rc;
}

/* Section 4: send our HELLO, read and check the server's. Returns 0 or an exit status. */
static int handshake(client *c)
{
    Pemis__Wire__V1__Hello hello = PEMIS__WIRE__V1__HELLO__INIT;
    hello.min_version = PROTOCOL_VERSION;
    hello.max_version = PROTOCOL_VERSION;
    hello.max_frame_size = CLIENT_MAX_FRAME_SIZE;
    hello.initial_stream_window = CLIENT_STREAM_WINDOW;
    hello.max_concurrent_streams = 0;
    hello.agent = CLIENT_AGENT;
    wire_status st = wire_send_message(&c->conn, WIRE_HELLO, 0, 0, &hello.base);
    if (st != WIRE_OK)
        return io_failure(c, st, "sending HELLO");

    wire_frame f;
    st = wire_read_frame(&c->conn, &f, CLIENT_MAX_FRAME_SIZE, wire_now_us() + HANDSHAKE_TIMEOUT_US);
    if (st == WIRE_TIMEOUT) {
        report("no HELLO from the server within %lld s", HANDSHAKE_TIMEOUT_US / 1000000);
        return EXIT_CONN_FAILED;
    }
    if (st != WIRE_OK)
        return io_failure(c, st, "waiting for the server's HELLO");

    int rc = 0;
    if (f.kind != WIRE_HELLO && f.kind != WIRE_GOAWAY) {
        rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR,
                            "expected HELLO as the server's first frame, got %s (0x%02x)",
                            wire_kind_name(f.kind), (unsigned)f.kind);
    } else if (f.oversized) {
        rc = frame_too_large(c, &f);
    } else if (f.stream_id != 0) {
        rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "%s on stream %" PRIu32 " instead of 0",
                            wire_kind_name(f.kind), f.stream_id);
    } else if (f.kind == WIRE_GOAWAY) {
        /* e.g. UNSUPPORTED_VERSION: the server refuses the connection. */
        rc = handle_goaway(c, &f, 1, 0);
    } else {
        Pemis__Wire__V1__Hello *h = pemis__wire__v1__hello__unpack(NULL, f.length, f.payload);
        if (h == NULL) {
            rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "malformed HELLO payload (%" PRIu32 " bytes)",
                                f.length);
        } else if (h->min_version != PROTOCOL_VERSION || h->max_version != PROTOCOL_VERSION) {
            rc = protocol_error(c, GOAWAY_UNSUPPORTED_VERSION,
                                "server HELLO chose version min=%" PRIu32 " max=%" PRIu32
                                "; this client speaks only version %u",
                                h->min_version, h->max_version, PROTOCOL_VERSION);
        } else if (h->max_frame_size < WIRE_MIN_FRAME_SIZE) {
            rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR,
                                "server HELLO max_frame_size %" PRIu32 " is below %u",
                                h->max_frame_size, WIRE_MIN_FRAME_SIZE);
        } else if (h->initial_stream_window == 0) {
            rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "server HELLO initial_stream_window is 0");
        } else {
            c->server_version = h->max_version;
            c->server_max_frame_size = h->max_frame_size;
            c->server_stream_window = h->initial_stream_window;
            c->server_max_streams = h->max_concurrent_streams;
            if (c->conn.trace)
                fprintf(stderr,
                        "trace: server HELLO version=%" PRIu32 " max_frame_size=%" PRIu32
                        " initial_stream_window=%" PRIu32 " max_concurrent_streams=%" PRIu32
                        " agent=%s\n",
                        h->max_version, h->max_frame_size, h->initial_stream_window,
                        h->max_concurrent_streams, h->agent);
        }
        if (h != NULL)
            pemis__wire__v1__hello__free_unpacked(h, NULL);
    }
    wire_frame_free(&f);
    return rc;
}

/* ------------------------------------------------------------------ the call */

typedef struct {
    uint32_t code;       /* final status (from CALL_END, or decided locally) */
    char *message;       /* malloc'd */
    uint8_t *response;   /* first response message, malloc'd (NULL if none) */
    size_t response_len;
    uint32_t responses;  /* MESSAGE frames received on the call */
} call_result;

static void call_result_free(call_result *r)
{
    free(r->message);
    free(r->response);
    memset(r, 0, sizeof *r);
}

/* Records the call's final status. Returns 0, or EXIT_CONN_FAILED (reported) when out of memory. */
static int set_status(call_result *r, uint32_t code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(r->message);
    r->code = code;
    r->message = strdup(buf);
    if (r->message == NULL) {
        report("out of memory");
        return EXIT_CONN_FAILED;
    }
    return 0;
}

static void send_cancel(client *c, uint32_t stream_id, const char *reason)
{
    Pemis__Wire__V1__Cancel cancel = PEMIS__WIRE__V1__CANCEL__INIT;
    cancel.reason = (char *)reason;
    /* Best effort: the call is over for us whether or not this reaches the server. */
    (void)wire_send_message(&c->conn, WIRE_CANCEL, 0, stream_id, &cancel.base);
}

/* The frames of one call on stream_id; see run_call. */
static int run_call_frames(client *c, const options *o, uint32_t stream_id,
                           const Pemis__Wire__V1__CallStart *start, const ProtobufCMessage *request,
                           call_result *res)
{
    size_t start_len = protobuf_c_message_get_packed_size(&start->base);
    size_t req_len = protobuf_c_message_get_packed_size(request);
    if (start_len > c->server_max_frame_size || req_len > c->server_max_frame_size) {
        /* Section 2: never send a frame over the peer's limit; fail the call locally. */
        return set_status(res, STATUS_RESOURCE_EXHAUSTED,
                          "%s of %zu bytes exceeds the server's max_frame_size of %" PRIu32
                          " (not sent)",
                          start_len > c->server_max_frame_size ? "CALL_START" : "request message",
                          start_len > c->server_max_frame_size ? start_len : req_len,
                          c->server_max_frame_size);
    }

    wire_buf out = { NULL, 0, 0 };
    if (wire_buf_message(&out, WIRE_CALL_START, 0, stream_id, &start->base) != 0 ||
        wire_buf_message(&out, WIRE_MESSAGE, 0, stream_id, request) != 0 ||
        wire_buf_frame(&out, WIRE_CLOSE_SEND, 0, stream_id, NULL, 0) != 0) {
        wire_buf_free(&out);
        report("out of memory");
        return EXIT_CONN_FAILED;
    }
    wire_status st = wire_write(&c->conn, &out);
    wire_buf_free(&out);
    if (st != WIRE_OK)
        return io_failure(c, st, "sending the call");

    /* Section 6: the client enforces the deadline itself too. */
    int64_t deadline = -1;
    if (o->has_timeout && o->timeout_ms > 0 && !o->no_local_deadline) {
        int64_t now = wire_now_us();
        if (o->timeout_ms <= (uint64_t)(INT64_MAX - now) / 1000u)
            deadline = now + (int64_t)(o->timeout_ms * 1000u);
    }

    for (;;) {
        wire_frame f;
        st = wire_read_frame(&c->conn, &f, CLIENT_MAX_FRAME_SIZE, deadline);
        if (st == WIRE_TIMEOUT) {
            send_cancel(c, stream_id, "deadline exceeded");
            return set_status(res, STATUS_DEADLINE_EXCEEDED,
                              "deadline of %" PRIu64 " ms exceeded (client side); call cancelled",
                              o->timeout_ms);
        }
        if (st != WIRE_OK)
            return io_failure(c, st, "waiting for the end of the call");

        int rc = -1; /* -1: go on reading; otherwise return rc */
        switch (f.kind) {
        case WIRE_HELLO:
        case WIRE_PING:
        case WIRE_GOAWAY: /* connection-level frames */
            if (f.oversized) {
                rc = frame_too_large(c, &f);
            } else if (f.stream_id != 0) {
                rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "%s on stream %" PRIu32 " instead of 0",
                                    wire_kind_name(f.kind), f.stream_id);
            } else if (f.kind == WIRE_HELLO) {
                rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "second HELLO from the server");
            } else if (f.kind == WIRE_PING) {
                if (f.length != WIRE_PING_SIZE) {
                    rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR,
                                        "PING payload is %" PRIu32 " bytes, not 8", f.length);
                } else if (!(f.flags & WIRE_FLAG_ACK)) {
                    st = wire_send(&c->conn, WIRE_PING, WIRE_FLAG_ACK, 0, f.payload, WIRE_PING_SIZE);
                    if (st != WIRE_OK)
                        rc = io_failure(c, st, "answering PING");
                } /* an ACK is never answered */
            } else {
                int g = handle_goaway(c, &f, 0, stream_id);
                if (g != 0)
                    rc = g;
            }
            break;

        case WIRE_CALL_START:
        case WIRE_CLOSE_SEND:
        case WIRE_CANCEL:
            rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR,
                                "%s sent by the server (client-to-server frame kind) on stream %" PRIu32,
                                wire_kind_name(f.kind), f.stream_id);
            break;

        case WIRE_RESPONSE_START:
        case WIRE_MESSAGE:
        case WIRE_CALL_END:
        case WIRE_WINDOW_UPDATE: /* stream frames */
            if (f.stream_id == 0) {
                rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "%s on stream 0", wire_kind_name(f.kind));
                break;
            }
            if (f.stream_id != stream_id) {
                if (c->conn.trace)
                    fprintf(stderr, "trace: ignoring %s for stream %" PRIu32 "\n",
                            wire_kind_name(f.kind), f.stream_id);
                break;
            }
            if (f.oversized && f.kind != WIRE_MESSAGE) {
                rc = frame_too_large(c, &f);
                break;
            }
            if (f.kind == WIRE_WINDOW_UPDATE) {
                /* We send one request message, far below any window: nothing to wait for. */
                if (f.length != 4 || wire_get_u32(f.payload) == 0)
                    rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR,
                                        "WINDOW_UPDATE with a %" PRIu32 "-byte payload or a zero increment",
                                        f.length);
            } else if (f.kind == WIRE_RESPONSE_START) {
                /* Initial metadata: validated, not used. It may also be absent. */
                Pemis__Wire__V1__ResponseStart *rs =
                    pemis__wire__v1__response_start__unpack(NULL, f.length, f.payload);
                if (rs == NULL)
                    rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "malformed RESPONSE_START payload");
                else
                    pemis__wire__v1__response_start__free_unpacked(rs, NULL);
            } else if (f.kind == WIRE_MESSAGE) {
                if (++res->responses > CLIENT_STREAM_WINDOW) {
                    rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR,
                                        "MESSAGE beyond the stream window of %u on stream %u",
                                        CLIENT_STREAM_WINDOW, stream_id);
                } else if (f.oversized) {
                    /* Section 9: skip it, fail the call with RESOURCE_EXHAUSTED, send CANCEL. */
                    send_cancel(c, stream_id, "response message over max_frame_size");
                    rc = set_status(res, STATUS_RESOURCE_EXHAUSTED,
                                    "response message of %" PRIu32
                                    " bytes exceeds this client's max_frame_size of %u",
                                    f.length, CLIENT_MAX_FRAME_SIZE);
                } else if (res->response == NULL) {
                    res->response = f.payload; /* keep it */
                    res->response_len = f.length;
                    f.payload = NULL;
                }
            } else { /* CALL_END */
                Pemis__Wire__V1__CallEnd *end = pemis__wire__v1__call_end__unpack(NULL, f.length, f.payload);
                if (end == NULL) {
                    rc = protocol_error(c, GOAWAY_PROTOCOL_ERROR, "malformed CALL_END payload");
                } else {
                    rc = set_status(res, end->code, "%s", end->message);
                    pemis__wire__v1__call_end__free_unpacked(end, NULL);
                }
            }
            break;

        default:
            /* Section 3: unknown kinds are ignored (their payload, if oversized, was skipped). */
            if (c->conn.trace)
                fprintf(stderr, "trace: ignoring unknown frame kind 0x%02x\n", (unsigned)f.kind);
            break;
        }
        wire_frame_free(&f);
        if (rc >= 0)
            return rc;
    }
}

/*
 * Runs one unary call of `method` on a new stream (the next odd id): CALL_START + MESSAGE +
 * CLOSE_SEND in one write, then frames until CALL_END. With a session token, CALL_START carries
 * the metadata entry "authorization: Bearer TOKEN" (section 5). Returns 0 when the call has a
 * final status in *res (possibly non-OK, possibly decided locally: deadline, oversized response),
 * or an exit status after reporting a connection or protocol failure.
 */
static int run_call(client *c, const options *o, const char *method, const char *token,
                    const ProtobufCMessage *request, call_result *res)
{
    memset(res, 0, sizeof *res);
    const uint32_t stream_id = c->next_stream_id;
    c->next_stream_id += 2;

    Pemis__Wire__V1__CallStart start = PEMIS__WIRE__V1__CALL_START__INIT;
    start.method = (char *)method;
    start.timeout_micros = o->has_timeout ? o->timeout_ms * 1000u : 0;

    char *bearer = NULL;
    Pemis__Wire__V1__MetadataEntry authorization = PEMIS__WIRE__V1__METADATA_ENTRY__INIT;
    Pemis__Wire__V1__MetadataEntry *metadata[1] = { &authorization };
    if (token != NULL) {
        size_t len = strlen("Bearer ") + strlen(token) + 1;
        bearer = malloc(len);
        if (bearer == NULL) {
            report("out of memory");
            return EXIT_CONN_FAILED;
        }
        snprintf(bearer, len, "Bearer %s", token);
        authorization.key = "authorization";
        authorization.value_case = PEMIS__WIRE__V1__METADATA_ENTRY__VALUE_TEXT;
        authorization.text = bearer;
        start.n_metadata = 1;
        start.metadata = metadata;
    }
    int rc = run_call_frames(c, o, stream_id, &start, request, res);
    free(bearer);
    return rc;
}

/*
 * Graceful end of the connection: GOAWAY NO_ERROR, half-close, then wait (briefly) for the server
 * to close its side so that nothing is left unread (which would make close() send a reset).
 */
static void finish_connection(client *c)
{
    if (send_goaway(c, GOAWAY_NO_ERROR, "client done") == WIRE_OK &&
        shutdown(c->conn.fd, SHUT_WR) == 0) {
        int64_t deadline = wire_now_us() + DRAIN_TIMEOUT_US;
        for (;;) {
            wire_frame f;
            wire_status st = wire_read_frame(&c->conn, &f, CLIENT_MAX_FRAME_SIZE, deadline);
            if (st != WIRE_OK) {
                if (c->conn.trace)
                    fprintf(stderr, "trace: after our GOAWAY: %s\n", wire_status_text(&c->conn, st));
                break;
            }
            wire_frame_free(&f);
        }
    }
    wire_close(&c->conn);
}

/* ------------------------------------------------------------------ results */

/*
 * A unary call is over: 0 when it ended OK with exactly one response (section 5), else the exit
 * status after printing why (a non-OK status as "error: code=<n> (<NAME>) message=<message>").
 */
static int check_unary(const call_result *res)
{
    if (res->code != STATUS_OK) {
        fprintf(stderr, "error: code=%" PRIu32 " (%s) message=%s\n", res->code, status_name(res->code),
                res->message != NULL ? res->message : "");
        return EXIT_CALL_FAILED;
    }
    if (res->responses != 1) {
        report("protocol error: unary call ended OK with %" PRIu32 " response messages instead of 1",
               res->responses);
        return EXIT_CONN_FAILED;
    }
    return 0;
}

static int print_health(const call_result *res)
{
    Pemis__V1__HealthCheckResponse *hr =
        pemis__v1__health_check_response__unpack(NULL, res->response_len, res->response);
    if (hr == NULL) {
        report("malformed HealthCheckResponse (%zu bytes)", res->response_len);
        return EXIT_CONN_FAILED;
    }
    const ProtobufCEnumValue *sv = protobuf_c_enum_descriptor_get_value(
        &pemis__v1__health_check_response__serving_status__descriptor, (int)hr->status);
    if (sv != NULL)
        printf("status=%s", sv->name);
    else
        printf("status=%d", (int)hr->status);
    printf(" version=%s protocol=%" PRIu32 "\n", hr->version, hr->protocol_version);
    pemis__v1__health_check_response__free_unpacked(hr, NULL);
    return 0;
}

static int print_echo(const call_result *res)
{
    Pemis__V1__EchoResponse *er = pemis__v1__echo_response__unpack(NULL, res->response_len, res->response);
    if (er == NULL) {
        report("malformed EchoResponse (%zu bytes)", res->response_len);
        return EXIT_CONN_FAILED;
    }
    printf("echo=%s\n", er->text);
    pemis__v1__echo_response__free_unpacked(er, NULL);
    return 0;
}

/* The password: PEMIS_PASSWORD if set (kept out of the process list), else one line of stdin. */
static int read_password(char *out, size_t size)
{
    const char *env = getenv("PEMIS_PASSWORD");
    if (env != NULL) {
        if (strlen(env) >= size) {
            fprintf(stderr, "error: PEMIS_PASSWORD is longer than %zu bytes\n", size - 1);
            return EXIT_USAGE;
        }
        strcpy(out, env);
        return 0;
    }
    if (fgets(out, (int)size, stdin) == NULL) {
        fprintf(stderr, "error: no password: set PEMIS_PASSWORD or give it on standard input\n");
        return EXIT_USAGE;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/*
 * children: Session/Login, then ChildRecords/ListChildren page by page on the same connection,
 * each call carrying the session token. One line per child, ID and record numbers as the server
 * sends them (masked in lists), then "children=<count> total=<total>".
 */
static int list_children(client *c, const options *o, const char *password)
{
    Pemis__V1__LoginRequest login = PEMIS__V1__LOGIN_REQUEST__INIT;
    login.username = (char *)o->user;
    login.password = (char *)password;
    call_result res;
    int rc = run_call(c, o, "/pemis.v1.Session/Login", NULL, &login.base, &res);
    if (rc == 0)
        rc = check_unary(&res);
    if (rc != 0) {
        call_result_free(&res);
        return rc;
    }
    Pemis__V1__LoginResponse *session = pemis__v1__login_response__unpack(NULL, res.response_len, res.response);
    call_result_free(&res);
    if (session == NULL) {
        report("malformed LoginResponse");
        return EXIT_CONN_FAILED;
    }

    size_t listed = 0;
    int64_t total = 0;
    char *page_token = strdup("");
    if (page_token == NULL) {
        report("out of memory");
        rc = EXIT_CONN_FAILED;
    }
    while (rc == 0) {
        Pemis__V1__PageRequest page = PEMIS__V1__PAGE_REQUEST__INIT;
        page.page_size = 500;
        page.page_token = page_token;
        Pemis__V1__ListChildrenRequest request = PEMIS__V1__LIST_CHILDREN_REQUEST__INIT;
        request.kindergarten_code = (char *)(o->kindergarten != NULL ? o->kindergarten : "");
        request.class_id = (char *)(o->class_id != NULL ? o->class_id : "");
        request.page = &page;
        rc = run_call(c, o, o->method, session->token, &request.base, &res);
        if (rc == 0)
            rc = check_unary(&res);
        if (rc != 0) {
            call_result_free(&res);
            break;
        }
        Pemis__V1__ListChildrenResponse *children =
            pemis__v1__list_children_response__unpack(NULL, res.response_len, res.response);
        call_result_free(&res);
        if (children == NULL) {
            report("malformed ListChildrenResponse");
            rc = EXIT_CONN_FAILED;
            break;
        }
        for (size_t i = 0; i < children->n_children; i++) {
            const Pemis__V1__Child *child = children->children[i];
            printf("child record=%s id=%s type=%s name=%s gender=%s", child->record_number,
                   child->id_document_number, child->id_document_type, child->name, child->gender);
            if (child->birth_date != NULL)
                printf(" born=%04d-%02d-%02d", child->birth_date->year, child->birth_date->month,
                       child->birth_date->day);
            printf(" state=%s class=%s\n", child->state, child->class_id);
        }
        listed += children->n_children;
        free(page_token);
        page_token = NULL;
        if (children->page != NULL) {
            total = children->page->total_count;
            if (children->page->next_page_token[0] != '\0')
                page_token = strdup(children->page->next_page_token);
        }
        pemis__v1__list_children_response__free_unpacked(children, NULL);
        if (page_token == NULL)
            break; /* the last page (or out of memory for the next token: stop) */
    }
    free(page_token);
    pemis__v1__login_response__free_unpacked(session, NULL);
    if (rc == 0)
        printf("children=%zu total=%" PRId64 "\n", listed, total);
    return rc;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;

    char password[MAX_PASSWORD];
    if (o.cmd == CMD_CHILDREN) {
        rc = read_password(password, sizeof password);
        if (rc != 0)
            return rc;
    }

    signal(SIGPIPE, SIG_IGN); /* a closed connection shows up as EPIPE from send() */

    client c;
    memset(&c, 0, sizeof c);
    c.conn.trace = o.trace;
    c.next_stream_id = FIRST_STREAM_ID;
    if (wire_connect(&c.conn, o.host, o.port) != 0) {
        report("%s", c.conn.error);
        return EXIT_CONN_FAILED;
    }
    if (o.tls && wire_start_tls(&c.conn, o.host, o.ca_file) != 0) {
        report("%s", c.conn.error);
        wire_close(&c.conn);
        return EXIT_CONN_FAILED;
    }

    rc = handshake(&c);
    if (rc != 0) {
        wire_close(&c.conn);
        return rc;
    }

    if (o.cmd == CMD_CHILDREN) {
        rc = list_children(&c, &o, password);
        memset(password, 0, sizeof password);
        if (rc == EXIT_CONN_FAILED)
            wire_close(&c.conn);
        else
            finish_connection(&c); /* success, or a call that ended with a non-OK status */
    } else {
        Pemis__V1__HealthCheckRequest health_req = PEMIS__V1__HEALTH_CHECK_REQUEST__INIT;
        Pemis__V1__EchoRequest echo_req = PEMIS__V1__ECHO_REQUEST__INIT;
        const ProtobufCMessage *request = &health_req.base;
        if (o.cmd == CMD_ECHO) {
            echo_req.text = (char *)o.text;
            echo_req.delay_ms = o.delay_ms;
            request = &echo_req.base;
        }
        call_result res;
        rc = run_call(&c, &o, o.method, NULL, request, &res);
        if (rc != 0) {
            call_result_free(&res);
            wire_close(&c.conn);
            return rc;
        }
        finish_connection(&c);
        rc = check_unary(&res);
        if (rc == 0)
            rc = o.cmd == CMD_HEALTH ? print_health(&res) : print_echo(&res);
        call_result_free(&res);
    }
    if (fflush(stdout) != 0 && rc == 0) {
        report("writing the result: %s", strerror(errno));
        rc = EXIT_CONN_FAILED;
    }
    return rc;
}
