#!/usr/bin/env python3
"""Peak memory of `wasm-build -j 2` building real sdists (issue 18), the guest processes
included.

`/usr/bin/time -v` reports the largest single process only, and wasm-build runs every
guest in a child process of its own. This script starts `wasm-build SDIST... --wheel -j N`
and samples its whole process tree every `--interval` seconds from /proc: the sum of the
resident sets of all its processes at each sample (the memory the build holds at once),
and of their proportional sets (PSS: a page shared by several processes, such as the
binary's code and the compiled interpreter every guest process maps, counted once in all),
their peaks, and the peak resident set (`VmHWM`) of the parent and of the largest child. Runs warm
(the caches filled by a first round that is not measured) unless `--cold`. Linux only,
standard library only; writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare_wheels import default_wasm_build, fetch_sdist  # noqa: E402
from throughput import SPECS  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(root: int) -> list[int]:
    tree, found, todo = children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def memory(pid: int) -> tuple[int, int, int]:
    """Resident set, proportional set (shared pages divided among the processes that map
    them) and peak resident set (VmHWM) of `pid` in bytes; zeros once it is gone."""
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        pss = hwm = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
        return rss, pss, hwm
    except (OSError, ValueError, IndexError):
        return 0, 0, 0


def measure(cmd: list[str], env: dict, interval: float) -> tuple[float, dict[str, int], int]:
    """Seconds; the peaks of the tree's summed RSS and PSS, of the parent's VmHWM and of the
    largest child's; processes seen."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks = dict.fromkeys(["rss", "pss", "parent", "child"], 0)
    seen: set[int] = set()
    while proc.poll() is None:
        pids = descendants(proc.pid)
        seen.update(pids)
        rss_sum = pss_sum = 0
        for pid in pids:
            rss, pss, hwm = memory(pid)
            rss_sum += rss
            pss_sum += pss
            role = "parent" if pid == proc.pid else "child"
            peaks[role] = max(peaks[role], hwm)
        peaks["rss"] = max(peaks["rss"], rss_sum)
        peaks["pss"] = max(peaks["pss"], pss_sum)
        time.sleep(interval)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"wasm-build failed ({proc.returncode}):\n{stderr[-3000:]}")
    return elapsed, peaks, len(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=SPECS, help="name==version (default: throughput.py's)")
    parser.add_argument("--wasm-build", help="the wasm-build binary")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--cold", action="store_true", help="empty caches, first run included")
    parser.add_argument("--sdists", type=Path,
                        default=Path(tempfile.gettempdir()) / "wasm-build-bench-sdists")
    parser.add_argument("--index-json", default="https://pypi.org/pypi")
    args = parser.parse_args()
    wasm_build = args.wasm_build or default_wasm_build()[0]
    sdists = [str(fetch_sdist(spec, args.sdists, args.index_json)) for spec in args.specs]
    with tempfile.TemporaryDirectory(prefix="wasm-build-rss-") as work:
        env = dict(os.environ)
        if args.cold:
            env.update(XDG_CACHE_HOME=f"{work}/cache", XDG_STATE_HOME=f"{work}/state")
        cmd = [wasm_build, *sdists, "--wheel", "-j", str(args.jobs), "-q", "-o", f"{work}/out"]
        if not args.cold:
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
        seconds, peaks, processes = measure(cmd, env, args.interval)
    mib = {key: f"{value / (1 << 20):.0f} MiB" for key, value in peaks.items()}
    print(f"wasm-build -j {args.jobs}, {len(sdists)} sdists, {'cold' if args.cold else 'warm'}: "
          f"{seconds:.1f} s, {processes} processes (sampled every {args.interval * 1000:.0f} ms)")
    print(f"peak of the tree's summed RSS: {mib['rss']} (shared pages counted in each process); "
          f"summed PSS: {mib['pss']}")
    print(f"peak RSS (VmHWM) of the parent: {mib['parent']}; of the largest guest process: "
          f"{mib['child']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
