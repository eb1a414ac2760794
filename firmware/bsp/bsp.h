/* Board support interface: the only thing the harness may call on a board.
 * Implemented once per board family (bsp_mps2.c, bsp_mps3.c, bsp_stm32f7.c, ...).
 * No vendor HAL; no heap. */
#ifndef TP_BSP_H
#define TP_BSP_H

#include <stdint.h>
#include <stddef.h>

/* Clocks, caches, FPU, UART at the board's baud rate, cycle/instruction counter. */
void bsp_init(void);

/* Blocking write of n bytes to the host serial link. */
void bsp_uart_write(const uint8_t *buf, size_t n);

/* Read one byte; returns 0..255, or -1 if nothing arrived within timeout_ms (0 = poll once). */
int bsp_uart_getc(uint32_t timeout_ms);

/* Free-running counter for profiling: CPU cycles on real boards (DWT CYCCNT), executed
 * instructions under QEMU -icount. bsp_counter_unit() returns "cycles" or "instructions". */
uint32_t bsp_counter_read(void);
const char *bsp_counter_unit(void);

/* Board name as in boards/NAME.toml. */
const char *bsp_board_name(void);

/* End the program (QEMU: semihosting exit with status; real board: reset/loop). */
void bsp_exit(int status) __attribute__((noreturn));

#endif
