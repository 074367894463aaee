#!/usr/bin/env python3
"""The first run (issue 18): one wheel from an sdist on an empty cache, wasm-build against
`uv build` and `python -m build` on empty caches of their own, and what wasm-build's first
run spends, step by step.

Every round gives each tool fresh, empty cache folders (wasm-build: `XDG_CACHE_HOME` and
`XDG_STATE_HOME`, so the runtime is unpacked, the interpreter compiled, the backend
downloaded and installed; uv: `UV_CACHE_DIR`; pypa/build: pip without a cache), one tool
after the other per sdist (interleaved, so that a change in the machine's load hits all
of them), `--repeat` rounds, medians. uv runs the local Python given with `--python`
(`UV_PYTHON_DOWNLOADS=never`). wasm-build's steps come from its `-vv` lines ("Interpreter
ready: …", the build environment, the hook run). Standard library only; writes nothing
into the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare_wheels import default_wasm_build, fetch_sdist, find_tool  # noqa: E402

SPECS = ["six==1.17.0", "idna==3.10"]
EPOCH = "1700000000"


def run(cmd: list[str], env: dict, out: Path) -> tuple[float, str, str | None]:
    """Seconds, stderr, and the sha256 of the one wheel written to `out`."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    stderr = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}… failed ({done.returncode}):\n{stderr[-3000:]}")
    wheels = list(out.glob("*.whl"))
    sha = hashlib.sha256(wheels[0].read_bytes()).hexdigest() if len(wheels) == 1 else None
    return elapsed, stderr, sha


def wasm_steps(stderr: str) -> dict[str, float]:
    """wasm-build's steps from its `-vv` lines, in seconds (repeated steps summed)."""
    steps: dict[str, float] = {}

    def add(name: str, seconds: float) -> None:
        steps[name] = steps.get(name, 0.0) + seconds

    for line in stderr.splitlines():
        line = line.removeprefix("* ")
        if line.startswith("Interpreter ready: "):
            for part in line.removeprefix("Interpreter ready: ").split(", "):
                if match := re.fullmatch(r"(.*) ([0-9.]+) s", part):
                    add(match[1], float(match[2]))
        elif match := re.fullmatch(r"(Preparing the interpreter|Resolving build requirements|"
                                   r"Preparing the build environment): ([0-9.]+) s", line):
            add(match[1].lower(), float(match[2]))
        elif match := re.fullmatch(r"Ran (.*) in ([0-9.]+) s.*", line):
            add(f"hook run ({match[1]})", float(match[2]))
    return steps


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=SPECS, help="name==version (default: %(default)s)")
    parser.add_argument("--wasm-build", help="the wasm-build binary")
    parser.add_argument("--uv", help="the uv binary")
    parser.add_argument("--python", default=shutil.which("python3.13") or sys.executable,
                        help="the local Python uv builds with (default: python3.13 on PATH)")
    parser.add_argument("--python-build", help="a Python with pypa/build installed (else skipped)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sdists", type=Path,
                        default=Path(tempfile.gettempdir()) / "wasm-build-bench-sdists")
    parser.add_argument("--index-json", default="https://pypi.org/pypi")
    args = parser.parse_args()
    wasm_build = args.wasm_build or default_wasm_build()[0]
    uv = find_tool(args.uv, ["uv"], "uv")
    sdists = [fetch_sdist(spec, args.sdists, args.index_json) for spec in args.specs]
    work = Path(tempfile.mkdtemp(prefix="wasm-build-first-run-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "XDG_"))}
    base.update(SOURCE_DATE_EPOCH=EPOCH, PYTHONHASHSEED="0")
    times: dict[tuple[str, str], list[float]] = {}
    steps: dict[str, list[dict[str, float]]] = {}
    same: dict[str, set[bool]] = {}
    loads = []
    try:
        for round_ in range(args.repeat):
            for sdist in sdists:
                loads.append(load())
                fresh = work / f"r{round_}-{sdist.name}"
                env = dict(base, XDG_CACHE_HOME=str(fresh / "cache"),
                           XDG_STATE_HOME=str(fresh / "state"))
                seconds, stderr, wasm_sha = run(
                    [wasm_build, str(sdist), "--wheel", "-vv", "--no-progress",
                     "-o", str(fresh / "wasm")], env, fresh / "wasm")
                times.setdefault((sdist.name, "wasm-build"), []).append(seconds)
                steps.setdefault(sdist.name, []).append(wasm_steps(stderr))
                env = dict(base, UV_CACHE_DIR=str(fresh / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
                seconds, _, uv_sha = run(
                    [uv, "build", "--wheel", "-q", "--python", args.python,
                     "-o", str(fresh / "uv"), str(sdist)], env, fresh / "uv")
                times.setdefault((sdist.name, "uv"), []).append(seconds)
                same.setdefault(sdist.name, set()).add(wasm_sha == uv_sha)
                if args.python_build:
                    env = dict(base, PIP_NO_CACHE_DIR="1")
                    seconds, _, _ = run(
                        [args.python_build, "-m", "build", "--wheel", "-o",
                         str(fresh / "build"), str(sdist)], env, fresh / "build")
                    times.setdefault((sdist.name, "build"), []).append(seconds)
                shutil.rmtree(fresh, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    print(f"First run on empty caches, median of {args.repeat}; load averages seen: "
          f"{'; '.join(loads)}")
    head = "| sdist | wasm-build s | uv build s | ratio |"
    rule = "|---|---|---|---|"
    if args.python_build:
        head += " python -m build s | ratio |"
        rule += "---|---|"
    print(f"{head} same wheel as uv |\n{rule}---|")
    for sdist in sdists:
        wasm = med(times[(sdist.name, "wasm-build")])
        uv_s = med(times[(sdist.name, "uv")])
        row = f"| {sdist.name} | {wasm:.2f} | {uv_s:.2f} | {wasm / uv_s:.2f}× |"
        if args.python_build:
            pb = med(times[(sdist.name, "build")])
            row += f" {pb:.2f} | {wasm / pb:.2f}× |"
        print(f"{row} {'yes' if same[sdist.name] == {True} else 'NO'} |")
    for sdist in sdists:
        print(f"\nwasm-build's first run of {sdist.name}, step by step (medians, seconds):\n")
        print("| step | s |\n|---|---|")
        runs = steps[sdist.name]
        names = list(dict.fromkeys(name for one in runs for name in one))
        for name in names:
            print(f"| {name} | {med(one.get(name, 0.0) for one in runs):.2f} |")
        print(f"| total (wall) | {med(times[(sdist.name, 'wasm-build')]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
