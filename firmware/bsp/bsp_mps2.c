/* Board support for the Arm MPS2 FPGA images as modelled by QEMU: mps2-an500 (Cortex-M7)
 * and mps2-an386 (Cortex-M4). Implements bsp.h.
 *
 * Peripherals (Arm AN500/AN386 application notes, "APB memory map"; QEMU hw/arm/mps2.c):
 *   UART0  CMSDK APB UART at 0x40004000: DATA +0x00, STATE +0x04 (bit0 TX full, bit1 RX full),
 *          CTRL +0x08 (bit0 TX enable, bit1 RX enable), INTSTATUS +0x0C, BAUDDIV +0x10
 *          (ignored by QEMU; 25 MHz / 115200 = 217 written for the FPGA).
 *   TIMER0 CMSDK APB timer at 0x40000000: CTRL +0x00 (bit0 enable), VALUE +0x04 (32-bit down
 *          counter), RELOAD +0x08, INTSTATUS/INTCLEAR +0x0C. Clocked by PCLK = 25 MHz.
 *
 * Instruction counter (bsp_counter_read): QEMU must run with `-icount shift=TP_ICOUNT_SHIFT`
 * (default 7). Then every guest instruction advances virtual time by exactly 2^7 = 128 ns, and
 * TIMER0 ticks every 40 ns (25 MHz), so ticks = floor(128 * insns / 40 + phase), |error| < 1 tick.
 * We keep a 64-bit tick total (the 32-bit timer wraps every 171 s of virtual time = 1.34 G
 * instructions; the counter must be read at least that often) and return
 *     insns = (ticks * 40 + 64) >> 7        (= round(ticks * 5 / 16))
 * The rounding error is at most 40/128 = 0.31 instruction, so the result is the exact number of
 * instructions executed since bsp_init() started the timer. Deltas of the returned uint32 are
 * exact modulo 2^32. Without -icount the timer follows host time and the figure is not a count.
 *
 * Exit: Arm semihosting SYS_EXIT_EXTENDED (0x20) with {ADP_Stopped_ApplicationExit=0x20026,
 * status} via BKPT 0xAB; QEMU (-semihosting-config enable=on) exits with status & 0xFF.
 * May only include bsp.h and compiler headers. */
#include <stdint.h>
#include "bsp.h"

#ifndef TP_BOARD_NAME
#define TP_BOARD_NAME "mps2-an500"
#endif
#ifndef TP_ICOUNT_SHIFT
#define TP_ICOUNT_SHIFT 7
#endif
#if TP_ICOUNT_SHIFT < 7
#error "TP_ICOUNT_SHIFT must be >= 7 so that one instruction spans >= 3 timer ticks (exact counts)"
#endif

#define REG32(a) (*(volatile uint32_t *)(a))

#ifndef TP_UART_BASE
#define TP_UART_BASE   0x40004000u      /* the build passes serial.base_address of the board file */
#endif
#define UART0_BASE     TP_UART_BASE
#define UART_DATA      (UART0_BASE + 0x00u)
#define UART_STATE     (UART0_BASE + 0x04u)
#define UART_CTRL      (UART0_BASE + 0x08u)
#define UART_BAUDDIV   (UART0_BASE + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u

#define TIMER0_BASE    0x40000000u
#define TIMER_CTRL     (TIMER0_BASE + 0x00u)
#define TIMER_VALUE    (TIMER0_BASE + 0x04u)
#define TIMER_RELOAD   (TIMER0_BASE + 0x08u)

#define TIMER_NS_PER_TICK 40u     /* 25 MHz PCLK */

static uint64_t tick_total;
static uint32_t last_value;

void bsp_init(void)
{
    REG32(UART_BAUDDIV) = 25000000u / 115200u;
    REG32(UART_CTRL) = 0x3u;                 /* TX and RX enable */
    REG32(TIMER_CTRL) = 0u;
    REG32(TIMER_RELOAD) = 0xFFFFFFFFu;
    REG32(TIMER_VALUE) = 0xFFFFFFFFu;
    last_value = 0xFFFFFFFFu;
    tick_total = 0u;
    REG32(TIMER_CTRL) = 0x1u;                /* enable, no interrupt, internal clock */
}

void bsp_uart_write(const uint8_t *buf, size_t n)
{
    if ((REG32(UART_CTRL) & 0x1u) == 0u) REG32(UART_CTRL) = 0x3u;  /* usable before bsp_init (faults) */
    for (size_t i = 0; i < n; i++) {
        while (REG32(UART_STATE) & UART_STATE_TXFULL) {
        }
        REG32(UART_DATA) = buf[i];
    }
}

uint32_t bsp_counter_read(void)
{
    uint32_t v = REG32(TIMER_VALUE);
    tick_total += (uint32_t)(last_value - v);  /* down counter: elapsed ticks modulo 2^32 */
    last_value = v;
    return (uint32_t)((tick_total * TIMER_NS_PER_TICK + (1u << (TP_ICOUNT_SHIFT - 1))) >> TP_ICOUNT_SHIFT);
}

const char *bsp_counter_unit(void) { return "instructions"; }

int bsp_uart_getc(uint32_t timeout_ms)
{
    /* 1 ms of virtual time = 1e6 / 2^shift instructions. */
    uint32_t budget = (uint32_t)(((uint64_t)timeout_ms * 1000000u) >> TP_ICOUNT_SHIFT);
    uint32_t start = bsp_counter_read();
    for (;;) {
        if (REG32(UART_STATE) & UART_STATE_RXFULL) return (int)(REG32(UART_DATA) & 0xFFu);
        if (timeout_ms == 0u || (uint32_t)(bsp_counter_read() - start) >= budget) return -1;
    }
}

const char *bsp_board_name(void) { return TP_BOARD_NAME; }

void bsp_exit(int status)
{
    /* Wait until the UART has accepted the last byte (QEMU transmits immediately). */
    while (REG32(UART_STATE) & UART_STATE_TXFULL) {
    }
    volatile uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm("r0") = 0x20u;            /* SYS_EXIT_EXTENDED */
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}
