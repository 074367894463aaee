//! The guest's deflate and SHA-256 run natively: the `wasm_build` imports of our python.wasm
//! (`python-wasm/wasm_build_native.c`, docs/runtime.md "Native deflate and SHA-256").
//!
//! Deflate is zlib 1.3.1 built from the same sources as the guest's own (libz-sys 1.1.24
//! bundles them, checked file by file when it was pinned), so a stream gives the same bytes
//! here as in the guest, for the streams it takes ([`takes_stream`]). Everything the guest
//! hands over is checked: handles name live streams of this run, every range lies in the
//! guest's memory and the input and output of a call do not overlap, one call takes at most
//! [`MAX_DEFLATE_INPUT`] bytes of input, a [`MAX_DICTIONARY`] dictionary or
//! [`MAX_SHA256_BLOCKS`] blocks (so no host call runs long), at most [`MAX_STREAMS`] streams
//! are started, and the memory zlib holds for the guest's streams counts against the run's
//! memory limit (shared with [`super::guest::MemoryLimiter`]). A refused new stream or block
//! is never an error: the guest then does the work itself.

use std::alloc::Layout;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libz_sys as z;
use wasmtime::{Caller, Extern, Linker};

mod window;

/// Deflate streams one run may start on the host (copies are bounded by the memory limit
/// only: the guest cannot copy a host stream itself).
pub(crate) const MAX_STREAMS: usize = 64;
/// The longest dictionary one call takes: zlib keeps the last window of it, 32 KiB at most
/// (the guest sends that part, and the Adler-32 of the whole).
pub(crate) const MAX_DICTIONARY: u32 = 32 * 1024;
/// The zlib whose bytes the guest's own zlib gives.
const ZLIB_VERSION: &std::ffi::CStr = c"1.3.1";
/// The most input one `deflate` call takes (the guest cuts its input into such pieces).
pub(crate) const MAX_DEFLATE_INPUT: u32 = 16 * 1024;
/// The most 64-byte blocks one `sha256_blocks` call takes.
pub(crate) const MAX_SHA256_BLOCKS: u32 = 1024;
/// `deflate`'s `flush` for a piece the guest cut from a longer input: no flush, and the host
/// may take less of it ([`window::uncut_len`]); the guest sends the rest again.
pub(crate) const PIECE_CUT: i32 = 0x100;

const MODULE: &str = "wasm_build";
/// The guest's `host_result`: five 32-bit fields.
const RESULT_SIZE: u32 = 20;

/// The host side of one run's native calls.
pub(crate) struct NativeState {
    /// Declared first: streams end (and free through `account`) before it goes.
    streams: Vec<Option<Stream>>,
    /// Free slots of `streams`, and how many streams are live: O(1) whatever the guest does.
    free: Vec<usize>,
    live: usize,
    account: Arc<Account>,
    /// Bytes deflated and hashed for the guest.
    pub(crate) deflated: u64,
    pub(crate) hashed: u64,
}

/// What zlib holds for the guest's streams, and how much it may hold. `held` is shared with
/// the run's memory limiter, which counts it as guest memory.
struct Account {
    held: Arc<AtomicU64>,
    /// Set before each call that allocates: what the memory limit leaves.
    room: AtomicU64,
}

/// A zlib stream, boxed: zlib's state points back at it, so it must not move.
struct Stream {
    z: Box<z::z_stream>,
}

/// A gzip header as zlib writes one by default on Unix (no name, comment or time; OS 3), set
/// on every gzip stream: the OS byte zlib would write is the host's (19 on macOS, 10 on
/// Windows), the guest's is 3.
struct GzipHeader(z::gz_header);
// SAFETY: zlib only reads it; it holds no pointers.
unsafe impl Sync for GzipHeader {}
static GZIP_HEADER: GzipHeader = GzipHeader(z::gz_header {
    text: 0,
    time: 0,
    xflags: 0,
    os: 3,
    extra: std::ptr::null_mut(),
    extra_len: 0,
    extra_max: 0,
    name: std::ptr::null_mut(),
    name_max: 0,
    comment: std::ptr::null_mut(),
    comm_max: 0,
    hcrc: 0,
    done: 0,
});

// SAFETY: a stream is owned by one store and used by whichever thread runs it; zlib's state
// has no tie to a thread, and its pointers lead only to its own blocks and to the `Account`
// of the same `NativeState`.
unsafe impl Send for Stream {}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.z.state.is_null() {
            // SAFETY: an initialized stream of ours; deflateEnd frees its state.
            unsafe { z::deflateEnd(&mut *self.z) };
        }
    }
}

impl NativeState {
    /// `held` is the memory limiter's count of host memory held for the guest.
    pub(crate) fn new(held: Arc<AtomicU64>) -> Self {
        Self {
            streams: Vec::new(),
            free: Vec::new(),
            live: 0,
            account: Arc::new(Account {
                held,
                room: AtomicU64::new(0),
            }),
            deflated: 0,
            hashed: 0,
        }
    }

    /// Deflate streams the guest has not ended.
    pub(crate) fn live_streams(&self) -> usize {
        self.live
    }

    fn new_stream(&self) -> Box<z::z_stream> {
        Box::new(z::z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null_mut(),
            state: std::ptr::null_mut(),
            zalloc: account_alloc,
            zfree: account_free,
            opaque: Arc::as_ptr(&self.account) as *mut c_void,
            data_type: 0,
            adler: 0,
            reserved: 0,
        })
    }

    /// A free slot for a new stream (a new one: only while fewer than [`MAX_STREAMS`] are
    /// live), and the memory it may take, or `None`.
    fn slot(&mut self, memory_limit: u64, memory_size: u64, new: bool) -> Option<usize> {
        let held = self.account.held.load(Ordering::Relaxed);
        let room = memory_limit.saturating_sub(memory_size);
        self.account.room.store(room, Ordering::Relaxed);
        if held >= room || (new && self.live_streams() >= MAX_STREAMS) {
            return None;
        }
        match self.free.pop() {
            Some(free) => Some(free),
            None => {
                self.streams.push(None);
                Some(self.streams.len() - 1)
            }
        }
    }

    /// Ends the stream in `slot`, if there is one.
    fn take(&mut self, slot: usize) -> Option<Stream> {
        let stream = self.streams.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.live -= 1;
        Some(stream)
    }

    fn stream(&mut self, handle: i32) -> Option<&mut Stream> {
        let index = usize::try_from(handle).ok()?;
        self.streams.get_mut(index)?.as_mut()
    }
}

// zlib's allocator for the guest's streams: each block carries its size in front, and
// the account refuses what would pass the room the memory limit leaves.
const HEADER: usize = 16;

unsafe extern "C" fn account_alloc(
    opaque: *mut c_void,
    items: c_uint,
    size: c_uint,
) -> *mut c_void {
    // SAFETY: `opaque` is the `Account` of the state that made the stream; it outlives it.
    let account = unsafe { &*(opaque as *const Account) };
    let Some(bytes) = (items as usize).checked_mul(size as usize) else {
        return std::ptr::null_mut();
    };
    let total = bytes + HEADER;
    let held = account.held.load(Ordering::Relaxed);
    if held + total as u64 > account.room.load(Ordering::Relaxed) {
        return std::ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(total, HEADER) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a non-zero size; the size is written in front of the block handed out.
    unsafe {
        let block = std::alloc::alloc(layout);
        if block.is_null() {
            return block.cast();
        }
        block.cast::<usize>().write(total);
        account.held.fetch_add(total as u64, Ordering::Relaxed);
        block.add(HEADER).cast()
    }
}

unsafe extern "C" fn account_free(opaque: *mut c_void, address: *mut c_void) {
    if address.is_null() {
        return;
    }
    // SAFETY: as in `account_alloc`, which made `address`.
    unsafe {
        let account = &*(opaque as *const Account);
        let block = address.cast::<u8>().sub(HEADER);
        let total = block.cast::<usize>().read();
        account.held.fetch_sub(total as u64, Ordering::Relaxed);
        std::alloc::dealloc(block, Layout::from_size_align_unchecked(total, HEADER));
    }
}

/// A range of the guest's memory, checked to lie in it.
#[derive(Clone, Copy)]
struct Range {
    start: usize,
    len: usize,
}

impl Range {
    fn new(start: u32, len: u32, memory: usize) -> Option<Self> {
        let (start, len) = (start as usize, len as usize);
        (start.checked_add(len)? <= memory).then_some(Self { start, len })
    }

    fn overlaps(self, other: Self) -> bool {
        self.len > 0
            && other.len > 0
            && self.start < other.start + other.len
            && other.start < self.start + self.len
    }
}

/// What the host-side functions need of a call: the guest's memory and the run's state.
struct Call<'a> {
    memory: &'a mut [u8],
    native: &'a mut NativeState,
    limiter: &'a mut super::guest::MemoryLimiter,
}

impl Call<'_> {
    fn slot(&mut self, new: bool) -> Option<usize> {
        self.native
            .slot(self.limiter.max_bytes, self.memory.len() as u64, new)
    }

    /// Puts a stream zlib made into `slot`; the memory it holds now counts as the run's.
    /// A slot not filled goes back unused.
    fn keep(&mut self, slot: usize, stream: Option<Stream>) -> i32 {
        let Some(stream) = stream else {
            self.native.free.push(slot);
            return -1;
        };
        self.native.streams[slot] = Some(stream);
        self.native.live += 1;
        let held = self.native.account.held.load(Ordering::Relaxed);
        self.limiter.peak = self.limiter.peak.max(self.memory.len() as u64 + held);
        slot as i32
    }
}

/// Runs `f` with the caller's memory and state; `refused` when there is no plain exported
/// memory.
fn with_call<R>(
    caller: &mut Caller<'_, super::GuestState>,
    refused: R,
    f: impl FnOnce(Call<'_>) -> R,
) -> R {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return refused;
    };
    let (memory, state) = memory.data_and_store_mut(&mut *caller);
    f(Call {
        memory,
        native: &mut state.native,
        limiter: &mut state.limiter,
    })
}

/// The stream's public fields after a call, as the guest's `host_result`.
fn write_result(memory: &mut [u8], at: Range, consumed: u32, produced: u32, strm: &z::z_stream) {
    let fields = [
        consumed,
        produced,
        strm.adler as u32,
        strm.data_type as u32,
        msg_code(strm) as u32,
    ];
    let bytes = fields.iter().flat_map(|f| f.to_le_bytes());
    for (to, from) in memory[at.start..at.start + at.len].iter_mut().zip(bytes) {
        *to = from;
    }
}

/// The zlib return code whose message zlib put in `msg`, or 0.
fn msg_code(strm: &z::z_stream) -> c_int {
    if strm.msg.is_null() {
        return 0;
    }
    (-6..=2)
        // SAFETY: zError returns a static string for any code.
        .find(|&code| unsafe { zError(code) } == strm.msg.cast_const())
        .unwrap_or(z::Z_STREAM_ERROR)
}

unsafe extern "C" {
    /// zlib's message for a return code (what `msg` points at); not in libz-sys's bindings.
    fn zError(code: c_int) -> *const std::ffi::c_char;
}

/// Adds the `wasm_build` imports to `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<super::GuestState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "deflate_init", deflate_init)?;
    linker.func_wrap(MODULE, "deflate", deflate)?;
    linker.func_wrap(MODULE, "deflate_set_dictionary", deflate_set_dictionary)?;
    linker.func_wrap(MODULE, "deflate_reset", deflate_reset)?;
    linker.func_wrap(MODULE, "deflate_copy", deflate_copy)?;
    linker.func_wrap(MODULE, "deflate_end", deflate_end)?;
    linker.func_wrap(MODULE, "sha256_blocks", sha256_blocks)?;
    Ok(())
}

fn deflate_init(
    mut caller: Caller<'_, super::GuestState>,
    level: i32,
    method: i32,
    wbits: i32,
    mem_level: i32,
    strategy: i32,
) -> i32 {
    let Some(bits) = takes_stream(level, wbits, mem_level, strategy) else {
        return -1;
    };
    // SAFETY: zlib's version string is static.
    if unsafe { std::ffi::CStr::from_ptr(z::zlibVersion()) } != ZLIB_VERSION {
        return -1;
    }
    with_call(&mut caller, -1, |mut call| {
        let Some(slot) = call.slot(true) else {
            return -1;
        };
        let mut strm = call.native.new_stream();
        // SAFETY: a fresh stream with our allocator; zlib checks the parameters. The gzip
        // header is static and only read.
        let ret = unsafe {
            let ret = z::deflateInit2_(
                &mut *strm,
                level,
                method,
                wbits,
                mem_level,
                strategy,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            );
            if ret == z::Z_OK && wbits > 15 {
                let header = &GZIP_HEADER.0 as *const z::gz_header as *mut z::gz_header;
                z::deflateSetHeader(&mut *strm, header)
            } else {
                ret
            }
        };
        let stream = Stream { z: strm };
        // The host cuts pieces by zlib's own state (`window`): a state it cannot read
        // stays in the guest.
        let taken = ret == z::Z_OK && window::state_is_zlib_1_3_1(&stream.z, bits);
        call.keep(slot, taken.then_some(stream))
    })
}

/// Whether the host takes a stream of these parameters: only where zlib's output cannot
/// depend on how the guest cuts the input into calls (`python-wasm/wasm_build_native.c`
/// offers no others): levels 1-9, the default and filtered strategies, and blocks that
/// cannot outrun the window (`memLevel <= window bits - 7`). Returns zlib's window bits.
fn takes_stream(level: i32, wbits: i32, mem_level: i32, strategy: i32) -> Option<u32> {
    let bits = match wbits {
        8 => 9,
        9..=15 => wbits,
        -15..=-9 => -wbits,
        25..=31 => wbits - 16,
        _ => return None,
    };
    let most = if bits >= 10 { bits - 7 } else { 1 };
    ((1..=9).contains(&level)
        && (strategy == z::Z_DEFAULT_STRATEGY || strategy == z::Z_FILTERED)
        && (1..=most).contains(&mem_level))
    .then_some(bits as u32)
}

#[allow(clippy::too_many_arguments)]
fn deflate(
    mut caller: Caller<'_, super::GuestState>,
    handle: i32,
    input: u32,
    input_len: u32,
    output: u32,
    output_len: u32,
    flush: i32,
    result: u32,
) -> i32 {
    with_call(&mut caller, z::Z_STREAM_ERROR, |call| {
        let size = call.memory.len();
        let (Some(input), Some(output), Some(result)) = (
            Range::new(input, input_len, size),
            Range::new(output, output_len, size),
            Range::new(result, RESULT_SIZE, size),
        ) else {
            return z::Z_STREAM_ERROR;
        };
        if input_len > MAX_DEFLATE_INPUT || input.overlaps(output) {
            return z::Z_STREAM_ERROR;
        }
        let base = call.memory.as_mut_ptr();
        let Some(stream) = call.native.stream(handle) else {
            return z::Z_STREAM_ERROR;
        };
        let strm = &mut *stream.z;
        let (input_len, flush) = match flush {
            PIECE_CUT => (window::uncut_len(strm, input_len), z::Z_NO_FLUSH),
            _ => (input_len, flush),
        };
        // SAFETY: both ranges lie in the guest's memory, which nothing else touches during
        // the call, and do not overlap; zlib keeps neither pointer past it (cleared below).
        let ret = unsafe {
            strm.next_in = base.add(input.start);
            strm.avail_in = input_len;
            strm.next_out = base.add(output.start);
            strm.avail_out = output_len;
            strm.msg = std::ptr::null_mut();
            z::deflate(strm, flush)
        };
        let consumed = input_len - strm.avail_in;
        let produced = output_len - strm.avail_out;
        strm.next_in = std::ptr::null_mut();
        strm.next_out = std::ptr::null_mut();
        write_result(call.memory, result, consumed, produced, strm);
        call.native.deflated += u64::from(consumed);
        ret
    })
}

fn deflate_set_dictionary(
    mut caller: Caller<'_, super::GuestState>,
    handle: i32,
    dictionary: u32,
    len: u32,
    adler: u32,
    result: u32,
) -> i32 {
    with_call(&mut caller, z::Z_STREAM_ERROR, |call| {
        let size = call.memory.len();
        let (Some(dictionary), Some(result)) = (
            Range::new(dictionary, len, size),
            Range::new(result, RESULT_SIZE, size),
        ) else {
            return z::Z_STREAM_ERROR;
        };
        if len > MAX_DICTIONARY {
            return z::Z_STREAM_ERROR;
        }
        let base = call.memory.as_mut_ptr();
        let Some(stream) = call.native.stream(handle) else {
            return z::Z_STREAM_ERROR;
        };
        let strm = &mut *stream.z;
        let total_in = strm.total_in;
        let sets_adler = window::dictionary_sets_adler(strm);
        strm.msg = std::ptr::null_mut();
        // SAFETY: the range lies in the guest's memory; zlib reads it during the call only.
        let ret = unsafe { z::deflateSetDictionary(strm, base.add(dictionary.start), len) };
        if ret == z::Z_OK && sets_adler {
            // zlib took the Adler-32 of what it was given; the header names the whole's.
            strm.adler = adler.into();
        }
        let consumed = (strm.total_in - total_in) as u32;
        write_result(call.memory, result, consumed, 0, strm);
        ret
    })
}

fn deflate_reset(mut caller: Caller<'_, super::GuestState>, handle: i32, result: u32) -> i32 {
    with_call(&mut caller, z::Z_STREAM_ERROR, |call| {
        let Some(result) = Range::new(result, RESULT_SIZE, call.memory.len()) else {
            return z::Z_STREAM_ERROR;
        };
        let Some(stream) = call.native.stream(handle) else {
            return z::Z_STREAM_ERROR;
        };
        // SAFETY: a live stream of ours.
        let ret = unsafe { z::deflateReset(&mut *stream.z) };
        write_result(call.memory, result, 0, 0, &stream.z);
        ret
    })
}

fn deflate_copy(mut caller: Caller<'_, super::GuestState>, handle: i32) -> i32 {
    with_call(&mut caller, -1, |mut call| {
        if call.native.stream(handle).is_none() {
            return -1;
        }
        let Some(slot) = call.slot(false) else {
            return -1;
        };
        let mut copy = call.native.new_stream();
        let Some(source) = call.native.stream(handle) else {
            return call.keep(slot, None);
        };
        // SAFETY: a live stream of ours into a fresh one; on failure zlib frees what it took.
        let ret = unsafe { z::deflateCopy(&mut *copy, &mut *source.z) };
        call.keep(slot, (ret == z::Z_OK).then_some(Stream { z: copy }))
    })
}

fn deflate_end(mut caller: Caller<'_, super::GuestState>, handle: i32) -> i32 {
    let native = &mut caller.data_mut().native;
    let Some(mut stream) = usize::try_from(handle).ok().and_then(|i| native.take(i)) else {
        return z::Z_STREAM_ERROR;
    };
    // SAFETY: a live stream of ours; its Drop then finds no state.
    unsafe { z::deflateEnd(&mut *stream.z) }
}

fn sha256_blocks(
    mut caller: Caller<'_, super::GuestState>,
    state: u32,
    data: u32,
    blocks: u32,
) -> i32 {
    with_call(&mut caller, -1, |call| {
        let size = call.memory.len();
        let (Some(state), Some(data)) = (
            Range::new(state, 32, size),
            blocks
                .checked_mul(64)
                .and_then(|len| Range::new(data, len, size)),
        ) else {
            return -1;
        };
        if blocks > MAX_SHA256_BLOCKS {
            return -1;
        }
        let mut words = [0u32; 8];
        for (word, bytes) in words
            .iter_mut()
            .zip(call.memory[state.start..state.start + 32].chunks_exact(4))
        {
            *word = u32::from_le_bytes(bytes.try_into().expect("four bytes"));
        }
        let (chunks, _) = call.memory[data.start..data.start + data.len].as_chunks::<64>();
        sha2::block_api::compress256(&mut words, chunks);
        for (word, bytes) in words
            .iter()
            .zip(call.memory[state.start..state.start + 32].chunks_exact_mut(4))
        {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        call.native.hashed += u64::from(blocks) * 64;
        0
    })
}

#[cfg(test)]
mod tests {
    use super::super::guest::{Guest, GuestState, MemoryLimiter};
    use super::super::preinit::EngineKind;
    use super::*;
    use std::io::Read;
    use wasmtime::{Instance, Store, Val};

    const IMPORTS: [(&str, usize); 7] = [
        ("deflate_init", 5),
        ("deflate", 7),
        ("deflate_set_dictionary", 5),
        ("deflate_reset", 2),
        ("deflate_copy", 1),
        ("deflate_end", 1),
        ("sha256_blocks", 3),
    ];
    const PAGES: u64 = 4;
    const MEMORY: u32 = PAGES as u32 * 65536;

    /// A module that calls the host's imports with whatever the test passes, through one
    /// exported function per import, with a memory of `PAGES` pages.
    struct Hostile {
        store: Store<GuestState>,
        instance: Instance,
        _root: tempfile::TempDir,
    }

    impl Hostile {
        fn new(memory_limit: u64) -> Self {
            use wasm_encoder::*;
            let mut module = wasm_encoder::Module::new();
            let mut types = TypeSection::new();
            for (_, params) in IMPORTS {
                types
                    .ty()
                    .function(vec![ValType::I32; params], [ValType::I32]);
            }
            module.section(&types);
            let mut imports = ImportSection::new();
            for (index, (name, _)) in IMPORTS.iter().enumerate() {
                imports.import(MODULE, name, EntityType::Function(index as u32));
            }
            module.section(&imports);
            // Wrappers that call the imports from wasm: the host sees this instance as caller.
            let mut functions = FunctionSection::new();
            for index in 0..IMPORTS.len() {
                functions.function(index as u32);
            }
            module.section(&functions);
            let mut memories = MemorySection::new();
            memories.memory(MemoryType {
                minimum: PAGES,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
            module.section(&memories);
            let mut exports = ExportSection::new();
            exports.export("memory", ExportKind::Memory, 0);
            for (index, (name, _)) in IMPORTS.iter().enumerate() {
                exports.export(name, ExportKind::Func, (IMPORTS.len() + index) as u32);
            }
            module.section(&exports);
            let mut code = CodeSection::new();
            for (index, (_, params)) in IMPORTS.iter().enumerate() {
                let mut body = Function::new([]);
                let mut instructions = body.instructions();
                for param in 0..*params {
                    instructions.local_get(param as u32);
                }
                instructions.call(index as u32).end();
                code.function(&body);
            }
            module.section(&code);

            let root = tempfile::tempdir().unwrap();
            let guest = Guest::new(EngineKind::Uninterrupted, None, root.path().into()).unwrap();
            let module = wasmtime::Module::new(&guest.engine, module.finish()).unwrap();
            let mut store = guest.bare_store().unwrap();
            let limiter = MemoryLimiter::new(memory_limit);
            store.data_mut().native = NativeState::new(limiter.host_held.clone());
            store.data_mut().limiter = limiter;
            let instance = guest.linker.instantiate(&mut store, &module).unwrap();
            Self {
                store,
                instance,
                _root: root,
            }
        }

        fn call(&mut self, name: &str, args: &[u32]) -> i32 {
            let func = self.instance.get_func(&mut self.store, name).unwrap();
            let args: Vec<Val> = args.iter().map(|&a| Val::I32(a as i32)).collect();
            let mut result = [Val::I32(0)];
            func.call(&mut self.store, &args, &mut result).unwrap();
            result[0].unwrap_i32()
        }

        fn memory(&mut self) -> wasmtime::Memory {
            self.instance.get_memory(&mut self.store, "memory").unwrap()
        }

        fn write(&mut self, at: u32, bytes: &[u8]) {
            let memory = self.memory();
            memory.write(&mut self.store, at as usize, bytes).unwrap();
        }

        fn read(&mut self, at: u32, len: u32) -> Vec<u8> {
            let memory = self.memory();
            let mut bytes = vec![0; len as usize];
            memory.read(&self.store, at as usize, &mut bytes).unwrap();
            bytes
        }

        fn init(&mut self) -> i32 {
            // level 6, deflate, raw window of 2^15, memory level 8, default strategy
            self.call("deflate_init", &[6, 8, (-15i32) as u32, 8, 0])
        }
    }

    const STREAM_ERROR: i32 = z::Z_STREAM_ERROR;

    #[test]
    fn a_hostile_module_gets_refusals_for_handles_and_ranges_not_its_own() {
        let mut guest = Hostile::new(64 << 20);
        assert_eq!(guest.call("deflate_end", &[5]), STREAM_ERROR);
        assert_eq!(
            guest.call("deflate", &[0, 0, 10, 100, 100, 0, 300]),
            STREAM_ERROR
        );
        // Level 0 stays in the guest; so does what zlib itself refuses.
        assert_eq!(
            guest.call("deflate_init", &[0, 8, (-15i32) as u32, 8, 0]),
            -1
        );
        assert_eq!(guest.call("deflate_init", &[6, 8, 99, 8, 0]), -1);
        let h = guest.init() as u32;
        assert_eq!(h, 0);
        let input: Vec<u8> = (0..16_000u32).map(|i| (i * 7 % 251) as u8).collect();
        guest.write(0, &input);
        let (result, out) = (200_000, 100_000);
        for args in [
            [h, MEMORY - 10, 11, out, 1000, 0, result], // input past the end
            [h, 0, 10, MEMORY - 100, 101, 0, result],   // output past the end
            [h, 0, 10, out, 1000, 0, MEMORY - 19],      // result past the end
            [h, u32::MAX, 2, out, 1000, 0, result],     // wrapping
            [h, 0, 16_000, 8_000, 1000, 0, result],     // overlapping
            [h, 0, MAX_DEFLATE_INPUT + 1, 70_000, 1000, 0, result], // too much input
            [u32::MAX, 0, 10, out, 1000, 0, result],    // negative handle
            [h + 1, 0, 10, out, 1000, 0, result],       // no such stream
        ] {
            assert_eq!(guest.call("deflate", &args), STREAM_ERROR, "{args:?}");
        }
        // Nothing was written for a refused call; a good one works.
        let finish = z::Z_FINISH as u32;
        assert_eq!(
            guest.call("deflate", &[h, 0, 16_000, out, 90_000, finish, result]),
            z::Z_STREAM_END
        );
        let fields = guest.read(result, RESULT_SIZE);
        let field = |i: usize| u32::from_le_bytes(fields[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(field(0), 16_000);
        let compressed = guest.read(out, field(1));
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&compressed[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, input);
        assert_eq!(guest.call("deflate_end", &[h]), z::Z_OK);
        assert_eq!(guest.call("deflate_end", &[h]), STREAM_ERROR);
        assert_eq!(guest.store.data().native.deflated, 16_000);
    }

    /// Only streams whose bytes cannot depend on how the input is cut into calls, and what
    /// zlib itself accepts; a dictionary longer than a window is the guest's to cut; a gzip
    /// header names Unix (3), as the guest's zlib writes it, whatever the host.
    #[test]
    fn the_host_takes_only_streams_the_cutting_cannot_change() {
        let mut guest = Hostile::new(64 << 20);
        let neg = |bits: i32| bits as u32;
        for refused in [
            [0, 8, neg(-15), 8, 0], // level 0: stored blocks
            [6, 8, neg(-15), 8, 2], // Huffman only
            [6, 8, neg(-15), 8, 3], // RLE
            [6, 8, neg(-15), 8, 4], // fixed
            [6, 8, 15, 9, 0],       // blocks may outrun the window
            [6, 8, neg(-12), 6, 0], // likewise
            [6, 8, neg(-9), 2, 0],  // likewise
            [6, 8, 99, 8, 0],       // not zlib's
            [6, 7, 15, 8, 0],       // not deflate
            [6, 8, 24, 1, 0],       // zlib refuses a gzip window of 2^8
        ] {
            assert_eq!(guest.call("deflate_init", &refused), -1, "{refused:?}");
        }
        for taken in [
            [1, 8, 15, 8, 0],
            [9, 8, neg(-9), 1, 1],
            [6, 8, 8, 1, 0],
            [6, 8, 31, 8, 0],
        ] {
            assert!(guest.call("deflate_init", &taken) >= 0, "{taken:?}");
        }
        let gzip = 3;
        guest.write(0, b"hello");
        let (out, result) = (1000, 2000);
        let finish = z::Z_FINISH as u32;
        assert_eq!(
            guest.call("deflate", &[gzip, 0, 5, out, 100, finish, result]),
            z::Z_STREAM_END
        );
        let header = guest.read(out, 10);
        assert_eq!(header, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

        let h = guest.init() as u32;
        assert_eq!(
            guest.call(
                "deflate_set_dictionary",
                &[h, 0, MAX_DICTIONARY + 1, 7, result]
            ),
            STREAM_ERROR
        );
        assert_eq!(
            guest.call("deflate_set_dictionary", &[h, 0, MAX_DICTIONARY, 7, result]),
            z::Z_OK
        );
        // The guest's Adler-32 of a dictionary goes in a zlib header not yet written, and
        // nowhere else: after the end, zlib takes a dictionary and leaves `adler` alone.
        let zlib = guest.call("deflate_init", &[6, 8, 15, 8, 0]) as u32;
        let adler = |guest: &mut Hostile| guest.read(result + 8, 4);
        assert_eq!(
            guest.call("deflate", &[zlib, 0, 5, out, 100, finish, result]),
            z::Z_STREAM_END
        );
        let of_data = adler(&mut guest);
        assert_eq!(
            guest.call("deflate_set_dictionary", &[zlib, 0, 5, 7, result]),
            z::Z_OK
        );
        assert_eq!(adler(&mut guest), of_data);
    }

    /// A piece marked as cut is taken short where it would end within 261 bytes of the
    /// window's end (here 32,767 of 32,768; `window` has the why); others whole.
    #[test]
    fn a_cut_piece_is_taken_short_of_the_window_s_end() {
        let mut guest = Hostile::new(64 << 20);
        let h = guest.init() as u32;
        let input: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        guest.write(0, &input);
        let (out, result) = (100_000, 200_000);
        let cut = PIECE_CUT as u32;
        let consumed = |guest: &mut Hostile, at: u32, len: u32, flush: u32| {
            let args = [h, at, len, out, 60_000, flush, result];
            assert_eq!(guest.call("deflate", &args), z::Z_OK);
            u32::from_le_bytes(guest.read(result, 4).try_into().unwrap())
        };
        assert_eq!(consumed(&mut guest, 0, 16_383, 0), 16_383);
        assert_eq!(consumed(&mut guest, 16_383, 16_384, cut), 16_384 - 261);
        // Unmarked, the caller's own end: all of it.
        let mut guest = Hostile::new(64 << 20);
        assert_eq!(guest.init() as u32, h);
        guest.write(0, &input);
        assert_eq!(consumed(&mut guest, 0, 16_383, 0), 16_383);
        assert_eq!(consumed(&mut guest, 16_383, 16_384, 0), 16_384);
    }

    #[test]
    fn streams_are_capped_in_number_and_by_the_memory_limit() {
        let mut guest = Hostile::new(1 << 30);
        let handles: Vec<i32> = (0..MAX_STREAMS).map(|_| guest.init()).collect();
        assert!(handles.iter().all(|&h| h >= 0), "{handles:?}");
        // No new stream past the cap (the guest keeps its own), but copies: a copy of a
        // host stream can only be made here.
        assert_eq!(guest.init(), -1);
        assert_eq!(guest.call("deflate_copy", &[0]), MAX_STREAMS as i32);
        assert_eq!(guest.call("deflate_end", &[3]), z::Z_OK);
        assert_eq!(guest.call("deflate_end", &[1]), z::Z_OK);
        assert_eq!(guest.init(), 1);
        assert_eq!(guest.call("deflate_copy", &[0]), 3);
        drop(guest);

        // Room for one stream beside the guest's memory, not two; what zlib holds counts
        // when the guest's memory grows.
        let mut guest = Hostile::new(u64::from(MEMORY) + (400 << 10));
        assert_eq!(guest.init(), 0);
        let held = guest.store.data().limiter.host_held.load(Ordering::Relaxed);
        assert!(held > 256 << 10, "{held}");
        assert_eq!(guest.init(), -1);
        assert_eq!(guest.call("deflate_copy", &[0]), -1);
        let memory = guest.memory();
        assert!(memory.grow(&mut guest.store, 3).is_err());
        assert!(memory.grow(&mut guest.store, 1).is_ok());
        assert_eq!(guest.call("deflate_end", &[0]), z::Z_OK);
        assert_eq!(
            guest.store.data().limiter.host_held.load(Ordering::Relaxed),
            0
        );
        assert!(memory.grow(&mut guest.store, 3).is_ok());
    }

    #[test]
    fn sha256_blocks_advance_the_state_and_refuse_what_is_not_the_guests() {
        let mut guest = Hostile::new(64 << 20);
        // SHA-256's initial state, and "abc" padded to one block.
        let initial: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let state: Vec<u8> = initial.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut block = [0u8; 64];
        block[..4].copy_from_slice(b"abc\x80");
        block[63] = 24;
        guest.write(0, &state);
        guest.write(64, &block);
        assert_eq!(guest.call("sha256_blocks", &[MEMORY - 31, 64, 1]), -1);
        assert_eq!(guest.call("sha256_blocks", &[0, MEMORY - 63, 1]), -1);
        assert_eq!(
            guest.call("sha256_blocks", &[0, 64, MAX_SHA256_BLOCKS + 1]),
            -1
        );
        assert_eq!(guest.call("sha256_blocks", &[0, 64, u32::MAX]), -1);
        assert_eq!(guest.read(0, 32), state);
        assert_eq!(guest.call("sha256_blocks", &[0, 64, 1]), 0);
        let digest: Vec<u8> = guest
            .read(0, 32)
            .chunks(4)
            .flat_map(|w| u32::from_le_bytes(w.try_into().unwrap()).to_be_bytes())
            .collect();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(guest.store.data().native.hashed, 64);
    }
}
