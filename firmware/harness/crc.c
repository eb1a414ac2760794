/* CRC-32 (IEEE 802.3 / zlib: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF),
 * with a 16-entry nibble table: 64 bytes of flash, ~2 table look-ups per byte.
 * Pure C99; may not include bsp.h or model.h. */
#include "protocol.h"

static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

/* crc is the running value as returned by a previous call (start with 0). */
uint32_t tp_crc32_update(uint32_t crc, const uint8_t *buf, size_t n)
{
    size_t i;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= buf[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return ~crc;
}

uint32_t tp_crc32(const uint8_t *buf, size_t n)
{
    return tp_crc32_update(0u, buf, n);
}
