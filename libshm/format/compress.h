/*
 * Message body compression as RocketMQ stores it: sysflag bit 0
 * (COMPRESSED) says the body is compressed, bits 8-10 say how (LZ4 frame,
 * zstd frame, zlib stream; 0 is zlib, as pre-5.x clients write).  The
 * record keeps the compressed bytes; BODYCRC covers them.
 *
 * Compressing is the producer's (LZ4 frames only); decompressing is any
 * reader's.  A stored body is untrusted: decompression is bounded by the
 * caller's limit (maxMessageSize), whatever sizes the stream declares.
 * Formats: docs/formats.md ("Compressed bodies").
 */
#ifndef SHMQ_COMPRESS_H
#define SHMQ_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "shmq/errors.h"
#include "shmq/types.h"

/*
 * How a record with sysflag stores its body: SHMQ_COMPRESSION_NONE when
 * bit 0 is clear, else SHMQ_COMPRESSION_LZ4, _ZSTD or _ZLIB (type bits 0
 * read as ZLIB), or SHMQ_E_CORRUPT for type bits 4..7 (no such type).
 */
int shmq_body_compression(int32_t sysflag);

/* The sysflag bits of a body compressed with type (COMPRESSED and the type bits). */
int32_t shmq_body_compression_sysflag(int type);

/* Capacity shmq_body_compress_lz4() needs for a body of len bytes. */
size_t shmq_body_lz4_bound(size_t len);

/*
 * Compress src[0..len) into one LZ4 frame (independent blocks, content
 * size recorded, as lz4-java's frame reader takes it) at dst (cap bytes,
 * at least shmq_body_lz4_bound(len)).  Returns the frame's length, or
 * SHMQ_E_ARG when cap is too small.
 */
int64_t shmq_body_compress_lz4(const void *src, size_t len, void *dst, size_t cap);

/*
 * Decompress the body src[0..len) stored with compression type (one of
 * SHMQ_COMPRESSION_LZ4, _ZSTD, _ZLIB) into a new malloc'd buffer *out (the
 * caller frees it) of *out_len bytes, never more than max_len.  Returns 0,
 * SHMQ_E_CORRUPT when the bytes are not one whole stream of that type (or
 * several frames, for LZ4 and zstd), SHMQ_E_TOO_BIG when they expand past
 * max_len (nothing beyond max_len + 1 bytes is ever allocated for the
 * output), SHMQ_E_ARG for another type, -ENOMEM.  The error detail says what
 * failed.
 */
int shmq_body_decompress(int type, const void *src, size_t len, size_t max_len, uint8_t **out,
                         size_t *out_len);

#endif
