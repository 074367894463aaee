#!/usr/bin/env python3
"""Interpreter speed: the sandboxed runtimes against native CPython, side by side in one run.

For each runtime (wasm-build's cpython-3.13, the VMware cpython-3.12) and for a native
CPython 3.13 (the recipe's own native build, same sources: --native-python), measures

  start-up          python -S -c pass (every hook starts as python -S)
  import            python -S, then import setuptools (from the same build environment)
  flit wheel        get_requires_for_build_wheel + build_wheel of tests/fixtures/flit
  setuptools wheel  the same for tests/fixtures/setuptools
  hatchling wheel   the same for tests/fixtures/hatchling

Each wheel row comes twice for the guest: as wasm-build runs the hooks, from the prepared
backend (the runner with the backend imported, kept once per environment), and with
`--no-prepared-backend`, importing the backend in the run ("fresh import") as every native
frontend does; native runs import it every time in both rows.

Guest figures come from `examples/guest_bench` (the engine and module loaded once, one fresh
instance per run in a child process of target/release/wasm-build, as the CLI runs it, or on a
thread with --thread: what a hook costs inside `wasm-build`); native figures are whole
processes running the same backend calls on a fresh copy of the project, with the same
site-packages folder (its bytecode is CPython 3.13's, so it serves both). The columns take
turns run by run; medians of --runs runs after a warm-up, and the ratio to native.

    python3 bench/runtime.py --native-python /path/to/build-native/python [--runs 7]

Build the example and the binary first: cargo build --release --example guest_bench
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
RUNTIMES = ["cpython-3.13", "cpython-3.12-vmware"]
PROJECTS = ["flit", "setuptools", "hatchling"]
STARTUP = "start-up (-S -c pass)"
GUEST_PROCESS = []  # guest_bench arguments for child processes

NATIVE_HOOKS = r"""
import importlib, os, shutil, sys, tempfile
project, site_packages, backend_name = sys.argv[1:4]
import site
site.addsitedir(site_packages)
work = tempfile.mkdtemp()
src = os.path.join(work, "src")
shutil.copytree(project, src)
os.chdir(src)
module, _, obj = backend_name.partition(":")
backend = importlib.import_module(module)
for attr in filter(None, obj.split(".")):
    backend = getattr(backend, attr)
out = os.path.join(work, "out")
os.mkdir(out)
getattr(backend, "get_requires_for_build_wheel", lambda **k: [])(config_settings={})
backend.build_wheel(out, config_settings={})
"""


def guest(bench, runtime, *args, isolation=None):
    """One timed guest run (after one warm-up instance in the same guest_bench process).
    `runtime` is a runtime's name or the guest_bench arguments naming a module."""
    isolation = GUEST_PROCESS if isolation is None else isolation
    which = ["--runtime", runtime] if isinstance(runtime, str) else runtime
    cmd = [bench, *which, "--runs", "1", *isolation, *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def native(python, argv, env):
    """One timed native process."""
    started = time.perf_counter()
    subprocess.run([python, *argv], check=True, env=env, capture_output=True)
    return (time.perf_counter() - started) * 1000


def backend_of(project):
    import tomllib

    with open(os.path.join(FIXTURES, project, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["build-system"]["build-backend"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native-python", required=True, help="native CPython 3.13 (the recipe's build)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bench", default=os.path.join(ROOT, "target/release/examples/guest_bench"))
    parser.add_argument("--runtimes", nargs="*", default=RUNTIMES)
    parser.add_argument("--wasm-build", default=os.path.join(ROOT, "target/release/wasm-build"))
    parser.add_argument("--thread", action="store_true", help="guests on a thread (epoch checks), not child processes")
    parser.add_argument("--module", action="append", default=[], metavar="LABEL=WASM:PREFIX",
                        help="another column: the python.wasm at WASM with the stdlib prefix PREFIX "
                             "(a folder holding lib/python3.13), e.g. a build-runtime variant")
    parser.add_argument("--also-thread", action="store_true",
                        help="add a column: cpython-3.13 on a thread (epoch checks), alternating with the others")
    parser.add_argument("--gap-ms", type=int, default=50,
                        help="untimed pause before each guest run: the host's own work between the runs of a build, "
                             "during which the next child process gets ready (0: back to back)")
    args = parser.parse_args()
    if not args.thread:
        GUEST_PROCESS.extend(["--guest-process", args.wasm_build, "--gap-ms", str(args.gap_ms)])
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    python = args.native_python
    # The guest's stdlib ships its bytecode; the native one must have it too, or every native
    # run compiles what it imports (a fresh build tree has almost none).
    stdlib = subprocess.run([python, "-S", "-c", "import os; print(os.path.dirname(os.__file__))"],
                            check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", "-j0", stdlib], capture_output=True)
    import_code = "import site; site.addsitedir({!r}); import setuptools"

    # The build environments the guest uses: their bytecode is CPython 3.13's, so the native
    # interpreter runs the very same files.
    envs = {
        "import": guest(args.bench, RUNTIMES[0], "--with", "setuptools", "--", "-S", "-c", "pass")["site_packages"],
    }
    for project in PROJECTS:
        envs[project] = guest(args.bench, RUNTIMES[0], "--project", os.path.join(FIXTURES, project))["site_packages"]

    # (workload, guest arguments, native argv)
    workloads = [
        (STARTUP, ["--", "-S", "-c", "pass"], ["-S", "-c", "pass"]),
        ("import setuptools",
         ["--with", "setuptools", "--", "-S", "-c", import_code.format("/wasm-build/env")],
         ["-S", "-c", import_code.format(envs["import"])]),
    ] + [
        (f"{project} build_wheel{label}",
         ["--project", os.path.join(FIXTURES, project), *flags],
         ["-S", "-c", NATIVE_HOOKS, os.path.join(FIXTURES, project), envs[project], backend_of(project)])
        for project in PROJECTS
        for label, flags in [("", []), (", fresh import", ["--no-prepared-backend"])]
    ]
    # column -> (runtime, guest_bench isolation arguments); native is separate
    guests = {runtime: (runtime, GUEST_PROCESS) for runtime in args.runtimes}
    for spec in args.module:
        label, _, paths = spec.partition("=")
        module, _, prefix = paths.partition(":")
        if not (label and module and prefix):
            sys.exit(f"--module {spec}: expected LABEL=WASM:PREFIX")
        guests[label] = (["--python-wasm", module, "--python-home", prefix], GUEST_PROCESS)
    if args.also_thread and not args.thread:
        guests[f"{RUNTIMES[0]} (thread)"] = (RUNTIMES[0], [])
    columns = [*guests, "native"]
    # Run by run, every column in turn: this machine's speed drifts from minute to minute,
    # and alternating puts the drift into every column alike.
    rows = []
    for name, guest_args, native_argv in workloads:
        native(python, native_argv, env)  # warm-up
        times = {column: [] for column in columns}
        for _ in range(args.runs):
            for column, (runtime, isolation) in guests.items():
                times[column].append(guest(args.bench, runtime, *guest_args, isolation=isolation)["runs_ms"][0])
            times["native"].append(native(python, native_argv, env))
        rows.append((name, {column: statistics.median(values) for column, values in times.items()}))

    mode = "thread (epoch checks)" if args.thread else f"child process, {args.gap_ms} ms apart"
    print(f"\nguests: {mode}; medians of {args.runs} alternating runs, ms (ratio to native)\n")
    print(f"{'workload':<38}" + "".join(f"{c:>26}" for c in columns))
    for name, values in rows:
        line = f"{name:<38}"
        for column in columns:
            ms = values[column]
            if column == "native":
                line += f"{ms:>26.1f}"
            else:
                cell = f"{ms:.1f} ({ms / values['native']:.2f}x)"
                line += f"{cell:>26}"
        print(line)


if __name__ == "__main__":
    main()
