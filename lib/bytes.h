/*
 * bytes — big-endian integers in byte buffers, for the on-disk and
 * on-pipe formats (docs/FORMATS.md: every multi-byte integer is big-endian).
 */
#ifndef SEALPOST_BYTES_H
#define SEALPOST_BYTES_H

#include <stdint.h>

static inline void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
