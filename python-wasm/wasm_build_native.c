/* zlib's deflate and SHA-256's block function, run by the host (see docs/runtime.md,
 * "Native deflate and SHA-256").
 *
 * A wheel build spends much of its time compressing and hashing the files it packs, and in
 * the guest both run some 1.2-4x slower than native. wasm-build's host implements them with
 * the same zlib (1.3.1, the same sources) and with a SHA-256 of its own, behind the imports
 * of the "wasm_build" module below, which every host running this module must define. The
 * host may refuse a new stream or a block (a host whose zlib is not 1.3.1, too many streams,
 * the memory limit): the guest then does the work itself, with the same result.
 *
 * deflate: this file defines zlib's deflateInit_, deflateInit2_, deflate, deflateEnd,
 * deflateCopy, deflateSetDictionary and deflateReset. A stream the host took is marked by a
 * small `host_stream` in place of zlib's internal state; every other stream goes to zlib's own
 * code, compiled into this module under other names by wasm_build_zlib.c. zlib's other deflate
 * functions are zlib's own and refuse a host stream (Z_STREAM_ERROR), as its state check fails;
 * CPython calls none of them.
 *
 * The host gets a call's input in bounded pieces, all but the last marked HOST_DEFLATE_CUT
 * (no flush). zlib's output can depend on where its input is cut in two ways. A piece that
 * ends just short of the window's end makes zlib slide its window one string early: the host
 * takes less of such a piece (host/src/sandbox/native/window.rs) and this loop sends the
 * rest again. And where a block may be stored and span more than the window's reach, the
 * point where zlib slides decides whether the block can still be stored. So the host is
 * offered only streams where that cannot happen: levels 1-9 (level 0 stores everything), the default and filtered strategies
 * (Huffman-only, RLE and fixed blocks stay in the guest), and at most 2^(memLevel+6) - 1
 * symbols per block within the window's reach (memLevel <= |windowBits| - 7). zlib's and
 * CPython's defaults (memLevel 8, windowBits 15) qualify. A copy of a host stream can only
 * be made by the host: it fails with Z_MEM_ERROR when the memory limit leaves no room, as
 * the guest's own copy would.
 *
 * SHA-256: the recipe renames HACL*'s Hacl_Hash_SHA2_sha256_update_nblocks (hashlib's
 * SHA-224 and SHA-256 block loop) to guest_sha256_update_nblocks and appends the function
 * below in its place, so that one copy of Hacl_Hash_SHA2.c holds both. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zlib.h"

#define WASM_BUILD_IMPORT(name) \
    __attribute__((import_module("wasm_build"), import_name(name)))

/* What a host deflate call did to the stream's public fields. */
typedef struct {
    uint32_t consumed;
    uint32_t produced;
    uint32_t adler;
    int32_t data_type;
    /* The zlib return code whose message zlib put in `msg` during the call; 0: none. */
    int32_t msg_code;
} host_result;

/* A handle >= 0, or < 0 when the host does not take the stream. */
WASM_BUILD_IMPORT("deflate_init")
int32_t host_deflate_init(int32_t level, int32_t method, int32_t wbits, int32_t mem_level,
                          int32_t strategy);
/* The zlib return code of deflate(), deflateSetDictionary() or deflateReset(). */
WASM_BUILD_IMPORT("deflate")
int32_t host_deflate(int32_t handle, const uint8_t *in, uint32_t in_len, uint8_t *out,
                     uint32_t out_len, int32_t flush, host_result *result);
/* The dictionary's last window (what zlib keeps of it), and its Adler-32 over the whole, which
 * zlib puts in a zlib header: the host's work stays bounded. `consumed` is what zlib added
 * to total_in. */
WASM_BUILD_IMPORT("deflate_set_dictionary")
int32_t host_deflate_set_dictionary(int32_t handle, const uint8_t *dict, uint32_t len,
                                    uint32_t adler, host_result *result);
WASM_BUILD_IMPORT("deflate_reset")
int32_t host_deflate_reset(int32_t handle, host_result *result);
/* A new handle, or < 0 when the host has no room for the copy. */
WASM_BUILD_IMPORT("deflate_copy")
int32_t host_deflate_copy(int32_t handle);
/* deflateEnd()'s return code. */
WASM_BUILD_IMPORT("deflate_end")
int32_t host_deflate_end(int32_t handle);
/* 0: `state` advanced over `blocks` 64-byte blocks; otherwise the host refused. */
WASM_BUILD_IMPORT("sha256_blocks")
int32_t host_sha256_blocks(uint32_t *state, const uint8_t *data, uint32_t blocks);

/* The most input one host call takes, so that no call runs long (the host refuses more). */
#define HOST_DEFLATE_PIECE (16u * 1024u)
/* host_deflate's flush for a piece cut from a longer input: Z_NO_FLUSH, and the host may take
 * less of it (at most 261 bytes less) so that zlib slides its window as without the cut. */
#define HOST_DEFLATE_CUT 0x100
#define HOST_SHA256_PIECE_BLOCKS 1024u

/* zlib's own functions, renamed by wasm_build_zlib.c. */
int wasm_build_guest_deflateInit2_(z_streamp strm, int level, int method, int windowBits,
                                   int memLevel, int strategy, const char *version,
                                   int stream_size);
int wasm_build_guest_deflate(z_streamp strm, int flush);
int wasm_build_guest_deflateEnd(z_streamp strm);
int wasm_build_guest_deflateCopy(z_streamp dest, z_streamp source);
int wasm_build_guest_deflateSetDictionary(z_streamp strm, const Bytef *dictionary,
                                          uInt dictLength);
int wasm_build_guest_deflateReset(z_streamp strm);

/* In place of zlib's internal state. The first member is NULL where zlib's state points back
 * at its stream, so zlib's own functions reject the stream; the second is never one of
 * zlib's status values. */
typedef struct {
    void *null_strm;
    uint32_t magic;
    int32_t handle;
    /* 2^windowBits, and whether a zlib header (and so the dictionary's Adler-32) is written */
    uint32_t window;
    int zlib_header;
    /* deflate() returned Z_STREAM_END (until deflateReset) */
    int finished;
} host_stream;

#define HOST_STREAM_MAGIC 0x57424831u /* "WBH1" */

static host_stream *
host_stream_of(z_streamp strm)
{
    if (strm == Z_NULL || strm->state == Z_NULL) {
        return NULL;
    }
    host_stream *hs = (host_stream *)strm->state;
    if (hs->null_strm != NULL || hs->magic != HOST_STREAM_MAGIC) {
        return NULL;
    }
    return hs;
}

static int
attach(z_streamp strm, int32_t handle, const host_stream *like)
{
    host_stream *hs = malloc(sizeof *hs);
    if (hs == NULL) {
        host_deflate_end(handle);
        return 0;
    }
    *hs = *like;
    hs->handle = handle;
    strm->state = (struct internal_state *)hs;
    return 1;
}

static void
apply(z_streamp strm, const host_result *r)
{
    strm->next_in += r->consumed;
    strm->avail_in -= r->consumed;
    strm->total_in += r->consumed;
    strm->next_out += r->produced;
    strm->avail_out -= r->produced;
    strm->total_out += r->produced;
    strm->adler = r->adler;
    strm->data_type = r->data_type;
    if (r->msg_code != 0) {
        strm->msg = (char *)zError(r->msg_code);
    }
}

int ZEXPORT
deflateInit2_(z_streamp strm, int level, int method, int windowBits, int memLevel,
              int strategy, const char *version, int stream_size)
{
    if (level == Z_DEFAULT_COMPRESSION) {
        level = 6;
    }
    /* What zlib accepts and whose output cannot depend on the pieces (see above). */
    int bits = windowBits < 0 ? -windowBits : windowBits > 15 ? windowBits - 16 : windowBits;
    int header = windowBits > 0 && windowBits <= 15;
    if (bits == 8 && header) {
        bits = 9; /* as zlib does */
    }
    int valid = version != Z_NULL && version[0] == ZLIB_VERSION[0] &&
                stream_size == (int)sizeof(z_stream) && strm != Z_NULL &&
                method == Z_DEFLATED && level >= 1 && level <= 9 &&
                (strategy == Z_DEFAULT_STRATEGY || strategy == Z_FILTERED) &&
                ((windowBits >= 8 && windowBits <= 15) ||
                 (windowBits >= -15 && windowBits <= -8) ||
                 (windowBits >= 24 && windowBits <= 31)) &&
                bits >= 9 && memLevel >= 1 && memLevel <= (bits >= 10 ? bits - 7 : 1);
    if (valid) {
        int32_t handle = host_deflate_init(level, method, windowBits, memLevel, strategy);
        if (handle >= 0) {
            strm->msg = Z_NULL;
            host_stream like = {NULL, HOST_STREAM_MAGIC, handle, 1u << bits, header, 0};
            if (!attach(strm, handle, &like)) {
                strm->msg = (char *)zError(Z_MEM_ERROR);
                return Z_MEM_ERROR;
            }
            strm->total_in = strm->total_out = 0;
            strm->data_type = Z_UNKNOWN;
            /* zlib: adler32(0L, Z_NULL, 0) with a zlib header, crc32 (0) with gzip's */
            strm->adler = windowBits >= 24 ? 0 : 1;
            return Z_OK;
        }
    }
    return wasm_build_guest_deflateInit2_(strm, level, method, windowBits, memLevel, strategy,
                                          version, stream_size);
}

int ZEXPORT
deflateInit_(z_streamp strm, int level, const char *version, int stream_size)
{
    return deflateInit2_(strm, level, Z_DEFLATED, MAX_WBITS, 8, Z_DEFAULT_STRATEGY, version,
                         stream_size);
}

int ZEXPORT
deflate(z_streamp strm, int flush)
{
    host_stream *hs = host_stream_of(strm);
    if (hs == NULL) {
        return wasm_build_guest_deflate(strm, flush);
    }
    if (flush > Z_BLOCK || flush < 0) {
        return Z_STREAM_ERROR;
    }
    /* zlib's own checks of the caller's pointers, which the host cannot see as NULL */
    if (strm->next_out == Z_NULL || (strm->avail_in != 0 && strm->next_in == Z_NULL)) {
        strm->msg = (char *)zError(Z_STREAM_ERROR);
        return Z_STREAM_ERROR;
    }
    for (;;) {
        /* A finished stream takes no input: the whole call in one (zlib's error for it). */
        int last = hs->finished || strm->avail_in <= HOST_DEFLATE_PIECE;
        uInt piece = last ? strm->avail_in : HOST_DEFLATE_PIECE;
        /* What a refused call leaves as it was. */
        host_result r = {0, 0, (uint32_t)strm->adler, strm->data_type, 0};
        int ret = host_deflate(hs->handle, strm->next_in, piece, strm->next_out,
                               strm->avail_out, last ? flush : HOST_DEFLATE_CUT, &r);
        apply(strm, &r);
        if (ret == Z_STREAM_END) {
            hs->finished = 1;
        }
        if (ret != Z_OK || strm->avail_out == 0 || last) {
            return ret;
        }
    }
}

int ZEXPORT
deflateEnd(z_streamp strm)
{
    host_stream *hs = host_stream_of(strm);
    if (hs == NULL) {
        return wasm_build_guest_deflateEnd(strm);
    }
    int ret = host_deflate_end(hs->handle);
    free(hs);
    strm->state = Z_NULL;
    return ret;
}

int ZEXPORT
deflateCopy(z_streamp dest, z_streamp source)
{
    host_stream *hs = host_stream_of(source);
    if (hs == NULL) {
        return wasm_build_guest_deflateCopy(dest, source);
    }
    if (dest == Z_NULL) {
        return Z_STREAM_ERROR;
    }
    int32_t handle = host_deflate_copy(hs->handle);
    if (handle < 0) {
        return Z_MEM_ERROR;
    }
    memcpy(dest, source, sizeof(z_stream));
    if (!attach(dest, handle, hs)) {
        return Z_MEM_ERROR;
    }
    return Z_OK;
}

int ZEXPORT
deflateSetDictionary(z_streamp strm, const Bytef *dictionary, uInt dictLength)
{
    host_stream *hs = host_stream_of(strm);
    if (hs == NULL) {
        return wasm_build_guest_deflateSetDictionary(strm, dictionary, dictLength);
    }
    if (dictionary == Z_NULL) {
        return Z_STREAM_ERROR;
    }
    uInt kept = dictLength > hs->window ? hs->window : dictLength;
    uint32_t adler = hs->zlib_header ? adler32(strm->adler, dictionary, dictLength) : 0;
    host_result r = {0, 0, (uint32_t)strm->adler, strm->data_type, 0};
    int ret = host_deflate_set_dictionary(hs->handle, dictionary + (dictLength - kept), kept,
                                          adler, &r);
    if (ret == Z_OK) {
        strm->total_in += r.consumed;
        strm->adler = r.adler;
    }
    return ret;
}

int ZEXPORT
deflateReset(z_streamp strm)
{
    host_stream *hs = host_stream_of(strm);
    if (hs == NULL) {
        return wasm_build_guest_deflateReset(strm);
    }
    host_result r = {0, 0, 0, 0, 0};
    int ret = host_deflate_reset(hs->handle, &r);
    if (ret == Z_OK) {
        strm->total_in = strm->total_out = 0;
        strm->msg = Z_NULL;
        strm->data_type = Z_UNKNOWN;
        strm->adler = r.adler;
        hs->finished = 0;
    }
    return ret;
}

/* HACL*'s block loop (see the top): `len` bytes, a multiple of 64, into `st`. */
void guest_sha256_update_nblocks(uint32_t len, uint8_t *b, uint32_t *st);

void
wasm_build_sha256_update_nblocks(uint32_t len, uint8_t *b, uint32_t *st)
{
    uint32_t blocks = len / 64u;
    while (blocks > 0) {
        uint32_t piece = blocks > HOST_SHA256_PIECE_BLOCKS ? HOST_SHA256_PIECE_BLOCKS : blocks;
        if (host_sha256_blocks(st, b, piece) != 0) {
            guest_sha256_update_nblocks(blocks * 64u, b, st);
            return;
        }
        b += piece * 64u;
        blocks -= piece;
    }
}
