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
 * Exit: semihosting SYS_EXIT_EXTENDED (bsp_qemu_cmsdk.c, shared with bsp_mps2.c). May only include
 * bsp.h, bsp_qemu_cmsdk.h and compiler headers. */
#include <stdint.h>
#include "bsp.h"
#include "bsp_qemu_cmsdk.h"

#ifndef TP_BOARD_NAME
#define TP_BOARD_NAME "mps3-an547"
#endif
#ifndef TP_ICOUNT_SHIFT
#define TP_ICOUNT_SHIFT 7
#endif
#if TP_ICOUNT_SHIFT < 6
#error "TP_ICOUNT_SHIFT must be >= 6 so that one instruction spans >= 2 counter ticks (exact counts)"
#endif

#define REG32(a) (*(volatile uint32_t *)(a))

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
    tp_cmsdk_uart_init();
    REG32(CNTCR) = REG32(CNTCR) | 0x1u;       /* EN, no scaling */
    start_ticks = read_ticks();
}

uint32_t bsp_counter_read(void)
{
    uint64_t t = read_ticks() - start_ticks;
    const unsigned shift = TP_ICOUNT_SHIFT + TICK_NS_DEN_LOG2;
    return (uint32_t)((t * TICK_NS_NUM + (1u << (shift - 1u))) >> shift);
}
