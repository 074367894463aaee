#!/usr/bin/env python3
"""Two wasm-build binaries, side by side on the corpus's sdists (issue 18).

For each sdist under `<work>/sdists` (as `speed.py` and `corpus.py` download them), the two
binaries build the wheel in turn: one warm-up round, then `--rounds` timed rounds. Prints
each sdist's median seconds, the ratio new/old and whether both wheels have the same bytes
(`SOURCE_DATE_EPOCH` is set, so they should), then the totals. Sdists either binary fails
on are left out. For a change that must not alter any wheel and should only be faster.

    python3 bench/ab.py OLD NEW [--work /tmp/wasm-build-corpus] [--rounds 3]

Python 3.11+ standard library only; writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(binary: str, sdist: Path, env: dict[str, str]) -> tuple[float, bytes | None]:
    out = Path(tempfile.mkdtemp(prefix="wasm-build-ab-"))
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [binary, str(sdist), "--wheel", "-q", "-o", str(out)], env=env, capture_output=True
        )
        elapsed = time.perf_counter() - started
        wheels = list(out.glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            return elapsed, None
        return elapsed, wheels[0].read_bytes()
    finally:
        shutil.rmtree(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wasm-build-corpus"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", PYTHONHASHSEED="0")
    sdists = sorted((args.work / "sdists").glob("*/*.tar.gz"), key=lambda p: p.name.lower())
    if not sdists:
        sys.exit(f"no sdists under {args.work / 'sdists'}: run speed.py or corpus.py first")
    totals = {"old": 0.0, "new": 0.0}
    same_count = rows = 0
    for sdist in sdists:
        seconds: dict[str, list[float]] = {"old": [], "new": []}
        wheels: dict[str, bytes | None] = {}
        for round_ in range(args.rounds + 1):
            for side in ("old", "new"):
                elapsed, wheel = build(getattr(args, side), sdist, env)
                wheels.setdefault(side, wheel)
                if round_ > 0:
                    seconds[side].append(elapsed)
        if wheels["old"] is None or wheels["new"] is None:
            print(f"{sdist.name}: failed with {'old' if wheels['old'] is None else 'new'}")
            continue
        old, new = statistics.median(seconds["old"]), statistics.median(seconds["new"])
        same = wheels["old"] == wheels["new"]
        totals["old"] += old
        totals["new"] += new
        same_count += same
        rows += 1
        name = sdist.name.removesuffix(".tar.gz")
        print(f"{name:36s} {old:6.2f} {new:6.2f} {new / old:5.2f} {'same' if same else 'DIFFERENT'}")
    print(
        f"total ({rows}): old {totals['old']:.2f} s, new {totals['new']:.2f} s, "
        f"new/old {totals['new'] / totals['old']:.3f}; same bytes {same_count}/{rows}"
    )
    return 0 if same_count == rows else 1


if __name__ == "__main__":
    sys.exit(main())
