/* Board support for NUCLEO-F746ZG (STM32F746ZG, Cortex-M7). Implements bsp.h with direct register
 * access; no vendor HAL. Register facts from RM0385 rev 8 (STM32F75xxx/STM32F74xxx reference
 * manual), the Cortex-M7 Generic User Guide / TRM (SCB, caches, DWT) and UM1974 (Nucleo-144).
 *
 * Clock tree set up by bsp_init():
 *   HSE in bypass mode from the ST-LINK's 8 MHz MCO (UM1974 §6.7.1: default SB config feeds
 *   MCO from the ST-LINK to PH0/OSC_IN) -> PLLM = 4 (2 MHz VCO input, RM0385 §5.3.2: 1-2 MHz,
 *   2 MHz recommended) -> PLLN = 216 (VCO 432 MHz, allowed 100-432 MHz) -> PLLP = 2 -> SYSCLK
 *   216 MHz; PLLQ = 9 -> 48 MHz for USB/SDMMC. AHB /1 = 216 MHz, APB1 /4 = 54 MHz (max 54),
 *   APB2 /2 = 108 MHz (max 108) (RM0385 §5.2).
 *   If HSE does not become ready (board re-wired without MCO) the PLL runs from HSI (16 MHz,
 *   PLLM = 8 -> 2 MHz), giving the same 216 MHz.
 *   216 MHz needs voltage scale 1 + over-drive (RM0385 §4.1.4, Table 15) and 7 flash wait states
 *   at 2.7-3.6 V (RM0385 §3.3.2 Table 5: 210 < HCLK <= 216 MHz -> 7 WS).
 * USART3 on PD8 (TX) / PD9 (RX), AF7 (DS10916 Table 12), connected to the ST-LINK virtual COM
 * port (UM1974 §6.9); kernel clock = PCLK1 = 54 MHz (RCC_DCKCFGR2.USART3SEL = 00), 115200 baud.
 * Cycle counter: DWT CYCCNT at 216 MHz (Cortex-M7: DWT must be unlocked through DWT_LAR).
 *
 * May only include bsp.h and compiler headers. */
#include <stdint.h>
#include "bsp.h"

#ifndef TP_BOARD_NAME
#define TP_BOARD_NAME "nucleo-f746"
#endif
#ifndef TP_BOARD_CLOCK_HZ
#define TP_BOARD_CLOCK_HZ 216000000u
#endif
#ifndef TP_UART_BAUD
#define TP_UART_BAUD 115200u
#endif
#ifndef TP_EXIT_RESET
#define TP_EXIT_RESET 1     /* bsp_exit: 1 = system reset (AIRCR SYSRESETREQ), 0 = stop in a loop */
#endif

#define REG32(a) (*(volatile uint32_t *)(a))

/* RCC, RM0385 §5.3, base 0x4002 3800 (Table 1) */
#define RCC_BASE        0x40023800u
#define RCC_CR          (RCC_BASE + 0x00u)   /* §5.3.1 */
#define RCC_CR_HSEON    (1u << 16)
#define RCC_CR_HSERDY   (1u << 17)
#define RCC_CR_HSEBYP   (1u << 18)
#define RCC_CR_PLLON    (1u << 24)
#define RCC_CR_PLLRDY   (1u << 25)
#define RCC_CR_HSIRDY   (1u << 1)
#define RCC_PLLCFGR     (RCC_BASE + 0x04u)   /* §5.3.2: PLLM[5:0] PLLN[14:6] PLLP[17:16] PLLSRC[22] PLLQ[27:24] */
#define RCC_CFGR        (RCC_BASE + 0x08u)   /* §5.3.3: SW[1:0] SWS[3:2] HPRE[7:4] PPRE1[12:10] PPRE2[15:13] */
#define RCC_AHB1ENR     (RCC_BASE + 0x30u)   /* §5.3.10: GPIODEN bit 3 */
#define RCC_APB1ENR     (RCC_BASE + 0x40u)   /* §5.3.13: USART3EN bit 18, PWREN bit 28 */
#define RCC_DCKCFGR2    (RCC_BASE + 0x90u)   /* §5.3.26: USART3SEL[5:4] (00 = PCLK1) */

/* PWR, RM0385 §4.4, base 0x4000 7000 */
#define PWR_BASE        0x40007000u
#define PWR_CR1         (PWR_BASE + 0x00u)   /* §4.4.1: VOS[15:14], ODEN bit 16, ODSWEN bit 17 */
#define PWR_CSR1        (PWR_BASE + 0x04u)   /* §4.4.2: VOSRDY bit 14, ODRDY bit 16, ODSWRDY bit 17 */

/* FLASH, RM0385 §3.7.1, base 0x4002 3C00: FLASH_ACR LATENCY[3:0], PRFTEN bit 8, ARTEN bit 9, ARTRST bit 11 */
#define FLASH_ACR       0x40023C00u

/* GPIOD, RM0385 §6.4, base 0x4002 0C00 */
#define GPIOD_BASE      0x40020C00u
#define GPIO_MODER      0x00u   /* 2 bits per pin, 10 = alternate function */
#define GPIO_OSPEEDR    0x08u   /* 2 bits per pin, 10 = high speed */
#define GPIO_PUPDR      0x0Cu   /* 2 bits per pin, 01 = pull-up */
#define GPIO_AFRH       0x24u   /* 4 bits per pin 8..15 */

/* USART3, RM0385 §31.8, base 0x4000 4800 (Table 1) */
#define USART3_BASE     0x40004800u
#define USART_CR1       (USART3_BASE + 0x00u)  /* UE bit 0, RE bit 2, TE bit 3 */
#define USART_BRR       (USART3_BASE + 0x0Cu)  /* oversampling by 16: BRR = fCK / baud */
#define USART_ISR       (USART3_BASE + 0x1Cu)  /* ORE bit 3, RXNE bit 5, TC bit 6, TXE bit 7 */
#define USART_ICR       (USART3_BASE + 0x20u)  /* ORECF bit 3, FECF bit 1, NCF bit 2 */
#define USART_RDR       (USART3_BASE + 0x24u)
#define USART_TDR       (USART3_BASE + 0x28u)
#define USART_ISR_ORE   (1u << 3)
#define USART_ISR_RXNE  (1u << 5)
#define USART_ISR_TC    (1u << 6)
#define USART_ISR_TXE   (1u << 7)
#define APB1_HZ         (TP_BOARD_CLOCK_HZ / 4u)

/* System control block and debug, ARMv7-M ARM B3.2 / C1.6, Cortex-M7 TRM */
#define SCB_VTOR        0xE000ED08u
#define SCB_AIRCR       0xE000ED0Cu   /* VECTKEY 0x05FA in [31:16], SYSRESETREQ bit 2, PRIGROUP [10:8] */
#define SCB_CCR         0xE000ED14u   /* DC bit 16, IC bit 17 */
#define SCB_CCSIDR      0xE000ED80u   /* NumSets [27:13], Associativity [12:3], LineSize [2:0] */
#define SCB_CSSELR      0xE000ED84u   /* 0 = level 1 data cache */
#define SCB_ICIALLU     0xE000EF50u
#define SCB_DCISW       0xE000EF60u   /* way in [31:30] (4 ways), set in [13:5] (32-byte lines) */
#define DEMCR           0xE000EDFCu   /* TRCENA bit 24 */
#define DWT_CTRL        0xE0001000u   /* CYCCNTENA bit 0 */
#define DWT_CYCCNT      0xE0001004u
#define DWT_LAR         0xE0001FB0u   /* write 0xC5ACCE55 to unlock (Cortex-M7) */

#define SPIN_LIMIT      2000000u      /* bounded waits for clock/regulator ready flags */

extern const void *tp_vector_table[];

static inline void dsb_isb(void) { __asm volatile("dsb 0xF\n isb 0xF" ::: "memory"); }

static int wait_set(uint32_t addr, uint32_t mask)
{
    for (uint32_t i = 0; i < SPIN_LIMIT; i++)
        if (REG32(addr) & mask) return 1;
    return 0;
}

static void clocks_init(void)
{
    /* Power interface clock, then voltage scale 1 (VOS = 11) before the PLL is enabled (§4.1.4). */
    REG32(RCC_APB1ENR) |= 1u << 28;
    (void)REG32(RCC_APB1ENR);
    REG32(PWR_CR1) = (REG32(PWR_CR1) & ~(3u << 14)) | (3u << 14);

    /* HSE bypass: the 8 MHz MCO of the ST-LINK drives OSC_IN (§5.3.1: set HSEBYP before HSEON). */
    REG32(RCC_CR) |= RCC_CR_HSEBYP;
    REG32(RCC_CR) |= RCC_CR_HSEON;
    uint32_t pllcfgr;
    if (wait_set(RCC_CR, RCC_CR_HSERDY)) {
        /* PLLSRC = HSE, PLLM = 4, PLLN = 216, PLLP = 2 (00), PLLQ = 9 */
        pllcfgr = (1u << 22) | 4u | (216u << 6) | (0u << 16) | (9u << 24);
    } else {
        REG32(RCC_CR) &= ~(RCC_CR_HSEON | RCC_CR_HSEBYP);
        (void)wait_set(RCC_CR, RCC_CR_HSIRDY);
        /* PLLSRC = HSI (16 MHz), PLLM = 8, PLLN = 216, PLLP = 2, PLLQ = 9 */
        pllcfgr = (0u << 22) | 8u | (216u << 6) | (0u << 16) | (9u << 24);
    }
    REG32(RCC_CR) &= ~RCC_CR_PLLON;          /* PLLCFGR may only be written with the PLL off */
    REG32(RCC_PLLCFGR) = pllcfgr;
    REG32(RCC_CR) |= RCC_CR_PLLON;
    (void)wait_set(RCC_CR, RCC_CR_PLLRDY);

    /* Over-drive (§4.1.4 steps 4-7): ODEN, wait ODRDY, ODSWEN, wait ODSWRDY. */
    REG32(PWR_CR1) |= 1u << 16;
    (void)wait_set(PWR_CSR1, 1u << 16);
    REG32(PWR_CR1) |= 1u << 17;
    (void)wait_set(PWR_CSR1, 1u << 17);

    /* 7 wait states (Table 5), ART accelerator reset then enabled, prefetch on (§3.3.2, §3.7.1).
     * The latency must be programmed (and read back) before raising HCLK. */
    REG32(FLASH_ACR) = 7u;
    while ((REG32(FLASH_ACR) & 0xFu) != 7u) {
    }
    REG32(FLASH_ACR) |= 1u << 11;            /* ARTRST (ART disabled at this point) */
    REG32(FLASH_ACR) &= ~(1u << 11);
    REG32(FLASH_ACR) |= (1u << 9) | (1u << 8);  /* ARTEN, PRFTEN */

    /* Bus prescalers: HPRE /1 (0000), PPRE1 /4 (101), PPRE2 /2 (100); then SW = PLL (10). */
    uint32_t cfgr = REG32(RCC_CFGR);
    cfgr &= ~((0xFu << 4) | (7u << 10) | (7u << 13) | 3u);
    cfgr |= (5u << 10) | (4u << 13);
    REG32(RCC_CFGR) = cfgr;
    REG32(RCC_CFGR) = cfgr | 2u;
    for (uint32_t i = 0; i < SPIN_LIMIT && ((REG32(RCC_CFGR) >> 2) & 3u) != 2u; i++) {
    }
}

static void caches_init(void)
{
    /* I-cache: invalidate all, then enable (Cortex-M7 TRM "Enabling the instruction cache"). */
    dsb_isb();
    REG32(SCB_ICIALLU) = 0u;
    dsb_isb();
    REG32(SCB_CCR) |= 1u << 17;
    dsb_isb();

    /* D-cache: invalidate every set/way of L1 D, then enable ("Enabling the data cache"). */
    REG32(SCB_CSSELR) = 0u;
    __asm volatile("dsb 0xF" ::: "memory");
    uint32_t ccsidr = REG32(SCB_CCSIDR);
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    for (uint32_t set = 0; set < sets; set++)
        for (uint32_t way = 0; way < ways; way++)
            REG32(SCB_DCISW) = (way << 30) | (set << 5);
    __asm volatile("dsb 0xF" ::: "memory");
    REG32(SCB_CCR) |= 1u << 16;
    dsb_isb();
}

static void uart_init(void)
{
    REG32(RCC_AHB1ENR) |= 1u << 3;             /* GPIODEN */
    REG32(RCC_APB1ENR) |= 1u << 18;            /* USART3EN */
    (void)REG32(RCC_APB1ENR);
    REG32(RCC_DCKCFGR2) &= ~(3u << 4);         /* USART3SEL = PCLK1 */

    uint32_t gd = GPIOD_BASE;
    REG32(gd + GPIO_MODER) = (REG32(gd + GPIO_MODER) & ~(0xFu << 16)) | (0xAu << 16);   /* PD8, PD9: AF */
    REG32(gd + GPIO_OSPEEDR) = (REG32(gd + GPIO_OSPEEDR) & ~(0xFu << 16)) | (0xAu << 16);
    REG32(gd + GPIO_PUPDR) = (REG32(gd + GPIO_PUPDR) & ~(0xFu << 16)) | (0x4u << 16);    /* RX pull-up */
    REG32(gd + GPIO_AFRH) = (REG32(gd + GPIO_AFRH) & ~0xFFu) | 0x77u;                    /* AF7 */

    REG32(USART_CR1) = 0u;
    REG32(USART_BRR) = (APB1_HZ + TP_UART_BAUD / 2u) / TP_UART_BAUD;   /* 54 MHz / 115200 = 469 */
    REG32(USART_CR1) = (1u << 3) | (1u << 2) | 1u;                        /* TE, RE, UE */
}

static void counter_init(void)
{
    REG32(DEMCR) |= 1u << 24;                  /* TRCENA */
    REG32(DWT_LAR) = 0xC5ACCE55u;
    REG32(DWT_CYCCNT) = 0u;
    REG32(DWT_CTRL) |= 1u;                     /* CYCCNTENA */
}

void bsp_init(void)
{
    REG32(SCB_VTOR) = (uint32_t)(uintptr_t)tp_vector_table;
    dsb_isb();
    clocks_init();
    caches_init();
    counter_init();
    uart_init();
}

uint32_t bsp_counter_read(void) { return REG32(DWT_CYCCNT); }

const char *bsp_counter_unit(void) { return "cycles"; }

const char *bsp_board_name(void) { return TP_BOARD_NAME; }

/* Busy-wait until (ISR & mask) or about timeout_us have passed; CYCCNT-based, wrap-safe. */
static int wait_isr(uint32_t mask, uint32_t timeout_us)
{
    const uint32_t per_us = TP_BOARD_CLOCK_HZ / 1000000u;
    uint32_t last = REG32(DWT_CYCCNT), acc = 0, us = 0;
    for (;;) {
        if (REG32(USART_ISR) & mask) return 1;
        uint32_t now = REG32(DWT_CYCCNT);
        acc += now - last;
        last = now;
        while (acc >= per_us) {
            acc -= per_us;
            if (++us >= timeout_us) return 0;
        }
        if ((REG32(DWT_CTRL) & 1u) == 0u && ++acc > per_us * 4u) {   /* counter off: count polls */
            acc = 0;
            if (++us >= timeout_us) return 0;
        }
    }
}

void bsp_uart_write(const uint8_t *buf, size_t n)
{
    /* One byte takes 87 us at 115200 baud; give up after 10 ms per byte (UART not clocked). */
    for (size_t i = 0; i < n; i++) {
        if (!wait_isr(USART_ISR_TXE, 10000u)) return;
        REG32(USART_TDR) = buf[i];
    }
}

int bsp_uart_getc(uint32_t timeout_ms)
{
    if (REG32(USART_ISR) & USART_ISR_ORE) REG32(USART_ICR) = USART_ISR_ORE;  /* overrun: clear, go on */
    if (REG32(USART_ISR) & USART_ISR_RXNE) return (int)(REG32(USART_RDR) & 0xFFu);
    if (timeout_ms == 0u) return -1;
    uint32_t left = timeout_ms;
    while (left--) {
        if (wait_isr(USART_ISR_RXNE | USART_ISR_ORE, 1000u)) {
            if (REG32(USART_ISR) & USART_ISR_ORE) REG32(USART_ICR) = USART_ISR_ORE;
            if (REG32(USART_ISR) & USART_ISR_RXNE) return (int)(REG32(USART_RDR) & 0xFFu);
        }
    }
    return -1;
}

void bsp_exit(int status)
{
    (void)status;
    (void)wait_isr(USART_ISR_TC, 10000u);      /* let the last byte leave the shifter */
#if TP_EXIT_RESET
    __asm volatile("dsb 0xF" ::: "memory");
    REG32(SCB_AIRCR) = (0x05FAu << 16) | (REG32(SCB_AIRCR) & (7u << 8)) | (1u << 2);
    __asm volatile("dsb 0xF" ::: "memory");
#endif
    for (;;) {
        __asm volatile("wfi");
    }
}
