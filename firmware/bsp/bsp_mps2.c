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
 * UART, bsp_uart_*, bsp_exit: bsp_qemu_cmsdk.c. May only include bsp.h, bsp_qemu_cmsdk.h and
 * compiler headers. */
#include <stdint.h>
#include "bsp.h"
#include "bsp_qemu_cmsdk.h"

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

#define TIMER0_BASE    0x40000000u
#define TIMER_CTRL     (TIMER0_BASE + 0x00u)
#define TIMER_VALUE    (TIMER0_BASE + 0x04u)
#define TIMER_RELOAD   (TIMER0_BASE + 0x08u)

#define TIMER_NS_PER_TICK 40u     /* 25 MHz PCLK */

static uint64_t tick_total;
static uint32_t last_value;

void bsp_init(void)
{
    tp_cmsdk_uart_init();
    REG32(TIMER_CTRL) = 0u;
    REG32(TIMER_RELOAD) = 0xFFFFFFFFu;
    REG32(TIMER_VALUE) = 0xFFFFFFFFu;
    last_value = 0xFFFFFFFFu;
    tick_total = 0u;
    REG32(TIMER_CTRL) = 0x1u;                /* enable, no interrupt, internal clock */
}

uint32_t bsp_counter_read(void)
{
    uint32_t v = REG32(TIMER_VALUE);
    tick_total += (uint32_t)(last_value - v);  /* down counter: elapsed ticks modulo 2^32 */
    last_value = v;
    return (uint32_t)((tick_total * TIMER_NS_PER_TICK + (1u << (TP_ICOUNT_SHIFT - 1))) >> TP_ICOUNT_SHIFT);
}
