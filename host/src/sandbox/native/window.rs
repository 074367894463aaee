//! Where zlib's window stands, read from zlib 1.3.1's own state, so that the pieces the guest
//! cuts a long input into give the bytes of the uncut input.
//!
//! zlib reads input into a window of twice its reach (`w`) and slides it by `w` once the
//! next string to match starts within `MIN_LOOKAHEAD` (262) bytes of the window's end. When
//! a call's input runs out, zlib stops with fewer than 262 bytes ahead and, on the next
//! call, slides the window as soon as the next string lies past `2w - 262`. Fed without a
//! cut, it would read on and slide one string later; the string at `2w - 262` then keeps
//! its match exactly the window's reach back, which the early slide forgets. So a piece
//! must not end with the window's end in `[2w - 261, 2w - 1]`: the host takes less of such
//! a piece (at most 261 bytes less), ending it at `2w - 262`, and the guest sends the rest
//! again. Every other end gives the same bytes: zlib then reads on to the window's end
//! before it would slide.

use std::ffi::{c_int, c_long, c_uint, c_ulong};

use libz_sys as z;

/// zlib's `MIN_LOOKAHEAD`: `MAX_MATCH + MIN_MATCH + 1`.
const MIN_LOOKAHEAD: u32 = 262;
/// zlib's `INIT_STATE` and `GZIP_STATE`: a stream that has not started.
const INIT_STATE: c_int = 42;
const GZIP_STATE: c_int = 57;

/// The head of zlib 1.3.1's `deflate_state` (deflate.h), up to `lookahead`, as libz-sys
/// 1.1.24 builds it (no option changes these fields). [`state_is_zlib_1_3_1`] checks it
/// against every new stream; a stream it does not match stays in the guest.
#[repr(C)]
struct StateHead {
    strm: *const z::z_stream,
    status: c_int,
    pending_buf: *const u8,
    pending_buf_size: c_ulong,
    pending_out: *const u8,
    pending: c_ulong,
    wrap: c_int,
    gzhead: *const z::gz_header,
    gzindex: c_ulong,
    method: u8,
    last_flush: c_int,
    w_size: c_uint,
    w_bits: c_uint,
    w_mask: c_uint,
    window: *const u8,
    window_size: c_ulong,
    prev: *const u16,
    head: *const u16,
    ins_h: c_uint,
    hash_size: c_uint,
    hash_bits: c_uint,
    hash_mask: c_uint,
    hash_shift: c_uint,
    block_start: c_long,
    match_length: c_uint,
    prev_match: c_uint,
    match_available: c_int,
    strstart: c_uint,
    match_start: c_uint,
    lookahead: c_uint,
}

fn head(strm: &z::z_stream) -> &StateHead {
    assert!(!strm.state.is_null(), "a stream zlib initialized");
    // SAFETY: zlib's state of a live stream begins with these fields (checked for each
    // stream by `state_is_zlib_1_3_1` before the host keeps it); they are only read.
    unsafe { &*strm.state.cast::<StateHead>() }
}

/// Whether a stream deflateInit2_ just made for window bits `bits` (9-15) has the state
/// [`StateHead`] describes.
pub(super) fn state_is_zlib_1_3_1(strm: &z::z_stream, bits: u32) -> bool {
    let s = head(strm);
    std::ptr::eq(s.strm, strm)
        && (s.status == INIT_STATE || s.status == GZIP_STATE)
        && s.method == 8
        && s.w_bits == bits
        && s.w_size == 1 << bits
        && s.w_mask == s.w_size - 1
        && s.window_size == 2 * c_ulong::from(s.w_size)
        && !s.window.is_null()
        && s.strstart == 0
        && s.lookahead == 0
        && s.match_available == 0
}

/// How much of a `len`-byte piece the guest cut from a longer input zlib should take, so
/// that its window slides where it would without the cut (see the top).
pub(super) fn uncut_len(strm: &z::z_stream, len: u32) -> u32 {
    let s = head(strm);
    let w = s.w_size;
    // Slides move the window's end by exactly `w`: its position modulo `w` is enough.
    let end = ((s.strstart + s.lookahead) % w + len % w) % w;
    if end < w - (MIN_LOOKAHEAD - 1) {
        return len;
    }
    let short = end - (w - MIN_LOOKAHEAD);
    if short < len { len - short } else { len }
}

/// Whether deflateSetDictionary would put the dictionary's Adler-32 in `adler` (a zlib
/// header not yet written).
pub(super) fn dictionary_sets_adler(strm: &z::z_stream) -> bool {
    head(strm).wrap == 1
}

#[cfg(test)]
mod tests {
    use super::super::{Account, NativeState};
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    /// A host zlib stream (its account leaked: the test's streams are few).
    struct Deflater(Box<z::z_stream>);

    impl Deflater {
        fn new(level: c_int, wbits: c_int, mem_level: c_int, dictionary: &[u8]) -> Self {
            Self::with_strategy(level, wbits, mem_level, z::Z_DEFAULT_STRATEGY, dictionary)
        }

        fn with_strategy(
            level: c_int,
            wbits: c_int,
            mem_level: c_int,
            strategy: c_int,
            dictionary: &[u8],
        ) -> Self {
            let account = Account {
                held: Arc::new(AtomicU64::new(0)),
                room: AtomicU64::new(u64::MAX),
            };
            let mut strm = NativeState::new(account.held.clone()).new_stream();
            strm.opaque = Box::into_raw(Box::new(account)).cast();
            // SAFETY: a fresh stream; the dictionary is read during the call only.
            unsafe {
                let ret = z::deflateInit2_(
                    &mut *strm,
                    level,
                    z::Z_DEFLATED,
                    wbits,
                    mem_level,
                    strategy,
                    z::zlibVersion(),
                    std::mem::size_of::<z::z_stream>() as c_int,
                );
                assert_eq!(ret, z::Z_OK);
                let bits = wbits.unsigned_abs() % 16;
                assert!(state_is_zlib_1_3_1(&strm, bits));
                if !dictionary.is_empty() {
                    let len = dictionary.len() as c_uint;
                    let ret = z::deflateSetDictionary(&mut *strm, dictionary.as_ptr(), len);
                    assert_eq!(ret, z::Z_OK);
                }
            }
            Self(strm)
        }

        /// Deflates `input` in one call through the guest's loop of at most `piece` bytes, all
        /// but the last without a flush; `uncut` takes less of a piece as the host does.
        fn call(&mut self, input: &[u8], piece: usize, uncut: bool, flush: c_int) -> Vec<u8> {
            let mut out = vec![0u8; input.len() + 1024];
            let strm = &mut *self.0;
            strm.next_in = input.as_ptr().cast_mut();
            strm.avail_in = input.len() as c_uint;
            strm.next_out = out.as_mut_ptr();
            strm.avail_out = out.len() as c_uint;
            let ret = guest_loop(strm, flush, uncut, piece as u32);
            assert!(ret == z::Z_OK || ret == z::Z_STREAM_END, "{ret}");
            assert_eq!(strm.avail_in, 0, "the output has room for all");
            out.truncate(out.len() - strm.avail_out as usize);
            out
        }

        /// One `deflate()` call of CPython's: the whole input, called again with what is
        /// left while the output (`out_chunk` bytes per call) fills. With `cut`, each call
        /// goes through the guest's loop: 16 KiB pieces, all but the last taken short as
        /// the host takes them (`uncut`) or whole. Returns the bytes and return codes.
        fn cpython_call(
            &mut self,
            input: &[u8],
            flush: c_int,
            out_chunk: usize,
            cut: Option<bool>,
        ) -> (Vec<u8>, Vec<c_int>) {
            let (mut out, mut codes) = (Vec::new(), Vec::new());
            let mut buffer = vec![0u8; out_chunk];
            let strm = &mut *self.0;
            strm.next_in = input.as_ptr().cast_mut();
            strm.avail_in = input.len() as c_uint;
            loop {
                strm.next_out = buffer.as_mut_ptr();
                strm.avail_out = out_chunk as c_uint;
                let ret = match cut {
                    // SAFETY: `input` and `buffer` outlive the call.
                    None => unsafe { z::deflate(strm, flush) },
                    Some(uncut) => guest_loop(strm, flush, uncut, 16 * 1024),
                };
                out.extend_from_slice(&buffer[..out_chunk - strm.avail_out as usize]);
                codes.push(ret);
                if strm.avail_out != 0 || (ret != z::Z_OK && ret != z::Z_BUF_ERROR) {
                    return (out, codes);
                }
            }
        }
    }

    /// python-wasm/wasm_build_native.c's `deflate()` loop over the host's `deflate`, in
    /// pieces of `size` bytes (the guest's are 16 KiB).
    fn guest_loop(strm: &mut z::z_stream, flush: c_int, uncut: bool, size: u32) -> c_int {
        loop {
            let avail = strm.avail_in;
            let last = avail <= size;
            let piece = if last { avail } else { size };
            let take = if last || !uncut {
                piece
            } else {
                uncut_len(strm, piece)
            };
            strm.avail_in = take;
            // SAFETY: the caller's buffers outlive the call.
            let ret = unsafe { z::deflate(strm, if last { flush } else { z::Z_NO_FLUSH }) };
            strm.avail_in += avail - take;
            if ret != z::Z_OK || strm.avail_out == 0 || last {
                return ret;
            }
        }
    }

    /// A small random number generator (the test needs no crate for it).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[self.below(from.len())]
        }
    }

    /// Random scenarios of CPython's calling pattern over the parameters the host takes:
    /// calls of sizes aimed at the window's band, flushes of every kind, output buffers
    /// down to one byte, dictionaries; data that repeats, at many places, the string
    /// exactly the window's reach back. The host's pieces give zlib's own bytes and return
    /// codes; pieces taken whole do not, in some scenario (the test can tell).
    #[test]
    fn cpython_s_calls_in_the_host_s_pieces_give_zlib_s_own_bytes() {
        let mut rng = Lcg(2026);
        let mut whole_pieces_differ = 0;
        for scenario in 0..120 {
            let bits = rng.pick(&[9u32, 10, 12, 15]);
            let wbits = match rng.below(3) {
                0 => -(bits as c_int),
                1 => bits as c_int,
                _ => bits as c_int + 16,
            };
            let most = if bits >= 10 { bits - 7 } else { 1 };
            let mem_level = 1 + rng.below(most as usize) as c_int;
            let level = 1 + rng.below(9) as c_int;
            let strategy = rng.pick(&[z::Z_DEFAULT_STRATEGY, z::Z_FILTERED]);
            let w = 1usize << bits;
            let len = rng.below(300_000);
            let mut state = scenario as u64 + 1;
            let mut data: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (state >> 56) as u8
                })
                .collect();
            // The string at each m·w - 262 repeats the one the window's reach back; and, away
            // from those, a fifth of the bytes repeat 100 bytes on, so that no block is stored.
            let traps: Vec<usize> = (1..)
                .map(|m| (m + 1) * w - 262)
                .take_while(|&at| at + 258 <= len)
                .collect();
            let clear = |c: usize| {
                traps.iter().all(|&t| {
                    [t, t - (w - 262)]
                        .iter()
                        .all(|&x| c + 60 + 20 <= x || c >= x + 278)
                })
            };
            for c in (100..len.saturating_sub(60)).step_by(300) {
                if clear(c) {
                    data.copy_within(c - 100..c - 40, c);
                }
            }
            for &at in &traps {
                let from = at - (w - 262);
                data.copy_within(from..from + 258, at);
            }
            let dictionary: Vec<u8> = if wbits < 16 && rng.below(4) == 0 {
                data[..rng.below(len.min(2 * w) + 1)].to_vec()
            } else {
                Vec::new()
            };
            let mut calls = Vec::new();
            let mut at = 0;
            while at < len {
                let size = match rng.below(3) {
                    0 => rng.pick(&[1, 100, 5_000, 16_383, 16_384, 16_385, 40_000, 100_000]),
                    // A call that ends in the band, at the window's end or just past it.
                    1 => {
                        let end = (at / w + 2) * w - rng.pick(&[1, 100, 261, 262, 0]);
                        end.saturating_sub(at).max(1)
                    }
                    _ => 1 + rng.below(70_000),
                };
                let end = (at + size).min(len);
                let flush = match rng.below(10) {
                    0 => z::Z_SYNC_FLUSH,
                    1 => z::Z_FULL_FLUSH,
                    2 => z::Z_PARTIAL_FLUSH,
                    3 => z::Z_BLOCK,
                    _ => z::Z_NO_FLUSH,
                };
                // zlib needs room for more than six bytes to end a flush (zlib.h).
                let smallest = if flush == z::Z_NO_FLUSH { 1 } else { 7 };
                let out_chunk = rng.pick(&[smallest, 7, 100, 4096, 1 << 20]);
                calls.push((at..end, flush, out_chunk));
                at = end;
            }
            let run = |cut: Option<bool>| {
                let mut d = Deflater::with_strategy(level, wbits, mem_level, strategy, &dictionary);
                let mut all = Vec::new();
                for (range, flush, out_chunk) in &calls {
                    all.push(d.cpython_call(&data[range.clone()], *flush, *out_chunk, cut));
                }
                all.push(d.cpython_call(&[], z::Z_FINISH, 1 << 20, cut));
                all
            };
            let zlib = run(None);
            let case = (
                scenario,
                level,
                wbits,
                mem_level,
                strategy,
                dictionary.len(),
            );
            assert!(run(Some(true)) == zlib, "{case:?}");
            whole_pieces_differ += usize::from(run(Some(false)) != zlib);
        }
        assert!(whole_pieces_differ > 0);
    }

    impl Drop for Deflater {
        fn drop(&mut self) {
            // SAFETY: a stream deflateInit2_ made.
            unsafe { z::deflateEnd(&mut *self.0) };
        }
    }

    /// Input, and a first call such that a guest's 16 KiB piece of the second ends one byte
    /// short of twice the window (counting the dictionary); the string where zlib then slides
    /// early repeats the one exactly the window's reach back, which heads its hash chain.
    /// Random bytes, a fifth of them repeated 100 bytes on so that no block is stored, except
    /// around the two strings (tests/fixtures/native/deflate_and_sha256.py builds the same).
    fn crafted(seed: u64, wbits: u32, mem_level: u32, dictionary: usize) -> (Vec<u8>, usize) {
        let w = 1usize << wbits;
        let piece = 16 * 1024;
        let pieces = if w > piece { 3 } else { 1 };
        let first = (w as i64 - 1 - (dictionary + pieces * piece) as i64).rem_euclid(w as i64);
        let first = first as usize;
        let end = first + pieces * piece;
        assert_eq!((end + dictionary) % w, w - 1);
        assert!(end + dictionary >= 2 * w - 1);
        let mut state = seed;
        let mut data: Vec<u8> = (0..end + 20_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let at = end - (MIN_LOOKAHEAD as usize - 1);
        let src = at - (w - MIN_LOOKAHEAD as usize);
        for c in (100..data.len() - 60).step_by(300) {
            if [src, at].iter().all(|&x| c + 60 <= x - 20 || c >= x + 278) {
                data.copy_within(c - 100..c - 40, c);
            }
        }
        let (shift, mask) = ((mem_level + 9) / 3, (1u32 << (mem_level + 7)) - 1);
        let hashed = |data: &[u8], p: usize| {
            (u32::from(data[p]) << (2 * shift)
                ^ u32::from(data[p + 1]) << shift
                ^ u32::from(data[p + 2]))
                & mask
        };
        for lead in 0..=u16::MAX {
            data[src..src + 2].copy_from_slice(&lead.to_be_bytes());
            data.copy_within(src..src + 258, at);
            let head = hashed(&data, src);
            if (src + 1..at).all(|p| hashed(&data, p) != head) {
                break;
            }
        }
        (data, first)
    }

    #[test]
    fn pieces_taken_short_of_the_slide_give_the_bytes_of_the_uncut_input() {
        let piece = 16 * 1024;
        for (level, wbits, mem_level, dictionary) in [
            (6, 15i32, 8, 0),
            (1, 15, 8, 0),
            (9, 15, 8, 0),
            (6, -15, 8, 1_000),
            (6, 31, 8, 0),
            (4, 12, 5, 300),
            (6, -9, 1, 0),
        ] {
            let bits = wbits.unsigned_abs() % 16;
            let (input, first) = crafted(7, bits, mem_level as u32, dictionary);
            let dict: Vec<u8> = (0..dictionary).map(|i| (i * 31 % 256) as u8).collect();
            let caller = |piece: usize, uncut: bool| {
                let mut d = Deflater::new(level, wbits, mem_level, &dict);
                let mut out = d.call(&input[..first], usize::MAX, false, z::Z_NO_FLUSH);
                out.extend(d.call(&input[first..], piece, uncut, z::Z_FINISH));
                out
            };
            let whole = caller(usize::MAX, false);
            let case = (level, wbits, mem_level, dictionary);
            // The crafted input makes plain 16 KiB pieces differ: the test can fail.
            assert!(caller(piece, false) != whole, "{case:?}");
            assert!(caller(piece, true) == whole, "{case:?}");
            // Any piece size, taken short where it must be.
            for other in [300, 1000, 4096, 5000, 16_383] {
                let same = caller(other, true) == whole;
                assert!(same, "{case:?} in pieces of {other}");
            }
        }
    }
}
