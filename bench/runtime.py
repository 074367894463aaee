#!/usr/bin/env python3
"""Interpreter speed: the sandboxed runtimes against native CPython, side by side in one run.

For each runtime (wasm-build's cpython-3.13, the VMware cpython-3.12) and for a native
CPython 3.13 (the recipe's own native build, same sources: --native-python), measures

  start-up          python -S -c pass (every hook starts as python -S)
  import            python -S, then import setuptools (from the same build environment)
  flit wheel        get_requires_for_build_wheel + build_wheel of tests/fixtures/flit
  setuptools wheel  the same for tests/fixtures/setuptools
  hatchling wheel   the same for tests/fixtures/hatchling

Guest figures come from `examples/guest_bench` (the engine and module loaded once, one fresh
instance per run: what a hook costs inside `wasm-build`); native figures are whole
processes running the same backend calls on a fresh copy of the project, with the same
site-packages folder (its bytecode is CPython 3.13's, so it serves both). Medians of --runs
runs after one warm-up, and the ratio to native.

    python3 bench/runtime.py --native-python /path/to/build-native/python [--runs 7]

Build the example first: cargo build --release --example guest_bench
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


def guest(bench, runtime, runs, *args):
    cmd = [bench, "--runtime", runtime, "--runs", str(runs), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def native(python, runs, argv, env=None):
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        subprocess.run([python, *argv], check=True, env=env, capture_output=True)
        if run:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


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
    args = parser.parse_args()
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")

    rows = []  # (workload, {column: ms})
    def add(workload, column, ms):
        for name, values in rows:
            if name == workload:
                values[column] = ms
                return
        rows.append((workload, {column: ms}))

    native_env = None
    for runtime in args.runtimes:
        add(STARTUP, runtime, guest(args.bench, runtime, args.runs, "--", "-S", "-c", "pass")["median_ms"])
        result = guest(
            args.bench, runtime, args.runs, "--with", "setuptools", "--",
            "-S", "-c", "import site; site.addsitedir('/wasm-build/env'); import setuptools",
        )
        add("import setuptools", runtime, result["median_ms"])
        if runtime == "cpython-3.13":
            native_env = result["site_packages"]
        for project in PROJECTS:
            result = guest(args.bench, runtime, args.runs, "--project", os.path.join(FIXTURES, project))
            add(f"{project} build_wheel", runtime, result["median_ms"])
            if runtime == "cpython-3.13":
                add(f"{project} build_wheel", "env", result["site_packages"])

    python = args.native_python
    add(STARTUP, "native", native(python, args.runs, ["-S", "-c", "pass"], env))
    if native_env:
        add("import setuptools", "native", native(
            python, args.runs, ["-S", "-c", f"import site; site.addsitedir({native_env!r}); import setuptools"], env))
    for project in PROJECTS:
        for name, values in rows:
            if name == f"{project} build_wheel" and "env" in values:
                add(name, "native", native(python, args.runs, [
                    "-S", "-c", NATIVE_HOOKS, os.path.join(FIXTURES, project), values.pop("env"), backend_of(project)], env))

    columns = [*args.runtimes, "native"]
    print(f"\nmedians of {args.runs} runs, ms (ratio to native)\n")
    print(f"{'workload':<26}" + "".join(f"{c:>26}" for c in columns))
    for name, values in rows:
        line = f"{name:<26}"
        for column in columns:
            ms = values.get(column)
            if ms is None:
                line += f"{'-':>26}"
            elif column == "native" or "native" not in values:
                line += f"{ms:>26.1f}"
            else:
                cell = f"{ms:.1f} ({ms / values['native']:.2f}x)"
                line += f"{cell:>26}"
        print(line)


if __name__ == "__main__":
    main()
