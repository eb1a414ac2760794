/* Two generated models in one program: `kws` (tinyprune codegen --prefix kws) and `ic` (--prefix ic).
 *
 * Each model is run once on a fixed input and its output is printed as hex, one line each:
 *   TP_OUT kws <hex of KWS_OUTPUT_BYTES bytes>
 *   TP_OUT ic <hex>
 *   TP_TWO_MODELS_OK
 * The input of model m is in[i] = (i * mul + add) & 0xFF (mul/add below); tests/test_libexport.py
 * computes the same with TFLite Micro and compares byte for byte.
 *
 * Built with -DKWS_NO_STATIC_ARENA -DIC_NO_STATIC_ARENA, the two models share one arena of
 * max(KWS_ARENA_BYTES, IC_ARENA_BYTES): each invoke uses the whole arena, so this is right only
 * because the two never run at the same time (not from two threads or an interrupt).
 * Uses only bsp.h: links with a board's BSP (tinyprune firmware --harness examples/two_models)
 * or with firmware/harness/bsp_host.c on the host. */
#include <stdint.h>

#include "bsp.h"
#include "ic.h"
#include "kws.h"

#if defined(KWS_NO_STATIC_ARENA) && defined(IC_NO_STATIC_ARENA)
#define SHARED_ARENA_BYTES (KWS_ARENA_BYTES > IC_ARENA_BYTES ? KWS_ARENA_BYTES : IC_ARENA_BYTES)
static uint8_t shared_arena[SHARED_ARENA_BYTES] __attribute__((aligned(16)));
#endif

static int8_t kws_in[KWS_INPUT_BYTES], kws_out[KWS_OUTPUT_BYTES];
static int8_t ic_in[IC_INPUT_BYTES], ic_out[IC_OUTPUT_BYTES];

static void put_str(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    bsp_uart_write((const uint8_t *)s, n);
}

static void put_line(const char *name, const int8_t *data, uint32_t n, int status)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t pair[2];
    put_str("TP_OUT ");
    put_str(name);
    put_str(status == 0 ? " " : " ERROR ");
    for (uint32_t i = 0; i < n; i++) {
        pair[0] = (uint8_t)hex[((uint8_t)data[i]) >> 4];
        pair[1] = (uint8_t)hex[((uint8_t)data[i]) & 15u];
        bsp_uart_write(pair, 2);
    }
    put_str("\r\n");
}

static void fill(int8_t *x, uint32_t n, uint32_t mul, uint32_t add)
{
    for (uint32_t i = 0; i < n; i++) x[i] = (int8_t)(uint8_t)((i * mul + add) & 0xFFu);
}

int main(void)
{
    int st_kws, st_ic;
    bsp_init();
#ifdef SHARED_ARENA_BYTES
    if (kws_set_arena(shared_arena, sizeof shared_arena) != 0 || ic_set_arena(shared_arena, sizeof shared_arena) != 0) {
        put_str("TP_ERROR set_arena\r\n");
        return 1;
    }
#endif
    fill(kws_in, KWS_INPUT_BYTES, 7u, 0u);
    fill(ic_in, IC_INPUT_BYTES, 13u, 5u);
    st_kws = kws_invoke(kws_in, kws_out);
    st_ic = ic_invoke(ic_in, ic_out);
    put_line("kws", kws_out, KWS_OUTPUT_BYTES, st_kws);
    put_line("ic", ic_out, IC_OUTPUT_BYTES, st_ic);
    if (st_kws != 0 || st_ic != 0) return 1;
    put_str("TP_TWO_MODELS_OK\r\n");
    return 0;
}
