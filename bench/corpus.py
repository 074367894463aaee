#!/usr/bin/env python3
"""The open corpus: build popular pure-Python sdists with wasm-build and with pypa/build.

Two subcommands:

`pin`  reads a ranked list of PyPI projects (`name<TAB>version<TAB>month<TAB>rank…`, the
       layout of a download-ranked name list), asks the PyPI JSON API about each project of
       the first `--top` ranks, keeps those whose newest final release has an sdist and a
       pure (`py3-none-any` / `py2.py3-none-any`) wheel, and writes `bench/corpus.tsv`: rank,
       name, version, sdist file name, URL and sha256. The list is kept in the repository so
       that runs compare the same bytes.

`run`  downloads each pinned sdist once (cached, sha256 checked), builds its wheel with
       wasm-build and with `python -m build --wheel` (isolated; use a native CPython of the
       sandbox's minor version, 3.13), compares them member by member (compare_wheels.py)
       and prints a table of classes with counts (see CLASSES). With
       `--with-and-without-prepared` every sdist is also built with `--no-prepared-backend`,
       and the two wasm-build wheels must be byte-identical; `--with-and-without FLAG` does
       the same for any wasm-build flag (e.g. `--deterministic`), and `--twice` builds the
       default wheel a second time to tell a flag's change from a wheel that varies anyway.

Python 3.11+ standard library only. Nothing is written into the repository but corpus.tsv
(by `pin`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_wheels import (  # noqa: E402
    DEFAULT_EPOCH,
    compare,
    default_wasm_build,
    describe,
    find_tool,
    sha256_file,
)

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.tsv"
COLUMNS = ["rank", "name", "version", "filename", "url", "sha256"]

# Each outcome falls in exactly one class; the table lists them in this order.
CLASSES = {
    "identical": "the two wheels hold the same files (RECORD and WHEEL's Generator aside)",
    "identical-but-archive": "same files, but zip-level attributes or the file name differ",
    "differs": "the wheels differ and pypa/build reproduces its own wheel",
    "reference-unstable": "the wheels differ, and so do two pypa/build runs",
    "identical-with-switch": "exit 8 with an --env hint; with that variable both sides make "
    "the same pure wheel (--follow-hints)",
    "needs-native-build-requirement": "a build requirement has no pure wheel (wasm-build exit 4)",
    "needs-native-compiler": "the project compiles native code (exit 8, or a platform wheel)",
    "reference-not-pure": "pypa/build made a platform wheel, wasm-build a pure one",
    "backend-failed": "the backend failed in the sandbox only (exit 5)",
    "sandbox-stopped": "a sandbox limit stopped the backend (exit 6)",
    "refused": "wasm-build refused the sdist or the artifact (exit 3 or 7)",
    "wasm-build-failed": "wasm-build failed otherwise (exit 1, 2, …)",
    "reference-failed": "pypa/build failed (wasm-build's result is listed in the detail)",
    "download-failed": "the sdist could not be fetched or its sha256 did not match",
}


@dataclass
class Entry:
    rank: int
    name: str
    version: str
    filename: str
    url: str
    sha256: str


@dataclass
class Run:
    ok: bool
    exit: int
    seconds: float
    wheel: str | None
    tail: str


@dataclass
class Outcome:
    entry: Entry
    klass: str = ""
    detail: str = ""
    runs: dict[str, Run] = field(default_factory=dict)
    # Per differential flag: whether the wheel built with it has the default wheel's bytes,
    # and what differs when not. "(again)" is the default wheel built a second time.
    same_with: dict[str, bool] = field(default_factory=dict)
    detail_with: dict[str, str] = field(default_factory=dict)


# --- pin ----------------------------------------------------------------------------------


def pure_wheel(filename: str) -> bool:
    return filename.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl"))


def final(version: str) -> bool:
    return re.fullmatch(r"[0-9]+(\.[0-9]+)*(\.post[0-9]+)?", version) is not None


def pin(args) -> int:
    ranked = []
    with open(args.names, encoding="utf-8") as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 4 and cols[3].isdigit() and 1 <= int(cols[3]) <= args.top:
                ranked.append((int(cols[3]), cols[0]))
    ranked.sort()
    rows, skipped = [], []
    for rank, name in ranked:
        try:
            page = f"{args.index_json}/{name}/json"
            with urllib.request.urlopen(page, timeout=60) as r:
                project = json.load(r)
        except Exception as e:  # noqa: BLE001 - reported, the pin goes on
            skipped.append(f"{rank}\t{name}\tlookup failed: {e}")
            continue
        versions = [v for v, files in project["releases"].items() if files and final(v)]
        if not versions:
            skipped.append(f"{rank}\t{name}\tno final release")
            continue
        newest = max(versions, key=lambda v: [int(p) for p in re.findall(r"[0-9]+", v)])
        files = project["releases"][newest]
        sdists = [f for f in files if f["packagetype"] == "sdist" and not f.get("yanked")]
        wheels = [f for f in files if pure_wheel(f["filename"])]
        if not sdists or not wheels:
            why = "no sdist" if not sdists else "no pure wheel"
            skipped.append(f"{rank}\t{name}\t{newest}: {why}")
            continue
        sdists.sort(key=lambda f: not f["filename"].endswith(".tar.gz"))
        s = sdists[0]
        # Some proxies answer with URLs relative to the JSON page.
        url = urllib.parse.urljoin(page, s["url"])
        rows.append([str(rank), project["info"]["name"], newest, s["filename"], url,
                     s["digests"]["sha256"]])
        print(f"{rank:5} {name} {newest}", file=sys.stderr)
    with open(args.corpus, "w", encoding="utf-8") as f:
        f.write(f"# top {args.top} ranks of {Path(args.names).name}, pinned "
                f"{time.strftime('%Y-%m-%d')}: {len(rows)} kept, {len(skipped)} left out\n")
        f.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    if args.skipped:
        Path(args.skipped).write_text("\n".join(skipped) + "\n")
    print(f"{len(rows)} kept, {len(skipped)} left out -> {args.corpus}", file=sys.stderr)
    return 0


def load(path: Path) -> list[Entry]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("rank\t"):
            continue
        rank, name, version, filename, url, sha = line.split("\t")
        entries.append(Entry(int(rank), name, version, filename, url, sha))
    return entries


# --- run ----------------------------------------------------------------------------------

_download_lock = threading.Lock()


def download(entry: Entry, cache: Path) -> Path:
    """The sdist, from the cache when its sha256 matches the pin."""
    path = cache / entry.sha256[:16] / entry.filename
    if path.exists() and sha256_file(path) == entry.sha256:
        return path
    with _download_lock:  # one download at a time is kind to the index
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(entry.url, timeout=300) as r:
            data = r.read()
    import hashlib

    got = hashlib.sha256(data).hexdigest()
    if got != entry.sha256:
        raise RuntimeError(f"{entry.filename}: sha256 {got}, pinned {entry.sha256}")
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def build(cmd: list[str], out: Path, env: dict, log: Path, timeout: int) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=timeout)
        code, text = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        code, text = -1, (e.stdout or b"").decode(errors="replace") + "\n(timed out)"
    seconds = time.perf_counter() - start
    log.write_text(text)
    wheels = sorted(out.glob("*.whl"))
    tail = "\n".join(text.splitlines()[-25:])
    ok = code == 0 and len(wheels) == 1
    return Run(ok, code, seconds, str(wheels[0]) if ok else None, tail)


def platform_wheel(wheel: str) -> bool:
    return not wheel.endswith("-any.whl")


def failure_class(run: Run) -> str:
    text = run.tail
    if run.exit == 8 or (run.exit == 7 and "platform" in text):
        return "needs-native-compiler"
    if run.exit == 4 and ("no pure" in text.lower() or "only" in text and "wheel" in text):
        return "needs-native-build-requirement"
    return {5: "backend-failed", 6: "sandbox-stopped", 3: "refused", 7: "refused",
            4: "needs-native-build-requirement"}.get(run.exit, "wasm-build-failed")


def last_error_line(tail: str) -> str:
    lines = [l.strip() for l in tail.splitlines() if l.strip()]
    for l in lines:  # wasm-build's own headline first
        if l.startswith("error: ") and "caused by" not in l:
            return l[:200]
    for l in reversed(lines):
        if l.startswith(("error:", "Error", "ERROR")) or "Error:" in l:
            return l[:200]
    return lines[-1][:200] if lines else ""


def one(entry: Entry, args, tools: dict, env: dict) -> Outcome:
    o = Outcome(entry)
    base = Path(args.work) / "builds" / f"{entry.name}-{entry.version}"
    base.mkdir(parents=True, exist_ok=True)
    try:
        sdist = download(entry, Path(args.work) / "sdists")
    except Exception as e:  # noqa: BLE001 - a class of its own
        o.klass, o.detail = "download-failed", str(e)
        return o
    wasm = [tools["wasm-build"], str(sdist), "--wheel", "--offline"] if args.offline else \
        [tools["wasm-build"], str(sdist), "--wheel"]

    def run(tag: str, cmd: list[str], extra_env=None) -> Run:
        r = build(cmd + ["-o" if "wasm" in tag else "--outdir", str(base / tag)],
                  base / tag, dict(env, **(extra_env or {})), base / f"{tag}.log", args.timeout)
        o.runs[tag] = r
        return r

    w = run("wasm", wasm)
    n = run("native", [tools["python"], "-m", "build", "--wheel", str(sdist)])
    for flag in args.with_and_without + (["(again)"] if args.twice else []):
        u = run(f"wasm{flag}", wasm + ([] if flag == "(again)" else [flag]))
        if w.ok and u.ok:
            o.same_with[flag] = sha256_file(Path(w.wheel)) == sha256_file(Path(u.wheel))
            if not o.same_with[flag]:
                c = compare(w.wheel, u.wheel)
                o.detail_with[flag] = "; ".join(describe(c.differing) + c.only_in_reference
                                                + c.only_in_candidate + c.archive)
        elif w.exit != u.exit:
            o.same_with[flag] = False
            o.detail_with[flag] = f"exit {w.exit} without {flag}, {u.exit} with it"
    if not w.ok:
        o.klass = failure_class(w)
        o.detail = f"exit {w.exit}: {last_error_line(w.tail)}"
        switch = re.search(r"pass --env (\S+)", w.tail)
        if o.klass == "needs-native-compiler" and switch and args.follow_hints:
            key, _, value = switch.group(1).partition("=")
            ws = run("wasm-switch", wasm + ["--env", switch.group(1)])
            ns = run("native-switch", [tools["python"], "-m", "build", "--wheel", str(sdist)],
                     {key: value})
            same = ws.ok and ns.ok and compare(ns.wheel, ws.wheel).identical_files
            o.detail += f"; with --env {switch.group(1)}: " + (
                "same files as pypa/build's" if same else
                f"wasm-build exit {ws.exit}, pypa/build exit {ns.exit}, not identical")
            if same:
                o.klass = "identical-with-switch"
            return o
        if not n.ok:  # pypa/build cannot build it either: not wasm-build's class
            o.klass = "reference-failed"
            o.detail = f"both failed; pypa/build: {last_error_line(n.tail)}; " \
                f"wasm-build {o.detail}"
        return o
    if platform_wheel(w.wheel):
        o.klass, o.detail = "needs-native-compiler", f"wasm-build made {Path(w.wheel).name}"
        return o
    if not n.ok:
        o.klass = "reference-failed"
        o.detail = f"exit {n.exit}: {last_error_line(n.tail)} (wasm-build: {Path(w.wheel).name})"
        return o
    if platform_wheel(n.wheel):
        o.klass, o.detail = "reference-not-pure", Path(n.wheel).name
        return o
    c = compare(n.wheel, w.wheel)
    if c.identical_files and not c.wheel_name_differs:
        o.klass = "identical" if not c.archive else "identical-but-archive"
        o.detail = "same .whl bytes" if c.same_file else "; ".join(c.archive) or c.record
        return o
    n2 = run("native2", [tools["python"], "-m", "build", "--wheel", str(sdist)])
    what = describe(c.differing) + [f"only native: {m}" for m in c.only_in_reference] + \
        [f"only wasm: {m}" for m in c.only_in_candidate]
    if c.wheel_name_differs:
        what.insert(0, f"file name: {c.wheel_name_differs}")
    o.detail = "; ".join(what)
    if n2.ok:
        c2 = compare(n.wheel, n2.wheel)
        if not (c2.identical_files and not c2.wheel_name_differs):
            o.klass = "reference-unstable"
            return o
    o.klass = "differs"
    return o


def table(outcomes: list[Outcome]) -> str:
    counts = {k: 0 for k in CLASSES}
    for o in outcomes:
        counts[o.klass] += 1
    lines = ["| class | count | meaning |", "|---|---:|---|"]
    lines += [f"| {k} | {v} | {CLASSES[k]} |" for k, v in counts.items() if v]
    comparable = counts["identical"] + counts["identical-but-archive"] + counts["differs"]
    if counts["identical-with-switch"]:
        lines.append(f"\n{counts['identical-with-switch']} more build the same pure wheel on "
                     "both sides with the switch wasm-build's exit-8 hint names.")
    if comparable:
        share = 100 * counts["identical"] / comparable
        lines.append(f"\n{counts['identical']} of {comparable} sdists that both sides built as "
                     f"pure wheels are identical ({share:.1f} %); "
                     f"{counts['reference-unstable']} more differ where pypa/build does not "
                     f"reproduce itself.")
    flags = sorted({flag for o in outcomes for flag in o.same_with})
    unstable = {o.entry.name for o in outcomes if o.same_with.get("(again)") is False}
    for flag in flags:
        checked = [o for o in outcomes if flag in o.same_with]
        bad = [o for o in checked if not o.same_with[flag]]
        what = "built again" if flag == "(again)" else f"with and without {flag}"
        lines.append(f"\nDifferential, {what}: {len(checked)} sdists checked, "
                     f"{len(bad)} differ" + "".join(
                         f"\n- {o.entry.name} {o.entry.version}: {o.detail_with[flag]}"
                         + (" (the default wheel varies anyway)"
                            if o.entry.name in unstable and flag != "(again)" else "")
                         for o in bad))
    rows = [o for o in outcomes if o.klass != "identical"]
    if rows:
        lines += ["", "| rank | sdist | class | detail |", "|---:|---|---|---|"]
        for o in sorted(rows, key=lambda o: (o.klass, o.entry.rank)):
            detail = o.detail.replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {o.entry.rank} | {o.entry.name} {o.entry.version} | {o.klass} "
                         f"| {detail} |")
    return "\n".join(lines)


def run_corpus(args) -> int:
    entries = load(Path(args.corpus))
    if args.only:
        wanted = {n.lower() for n in args.only}
        entries = [e for e in entries if e.name.lower() in wanted]
    if args.limit:
        entries = entries[: args.limit]
    tools = {
        "python": find_tool(args.python_build, ["python3"], "a Python with `build`"),
        "wasm-build": find_tool(args.wasm_build, default_wasm_build(), "wasm-build"),
    }
    Path(args.work).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("SOURCE_DATE_EPOCH", None)
    if args.epoch != "none":
        env["SOURCE_DATE_EPOCH"] = args.epoch
    print(f"# {len(entries)} sdists, {args.jobs} at a time; tools {tools}", file=sys.stderr)
    outcomes: list[Outcome] = []

    def task(entry: Entry) -> Outcome:
        o = one(entry, args, tools, env)
        times = " ".join(f"{t}={r.seconds:.0f}s" for t, r in o.runs.items())
        print(f"# {entry.rank:4} {entry.name} {entry.version}: {o.klass} ({times}) "
              f"{o.detail[:120]}", file=sys.stderr, flush=True)
        return o

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for o in pool.map(task, entries):
            outcomes.append(o)
            if args.out:  # written as it goes: a long run interrupted keeps its results
                Path(args.out).write_text(json.dumps([asdict(x) for x in outcomes], indent=1))
    print(table(outcomes))
    return 0 if all(o.klass == "identical" for o in outcomes) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pin", help="make corpus.tsv from a ranked name list")
    p.add_argument("--names", default="/work/.library/env/packages/pypi.tsv")
    p.add_argument("--top", type=int, default=1000)
    p.add_argument("--corpus", default=str(CORPUS))
    p.add_argument("--skipped", help="write the projects left out, and why, to this file")
    p.add_argument("--index-json", default="https://pypi.org/pypi")
    r = sub.add_parser("run", help="build and compare the pinned sdists")
    r.add_argument("--corpus", default=str(CORPUS))
    r.add_argument("--limit", type=int, help="the first N sdists of the list")
    r.add_argument("--only", nargs="*", help="these project names only")
    r.add_argument("--jobs", "-j", type=int, default=1)
    r.add_argument("--with-and-without-prepared", action="store_const", dest="prepared",
                   const="--no-prepared-backend",
                   help="build with --no-prepared-backend too; the wheels must be identical")
    r.add_argument("--with-and-without", action="append", default=[], metavar="FLAG",
                   help="build with this wasm-build flag too and compare the wheels' bytes")
    r.add_argument("--twice", action="store_true",
                   help="build the default wheel twice: does it vary from run to run?")
    r.add_argument("--follow-hints", action="store_true",
                   help="on exit 8 with an --env hint, build both sides again with it")
    r.add_argument("--out", help="write every outcome to this JSON file")
    r.add_argument("--python-build", help="a CPython 3.13 with `build` installed")
    r.add_argument("--wasm-build", help="the wasm-build executable")
    r.add_argument("--offline", action="store_true", help="pass --offline to wasm-build")
    r.add_argument("--timeout", type=int, default=900, help="seconds per build")
    r.add_argument("--epoch", default=DEFAULT_EPOCH, help="SOURCE_DATE_EPOCH for all builds (`none`: unset)")
    r.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "wasm-build-corpus"))
    args = parser.parse_args()
    if getattr(args, "prepared", None):
        args.with_and_without.append(args.prepared)
    return pin(args) if args.command == "pin" else run_corpus(args)


if __name__ == "__main__":
    sys.exit(main())
