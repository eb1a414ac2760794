/* Which kernel variant each layer of a generated model runs (run in QEMU by tests/test_variants.py).
 *
 * Built by tinyprune.firmware.build_firmware as the "harness" of a codegen folder, with
 * -DTP_ARM_REPORT_VARIANT: every DSP kernel entry then stores its TP_VAR_* code in tp_arm_variant
 * (tp_nn_arm.h). The layer hook clears it before each layer and records it after; one inference on a
 * fixed pseudo-random input (every input of a multi-input model reads the same buffer, of the
 * largest input's size, TP_VARIANT_IN_BYTES). Prints one line per layer, `VARIANT <layer> <code>`, then the sentinel
 * `TP_VARIANTS layers=<n> status=<model_invoke status>` and exits with that status. The codes are
 * compared with the ones codegen chose (codegen.json, layers[].variant.code).
 * Compiled only with TP_VARIANT_TEST_MAIN (the test passes it). May include only bsp.h, model.h and
 * the kernel headers. */
#if defined(TP_VARIANT_TEST_MAIN)
#include <stdint.h>
#include <stddef.h>
#include "bsp.h"
#include "model.h"
#include "tp_nn.h"

#define TP_LAYERS (MODEL_NUM_LAYERS > 0 ? MODEL_NUM_LAYERS : 1)

volatile int32_t tp_arm_variant;
static int32_t codes[TP_LAYERS];
#ifndef TP_VARIANT_IN_BYTES
#define TP_VARIANT_IN_BYTES MODEL_INPUT_BYTES
#endif
static int8_t input[TP_VARIANT_IN_BYTES] __attribute__((aligned(16)));
/* every output is copied to the same buffer (only the variants are looked at), of the largest
 * output's size */
#ifndef TP_VARIANT_OUT_BYTES
#define TP_VARIANT_OUT_BYTES MODEL_OUTPUT_BYTES
#endif
static int8_t output[TP_VARIANT_OUT_BYTES] __attribute__((aligned(16)));

static void put_str(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    bsp_uart_write((const uint8_t *)s, n);
}

static void put_int(int32_t v)
{
    char buf[12];
    int i = 11;
    uint32_t u = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u);
    if (v < 0) {
        buf[--i] = '-';
    }
    put_str(&buf[i]);
}

static void hook(int layer, int is_end)
{
    if (layer < 0 || layer >= TP_LAYERS) {
        return;
    }
    if (!is_end) {
        tp_arm_variant = 0;
    } else {
        codes[layer] = tp_arm_variant;
    }
}

int main(void)
{
    uint32_t x = 0x2545F491u;
    int32_t i;
    int st;
    const int8_t *ins[MODEL_NUM_INPUTS];
    int8_t *outs[MODEL_NUM_OUTPUTS];
    bsp_init();
    for (i = 0; i < MODEL_NUM_INPUTS; ++i) {
        ins[i] = input;
    }
    for (i = 0; i < MODEL_NUM_OUTPUTS; ++i) {
        outs[i] = output;
    }
    for (i = 0; i < TP_VARIANT_IN_BYTES; ++i) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        input[i] = (int8_t)(x >> 24);
    }
    model_set_layer_hook(hook);
    st = model_invoke_multi(ins, outs);
    for (i = 0; i < MODEL_NUM_LAYERS; ++i) {
        put_str("VARIANT ");
        put_int(i);
        put_str(" ");
        put_int(codes[i]);
        put_str("\n");
    }
    put_str("TP_VARIANTS layers=");
    put_int(MODEL_NUM_LAYERS);
    put_str(" status=");
    put_int(st);
    put_str("\n");
    bsp_exit(st);
}
#endif
