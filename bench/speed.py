#!/usr/bin/env python3
"""Speed per sdist (issue 18): wasm-build, `uv build` and `python -m build`, side by side.

For each pinned sdist of the open corpus (`corpus.tsv`) and of `corpus-backends.tsv` (the
major backends building themselves, file-heavy projects), each tool builds the wheel once to
warm its caches, then `--rounds` more times, the tools taking turns per sdist so that a
change in the machine's load hits all three alike. The table shows the median seconds, the
ratios wasm-build/uv and wasm-build/build, and whether wasm-build's wheel has the same bytes
as pypa/build's in every round (RECORD and WHEEL's Generator aside, as compare_wheels.py
decides; an in-tree backend imports from bytecode from its third build on). Sdists
that a tool cannot build as a pure wheel are listed apart, untimed.

All builds run with `SOURCE_DATE_EPOCH` and `PYTHONHASHSEED=0` as corpus.py's do; uv and
pypa/build use `--python-build` (a CPython 3.13, the sandbox's minor version); uv's cache is
its own (`--uv-cache`, warm after the first round), wasm-build's is the user's.

Python 3.11+ standard library only; writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_wheels import (  # noqa: E402
    DEFAULT_EPOCH,
    build_system,
    compare,
    default_wasm_build,
    find_tool,
    run_build,
)
from corpus import Entry, download, load  # noqa: E402

HERE = Path(__file__).resolve().parent
TOOLS = ["wasm-build", "uv", "build"]
TARGET_EACH, TARGET_TOTAL = 0.8, 0.4


@dataclass
class Row:
    entry: Entry
    backend: str = ""
    seconds: dict[str, list[float]] = field(default_factory=dict)
    failed: str = ""
    same: bool | None = None

    def median(self, tool: str) -> float:
        return statistics.median(self.seconds[tool])


def commands(tools: dict, sdist: Path, out: Path) -> dict[str, list[str]]:
    return {
        "wasm-build": [tools["wasm-build"], str(sdist), "--wheel", "-q", "-o", str(out)],
        "uv": [tools["uv"], "build", "--wheel", "-q", "--python", tools["python"],
               "-o", str(out), str(sdist)],
        "build": [tools["python"], "-m", "build", "--wheel", "--outdir", str(out), str(sdist)],
    }


def measure(entry: Entry, args, tools: dict, env: dict) -> Row:
    row = Row(entry)
    work = Path(args.work) / "builds" / f"{entry.name}-{entry.version}"
    try:
        sdist = download(entry, Path(args.work) / "sdists")
        row.backend = build_system(sdist)[0].split(":")[0]
    except Exception as e:  # noqa: BLE001 - reported in the table
        row.failed = f"download: {e}"
        return row
    wheels = {}
    for round_ in range(args.rounds + 1):  # round 0 warms the caches and is not counted
        for tool in TOOLS:
            out = work / tool
            cmd = commands(tools, sdist, out)[tool]
            result = run_build(tool, cmd, out, env)
            if not result.ok:
                lines = [l for l in result.log_tail.splitlines() if l.strip()]
                error = next((l for l in lines if l.startswith("error:")), lines[0] if lines else "?")
                row.failed = f"{tool} failed: {error}"
                return row
            if not result.wheel.endswith("-any.whl"):
                row.failed = f"{tool} made {Path(result.wheel).name}"
                return row
            wheels[tool] = result.wheel
            if round_:
                row.seconds.setdefault(tool, []).append(result.seconds)
        # Every round's wheel counts: later rounds may take another path (an in-tree
        # backend's bytecode, compiled by the second build, is used from the third on).
        c = compare(wheels["build"], wheels["wasm-build"])
        same = c.identical_files and not c.wheel_name_differs
        row.same = same if round_ == 0 else row.same and same
    return row


def table(rows: list[Row]) -> str:
    timed = [r for r in rows if not r.failed]
    lines = ["| sdist | backend | wasm-build s | uv s | build s | ÷uv | ÷build | same bytes as build |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in sorted(timed, key=lambda r: -r.median("wasm-build") / r.median("uv")):
        w, u, b = (r.median(t) for t in TOOLS)
        flag = " **>0.8**" if w / u > TARGET_EACH else ""
        lines.append(f"| {r.entry.name} {r.entry.version} | {r.backend} | {w:.2f} | {u:.2f} "
                     f"| {b:.2f} | {w / u:.2f}{flag} | {w / b:.2f} | {'yes' if r.same else 'NO'} |")
    if timed:
        total = {t: sum(r.median(t) for r in timed) for t in TOOLS}
        ratios = [r.median("wasm-build") / r.median("uv") for r in timed]
        over = [r for r in timed if r.median("wasm-build") / r.median("uv") > TARGET_EACH]
        lines += [
            f"| **total ({len(timed)})** | | {total['wasm-build']:.1f} | {total['uv']:.1f} "
            f"| {total['build']:.1f} | {total['wasm-build'] / total['uv']:.2f} "
            f"| {total['wasm-build'] / total['build']:.2f} "
            f"| {sum(1 for r in timed if r.same)}/{len(timed)} |",
            "",
            f"Median per-sdist ratio to uv: {statistics.median(ratios):.2f}; "
            f"{len(over)} of {len(timed)} above {TARGET_EACH} (target: none); "
            f"total ratio {total['wasm-build'] / total['uv']:.2f} (target ≤ {TARGET_TOTAL}).",
        ]
    untimed = [r for r in rows if r.failed]
    if untimed:
        lines += ["", "Not timed (not a pure wheel on every side):", ""]
        lines += [f"- {r.entry.name} {r.entry.version}: {r.failed[:160]}" for r in untimed]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", type=Path,
                        help="pinned lists [corpus.tsv and corpus-backends.tsv]")
    parser.add_argument("--only", nargs="*", help="these project names only")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds after the warm-up")
    parser.add_argument("--wasm-build", help="the wasm-build executable")
    parser.add_argument("--uv", help="the uv executable [uv on PATH]")
    parser.add_argument("--python-build", help="a CPython 3.13 with `build` installed")
    parser.add_argument("--uv-cache", help="uv's cache folder [<work>/uv-cache]")
    parser.add_argument("--epoch", default=DEFAULT_EPOCH)
    parser.add_argument("--out", help="also write the table to this file, row by row")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "wasm-build-corpus"))
    args = parser.parse_args()
    entries = [e for c in args.corpus or [HERE / "corpus.tsv", HERE / "corpus-backends.tsv"]
               for e in load(c)]
    if args.only:
        wanted = {n.lower() for n in args.only}
        entries = [e for e in entries if e.name.lower() in wanted]
    tools = {
        "wasm-build": find_tool(args.wasm_build, default_wasm_build(), "wasm-build"),
        "uv": find_tool(args.uv, ["uv"], "uv"),
        "python": find_tool(args.python_build, ["python3"], "a Python with `build`"),
    }
    env = dict(os.environ, SOURCE_DATE_EPOCH=args.epoch, PYTHONHASHSEED="0",
               UV_CACHE_DIR=args.uv_cache or str(Path(args.work) / "uv-cache"))
    print(f"# {len(entries)} sdists, {args.rounds} timed rounds; tools {tools}; "
          f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    for entry in entries:
        row = measure(entry, args, tools, env)
        rows.append(row)
        times = " ".join(f"{t}={row.median(t):.2f}s" for t in TOOLS if t in row.seconds)
        print(f"# {entry.name} {entry.version} [{row.backend}] {times} {row.failed[:100]} "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        if args.out:  # a long run interrupted keeps its rows
            Path(args.out).write_text(table(rows) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
