/* Size-check BSP for catalog boards that have no board support package yet (nucleo-f401re,
 * nucleo-h743zi, nucleo-l4r5zi, disco-l475-iot01a, nrf52840-dk, rpi-pico).
 *
 * It lets tinyprune link the real model, kernels and harness for the board's exact core, FPU
 * and memory map, so the flash and RAM figures checked against the board's limits are exact;
 * but it drives no clock or UART, so the image is NOT meant to run: bsp_init() parks the core
 * in a WFI loop instead of pretending to work. Validation of such boards runs on their QEMU
 * twin (same core). Writing a real BSP: see docs/firmware.md. */
#include "bsp.h"

void bsp_init(void)
{
    for (;;) {
        __asm__ volatile("wfi");
    }
}

void bsp_uart_write(const uint8_t *buf, size_t n)
{
    (void)buf;
    (void)n;
}

int bsp_uart_getc(uint32_t timeout_ms)
{
    (void)timeout_ms;
    return -1;
}

uint32_t bsp_counter_read(void) { return 0u; }

const char *bsp_counter_unit(void) { return "none"; }

const char *bsp_board_name(void) { return "size-check-only"; }

void bsp_exit(int status)
{
    (void)status;
    for (;;) {
        __asm__ volatile("wfi");
    }
}
