/* Fake generated model: one int8 fully-connected layer with TFLite's reference integer
 * requantisation, split in two "layers" (accumulate, requantise) to exercise the layer hook. */
#include "model.h"
#include "fake_params.h"

const char *const model_layer_names[] = {"fc_accumulate", "fc_requantize"};
static void (*layer_hook)(int, int);
static int32_t acc[FC_OUT];

void model_set_layer_hook(void (*hook)(int layer, int is_end)) { layer_hook = hook; }

static int32_t srdhm(int32_t a, int32_t b)
{
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    if (a == b && a == INT32_MIN) return INT32_MAX;
    return (int32_t)((ab + nudge) / (1ll << 31));
}

static int32_t rdbypot(int32_t x, int e)
{
    int32_t mask = (int32_t)((1ll << e) - 1);
    int32_t rem = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > threshold ? 1 : 0);
}

int model_invoke(const int8_t *in, int8_t *out)
{
    int o, i;
    if (layer_hook) layer_hook(0, 0);
    for (o = 0; o < FC_OUT; o++) {
        int32_t a = 0;
        for (i = 0; i < FC_IN; i++) a += ((int32_t)in[i] + IN_OFFSET) * (int32_t)fc_w[o * FC_IN + i];
        acc[o] = a + fc_b[o];
    }
    if (layer_hook) layer_hook(0, 1);
    if (layer_hook) layer_hook(1, 0);
    for (o = 0; o < FC_OUT; o++) {
        int ls = OUT_SHIFT > 0 ? OUT_SHIFT : 0, rs = OUT_SHIFT > 0 ? 0 : -OUT_SHIFT;
        int32_t v = rdbypot(srdhm(acc[o] * (1 << ls), OUT_MULT), rs) + OUT_OFFSET;
        out[o] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
    if (layer_hook) layer_hook(1, 1);
    return 0;
}
