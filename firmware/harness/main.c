/* tinyprune firmware harness: serves the generated model over the serial protocol
 * (docs/protocol.md). C99, no heap, fixed-size buffers; talks to the board only through bsp.h
 * and to the model only through the generated model.h API. Never blocks on a partial frame:
 * a frame that stalls for TP_FRAME_TIMEOUT_MS is dropped, and every 0x00 resynchronises. */
#include <stdint.h>
#include <stddef.h>

#include "bsp.h"
#include "model.h"
#include "protocol.h"

#ifndef TP_KERNEL_BACKEND
#ifdef MODEL_KERNEL_BACKEND
#define TP_KERNEL_BACKEND MODEL_KERNEL_BACKEND
#else
#define TP_KERNEL_BACKEND "portable"
#endif
#endif
/* The firmware build id (tinyprune/firmware/build.py passes -DTP_BUILD_ID="..."): a digest of
 * every source, flag and the linker script, so the host can tell firmware for another board,
 * kernel set or option from its own build even when the model is the same. */
#ifndef TP_BUILD_ID
#define TP_BUILD_ID "unknown"
#endif
#ifndef TP_FRAME_TIMEOUT_MS
#define TP_FRAME_TIMEOUT_MS 500u
#endif
#define TP_IDLE_TIMEOUT_MS 1000u
#define TP_SELFTEST_SEED 0x2545F491u

/* Arrays need at least one element even for a model without layers. */
#define TP_LAYERS (MODEL_NUM_LAYERS > 0 ? MODEL_NUM_LAYERS : 1)

static tp_rx rx;
static uint8_t tx_frame[TP_MAX_FRAME];
static uint8_t tx_enc[TP_MAX_ENCODED + 2];
/* Replies are assembled in place in the outgoing frame (tp_frame_build's copy is then a no-op):
 * saves a second payload-sized buffer. */
#define reply (tx_frame + TP_HEADER_BYTES)
static int8_t input[MODEL_INPUT_BYTES] __attribute__((aligned(16)));
static int8_t output[MODEL_OUTPUT_BYTES] __attribute__((aligned(16)));
static uint32_t layer_counts[TP_LAYERS];
static uint32_t layer_start;

static void send(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len)
{
    size_t n = tp_frame_build(type, seq, payload, len, tx_frame, sizeof tx_frame);
    size_t e;
    if (n == 0) return;
    e = tp_cobs_encode(tx_frame, n, tx_enc, sizeof tx_enc - 2);
    if (e == 0) return;
    /* two delimiters: if the line damages the first, the second still ends the frame, so the
     * host sees a damaged frame and resends at once instead of waiting out its timeout */
    tx_enc[e++] = 0;
    tx_enc[e++] = 0;
    bsp_uart_write(tx_enc, e);
}

static void send_error(uint16_t seq, uint8_t code, uint8_t request)
{
    uint8_t p[2];
    p[0] = code;
    p[1] = request;
    send(TP_ERROR, seq, p, 2);
}

static void layer_hook(int layer, int is_end)
{
    uint32_t now = bsp_counter_read();
    if (layer < 0 || layer >= TP_LAYERS) return;
    if (!is_end) layer_start = now;
    else layer_counts[layer] += now - layer_start;
}

static size_t put_str(uint8_t *p, const char *s, size_t max)
{
    size_t n = 0;
    while (s[n] && n < max) { p[1 + n] = (uint8_t)s[n]; n++; }
    p[0] = (uint8_t)n;
    return n + 1;
}

static size_t build_info(uint8_t *p)
{
    size_t n = 0, i;
    const char *hash = MODEL_HASH;
    p[n++] = (uint8_t)TP_PROTO_VERSION;
    tp_put_u16(p + n, (uint16_t)TP_MAX_PAYLOAD); n += 2;
    tp_put_u16(p + n, (uint16_t)MODEL_NUM_LAYERS); n += 2;
    tp_put_u32(p + n, (uint32_t)MODEL_ARENA_BYTES); n += 4;
    tp_put_u32(p + n, (uint32_t)MODEL_INPUT_BYTES); n += 4;
    tp_put_u32(p + n, (uint32_t)MODEL_OUTPUT_BYTES); n += 4;
    for (i = 0; i < 64; i++) p[n++] = (uint8_t)(hash[i] ? hash[i] : '?');
    n += put_str(p + n, bsp_board_name(), 63);
    n += put_str(p + n, TP_KERNEL_BACKEND, 63);
    n += put_str(p + n, bsp_counter_unit(), 31);
    n += put_str(p + n, TP_BUILD_ID, 64);
    return n;
}

/* Runs the model on `input`; fills reply with status, counter, output crc32, output bytes,
 * layer count. Returns the reply length. */
static size_t run_model(uint8_t *p, int profile)
{
    uint32_t t0, t1;
    int status, i;
    for (i = 0; i < TP_LAYERS; i++) layer_counts[i] = 0;
    model_set_layer_hook(profile ? layer_hook : (void (*)(int, int))0);
    t0 = bsp_counter_read();
    status = model_invoke(input, output);
    t1 = bsp_counter_read();
    model_set_layer_hook((void (*)(int, int))0);
    tp_put_u32(p + 0, (uint32_t)status);
    tp_put_u32(p + 4, t1 - t0);
    tp_put_u32(p + 8, tp_crc32((const uint8_t *)output, MODEL_OUTPUT_BYTES));
    tp_put_u32(p + 12, (uint32_t)MODEL_OUTPUT_BYTES);
    tp_put_u16(p + 16, (uint16_t)(profile ? MODEL_NUM_LAYERS : 0));
    return 18;
}

static void handle(const tp_frame *f)
{
    uint8_t rtype = (uint8_t)(f->type | TP_REPLY);
    const uint8_t *a = f->payload;
    size_t n;
    switch (f->type) {
    case TP_CMD_INFO:
        send(rtype, f->seq, reply, build_info(reply));
        return;
    case TP_CMD_LOAD: {
        uint32_t off, len;
        size_t i;
        if (f->len < 4) break;
        off = tp_get_u32(a);
        len = (uint32_t)f->len - 4u;
        if (off > (uint32_t)MODEL_INPUT_BYTES || len > (uint32_t)MODEL_INPUT_BYTES - off) break;
        for (i = 0; i < len; i++) input[off + i] = (int8_t)a[4 + i];
        tp_put_u32(reply, off);
        tp_put_u32(reply + 4, len);
        send(rtype, f->seq, reply, 8);
        return;
    }
    case TP_CMD_INFER: {
        if (f->len != 5) break;
        if (tp_crc32((const uint8_t *)input, MODEL_INPUT_BYTES) != tp_get_u32(a)) {
            send_error(f->seq, TP_E_INPUT_CRC, f->type);
            return;
        }
        n = run_model(reply, a[4] & 1u);
        /* small outputs (and then the layer counters) travel inline: saves READ round trips */
        if (n + (size_t)MODEL_OUTPUT_BYTES <= TP_MAX_PAYLOAD) {
            size_t i, nl = (a[4] & 1u) ? (size_t)MODEL_NUM_LAYERS : 0u;
            for (i = 0; i < (size_t)MODEL_OUTPUT_BYTES; i++) reply[n + i] = (uint8_t)output[i];
            n += (size_t)MODEL_OUTPUT_BYTES;
            if (n + 4u * nl <= TP_MAX_PAYLOAD) {
                for (i = 0; i < nl; i++) tp_put_u32(reply + n + 4u * i, layer_counts[i]);
                n += 4u * nl;
            }
        }
        send(rtype, f->seq, reply, n);
        return;
    }
    case TP_CMD_READ: {
        uint32_t off, len, size, i;
        const uint8_t *src;
        if (f->len != 7) break;
        off = tp_get_u32(a + 1);
        len = tp_get_u16(a + 5);
        if (a[0] == 0) { src = (const uint8_t *)output; size = MODEL_OUTPUT_BYTES; }
        else if (a[0] == 1) { src = (const uint8_t *)layer_counts; size = 4u * (uint32_t)MODEL_NUM_LAYERS; }
        else break;
        if (off > size || len > size - off || len + 5u > TP_MAX_PAYLOAD) break;
        reply[0] = a[0];
        tp_put_u32(reply + 1, off);
        if (a[0] == 0) {
            for (i = 0; i < len; i++) reply[5 + i] = src[off + i];
        } else {  /* counters go out little-endian whatever the core's byte order */
            for (i = 0; i < len; i++) {
                uint32_t k = off + i;
                reply[5 + i] = (uint8_t)(layer_counts[k / 4u] >> (8u * (k % 4u)));
            }
        }
        send(rtype, f->seq, reply, 5 + len);
        return;
    }
    case TP_CMD_SELFTEST: {
        uint32_t x = TP_SELFTEST_SEED;
        size_t i;
        if (f->len != 0) break;
        for (i = 0; i < (size_t)MODEL_INPUT_BYTES; i++) {  /* xorshift32, low byte */
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            input[i] = (int8_t)(uint8_t)x;
        }
        n = run_model(reply, 0);
        tp_put_u32(reply + n, tp_crc32((const uint8_t *)input, MODEL_INPUT_BYTES));
        send(rtype, f->seq, reply, n + 4);
        return;
    }
    case TP_CMD_EXIT:
        if (f->len != 1) break;
        send(rtype, f->seq, a, 1);
        bsp_exit(a[0]);
    default:
        send_error(f->seq, TP_E_UNKNOWN_CMD, f->type);
        return;
    }
    send_error(f->seq, TP_E_BAD_ARG, f->type);
}

static void process_frame(void)
{
    tp_frame f;
    long n = tp_cobs_decode(rx.buf, rx.n, rx.buf);
    int err;
    if (n < 0) {
        send_error(0, TP_E_BAD_COBS, 0);
        return;
    }
    err = tp_frame_parse(rx.buf, (size_t)n, &f);
    if (err != TP_E_OK) {
        send_error(f.seq, (uint8_t)err, f.type);
        return;
    }
    handle(&f);
}

int main(void)
{
    bsp_init();
    tp_rx_reset(&rx);
    for (;;) {
        int c = bsp_uart_getc(rx.n ? TP_FRAME_TIMEOUT_MS : TP_IDLE_TIMEOUT_MS);
        int r;
        if (c < 0) {
            /* a frame that stalls mid-way is dropped and reported (its end was lost on the line):
             * the host resends at once instead of waiting for its timeout */
            if (rx.n) send_error(0, TP_E_BAD_LENGTH, 0);
            tp_rx_reset(&rx);
            continue;
        }
        r = tp_rx_push(&rx, (uint8_t)c);
        if (r == TP_RX_FRAME) process_frame();
        else if (r == TP_RX_OVERFLOW) send_error(0, TP_E_BAD_LENGTH, 0);
        if (r != TP_RX_MORE) tp_rx_reset(&rx);
    }
}
