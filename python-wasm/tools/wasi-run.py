#!/usr/bin/env python3
"""Run a python.wasm under wasmtime-py: a development tool for python-wasm/ (smoke tests and
measurements) until the Rust host can do it. Needs `pip install wasmtime` (tested with 50.0.1).

  wasi-run.py [--cache FILE.cwasm] [--dir HOST::GUEST[:ro]]... [--env K=V]... [--time]
              MODULE[.gz] [guest args...]

MODULE may be gzip-compressed. --cache keeps a precompiled module (rebuilt when MODULE's sha256
changes). Exits with the guest's exit code.

Stack: wasmtime-py refuses a max_wasm_stack above its async stack size (2 MiB) and has no setter
for the latter; with 2 MiB, CPython's deep-recursion tests trap ("call stack exhausted") instead of
raising RecursionError (CPython 3.13 sizes its C recursion limit for WASI at 5000, "based on
wasmtime 16"; upstream's test runner uses max-wasm-stack=8388608). So this sets the async stack
size through the C API (ctypes), uses max_wasm_stack = 8 MiB like the Rust host, and runs the
guest on a thread with a 64 MiB native stack. --stack-mib changes the 8.
"""

import argparse
import gzip
import hashlib
import os
import ctypes
import sys
import threading
import time

import wasmtime
from wasmtime import _bindings


def make_config(stack_mib):
    cfg = wasmtime.Config()
    if stack_mib > 2:
        f = _bindings.dll.wasmtime_config_async_stack_size_set
        f.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        f.restype = None
        f(ctypes.cast(cfg.ptr(), ctypes.c_void_p), (stack_mib + 1) << 20)
    cfg.max_wasm_stack = stack_mib << 20
    return cfg


def on_big_stack(fn):
    """Run fn() on a thread with a 64 MiB stack; return its result or raise its exception."""
    box = {}

    def target():
        try:
            box["r"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["e"] = e

    old = threading.stack_size(64 << 20)
    try:
        t = threading.Thread(target=target)
        t.start()
        t.join()
    finally:
        threading.stack_size(old)
    if "e" in box:
        raise box["e"]
    return box["r"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache")
    ap.add_argument("--dir", action="append", default=[])
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--time", action="store_true", help="print instantiate+run time to stderr")
    ap.add_argument("--stack-mib", type=int, default=8, help="max_wasm_stack in MiB (default 8)")
    ap.add_argument("module")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()

    with open(a.module, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    digest = hashlib.sha256(data).hexdigest()

    engine = wasmtime.Engine(make_config(a.stack_mib))
    module = None
    if a.cache:
        stamp = a.cache + ".sha256"
        if os.path.exists(a.cache) and os.path.exists(stamp) and open(stamp).read() == digest:
            module = wasmtime.Module.deserialize_file(engine, a.cache)
    if module is None:
        module = wasmtime.Module(engine, data)
        if a.cache:
            tmp = a.cache + ".tmp"
            with open(tmp, "wb") as f:
                f.write(module.serialize())
            os.replace(tmp, a.cache)
            with open(stamp, "w") as f:
                f.write(digest)

    t0 = time.perf_counter()
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["python"] + a.args
    wasi.env = [tuple(e.split("=", 1)) for e in a.env]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for d in a.dir:
        ro = d.endswith(":ro")
        if ro:
            d = d[:-3]
        host, guest = d.split("::", 1)
        wasi.preopen_dir(host, guest, fs_mutable=not ro)
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    inst = linker.instantiate(store, module)

    def start():
        try:
            inst.exports(store)["_start"](store)
        except wasmtime.ExitTrap as e:
            return e.code
        return 0

    code = on_big_stack(start)
    if a.time:
        print(f"wasi-run: {1000 * (time.perf_counter() - t0):.1f} ms", file=sys.stderr)
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
