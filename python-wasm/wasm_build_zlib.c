/* zlib's own deflate, under other names: the guest's side of wasm_build_native.c, which
 * defines zlib's deflate entry points and hands each stream to the host or to these. The
 * recipe compiles this file with zlib's source folder on the include path and zlib's flags;
 * zlib's deflate.o is then never taken from libz.a (trees.o and the rest still are). */

#define deflateInit_ wasm_build_guest_deflateInit_
#define deflateInit2_ wasm_build_guest_deflateInit2_
#define deflate wasm_build_guest_deflate
#define deflateEnd wasm_build_guest_deflateEnd
#define deflateCopy wasm_build_guest_deflateCopy
#define deflateSetDictionary wasm_build_guest_deflateSetDictionary
#define deflateReset wasm_build_guest_deflateReset

#include "deflate.c"
