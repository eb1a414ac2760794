/* tinyprune serial protocol: COBS framing, frame checks and the bounded receiver (see protocol.h,
 * docs/protocol.md). Pure C99 byte handling; may not include bsp.h or model.h. */
#include "protocol.h"

void tp_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
void tp_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
uint16_t tp_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }
uint32_t tp_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

size_t tp_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t out = 1, code_at = 0, i;
    uint8_t code = 1;
    if (cap == 0) return 0;
    for (i = 0; i < n; i++) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
            if (code_at >= cap) return 0;
        } else {
            if (out >= cap) return 0;
            dst[out++] = src[i];
            code++;
            if (code == 0xFF && i + 1 < n) {  /* a full block that ends the data needs no successor */
                dst[code_at] = code;
                code_at = out++;
                code = 1;
                if (code_at >= cap) return 0;
            }
        }
    }
    dst[code_at] = code;
    return out;
}

long tp_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t in = 0, out = 0;
    while (in < n) {
        uint8_t code = src[in++];
        uint8_t k;
        if (code == 0) return -1;
        if ((size_t)(code - 1) > n - in) return -1;
        for (k = 1; k < code; k++) {
            uint8_t b = src[in++];
            if (b == 0) return -1;
            dst[out++] = b;
        }
        if (code != 0xFF && in < n) dst[out++] = 0;
    }
    return (long)out;
}

int tp_frame_parse(const uint8_t *buf, size_t n, tp_frame *f)
{
    uint32_t want;
    f->version = 0; f->type = 0; f->seq = 0; f->len = 0; f->payload = 0;
    if (n < TP_HEADER_BYTES + TP_CRC_BYTES) return TP_E_BAD_LENGTH;
    f->version = buf[0];
    f->type = buf[1];
    f->seq = tp_get_u16(buf + 2);
    f->len = tp_get_u16(buf + 4);
    f->payload = buf + TP_HEADER_BYTES;
    want = tp_get_u32(buf + n - TP_CRC_BYTES);
    if (tp_crc32(buf, n - TP_CRC_BYTES) != want) return TP_E_BAD_CRC;
    if ((size_t)f->len + TP_HEADER_BYTES + TP_CRC_BYTES != n || f->len > TP_MAX_PAYLOAD) return TP_E_BAD_LENGTH;
    if (f->version != TP_PROTO_VERSION) return TP_E_BAD_VERSION;
    return TP_E_OK;
}

size_t tp_frame_build(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len,
                      uint8_t *out, size_t cap)
{
    size_t i, n = TP_HEADER_BYTES + len + TP_CRC_BYTES;
    if (len > TP_MAX_PAYLOAD || n > cap) return 0;
    out[0] = (uint8_t)TP_PROTO_VERSION;
    out[1] = type;
    tp_put_u16(out + 2, seq);
    tp_put_u16(out + 4, (uint16_t)len);
    for (i = 0; i < len; i++) out[TP_HEADER_BYTES + i] = payload[i];
    tp_put_u32(out + TP_HEADER_BYTES + len, tp_crc32(out, TP_HEADER_BYTES + len));
    return n;
}

void tp_rx_reset(tp_rx *rx)
{
    rx->n = 0;
    rx->overflow = 0;
}

int tp_rx_push(tp_rx *rx, uint8_t byte)
{
    if (byte == 0) {
        if (rx->overflow) return TP_RX_OVERFLOW;
        return rx->n ? TP_RX_FRAME : TP_RX_MORE;  /* empty frames (0x00 0x00) are idle fill */
    }
    if (rx->overflow) return TP_RX_MORE;
    if (rx->n >= sizeof rx->buf) {
        rx->overflow = 1;
        rx->n = 0;
        return TP_RX_MORE;
    }
    rx->buf[rx->n++] = byte;
    return TP_RX_MORE;
}
