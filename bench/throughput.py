#!/usr/bin/env python3
"""Registry throughput (issue 16): wheels from real PyPI sdists, warm caches.

- `wasm-build -j 2 SDIST...`: one process, one warm frontend, two builds at once;
- `wasm-build SDIST` once per sdist, one after the other;
- `uv build --wheel SDIST` once per sdist, one after the other;
- `wasm-build --metadata SDIST` on each sdist, the median of `--repeat` runs (static
  PKG-INFO answers without the sandbox; the target is under 20 ms).

Each mode runs once to warm its caches, then `--repeat` times; the median is reported.
Standard library only; writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare_wheels import default_wasm_build, fetch_sdist, find_tool  # noqa: E402

SPECS = [
    "six==1.17.0",
    "idna==3.20",
    "requests==2.34.2",
    "attrs==26.1.0",
    "packaging==26.4",
    "urllib3==2.8.0",
    "click==8.5.1",
    "tomli==2.5.0",
    "jinja2==3.1.6",
    "pluggy==1.7.0",
]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}… failed:\n{done.stderr.decode()[-2000:]}")
    return elapsed


def median_of(runs: int, once) -> float:
    once()  # warm-up
    return statistics.median(once() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wasm-build", help="the wasm-build binary")
    parser.add_argument("--uv", help="the uv binary")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sdists", type=Path, default=Path(tempfile.gettempdir()) / "wasm-build-bench-sdists")
    parser.add_argument("--index-json", default="https://pypi.org/pypi")
    args = parser.parse_args()
    wasm_build = [args.wasm_build or default_wasm_build()[0]]
    uv = find_tool(args.uv, ["uv"], "uv")
    sdists = [fetch_sdist(spec, args.sdists, args.index_json) for spec in SPECS]
    out = Path(tempfile.mkdtemp(prefix="wasm-build-bench-"))
    try:
        def fresh(name: str) -> str:
            path = out / name
            shutil.rmtree(path, ignore_errors=True)
            return str(path)

        batch = median_of(args.repeat, lambda: timed(
            wasm_build + [*map(str, sdists), "--wheel", "-j", "2", "-q", "-o", fresh("batch")]))
        each = median_of(args.repeat, lambda: sum(
            timed(wasm_build + [str(s), "--wheel", "-q", "-o", fresh("each")]) for s in sdists))
        uv_each = median_of(args.repeat, lambda: sum(
            timed([uv, "build", "--wheel", "-q", "-o", fresh("uv"), str(s)]) for s in sdists))
        metadata = {}
        for sdist in sdists:
            report = out / "m.json"
            subprocess.run(wasm_build + [str(sdist), "--metadata", "--report", str(report)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            source = json.loads(report.read_text())["sources"][0]
            ms = 1000 * median_of(max(args.repeat, 5), lambda: timed(
                wasm_build + [str(sdist), "--metadata"]))
            metadata[sdist.name] = (source.get("metadata_source"), ms)
    finally:
        shutil.rmtree(out, ignore_errors=True)

    n = len(sdists)
    print(f"{n} sdists, warm caches, median of {args.repeat}")
    print(f"| mode | total s | wheels/min |\n|---|---|---|")
    for name, seconds in [("wasm-build -j 2, one process", batch),
                          ("wasm-build, one process per sdist", each),
                          ("uv build --wheel, one per sdist", uv_each)]:
        print(f"| {name} | {seconds:.2f} | {60 * n / seconds:.1f} |")
    print("\n| sdist | metadata from | --metadata ms |\n|---|---|---|")
    for name, (source, ms) in metadata.items():
        print(f"| {name} | {source} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
