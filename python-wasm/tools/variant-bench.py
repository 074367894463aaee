#!/usr/bin/env python3
"""Compare build variants of python.wasm (and the recipe's native CPython) on start-up, an
import-heavy and a CPU-bound workload. A development tool for choosing the recipe's variant;
needs `pip install wasmtime` (tested with wasmtime-py 50.0.1).

  variant-bench.py --variant NAME=DIR [--variant ...] [--native PYTHON] [--pkgs DIR]
                   [--rounds N] --work DIR

DIR holds python.wasm.gz and stdlib.tar.gz (a build-runtime --out folder). --pkgs is a folder
with setuptools unpacked in it (and its pycs precompiled by a 3.13), mounted at /pkgs.
Rounds are interleaved (every variant runs once per round) so that load from other processes on
the machine spreads evenly. Reported: median wall time and median CPU time of the running thread
(instantiate + run for the guest; the whole process for native), ratio to native.
"""

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import tarfile
import time

import wasmtime

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = {
    "startup": ["-c", "pass"],
    "import-setuptools": ["-c", "import setuptools"],
    "compute": ["/bench/compute.py"],
}


def once(argv):
    """--once CWASM PREFIX BENCH PKGS|- START(0/1) ARGS...: one guest run, for callgrind."""
    cwasm, prefix, bench, pkgs, start, *args = argv
    cfg = wasmtime.Config()
    cfg.max_wasm_stack = 2 * 1024 * 1024
    engine = wasmtime.Engine(cfg)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    module = wasmtime.Module.deserialize_file(engine, cwasm)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["python"] + args
    env = [("TMPDIR", "/tmp"), ("HOME", "/tmp")]
    wasi.preopen_dir(prefix, "/usr/local", fs_mutable=False)
    wasi.preopen_dir(bench, "/bench", fs_mutable=False)
    if pkgs != "-":
        env.append(("PYTHONPATH", "/pkgs"))
        wasi.preopen_dir(pkgs, "/pkgs", fs_mutable=False)
    wasi.env = env
    wasi.stdout_file = os.devnull
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    inst = linker.instantiate(store, module)
    if start == "1":
        try:
            inst.exports(store)["_start"](store)
        except wasmtime.ExitTrap as e:
            if e.code:
                raise SystemExit(e.code)


def callgrind_ir(cmd):
    out = subprocess.run(["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
                          "--callgrind-out-file=/dev/null"] + cmd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True).stderr
    for line in out.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise SystemExit(f"no callgrind total for {cmd}:\n{out}")


def main():
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "--once":
        return once(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--compile":  # WASM_GZ CWASM
        cfg = wasmtime.Config()
        cfg.max_wasm_stack = 2 * 1024 * 1024
        with open(sys.argv[2], "rb") as f:
            module = wasmtime.Module(wasmtime.Engine(cfg), gzip.decompress(f.read()))
        with open(sys.argv[3], "wb") as f:
            f.write(module.serialize())
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--callgrind", action="store_true",
                    help="count instructions (valgrind) instead of timing: independent of machine load")
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--native")
    ap.add_argument("--pkgs")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--work", required=True)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    a = ap.parse_args()
    workloads = a.workloads.split(",")
    if not a.pkgs and "import-setuptools" in workloads:
        workloads.remove("import-setuptools")

    cfg = wasmtime.Config()
    cfg.max_wasm_stack = 2 * 1024 * 1024
    engine = wasmtime.Engine(cfg)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    bench_dir = os.path.join(a.work, "bench")
    os.makedirs(bench_dir, exist_ok=True)
    with open(os.path.join(HERE, "compute.py"), "rb") as f, open(os.path.join(bench_dir, "compute.py"), "wb") as g:
        g.write(f.read())

    variants = {}
    for spec in a.variant:
        name, d = spec.split("=", 1)
        vw = os.path.join(a.work, name)
        prefix = os.path.join(vw, "prefix")
        if not os.path.isdir(prefix):
            os.makedirs(prefix)
            with tarfile.open(os.path.join(d, "stdlib.tar.gz")) as tf:
                tf.extractall(prefix)
        os.makedirs(os.path.join(vw, "tmp"), exist_ok=True)
        with open(os.path.join(d, "python.wasm.gz"), "rb") as f:
            data = gzip.decompress(f.read())
        cw = os.path.join(vw, "python.cwasm")
        if not os.path.exists(cw):
            with open(cw + ".tmp", "wb") as f:
                f.write(wasmtime.Module(engine, data).serialize())
            os.replace(cw + ".tmp", cw)
        variants[name] = (wasmtime.Module.deserialize_file(engine, cw), vw, len(data))

    def run_guest(module, vw, args):
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["python"] + args
        env = [("TMPDIR", "/tmp"), ("HOME", "/tmp")]
        if a.pkgs:
            env.append(("PYTHONPATH", "/pkgs"))
        wasi.env = env
        out = os.path.join(vw, "stdout.txt")
        wasi.stdout_file = out
        wasi.inherit_stderr()
        wasi.preopen_dir(os.path.join(vw, "prefix"), "/usr/local", fs_mutable=False)
        wasi.preopen_dir(os.path.join(vw, "tmp"), "/tmp", fs_mutable=True)
        wasi.preopen_dir(bench_dir, "/bench", fs_mutable=False)
        if a.pkgs:
            wasi.preopen_dir(a.pkgs, "/pkgs", fs_mutable=False)
        t0, c0 = time.perf_counter(), time.thread_time()
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        inst = linker.instantiate(store, module)
        code = 0
        try:
            inst.exports(store)["_start"](store)
        except wasmtime.ExitTrap as e:
            code = e.code
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        if code:
            raise SystemExit(f"guest exited {code} for {args}")
        with open(out) as f:
            return wall, cpu, f.read()

    def run_native(args):
        args = [os.path.join(bench_dir, "compute.py") if x == "/bench/compute.py" else x for x in args]
        env = {"PATH": "/usr/bin:/bin", "TMPDIR": "/tmp", "HOME": "/tmp"}
        if a.pkgs:
            env["PYTHONPATH"] = a.pkgs
        t0 = time.perf_counter()
        p = subprocess.Popen([a.native] + args, stdout=subprocess.PIPE, env=env)
        out = p.stdout.read().decode()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if status:
            raise SystemExit(f"native exited {status} for {args}")
        return wall, ru.ru_utime + ru.ru_stime, out

    if a.callgrind:
        import sys
        me = [sys.executable, os.path.abspath(__file__), "--once"]
        # code compiled on the host uses CPU features valgrind does not emulate (AVX-512):
        # compile each module under valgrind (once; slow) so that its code runs there
        procs = []
        for n, spec in zip(variants, a.variant):
            vg = os.path.join(a.work, n, "python.vg.cwasm")
            if not os.path.exists(vg):
                gz = os.path.join(spec.split("=", 1)[1], "python.wasm.gz")
                procs.append(subprocess.Popen(["valgrind", "--tool=none", "-q", "--smc-check=all-non-file",
                                               sys.executable, os.path.abspath(__file__), "--compile", gz, vg]))
        for p in procs:
            if p.wait():
                raise SystemExit("compiling under valgrind failed")
        print("instructions executed by the guest (callgrind Ir, run minus instantiate-only baseline), millions")
        print(f"{'workload':<20}" + "".join(f"{n:>14}" for n in variants) + (f"{'native':>14}" if a.native else ""))
        for w in workloads:
            row = f"{w:<20}"
            for n, (_, vw, _) in variants.items():
                base = [os.path.join(vw, "python.vg.cwasm"), os.path.join(vw, "prefix"), bench_dir, a.pkgs or "-"]
                ir = callgrind_ir(me + base + ["1"] + WORKLOADS[w]) - callgrind_ir(me + base + ["0"] + WORKLOADS[w])
                row += f"{ir / 1e6:14.1f}"
                print(row, end="\r", flush=True)
            if a.native:
                args = [os.path.join(bench_dir, "compute.py") if x == "/bench/compute.py" else x for x in WORKLOADS[w]]
                if a.pkgs:
                    os.environ["PYTHONPATH"] = a.pkgs  # inherited by valgrind and the native python
                row += f"{callgrind_ir([a.native] + args) / 1e6:14.1f}"
            print(row)
        return

    names = list(variants) + (["native"] if a.native else [])
    res = {(n, w): [] for n in names for w in workloads}
    items = {n: [] for n in names}
    # warm-up round (page cache, pycs)
    for n in names:
        for w in workloads:
            run_native(WORKLOADS[w]) if n == "native" else run_guest(variants[n][0], variants[n][1], WORKLOADS[w])
    rng = random.Random(1)
    for r in range(a.rounds):
        order = names[:]
        rng.shuffle(order)  # no variant always runs first or right after another one
        for n in order:
            for w in workloads:
                if n == "native":
                    wall, cpu, out = run_native(WORKLOADS[w])
                else:
                    wall, cpu, out = run_guest(variants[n][0], variants[n][1], WORKLOADS[w])
                res[(n, w)].append((wall, cpu))
                if w == "compute":
                    items[n].append(json.loads(out))
        print(f"round {r + 1}/{a.rounds} done", flush=True)

    med = lambda xs: statistics.median(xs)
    print()
    print(f"{a.rounds} rounds, medians; wall = instantiate+run (guest) or whole process (native); cpu = thread/process CPU time")
    hdr = f"{'workload':<20}" + "".join(f"{n:>26}" for n in names)
    print(hdr)
    for w in workloads:
        nat = med([c for _, c in res[("native", w)]]) if a.native else None
        row = f"{w:<20}"
        for n in names:
            wall = med([x for x, _ in res[(n, w)]]) * 1000
            cpu = med([c for _, c in res[(n, w)]]) * 1000
            ratio = f" {cpu / 1000 / nat:4.2f}x" if nat else ""
            row += f"{wall:9.1f}/{cpu:7.1f} ms{ratio:>7}"
        print(row)
    if "compute" in workloads:
        print()
        print("compute.py items (guest-measured seconds, median)")
        keys = list(items[names[0]][0])
        print(f"{'item':<20}" + "".join(f"{n:>14}" for n in names))
        for k in keys:
            print(f"{k:<20}" + "".join(f"{med([it[k] for it in items[n]]):14.4f}" for n in names))
    print()
    for n in variants:
        print(f"{n}: module {variants[n][2]} bytes")


if __name__ == "__main__":
    main()
