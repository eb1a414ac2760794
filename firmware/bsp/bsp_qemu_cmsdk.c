/* CMSDK APB UART and semihosting exit for the QEMU boards (mps2-an500/an386, mps3-an547).
 *
 * UART (Arm CMSDK technical reference, "APB UART"; QEMU hw/char/cmsdk-apb-uart.c): DATA +0x00,
 * STATE +0x04 (bit0 TX full, bit1 RX full), CTRL +0x08 (bit0 TX enable, bit1 RX enable),
 * BAUDDIV +0x10. The base address comes from the board file (-DTP_UART_BASE).
 *
 * Exit: Arm semihosting SYS_EXIT_EXTENDED (0x20) with {ADP_Stopped_ApplicationExit=0x20026,
 * status} via BKPT 0xAB; QEMU (-semihosting-config enable=on) exits with status & 0xFF.
 * May only include bsp.h, bsp_qemu_cmsdk.h and compiler headers. */
#include <stdint.h>
#include "bsp.h"
#include "bsp_qemu_cmsdk.h"

#ifndef TP_UART_BASE
#error "TP_UART_BASE must be defined (the firmware build passes serial.base_address of the board file)"
#endif
#ifndef TP_BOARD_NAME
#define TP_BOARD_NAME "qemu"
#endif

#define REG32(a) (*(volatile uint32_t *)(a))
#define UART_DATA      (TP_UART_BASE + 0x00u)
#define UART_STATE     (TP_UART_BASE + 0x04u)
#define UART_CTRL      (TP_UART_BASE + 0x08u)
#define UART_BAUDDIV   (TP_UART_BASE + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u

void tp_cmsdk_uart_init(void)
{
    REG32(UART_BAUDDIV) = 25000000u / 115200u;
    REG32(UART_CTRL) = 0x3u;                 /* TX and RX enable */
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

const char *bsp_counter_unit(void) { return "instructions"; }

int bsp_uart_getc(uint32_t timeout_ms)
{
    /* Under -icount shift=N, 1 ms of virtual time = 1e6 / 2^N instructions (bsp_counter_read). */
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
