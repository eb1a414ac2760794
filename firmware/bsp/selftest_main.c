/* Minimal self-test program (`tinyprune firmware --harness selftest`): proves that the startup
 * code, BSP, UART, counter and exit path work, without the serial protocol harness.
 *
 * Prints, one line each (the test runner parses them):
 *   TP_SELFTEST board=<name> unit=<counter unit>
 *   TP_COUNT loop1000=<d1> loop3000=<d3>      counter deltas around a 2-instruction loop run
 *                                             1000 and 3000 times (d3 - d1 = 4000 under -icount)
 *   TP_DATA ok                                .data copied and .bss zeroed correctly
 *   TP_MODEL hash=<MODEL_HASH> out_sum=<s> count=<n>   (only when built with a model)
 *   TP_SELFTEST_OK                            the sentinel
 * and exits with status 0 (1 if .data/.bss were wrong).
 * May include only bsp.h and, with TP_HAVE_MODEL, the generated model.h. */
#include <stdint.h>
#include "bsp.h"
#ifdef TP_HAVE_MODEL
#include "model.h"
#endif

static volatile uint32_t data_word = 0x5EEDC0DEu;
static volatile uint32_t bss_words[4];

static void put_str(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    bsp_uart_write((const uint8_t *)s, n);
}

static void put_u32(uint32_t v)
{
    char buf[11];
    int i = 10;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put_str(&buf[i]);
}

/* Exactly 2 instructions per iteration (subs + bne), plus a fixed entry/exit cost. */
__attribute__((noinline)) static uint32_t timed_loop(uint32_t n)
{
    uint32_t t0 = bsp_counter_read();
    __asm volatile(
        "1: subs %0, %0, #1 \n"
        "   bne 1b          \n"
        : "+r"(n) : : "cc");
    return bsp_counter_read() - t0;
}

#ifdef TP_HAVE_MODEL
static int8_t model_in[MODEL_INPUT_BYTES];
static int8_t model_out[MODEL_OUTPUT_BYTES];
#endif

int main(void)
{
    bsp_init();
    put_str("TP_SELFTEST board=");
    put_str(bsp_board_name());
    put_str(" unit=");
    put_str(bsp_counter_unit());
    put_str("\r\n");

    uint32_t d1 = timed_loop(1000u);
    uint32_t d3 = timed_loop(3000u);
    put_str("TP_COUNT loop1000=");
    put_u32(d1);
    put_str(" loop3000=");
    put_u32(d3);
    put_str("\r\n");

    int ok = data_word == 0x5EEDC0DEu;
    for (int i = 0; i < 4; i++) ok = ok && bss_words[i] == 0u;
    put_str(ok ? "TP_DATA ok\r\n" : "TP_DATA bad\r\n");

#ifdef TP_HAVE_MODEL
    for (uint32_t i = 0; i < (uint32_t)MODEL_INPUT_BYTES; i++) model_in[i] = (int8_t)((i * 7u) & 0xFFu);
    uint32_t t0 = bsp_counter_read();
    model_invoke(model_in, model_out);
    uint32_t dt = bsp_counter_read() - t0;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < (uint32_t)MODEL_OUTPUT_BYTES; i++) sum = sum * 31u + (uint8_t)model_out[i];
    put_str("TP_MODEL hash=");
    put_str(MODEL_HASH);
    put_str(" out_sum=");
    put_u32(sum);
    put_str(" count=");
    put_u32(dt);
    put_str("\r\n");
#endif

    put_str("TP_SELFTEST_OK\r\n");
    return ok ? 0 : 1;
}
