/* Board support for the Arm MPS3 AN547 FPGA image (Corstone SSE-300, Cortex-M55) as modelled by
 * QEMU mps3-an547. Implements bsp.h. The core starts in Secure state with the SAU disabled, so all
 * accesses are Secure and the peripheral protection controllers let them through.
 *
 * Peripherals (Arm AN547 application note, "Memory map"; QEMU hw/arm/mps2-tz.c and armsse.c):
 *   UART0  CMSDK APB UART at 0x49303000 (non-secure alias; secure alias 0x59303000), the first
 *          QEMU -serial. Same registers as on MPS2: DATA +0x00, STATE +0x04 (bit0 TX full,
 *          bit1 RX full), CTRL +0x08 (bit0 TX enable, bit1 RX enable), BAUDDIV +0x10.
 *   System counter (SSE-300 "CNTControl" frame) at 0x58100000 (secure only): CNTCR +0x000
 *          (bit0 EN, bit2 SCEN scaling enable), CNTCV +0x008/+0x00C (64-bit count). Without
 *          scaling it increments once per MAINCLK tick; in QEMU MAINCLK = the AN547's 32 MHz
 *          system clock, i.e. one tick every 31.25 ns. (The SSE-300 has no CMSDK timer at 25 MHz
 *          like MPS2: its only CMSDK timer runs at 32 kHz.)
 *
 * Instruction counter: QEMU must run with `-icount shift=TP_ICOUNT_SHIFT` (default 7): each
 * instruction takes 2^7 = 128 ns of virtual time = 4.096 counter ticks, and
 *     insns = round(ticks * 31.25 / 128) = (ticks * 125 + 256) >> 9
 * The counter error (< 1 tick) is at most 0.25 instruction, so the result is exact. The 64-bit
 * counter does not wrap in practice; bsp_counter_read returns the low 32 bits of the count
 * (deltas exact modulo 2^32).
 *
 * Exit: semihosting SYS_EXIT_EXTENDED (as bsp_mps2.c). May only include bsp.h and compiler headers. */
#include <stdint.h>
#include "bsp.h"

#ifndef TP_BOARD_NAME
#define TP_BOARD_NAME "mps3-an547"
#endif
#ifndef TP_ICOUNT_SHIFT
#define TP_ICOUNT_SHIFT 7
#endif
#if TP_ICOUNT_SHIFT < 6
#error "TP_ICOUNT_SHIFT must be >= 6 so that one instruction spans >= 2 counter ticks (exact counts)"
#endif
#ifndef TP_UART_BASE
#define TP_UART_BASE 0x49303000u   /* the build passes serial.base_address of the board file */
#endif

#define REG32(a) (*(volatile uint32_t *)(a))

#define UART_DATA      (TP_UART_BASE + 0x00u)
#define UART_STATE     (TP_UART_BASE + 0x04u)
#define UART_CTRL      (TP_UART_BASE + 0x08u)
#define UART_BAUDDIV   (TP_UART_BASE + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u

#define CNTCONTROL_BASE 0x58100000u
#define CNTCR          (CNTCONTROL_BASE + 0x000u)
#define CNTCV_LO       (CNTCONTROL_BASE + 0x008u)
#define CNTCV_HI       (CNTCONTROL_BASE + 0x00Cu)

/* 31.25 ns per tick = 125/4 ns: insns = ticks * 125 / (4 * 2^shift), rounded. */
#define TICK_NS_NUM 125u
#define TICK_NS_DEN_LOG2 2u

static uint64_t start_ticks;

static uint64_t read_ticks(void)
{
    uint32_t hi, lo;
    do {                       /* re-read if the high word changed while reading the low word */
        hi = REG32(CNTCV_HI);
        lo = REG32(CNTCV_LO);
    } while (REG32(CNTCV_HI) != hi);
    return ((uint64_t)hi << 32) | lo;
}

void bsp_init(void)
{
    REG32(UART_BAUDDIV) = 25000000u / 115200u;
    REG32(UART_CTRL) = 0x3u;                  /* TX and RX enable */
    REG32(CNTCR) = REG32(CNTCR) | 0x1u;       /* EN, no scaling */
    start_ticks = read_ticks();
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
    uint64_t t = read_ticks() - start_ticks;
    const unsigned shift = TP_ICOUNT_SHIFT + TICK_NS_DEN_LOG2;
    return (uint32_t)((t * TICK_NS_NUM + (1u << (shift - 1u))) >> shift);
}

const char *bsp_counter_unit(void) { return "instructions"; }

int bsp_uart_getc(uint32_t timeout_ms)
{
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
    while (REG32(UART_STATE) & UART_STATE_TXFULL) {
    }
    volatile uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm("r0") = 0x20u;            /* SYS_EXIT_EXTENDED */
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}
