#!/usr/bin/env python3
"""Engine settings for the interpreter (issue 18): the same CPython-for-WASI module and
workloads under wasmtime's settings, side by side.

wasm-build's engine (host/src/sandbox/guest.rs `engine_config`) is Cranelift at
`opt_level(Speed)`, tables filled at instantiation, and wasmtime's defaults for the rest:
a 4 GiB memory reservation with guard pages (no explicit bounds checks) and signals-based
traps. This script runs the runtime's `python.wasm` (from the wasm-build cache, the same
bytes every build runs) under the `wasmtime` command line of the same version (48), once per
setting, and times CPU-bound workloads *inside* the guest (`time.perf_counter`), so the
compile and instantiation are not counted:

  compile   compile() of 150 stdlib modules' sources (what importing a backend without
            bytecode does: tokenizer, parser, compiler)
  json      dumps + loads of a 4 MB structure (C accelerator)
  zlib      deflate of 16 MB at level 6, then inflate (what a wheel's zip costs)
  sha256    64 MB through hashlib (RECORD)
  python    a pure-Python loop of dict, str and list work (a backend's own logic)

Each setting runs the workloads `--rounds` times (median). Standard library only.

    cargo install wasmtime-cli --version 48.0.8 --locked --root /tmp/wasmtime-cli
    python3 bench/engine_flags.py --wasmtime /tmp/wasmtime-cli/bin/wasmtime [--rounds 5]
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

# Each setting: a name and the wasmtime command-line options that make it.
SETTINGS = [
    ("wasm-build's (opt speed, eager tables)", ["-O", "opt-level=2", "-O", "table-lazy-init=n"]),
    ("opt speed_and_size", ["-O", "opt-level=s", "-O", "table-lazy-init=n"]),
    ("lazy tables (wasmtime's default)", ["-O", "opt-level=2"]),
    ("no signals-based traps", ["-O", "opt-level=2", "-O", "table-lazy-init=n",
                                "-O", "signals-based-traps=n"]),
    ("no guard region before memory", ["-O", "opt-level=2", "-O", "table-lazy-init=n",
                                       "-O", "guard-before-linear-memory=n"]),
    ("no reservation (explicit bounds checks)", ["-O", "opt-level=2", "-O", "table-lazy-init=n",
                                                 "-O", "memory-reservation=0",
                                                 "-O", "memory-guard-size=0"]),
    ("pooling allocator", ["-O", "opt-level=2", "-O", "table-lazy-init=n",
                           "-O", "pooling-allocator=y"]),
    ("with epoch interruption (thread guests)", ["-O", "opt-level=2", "-O", "table-lazy-init=n",
                                                 "-W", "timeout=3600s"]),
    ("Winch (baseline compiler)", ["-C", "compiler=winch"]),
]

WORKLOADS = r'''
import hashlib, json, os, sys, time, zlib
def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t
lib = os.path.dirname(os.__file__)
sources = []
for name in sorted(os.listdir(lib))[:400]:
    if name.endswith(".py"):
        with open(os.path.join(lib, name), encoding="utf-8") as f:
            sources.append((name, f.read()))
sources = sources[:150]
def compile_all():
    for name, text in sources:
        compile(text, name, "exec")
data = {"k%d" % i: [i, str(i) * 3, {"x": i / 7, "y": [True, None, "s" * 10]}] for i in range(40000)}
def json_round():
    json.loads(json.dumps(data))
blob = b"".join(text.encode() for _, text in sources)
blob = (blob * (16 * 2**20 // len(blob) + 1))[:16 * 2**20]
def zlib_round():
    zlib.decompress(zlib.compress(blob, 6))
big = blob * 4
def sha_round():
    hashlib.sha256(big).hexdigest()
def python_round():
    d = {}
    for i in range(400000):
        k = "key%d" % (i % 5000)
        d[k] = d.get(k, 0) + len(k)
        if i % 3 == 0:
            d[k] -= 1
    words = sorted(d, key=lambda k: (d[k], k))
    return ",".join(words[:10]).upper().split(",")
print(json.dumps({"compile": timed(compile_all), "json": timed(json_round),
                  "zlib": timed(zlib_round), "sha256": timed(sha_round),
                  "python": timed(python_round)}))
'''


def find_runtime():
    home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    found = sorted(glob.glob(os.path.join(home, "wasm-build/runtimes-v1/cpython-3.13-*/python.wasm")))
    if not found:
        raise SystemExit("no cpython-3.13 runtime in the wasm-build cache: build something first")
    return found[-1]


def run(wasmtime, module, options):
    prefix = os.path.join(os.path.dirname(module), "prefix")
    # `-C cache=y`: each setting's compiled module is cached after its first round.
    # The stack wasm-build gives (MAX_WASM_STACK, 8 MiB), for every setting.
    cmd = [wasmtime, "run", "-C", "cache=y", "-W", "max-wasm-stack=8388608", *options,
           "--dir", prefix + "::/usr/local",
           "--env", "PYTHONHOME=/usr/local", "--env", "PYTHONDONTWRITEBYTECODE=1",
           module, "-S", "-c", WORKLOADS]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(options), out.stderr[-2000:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wasmtime", default="wasmtime")
    parser.add_argument("--module", default=None, help="python.wasm [the cache's cpython-3.13]")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    module = args.module or find_runtime()
    print("# %s, %d rounds, load %.1f" % (module, args.rounds, os.getloadavg()[0]), file=sys.stderr)
    times = {name: [] for name, _ in SETTINGS}
    # Settings take turns within each round, so that a change of the machine's speed
    # hits them alike.
    for round_ in range(args.rounds):
        for name, options in SETTINGS:
            times[name].append(run(args.wasmtime, module, options))
            print("# round %d: %s" % (round_ + 1, name), file=sys.stderr, flush=True)
    keys = ["compile", "json", "zlib", "sha256", "python"]
    base = {k: statistics.median(r[k] for r in times[SETTINGS[0][0]]) for k in keys}
    print("| setting | " + " | ".join(keys) + " | geometric mean |")
    print("|---|" + "---:|" * (len(keys) + 1))
    for name, _ in SETTINGS:
        med = {k: statistics.median(r[k] for r in times[name]) for k in keys}
        ratios = [med[k] / base[k] for k in keys]
        geo = 1.0
        for r in ratios:
            geo *= r
        geo **= 1 / len(ratios)
        cells = ["%.3f s (%.2f)" % (med[k], med[k] / base[k]) for k in keys]
        print("| %s | %s | %.2f |" % (name, " | ".join(cells), geo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
