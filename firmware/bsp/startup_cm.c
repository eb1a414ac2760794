/* Cortex-M startup shared by every tinyprune board (M4, M7, M55): vector table, reset
 * handler (.data copy, .bss zero, FPU enable, C constructors, main) and fault handlers
 * that print the faulting frame over the board's UART and then end the program with
 * bsp_exit(0x80 | exception number) (QEMU: that is the exit status; real board: reset).
 *
 * Architecture facts (ARMv7-M ARM DDI0403E, ARMv8-M ARM DDI0553):
 *   - vector table: word 0 = initial MSP, word 1 = Reset, 2 NMI, 3 HardFault, 4 MemManage,
 *     5 BusFault, 6 UsageFault, 7 SecureFault (v8-M Mainline, reserved on v7-M), 8-10 reserved,
 *     11 SVCall, 12 DebugMonitor, 13 reserved, 14 PendSV, 15 SysTick, 16+ external IRQs.
 *   - CPACR (0xE000ED88) bits [23:20] = CP10/CP11 full access: needed before any FP or MVE
 *     instruction (B3.2.20 in DDI0403E).
 *   - CFSR 0xE000ED28, HFSR 0xE000ED2C, MMFAR 0xE000ED34, BFAR 0xE000ED38.
 *
 * Needs from the linker script (tinyprune/firmware/linker.py): _estack, _sidata, _sdata,
 * _edata, _sbss, _ebss, __init_array_start/__init_array_end.
 * May only include bsp.h and compiler headers (no libc calls: it runs before libc is usable). */
#include <stdint.h>
#include "bsp.h"

#ifndef TP_NUM_IRQS
#define TP_NUM_IRQS 32   /* external interrupt slots; the build passes the board family's count */
#endif

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);
void tp_fault_report(uint32_t *frame, uint32_t exc_return);

#define REG32(a) (*(volatile uint32_t *)(a))
#define SCB_CPACR 0xE000ED88u
#define SCB_CFSR  0xE000ED28u
#define SCB_HFSR  0xE000ED2Cu
#define SCB_MMFAR 0xE000ED34u
#define SCB_BFAR  0xE000ED38u
#define SCB_ICSR  0xE000ED04u

/* Fault entry: pass the stacked exception frame (MSP or PSP per EXC_RETURN bit 2) and
 * EXC_RETURN to the C reporter. Naked so that no prologue moves the stack first. */
__attribute__((naked)) static void Fault_Handler(void)
{
#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_8M_BASE__)
    /* ARMv6-M / v8-M baseline: no IT blocks and no TST with an immediate */
    __asm volatile(
        "movs r0, #4       \n"
        "mov r1, lr        \n"
        "tst r0, r1        \n"
        "bne 1f            \n"
        "mrs r0, msp       \n"
        "b 2f              \n"
        "1: mrs r0, psp    \n"
        "2: mov r1, lr     \n"
        "ldr r2, =tp_fault_report \n"
        "bx r2             \n");
#else
    __asm volatile(
        "tst lr, #4        \n"
        "ite eq            \n"
        "mrseq r0, msp     \n"
        "mrsne r0, psp     \n"
        "mov r1, lr        \n"
        "b tp_fault_report \n");
#endif
}

void NMI_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void SecureFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used))
const vector_t tp_vector_table[16 + TP_NUM_IRQS] = {
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [7] = SecureFault_Handler,
    [11] = SVC_Handler,
    [12] = DebugMon_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16 ... 16 + TP_NUM_IRQS - 1] = Default_Handler,
};

static void put_str(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    bsp_uart_write((const uint8_t *)s, n);
}

static void put_hex(const char *label, uint32_t v)
{
    char buf[12];
    static const char hex[] = "0123456789abcdef";
    put_str(label);
    buf[0] = '0'; buf[1] = 'x';
    for (int i = 0; i < 8; i++) buf[2 + i] = hex[(v >> (28 - 4 * i)) & 0xFu];
    buf[10] = 0;
    put_str(buf);
}

/* Print "TP_FAULT exc=<n> pc=.. lr=.. xpsr=.. cfsr=.. hfsr=.. mmfar=.. bfar=.." and exit. */
__attribute__((used, noreturn)) void tp_fault_report(uint32_t *frame, uint32_t exc_return)
{
    uint32_t exc = REG32(SCB_ICSR) & 0x1FFu;   /* VECTACTIVE */
    put_str("\r\nTP_FAULT");
    put_hex(" exc=", exc);
    put_hex(" pc=", frame[6]);
    put_hex(" lr=", frame[5]);
    put_hex(" xpsr=", frame[7]);
    put_hex(" exc_return=", exc_return);
    put_hex(" cfsr=", REG32(SCB_CFSR));
    put_hex(" hfsr=", REG32(SCB_HFSR));
    put_hex(" mmfar=", REG32(SCB_MMFAR));
    put_hex(" bfar=", REG32(SCB_BFAR));
    put_str("\r\n");
    bsp_exit((int)(0x80u | (exc & 0x7Fu)));
}

void Default_Handler(void)
{
    put_str("\r\nTP_FAULT unexpected interrupt\r\n");
    bsp_exit(0x80 | 0x7F);
}

__attribute__((noreturn)) void Reset_Handler(void)
{
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CP10/CP11 full access before the first FP/MVE instruction (CPACR bits 23:20). */
    REG32(SCB_CPACR) |= 0xFu << 20;
    __asm volatile("dsb\n isb" ::: "memory");
#endif
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0u;
    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
    int status = main();
    bsp_exit(status);
}
