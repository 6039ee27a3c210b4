/*
 * wire.c - framing layer of the PEMIS wire protocol, version 1. See wire.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* main() also ignores SIGPIPE */
#endif

#define TRACE_BYTES 64u

uint32_t wire_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void wire_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int64_t wire_now_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *wire_kind_name(uint8_t kind)
{
    switch (kind) {
    case WIRE_HELLO: return "HELLO";
    case WIRE_CALL_START: return "CALL_START";
    case WIRE_RESPONSE_START: return "RESPONSE_START";
    case WIRE_MESSAGE: return "MESSAGE";
    case WIRE_CLOSE_SEND: return "CLOSE_SEND";
    case WIRE_CALL_END: return "CALL_END";
    case WIRE_CANCEL: return "CANCEL";
    case WIRE_PING: return "PING";
    case WIRE_GOAWAY: return "GOAWAY";
    case WIRE_WINDOW_UPDATE: return "WINDOW_UPDATE";
    default: return "UNKNOWN";
    }
}

const char *wire_status_text(const wire_conn *conn, wire_status st)
{
    switch (st) {
    case WIRE_OK: return "ok";
    case WIRE_EOF: return "connection closed by the server";
    case WIRE_EOF_PARTIAL: return "connection closed by the server in the middle of a frame";
    case WIRE_IO_ERROR: return conn->error;
    case WIRE_TIMEOUT: return "timed out";
    case WIRE_NO_MEMORY: return "out of memory";
    }
    return "unknown error";
}

static void set_errno_error(wire_conn *conn, const char *what)
{
    snprintf(conn->error, sizeof conn->error, "%s: %s", what, strerror(errno));
}

/* ---------------------------------------------------------------- tracing */

static void trace_frame(const char *dir, uint8_t kind, uint8_t flags, uint32_t stream_id,
                        uint32_t length, const uint8_t *payload, int oversized)
{
    fprintf(stderr, "trace: %s %s (0x%02x) flags=0x%02x stream=%u length=%u", dir,
            wire_kind_name(kind), (unsigned)kind, (unsigned)flags, (unsigned)stream_id,
            (unsigned)length);
    if (oversized) {
        fprintf(stderr, " [over the limit, discarded]\n");
        return;
    }
    if (length > 0 && payload != NULL) {
        uint32_t n = length < TRACE_BYTES ? length : TRACE_BYTES;
        fputs(" payload=", stderr);
        for (uint32_t i = 0; i < n; i++)
            fprintf(stderr, "%02x", (unsigned)payload[i]);
        if (n < length)
            fputs("...", stderr);
    }
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------- connect */

int wire_connect(wire_conn *conn, const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL, *ai;
    int rc, fd = -1, saved = 0;

    conn->fd = -1;
    conn->ssl = NULL;
    conn->ssl_ctx = NULL;
    conn->error[0] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(conn->error, sizeof conn->error, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        do {
            rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        } while (rc != 0 && errno == EINTR);
        if (rc == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(conn->error, sizeof conn->error, "cannot connect to %s port %s: %s", host, port,
                 strerror(saved));
        return -1;
    }
    /* Small frames, request/response: don't let Nagle delay them. Failure is harmless. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn->fd = fd;
    return 0;
}

/* The reason OpenSSL gives for the last failure, after `what`. */
static void set_tls_error(wire_conn *conn, const char *what)
{
    char reason[160];
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "%s", errno != 0 ? strerror(errno) : "connection closed");
    snprintf(conn->error, sizeof conn->error, "%s: %s", what, reason);
    ERR_clear_error();
}

int wire_start_tls(wire_conn *conn, const char *host, const char *ca_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        set_tls_error(conn, "cannot set up TLS");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A peer that closes without close_notify ends the stream like a clean close. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int loaded = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(ctx);
    if (loaded != 1) {
        char what[128];
        snprintf(what, sizeof what, "cannot load the CA certificates from %s", ca_file ? ca_file : "the system store");
        set_tls_error(conn, what);
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) {
        set_tls_error(conn, "cannot set up TLS");
        SSL_CTX_free(ctx);
        return -1;
    }
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    int named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                      : SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    if (!named || SSL_set_fd(ssl, conn->fd) != 1) {
        set_tls_error(conn, "cannot set up TLS");
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        return -1;
    }
    errno = 0;
    if (SSL_connect(ssl) != 1) {
        long verified = SSL_get_verify_result(ssl);
        if (verified != X509_V_OK) {
            snprintf(conn->error, sizeof conn->error, "TLS: the server's certificate is not accepted: %s",
                     X509_verify_cert_error_string(verified));
            ERR_clear_error();
        } else {
            set_tls_error(conn, "TLS handshake failed");
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        return -1;
    }
    conn->ssl = ssl;
    conn->ssl_ctx = ctx;
    return 0;
}

void wire_close(wire_conn *conn)
{
    if (conn->ssl != NULL) {
        (void)SSL_shutdown(conn->ssl); /* close_notify; the reply is not awaited */
        SSL_free(conn->ssl);
        SSL_CTX_free(conn->ssl_ctx);
        conn->ssl = NULL;
        conn->ssl_ctx = NULL;
    }
    if (conn->fd >= 0) {
        close(conn->fd);
        conn->fd = -1;
    }
}

/* ---------------------------------------------------------------- reading */

/* Waits until fd is readable or the deadline (-1: none) passes. */
static wire_status wait_readable(wire_conn *conn, int64_t deadline_us)
{
    if (deadline_us < 0)
        return WIRE_OK;
    /* Bytes TLS has already decrypted do not show up on the socket. */
    if (conn->ssl != NULL && SSL_pending(conn->ssl) > 0)
        return WIRE_OK;
    for (;;) {
        int64_t now = wire_now_us();
        if (now >= deadline_us)
            return WIRE_TIMEOUT;
        int64_t ms = (deadline_us - now + 999) / 1000;
        if (ms > INT_MAX)
            ms = INT_MAX;
        struct pollfd pfd = { .fd = conn->fd, .events = POLLIN, .revents = 0 };
        int rc = poll(&pfd, 1, (int)ms);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            set_errno_error(conn, "poll");
            return WIRE_IO_ERROR;
        }
        if (rc > 0)
            return WIRE_OK; /* readable, closed or in error: recv() tells which */
    }
}

/*
 * Reads exactly n bytes into buf. *got receives the number of bytes read (also on failure).
 * End of stream returns WIRE_EOF; the caller decides whether that was between frames.
 */
static wire_status read_exact(wire_conn *conn, uint8_t *buf, size_t n, int64_t deadline_us,
                              size_t *got)
{
    size_t off = 0;
    *got = 0;
    while (off < n) {
        wire_status st = wait_readable(conn, deadline_us);
        if (st != WIRE_OK)
            return st;
        ssize_t r;
        if (conn->ssl != NULL) {
            size_t want = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
            errno = 0;
            int t = SSL_read(conn->ssl, buf + off, (int)want);
            if (t <= 0) {
                int e = SSL_get_error(conn->ssl, t);
                if (e == SSL_ERROR_ZERO_RETURN)
                    return WIRE_EOF;
                if (e == SSL_ERROR_SYSCALL && errno == EINTR)
                    continue;
                set_tls_error(conn, "read from server (TLS)");
                return WIRE_IO_ERROR;
            }
            r = t;
        } else {
            r = recv(conn->fd, buf + off, n - off, 0);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            set_errno_error(conn, "read from server");
            return WIRE_IO_ERROR;
        }
        if (r == 0)
            return WIRE_EOF;
        off += (size_t)r;
        *got = off;
    }
    return WIRE_OK;
}

/* Reads and drops exactly n bytes, in small chunks (an oversized payload is never buffered). */
static wire_status discard_exact(wire_conn *conn, uint64_t n, int64_t deadline_us)
{
    uint8_t chunk[16384];
    while (n > 0) {
        size_t want = n < sizeof chunk ? (size_t)n : sizeof chunk;
        size_t got;
        wire_status st = read_exact(conn, chunk, want, deadline_us, &got);
        if (st != WIRE_OK)
            return st == WIRE_EOF ? WIRE_EOF_PARTIAL : st;
        n -= want;
    }
    return WIRE_OK;
}

wire_status wire_read_frame(wire_conn *conn, wire_frame *frame, uint32_t limit, int64_t deadline_us)
{
    uint8_t hdr[WIRE_HEADER_SIZE];
    size_t got;
    wire_status st;

    memset(frame, 0, sizeof *frame);
    st = read_exact(conn, hdr, sizeof hdr, deadline_us, &got);
    if (st == WIRE_EOF)
        return got == 0 ? WIRE_EOF : WIRE_EOF_PARTIAL;
    if (st != WIRE_OK)
        return st;

    frame->length = wire_get_u32(hdr);
    frame->kind = hdr[4];
    frame->flags = hdr[5];
    frame->stream_id = wire_get_u32(hdr + 6);

    /* Compare with the limit before reading (section 2): never buffer an oversized payload. */
    if (frame->length > limit) {
        st = discard_exact(conn, frame->length, deadline_us);
        if (st != WIRE_OK)
            return st;
        frame->oversized = 1;
        if (conn->trace)
            trace_frame("<-", frame->kind, frame->flags, frame->stream_id, frame->length, NULL, 1);
        return WIRE_OK;
    }

    frame->payload = malloc(frame->length > 0 ? frame->length : 1);
    if (frame->payload == NULL)
        return WIRE_NO_MEMORY;
    st = read_exact(conn, frame->payload, frame->length, deadline_us, &got);
    if (st != WIRE_OK) {
        free(frame->payload);
        frame->payload = NULL;
        return st == WIRE_EOF ? WIRE_EOF_PARTIAL : st;
    }
    if (conn->trace)
        trace_frame("<-", frame->kind, frame->flags, frame->stream_id, frame->length,
                    frame->payload, 0);
    return WIRE_OK;
}

void wire_frame_free(wire_frame *frame)
{
    free(frame->payload);
    frame->payload = NULL;
}

/* ---------------------------------------------------------------- writing */

static int buf_reserve(wire_buf *buf, size_t extra)
{
    if (extra > SIZE_MAX - buf->len)
        return -1;
    size_t need = buf->len + extra;
    if (need <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(buf->data, cap);
    if (p == NULL)
        return -1;
    buf->data = p;
    buf->cap = cap;
    return 0;
}

int wire_buf_frame(wire_buf *buf, uint8_t kind, uint8_t flags, uint32_t stream_id,
                   const uint8_t *payload, size_t len)
{
    if (len > UINT32_MAX || buf_reserve(buf, WIRE_HEADER_SIZE + len) != 0)
        return -1;
    uint8_t *p = buf->data + buf->len;
    wire_put_u32(p, (uint32_t)len);
    p[4] = kind;
    p[5] = flags;
    wire_put_u32(p + 6, stream_id);
    if (len > 0)
        memcpy(p + WIRE_HEADER_SIZE, payload, len);
    buf->len += WIRE_HEADER_SIZE + len;
    return 0;
}

int wire_buf_message(wire_buf *buf, uint8_t kind, uint8_t flags, uint32_t stream_id,
                     const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > UINT32_MAX || buf_reserve(buf, WIRE_HEADER_SIZE + len) != 0)
        return -1;
    uint8_t *p = buf->data + buf->len;
    wire_put_u32(p, (uint32_t)len);
    p[4] = kind;
    p[5] = flags;
    wire_put_u32(p + 6, stream_id);
    if (len > 0 && protobuf_c_message_pack(msg, p + WIRE_HEADER_SIZE) != len)
        return -1;
    buf->len += WIRE_HEADER_SIZE + len;
    return 0;
}

void wire_buf_free(wire_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

wire_status wire_write(wire_conn *conn, const wire_buf *buf)
{
    if (conn->trace) {
        size_t off = 0;
        while (off + WIRE_HEADER_SIZE <= buf->len) {
            const uint8_t *h = buf->data + off;
            uint32_t len = wire_get_u32(h);
            trace_frame("->", h[4], h[5], wire_get_u32(h + 6), len, h + WIRE_HEADER_SIZE, 0);
            off += WIRE_HEADER_SIZE + len;
        }
    }
    size_t off = 0;
    while (off < buf->len) {
        ssize_t w;
        if (conn->ssl != NULL) {
            size_t want = buf->len - off < (size_t)INT_MAX ? buf->len - off : (size_t)INT_MAX;
            errno = 0;
            int t = SSL_write(conn->ssl, buf->data + off, (int)want);
            if (t <= 0) {
                if (SSL_get_error(conn->ssl, t) == SSL_ERROR_SYSCALL && errno == EINTR)
                    continue;
                set_tls_error(conn, "write to server (TLS)");
                return WIRE_IO_ERROR;
            }
            w = t;
        } else {
            w = send(conn->fd, buf->data + off, buf->len - off, MSG_NOSIGNAL);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            set_errno_error(conn, "write to server");
            return WIRE_IO_ERROR;
        }
        off += (size_t)w;
    }
    return WIRE_OK;
}

wire_status wire_send(wire_conn *conn, uint8_t kind, uint8_t flags, uint32_t stream_id,
                      const uint8_t *payload, size_t len)
{
    wire_buf buf = { NULL, 0, 0 };
    wire_status st = WIRE_NO_MEMORY;
    if (wire_buf_frame(&buf, kind, flags, stream_id, payload, len) == 0)
        st = wire_write(conn, &buf);
    wire_buf_free(&buf);
    return st;
}

wire_status wire_send_message(wire_conn *conn, uint8_t kind, uint8_t flags, uint32_t stream_id,
                              const ProtobufCMessage *msg)
{
    wire_buf buf = { NULL, 0, 0 };
    wire_status st = WIRE_NO_MEMORY;
    if (wire_buf_message(&buf, kind, flags, stream_id, msg) == 0)
        st = wire_write(conn, &buf);
    wire_buf_free(&buf);
    return st;
}
