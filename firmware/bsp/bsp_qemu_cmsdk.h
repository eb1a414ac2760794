/* Shared by the QEMU board BSPs (bsp_mps2.c, bsp_mps3.c): the CMSDK APB UART both FPGA images use
 * for UART0, and the semihosting exit. bsp_qemu_cmsdk.c implements bsp_uart_write, bsp_uart_getc,
 * bsp_counter_unit, bsp_board_name and bsp_exit; each board file implements bsp_init (calling
 * tp_cmsdk_uart_init) and bsp_counter_read. */
#ifndef TP_BSP_QEMU_CMSDK_H
#define TP_BSP_QEMU_CMSDK_H

#ifndef TP_ICOUNT_SHIFT
#define TP_ICOUNT_SHIFT 7
#endif

/* Enable TX and RX of the UART at TP_UART_BASE (BAUDDIV is ignored by QEMU; written for the FPGA). */
void tp_cmsdk_uart_init(void);

#endif
