/* tinyprune serial protocol, firmware side (version 2; specification: docs/protocol.md).
 *
 * Wire format: every frame is COBS-encoded and terminated by one 0x00 byte. The decoded frame is
 *     version u8 | type u8 | seq u16 LE | len u16 LE | payload[len] | crc32 u32 LE
 * where crc32 (zlib/IEEE, reflected 0xEDB88320) covers everything before it.
 *
 * This module is pure C99 byte handling: no I/O, no heap, no bsp.h, no model.h, so the host test
 * suite compiles it alone and feeds it malformed input. */
#ifndef TP_PROTOCOL_H
#define TP_PROTOCOL_H

#include <stdint.h>
#include <stddef.h>

#define TP_PROTO_VERSION 2u  /* 2: info carries the firmware build id */
#define TP_HEADER_BYTES 6u
#define TP_CRC_BYTES 4u
#ifndef TP_MAX_PAYLOAD
#define TP_MAX_PAYLOAD 1024u
#endif
#define TP_MAX_FRAME (TP_HEADER_BYTES + TP_MAX_PAYLOAD + TP_CRC_BYTES)
/* COBS adds one byte per 254 bytes of data, plus one. */
#define TP_MAX_ENCODED (TP_MAX_FRAME + TP_MAX_FRAME / 254u + 1u)

/* Requests (host -> device). A reply has type (request | 0x80); errors have type TP_ERROR. */
enum {
    TP_CMD_INFO = 0x01,
    TP_CMD_LOAD = 0x02,      /* u32 offset, bytes: write a chunk of the input tensor */
    TP_CMD_INFER = 0x03,     /* u32 crc32 of the whole input, u8 flags (bit 0: per-layer counts) */
    TP_CMD_READ = 0x04,      /* u8 region (0 output, 1 layer counters), u32 offset, u16 length */
    TP_CMD_SELFTEST = 0x05,  /* run the built-in input, reply with the output's crc32 */
    TP_CMD_EXIT = 0x06,      /* u8 status: end the program (QEMU exits with that status) */
    TP_REPLY = 0x80,
    TP_ERROR = 0xFF          /* payload: u8 code, u8 request type */
};

/* Error codes (TP_ERROR payload byte 0). */
enum {
    TP_E_OK = 0,
    TP_E_BAD_CRC = 1,
    TP_E_BAD_LENGTH = 2,     /* frame too short, too long, or length field disagrees */
    TP_E_UNKNOWN_CMD = 3,
    TP_E_BAD_VERSION = 4,
    TP_E_BAD_ARG = 5,        /* offset/length outside the tensor, bad region */
    TP_E_INPUT_CRC = 6,      /* the input assembled from LOAD chunks is not what the host sent */
    TP_E_MODEL = 7,          /* model_invoke returned non-zero */
    TP_E_BAD_COBS = 8
};

uint32_t tp_crc32_update(uint32_t crc, const uint8_t *buf, size_t n);
uint32_t tp_crc32(const uint8_t *buf, size_t n);

/* COBS. Encode n bytes of src into dst (capacity cap, no trailing delimiter); returns the encoded
 * length or 0 if it does not fit. Decode in place (or src == dst): returns the decoded length, or
 * -1 if the data is not valid COBS (a zero byte, or a code running past the end). */
size_t tp_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);
long tp_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst);

typedef struct {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t len;
    const uint8_t *payload;
} tp_frame;

/* Check a decoded frame of n bytes: returns TP_E_OK and fills *f, or an error code. When the
 * header could be read, f->type and f->seq are filled even on error (for the error reply). */
int tp_frame_parse(const uint8_t *buf, size_t n, tp_frame *f);

/* Build a frame into out (capacity cap, at least TP_MAX_FRAME): returns its length or 0. */
size_t tp_frame_build(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len,
                      uint8_t *out, size_t cap);

/* Receiver: accumulates encoded bytes until the 0x00 delimiter. Bounded: a frame longer than
 * TP_MAX_ENCODED is dropped (the next delimiter resynchronises). */
typedef struct {
    uint8_t buf[TP_MAX_ENCODED];
    size_t n;
    int overflow;
} tp_rx;

enum { TP_RX_MORE = 0, TP_RX_FRAME = 1, TP_RX_OVERFLOW = 2 };

void tp_rx_reset(tp_rx *rx);
/* Feed one byte. TP_RX_FRAME: rx->buf[0..rx->n) holds one encoded frame (without delimiter);
 * TP_RX_OVERFLOW: an over-long frame was dropped. Call tp_rx_reset after handling either. */
int tp_rx_push(tp_rx *rx, uint8_t byte);

/* Little-endian helpers. */
void tp_put_u16(uint8_t *p, uint16_t v);
void tp_put_u32(uint8_t *p, uint32_t v);
uint16_t tp_get_u16(const uint8_t *p);
uint32_t tp_get_u32(const uint8_t *p);

#endif
