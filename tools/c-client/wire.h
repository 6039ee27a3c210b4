/*
 * wire.h - framing layer of the PEMIS wire protocol, version 1 (docs/PROTOCOL.md, sections 2-3).
 *
 * A frame is a 10-byte header (u32 length, u8 kind, u8 flags, u32 stream id; big-endian) followed
 * by `length` payload bytes. This layer connects, reads and writes whole frames over a blocking
 * TCP socket (optionally through TLS), enforces the receive size limit before allocating, and can trace frames to stderr.
 */
#ifndef PEMIS_WIRE_H
#define PEMIS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define WIRE_HEADER_SIZE 10u

/* Frame kinds (section 3). */
enum {
    WIRE_HELLO = 0x01,
    WIRE_CALL_START = 0x02,
    WIRE_RESPONSE_START = 0x03,
    WIRE_MESSAGE = 0x04,
    WIRE_CLOSE_SEND = 0x05,
    WIRE_CALL_END = 0x06,
    WIRE_CANCEL = 0x07,
    WIRE_PING = 0x08,
    WIRE_GOAWAY = 0x09,
    WIRE_WINDOW_UPDATE = 0x0A
};

#define WIRE_FLAG_ACK 0x01u /* PING */
#define WIRE_PING_SIZE 8u
#define WIRE_MIN_FRAME_SIZE 1024u

/* Result of a read or write. */
typedef enum {
    WIRE_OK = 0,
    WIRE_EOF,         /* the peer closed the connection cleanly between two frames */
    WIRE_EOF_PARTIAL, /* the peer closed the connection in the middle of a frame */
    WIRE_IO_ERROR,    /* a socket error; see wire_conn.error */
    WIRE_TIMEOUT,     /* the deadline passed */
    WIRE_NO_MEMORY
} wire_status;

struct ssl_st;
struct ssl_ctx_st;

typedef struct {
    int fd;
    int trace;        /* nonzero: describe every frame sent and received on stderr */
    char error[256];  /* text of the last WIRE_IO_ERROR */
    struct ssl_st *ssl;         /* non-NULL after wire_start_tls: every byte goes through TLS */
    struct ssl_ctx_st *ssl_ctx;
} wire_conn;

typedef struct {
    uint32_t length;  /* payload length from the header */
    uint8_t kind;
    uint8_t flags;
    uint32_t stream_id;
    int oversized;    /* 1: length exceeded the limit; the payload was discarded, payload is NULL */
    uint8_t *payload; /* malloc'd, `length` bytes (never NULL unless oversized); see wire_frame_free */
} wire_frame;

/* A growable byte buffer, used to batch several frames into a single write. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} wire_buf;

/* Monotonic clock in microseconds; deadlines are absolute values of this clock, or -1 for none. */
int64_t wire_now_us(void);

/* Opens a TCP connection to host:port. Returns 0 or -1 with a reason in conn->error. */
int wire_connect(wire_conn *conn, const char *host, const char *port);
/*
 * TLS (1.2 or later, OpenSSL) over the connected socket, before HELLO: the server's chain is
 * verified against the CA certificates in ca_file (PEM), or the system's store when NULL, and its
 * certificate must name host (a DNS name, or the IP address when host is one). Returns 0 or -1
 * with a reason in conn->error.
 */
int wire_start_tls(wire_conn *conn, const char *host, const char *ca_file);
void wire_close(wire_conn *conn);

/*
 * Reads one frame. If the header's length exceeds `limit`, the payload is read and discarded
 * (never buffered) and the frame is returned with oversized = 1 and payload = NULL.
 * On anything but WIRE_OK the frame holds nothing to free.
 */
wire_status wire_read_frame(wire_conn *conn, wire_frame *frame, uint32_t limit, int64_t deadline_us);
void wire_frame_free(wire_frame *frame);

/* Appends one frame (header + payload) to buf. Returns 0, or -1 when out of memory. */
int wire_buf_frame(wire_buf *buf, uint8_t kind, uint8_t flags, uint32_t stream_id,
                   const uint8_t *payload, size_t len);
/* Appends one frame whose payload is the serialized protobuf message msg. */
int wire_buf_message(wire_buf *buf, uint8_t kind, uint8_t flags, uint32_t stream_id,
                     const ProtobufCMessage *msg);
void wire_buf_free(wire_buf *buf);

/* Writes the whole buffer (one or more complete frames). Traces each frame if enabled. */
wire_status wire_write(wire_conn *conn, const wire_buf *buf);

/* Convenience: one frame, written at once. */
wire_status wire_send(wire_conn *conn, uint8_t kind, uint8_t flags, uint32_t stream_id,
                      const uint8_t *payload, size_t len);
wire_status wire_send_message(wire_conn *conn, uint8_t kind, uint8_t flags, uint32_t stream_id,
                              const ProtobufCMessage *msg);

const char *wire_kind_name(uint8_t kind);
/* A one-line description of a read/write failure. */
const char *wire_status_text(const wire_conn *conn, wire_status st);

uint32_t wire_get_u32(const uint8_t *p);
void wire_put_u32(uint8_t *p, uint32_t v);

#endif
