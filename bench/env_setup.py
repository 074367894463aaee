#!/usr/bin/env python3
"""Build-environment setup: wasm-build against `uv build` and `python -m build`.

For each project (default: tests/fixtures/hatchling and tests/fixtures/setuptools) and each
tool, a full `--wheel` build from the project folder is timed in these states of the tool's
cache:

  wasm-build  fully cold        empty WASM_BUILD_CACHE_DIR: downloads the interpreter's
                                carrier wheel, compiles the interpreter, resolves, downloads
                                and unpacks the requirements, compiles their bytecode
              cold, runtime     the interpreter is downloaded but not compiled yet (only the
                                cache's runtimes bucket is kept)
              cold              the interpreter is downloaded and compiled (runtimes and
                                compiled buckets kept): only the build requirements are cold.
                                This is the state to compare with the other tools' cold runs
              warm              the same requirements again (index pages revalidated online)
              warm --offline    the same, without the network
  uv build    cold              empty UV_CACHE_DIR
              warm / warm --offline
  python -m build  cold         empty PIP_CACHE_DIR (build makes a venv and runs pip)
              warm

Every run gets a fresh copy of the project (native setuptools writes build/ and *.egg-info
into the tree) and a fresh output folder. The tools' merged stdout+stderr is read line by
line and each line is timestamped on arrival, which splits a run into phases:

  wasm-build       start .. "* Building wheel"       start-up: runtime, compiled module,
                                                     guest target, staging the source
                   .. "* Build environment: ..."     env setup: resolve + download + unpack +
                                                     bytecode (or the cached env's check)
                   .. "* Built ..."                  the hooks in the sandbox
  uv build -v      "Resolving build requirements" .. first "Calling `...`"      env setup
  python -m build  "* Creating isolated environment" .. "* Getting build dependencies"
                                                                              env setup

Medians over the runs (cold and fully cold runs each start from an empty cache). Python 3.11+
standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    ok: bool
    total: float
    phases: dict[str, float] = field(default_factory=dict)
    log: str = ""


@dataclass
class Row:
    project: str
    tool: str
    scenario: str
    runs: list[Run] = field(default_factory=list)


def timed_run(cmd: list[str], env: dict, cwd: Path):
    """Runs `cmd`, returning (exit code, seconds, [(seconds since start, line)], the start as
    wall-clock time)."""
    lines: list[tuple[float, str]] = []
    wall_start = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )

    def reader():
        for raw in proc.stdout:
            lines.append((time.perf_counter() - start, raw.decode(errors="replace").rstrip("\n")))

    thread = threading.Thread(target=reader)
    thread.start()
    code = proc.wait()
    total = time.perf_counter() - start
    thread.join()
    return code, total, lines, wall_start


def first(lines, predicate) -> float | None:
    return next((t for t, line in lines if predicate(line)), None)


def phases_wasm(lines, total) -> dict[str, float]:
    building = first(lines, lambda l: l.startswith("* Building wheel"))
    env_ready = first(lines, lambda l: l.startswith("* Build environment:"))
    built = first(lines, lambda l: l.startswith("* Built "))
    if None in (building, env_ready, built):
        return {}
    return {
        "startup": building,
        "env": env_ready - building,
        "hooks": built - env_ready,
        "verify+publish": total - built,
    }


def mtimes(root: Path, since: float, pattern: str = "*") -> list[float]:
    if not root.is_dir():
        return []
    found = []
    for path in root.rglob(pattern):
        if path.is_file() and not path.is_symlink():
            m = path.stat().st_mtime
            if m >= since - 0.005:
                found.append(m)
    return found


def wasm_env_breakdown(cache: Path, wall_start: float, phases: dict) -> dict[str, float]:
    """Splits wasm-build's env-setup phase using the modification times of what it wrote
    into its cache: index pages and metadata (resolution), wheels (downloads), the unpacked
    environment (sources, then the .pyc files compiled in the sandbox), its manifest and
    its seal. Empty when no environment was made in this run. Precision: a few ms (the
    kernel's file time stamps are coarse)."""
    if "env" not in phases:
        return {}
    t_build = wall_start + phases["startup"]
    t_env = t_build + phases["env"]
    made = [d for d in (cache / "envs-v1").glob("*")
            if (d / "manifest.sha256").is_file()
            and (d / "manifest.sha256").stat().st_mtime >= t_build - 0.005]
    if len(made) != 1:
        return {}
    env = made[0]
    files = [p for p in (env / "site-packages").rglob("*") if p.is_file()]
    src = [p.stat().st_mtime for p in files if p.suffix != ".pyc"]
    pyc = [p.stat().st_mtime for p in files if p.suffix == ".pyc"]
    index = mtimes(cache / "index-v1", t_build)
    wheels = mtimes(cache / "wheels-v1", t_build, "*.whl")
    # Wheels are downloaded while the resolver still fetches metadata: one phase.
    b = [t_build]
    b.append(max([*index, *wheels, b[-1]]))
    b.append(max([*src, b[-1]]))
    b.append(max([*pyc, b[-1]]))
    b.append((env / "manifest.sha256").stat().st_mtime)
    seal = env.with_suffix(".seal")
    b.append(seal.stat().st_mtime if seal.exists() else b[-1])
    b.append(t_env)
    names = ["resolve+download", "unpack", "bytecode", "manifest", "seal", "rest"]
    return {f"env.{n}": max(0.0, b[i + 1] - b[i]) for i, n in enumerate(names)}


def phases_uv(lines, total) -> dict[str, float]:
    begin = first(lines, lambda l: "Resolving build requirements" in l)
    calling = first(lines, lambda l: l.startswith("DEBUG Calling `"))
    if begin is None or calling is None:
        return {}
    return {"startup": begin, "env": calling - begin, "hooks": total - calling}


def phases_pybuild(lines, total) -> dict[str, float]:
    begin = first(lines, lambda l: l.startswith("* Creating isolated environment"))
    getting = first(lines, lambda l: l.startswith("* Getting build dependencies"))
    if begin is None or getting is None:
        return {}
    # A second "Installing packages" after the get_requires hook would be env setup too;
    # neither fixture asks for more.
    return {"startup": begin, "env": getting - begin, "hooks": total - getting}


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work).resolve()
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        self.counter = 0
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("WASM_BUILD_", "UV_", "PIP_"))}
        base["PYTHONUNBUFFERED"] = "1"
        self.base_env = base

    def fresh(self, name: str) -> Path:
        self.counter += 1
        path = self.work / f"{self.counter:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def stage(self, project: Path) -> tuple[Path, Path]:
        run_dir = self.fresh(project.name)
        src = run_dir / "src"
        shutil.copytree(project, src, ignore=shutil.ignore_patterns("dist", "build",
                                                                    "*.egg-info"))
        return src, run_dir / "out"

    def run(self, tool: str, project: Path, env_extra: dict, extra_args=()) -> Run:
        src, out = self.stage(project)
        env = dict(self.base_env, **env_extra)
        if tool == "wasm-build":
            cmd = [self.args.wasm_build, str(src), "--wheel", "-o", str(out), *extra_args]
            parse = phases_wasm
        elif tool == "uv build":
            cmd = [self.args.uv, "build", "-v", "--wheel", "--python", self.args.python_build,
                   "--out-dir", str(out), *extra_args, str(src)]
            parse = phases_uv
        else:
            cmd = [self.args.python_build, "-m", "build", "--wheel", "--outdir", str(out),
                   *extra_args, str(src)]
            parse = phases_pybuild
        code, total, lines, wall_start = timed_run(cmd, env, src.parent)
        ok = code == 0 and len(list(out.glob("*.whl"))) == 1
        log = "\n".join(f"{t:8.3f} {l}" for t, l in lines)
        (src.parent / "log.txt").write_text(f"$ {' '.join(cmd)}\nexit {code}\n{log}\n")
        if not ok:
            print(f"  FAILED ({code}): {' '.join(cmd)}\n{log[-3000:]}", file=sys.stderr)
        shutil.rmtree(src)
        phases = parse(lines, total) if ok else {}
        if tool == "wasm-build" and phases:
            cache = Path(env["WASM_BUILD_CACHE_DIR"])
            phases.update(wasm_env_breakdown(cache, wall_start, phases))
        return Run(ok, total, phases, "" if ok else log[-3000:])

    def seed_wasm_cache(self, project: Path) -> Path:
        """A cache holding the downloaded and compiled interpreter (and nothing else)."""
        seed = self.fresh("wasm-seed") / "cache"
        print("  seeding a wasm-build cache with the interpreter", file=sys.stderr)
        run = self.run("wasm-build", project, {"WASM_BUILD_CACHE_DIR": str(seed)})
        if not run.ok:
            sys.exit("error: the seeding build failed")
        return seed

    def wasm_cache(self, seed: Path, buckets: list[str]) -> Path:
        cache = self.fresh("wasm-cache") / "cache"
        cache.mkdir(mode=0o700)
        for bucket in buckets:
            if (seed / bucket).exists():
                shutil.copytree(seed / bucket, cache / bucket, copy_function=shutil.copy2)
        return cache

    def rows_for(self, project: Path, seed: Path | None) -> list[Row]:
        a = self.args
        rows = []

        def measure(tool, scenario, n, make_env, extra_args=()):
            row = Row(project.name, tool, scenario)
            for i in range(n):
                run = self.run(tool, project, make_env(i), extra_args)
                row.runs.append(run)
                print(f"  {project.name:10} {tool:15} {scenario:24} run {i + 1}/{n}: "
                      f"{run.total:6.2f} s  {fmt_phases(run.phases)}", file=sys.stderr)
            rows.append(row)

        tools = a.tools
        if "wasm-build" in tools:
            measure("wasm-build", "fully cold", a.fully_cold_runs,
                    lambda i: {"WASM_BUILD_CACHE_DIR": str(self.fresh("wasm-cache") / "c")})
            measure("wasm-build", "cold, runtime not compiled", a.fully_cold_runs,
                    lambda i: {"WASM_BUILD_CACHE_DIR": str(self.wasm_cache(
                        seed, ["runtimes-v1"]))})
            caches = []

            def cold_env(i):
                caches.append(self.wasm_cache(seed, ["runtimes-v1", "compiled-v1"]))
                return {"WASM_BUILD_CACHE_DIR": str(caches[-1])}

            measure("wasm-build", "cold", a.cold_runs, cold_env)
            warm = {"WASM_BUILD_CACHE_DIR": str(caches[-1])}
            measure("wasm-build", "warm", a.warm_runs, lambda i: warm)
            measure("wasm-build", "warm --offline", a.warm_runs, lambda i: warm, ["--offline"])
            # The local part of a cold setup: index pages and wheels cached, the
            # environment made again (unpack + bytecode + manifest + seal).
            measure("wasm-build", "env rebuilt (wheels cached)", a.cold_runs,
                    lambda i: {"WASM_BUILD_CACHE_DIR": str(self.wasm_cache(
                        Path(warm["WASM_BUILD_CACHE_DIR"]),
                        ["runtimes-v1", "compiled-v1", "index-v1", "wheels-v1"]))},
                    ["--offline"])
        def cold_then_warm(tool, cache_var, offline):
            """Cold runs each with a fresh cache, then warm runs on the last one."""
            caches = []

            def cold(i):
                caches.append(self.fresh(cache_var.lower()) / "c")
                return {cache_var: str(caches[-1])}

            measure(tool, "cold", a.cold_runs, cold)
            warm = {cache_var: str(caches[-1])}
            measure(tool, "warm", a.warm_runs, lambda i: warm)
            if offline:
                measure(tool, "warm --offline", a.warm_runs, lambda i: warm, ["--offline"])

        if "uv" in tools:
            cold_then_warm("uv build", "UV_CACHE_DIR", offline=True)
        if "build" in tools:
            cold_then_warm("python -m build", "PIP_CACHE_DIR", offline=False)
        return rows


def fmt_phases(phases: dict[str, float]) -> str:
    return " ".join(f"{k}={v * 1000:.0f}ms" for k, v in phases.items())


def med(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f} ms"


def med_s(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "-"


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f" ({min(values):.2f}–{max(values):.2f})"


def table(rows: list[Row]) -> str:
    out = ["| project | tool | cache | runs | wheel build, median (min–max s) "
           "| env setup | start-up | hooks |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = [x for x in r.runs if x.ok]
        totals = [x.total for x in ok]
        phase = lambda k: med([x.phases[k] for x in ok if k in x.phases])
        fails = len(r.runs) - len(ok)
        runs = f"{len(r.runs)}" + (f" ({fails} failed)" if fails else "")
        out.append(f"| {r.project} | {r.tool} | {r.scenario} | {runs} | "
                   f"{med_s(totals)}{spread(totals)} | {phase('env')} | {phase('startup')} | "
                   f"{phase('hooks')} |")
    return "\n".join(out)


def breakdown_table(rows: list[Row]) -> str:
    names = ["resolve+download", "unpack", "bytecode", "manifest", "seal", "rest"]
    out = ["| project | cache | env setup | " + " | ".join(names) + " |",
           "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        ok = [x for x in r.runs if x.ok and "env.bytecode" in x.phases]
        if r.tool != "wasm-build" or not ok:
            continue
        cells = [med([x.phases[f"env.{n}"] for x in ok]) for n in names]
        out.append(f"| {r.project} | {r.scenario} | {med([x.phases['env'] for x in ok])} | "
                   + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("projects", nargs="*", type=Path,
                   default=[REPO / "tests/fixtures/hatchling", REPO / "tests/fixtures/setuptools"])
    p.add_argument("--wasm-build", help="the wasm-build executable")
    p.add_argument("--python-build", help="a Python with `build` installed [python3 on PATH]")
    p.add_argument("--uv", help="the uv executable [uv on PATH]")
    p.add_argument("--tools", nargs="+", default=["wasm-build", "uv", "build"],
                   choices=["wasm-build", "uv", "build"])
    p.add_argument("--warm-runs", type=int, default=7)
    p.add_argument("--cold-runs", type=int, default=3)
    p.add_argument("--fully-cold-runs", type=int, default=1)
    p.add_argument("--work", help="scratch folder, emptied [TMPDIR/wasm-build-bench/env-setup]",
                   default=os.path.join(tempfile.gettempdir(), "wasm-build-bench", "env-setup"))
    p.add_argument("--json", help="also write every run here")
    args = p.parse_args()

    def find(explicit, names, what):
        for candidate in ([explicit] if explicit else []) + names:
            found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if found:
                return str(Path(found).absolute())
        sys.exit(f"error: cannot find {what}; pass it explicitly")

    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if "wasm-build" in args.tools:
        args.wasm_build = find(args.wasm_build, [str(target / "release/wasm-build"),
                                                  "wasm-build"], "wasm-build")
    args.python_build = find(args.python_build, ["python3"], "a Python with `build`")
    if "uv" in args.tools:
        args.uv = find(args.uv, ["uv"], "uv")

    print(f"  load average at the start: {os.getloadavg()}", file=sys.stderr)
    bench = Bench(args)
    rows = []
    seed = None
    if "wasm-build" in args.tools:
        seed = bench.seed_wasm_cache(args.projects[0].resolve())
    for project in args.projects:
        rows += bench.rows_for(project.resolve(), seed)
    print(table(rows))
    print(f"\n(load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs)")
    if "wasm-build" in args.tools:
        print()
        print("wasm-build: where the env-setup time goes when an environment is made "
              "(medians, from the cache's file times)\n")
        print(breakdown_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
