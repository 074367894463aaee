#!/usr/bin/env python3
"""Build popular sdists natively and with wasm-build, and compare the wheels.

For each `name==version`:

1. the sdist is downloaded once from PyPI (JSON API, sha256 checked) into WORK/sdists/;
2. its wheel is built three times from that same file, with the same SOURCE_DATE_EPOCH:
   `PYTHON -m build --wheel SDIST` (native, the reference), `uv build --wheel SDIST`
   (native, a control: what two native frontends disagree on is not wasm-build's doing)
   and `wasm-build SDIST --wheel`;
3. the wasm-build wheel is compared with the reference member by member: names and bytes.
   The WHEEL file is compared without its `Generator:` line; RECORD is compared on its own
   and reported separately (it changes whenever WHEEL's bytes do). Zip-level attributes
   (member order, timestamps, permission bits, compression) are reported apart as well:
   they are not part of "the files", but they are part of a reproducible wheel.

When the wasm-build wheel differs, the native build is run once more to tell a backend
that is not reproducible from a difference wasm-build makes.

Python 3.11+ standard library only. Results: a Markdown table on stdout, and
WORK/results.json with every difference (unified diffs of text members included).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.parse
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The sdists compared by default: the six named in issue 2, then popular pure-Python
# projects covering the common backends. Pinned so that a rerun compares the same bytes.
DEFAULT_SPECS = [
    "six==1.17.0",  # setuptools, setup.py only
    "idna==3.20",  # flit_core
    "requests==2.34.2",  # setuptools
    "attrs==26.1.0",  # hatchling + hatch-vcs + hatch-fancy-pypi-readme
    "rich==15.0.0",  # poetry-core
    "fastapi==0.165.0",  # pdm-backend
    "packaging==26.4",  # flit_core
    "urllib3==2.8.0",  # hatchling + hatch-vcs
    "click==8.5.1",  # flit_core
    "certifi==2026.10.18",  # setuptools
    "charset-normalizer==3.5.3",  # in-tree backend over setuptools, optional mypyc
    "tomli==2.5.0",  # flit_core
    "typing_extensions==4.16.0",  # flit_core
    "python-dateutil==4.0.0",  # hatchling + hatch-vcs
    "python-dateutil==2.9.0.post0",  # setuptools + setuptools-scm
    "jinja2==3.1.6",  # flit_core
    "markupsafe==3.0.4",  # setuptools, optional C extension
    "pluggy==1.7.0",  # setuptools + setuptools-scm
    "iniconfig==2.3.1",  # setuptools + setuptools-scm
    "pytest==9.2.0",  # setuptools + setuptools-scm
    "pyyaml==6.0.3",  # in-tree backend over setuptools, optional Cython extension
]

DEFAULT_EPOCH = "1700000000"  # 2023-11-14: any fixed value after 1980 will do


@dataclass
class BuildResult:
    tool: str
    ok: bool
    seconds: float
    wheel: str | None = None
    log_tail: str = ""


@dataclass
class Comparison:
    identical_files: bool
    only_in_reference: list[str] = field(default_factory=list)
    only_in_candidate: list[str] = field(default_factory=list)
    differing: list[dict] = field(default_factory=list)  # {"member", "diff"}
    wheel_name_differs: str | None = None
    record: str = ""  # a sentence
    archive: list[str] = field(default_factory=list)  # zip-level differences
    generator: tuple[str, str] = ("", "")
    same_file: bool = False  # the two .whl files have the same sha256


@dataclass
class Outcome:
    spec: str
    backend: str
    requires: list[str]
    builds: dict[str, BuildResult]
    wasm_vs_native: Comparison | None = None
    uv_vs_native: Comparison | None = None
    native_vs_native: Comparison | None = None
    # When only the native wheel has compiled extensions: against a native build whose C
    # compiler fails (CC=/bin/false), i.e. the backend's own pure-Python fallback.
    wasm_vs_native_no_compiler: Comparison | None = None
    verdict: str = ""


# --- sdists -------------------------------------------------------------------------------


def fetch_sdist(spec: str, dest: Path, index_json: str) -> Path:
    """Downloads the sdist of `name==version` (once), checking PyPI's sha256."""
    name, _, version = spec.partition("==")
    if not version:
        sys.exit(f"error: `{spec}` is not of the form name==version")
    # /pypi/NAME/json lists every release; /pypi/NAME/VERSION/json is not always served
    # (some mirrors and proxies lack it), and some serve only the simple API.
    url = f"{index_json.rstrip('/')}/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            project = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
        url, chosen = simple_api_sdist(index_json, name, version)
    else:
        release = project["releases"].get(version)
        if release is None:
            raise RuntimeError(f"{name} has no release {version} on the index")
        files = [f for f in release if f["packagetype"] == "sdist"]
        files.sort(key=lambda f: not f["filename"].endswith(".tar.gz"))
        if not files:
            raise RuntimeError(f"{spec} has no sdist on the index")
        chosen = files[0]
    path = dest / chosen["filename"]
    want = chosen["digests"]["sha256"]
    if path.exists() and sha256_file(path) == want:
        return path
    dest.mkdir(parents=True, exist_ok=True)
    # Some proxies answer with URLs relative to the JSON page.
    file_url = urllib.parse.urljoin(url, chosen["url"])
    with urllib.request.urlopen(file_url, timeout=300) as response:
        data = response.read()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise RuntimeError(f"{chosen['filename']}: sha256 {got}, index says {want}")
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def simple_api_sdist(index_json: str, name: str, version: str):
    """The sdist of name==version from the index's PEP 691 JSON simple API, in the JSON
    API's shape: (page URL, {"filename", "url", "digests": {"sha256"}})."""
    base = index_json.rstrip("/").removesuffix("/pypi")
    url = f"{base}/simple/{name}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        page = json.load(response)
    wanted = {f"{stem}-{version}.tar.gz" for stem in {name, name.replace("-", "_"), name.lower(),
                                                       name.lower().replace("-", "_")}}
    for file in page["files"]:
        if file["filename"] in wanted and "sha256" in file.get("hashes", {}):
            return url, {"filename": file["filename"], "url": file["url"],
                         "digests": {"sha256": file["hashes"]["sha256"]}}
    raise RuntimeError(f"{name}=={version} has no sdist on {url}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_system(sdist: Path) -> tuple[str, list[str]]:
    """The sdist's [build-system], read without extracting anything."""
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "pyproject.toml" and member.isfile():
                data = tomllib.loads(tar.extractfile(member).read().decode())
                bs = data.get("build-system", {})
                backend = bs.get("build-backend") or "setuptools.build_meta:__legacy__"
                return backend, list(bs.get("requires", ["setuptools>=40.8.0"]))
    return "setuptools.build_meta:__legacy__ (no pyproject.toml)", ["setuptools>=40.8.0"]


# --- builds -------------------------------------------------------------------------------


def run_build(tool: str, cmd: list[str], outdir: Path, env: dict) -> BuildResult:
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    seconds = time.perf_counter() - start
    wheels = sorted(outdir.glob("*.whl"))
    tail = "\n".join(proc.stdout.splitlines()[-40:])
    (outdir.parent / f"{tool}.log").write_text(proc.stdout)
    if proc.returncode != 0 or len(wheels) != 1:
        return BuildResult(tool, False, seconds, None, f"exit {proc.returncode}\n{tail}")
    return BuildResult(tool, True, seconds, str(wheels[0]), "")


# --- comparison ---------------------------------------------------------------------------


def strip_generator(data: bytes) -> tuple[bytes, str]:
    lines = data.split(b"\n")
    generator = [l for l in lines if l.startswith(b"Generator:")]
    kept = [l for l in lines if not l.startswith(b"Generator:")]
    return b"\n".join(kept), (generator[0].decode(errors="replace") if generator else "")


def text_diff(a: bytes, b: bytes, name: str, limit: int = 60) -> str:
    try:
        ta, tb = a.decode(), b.decode()
    except UnicodeDecodeError:
        return f"binary: {len(a)} vs {len(b)} bytes"
    lines = list(
        difflib.unified_diff(
            ta.splitlines(), tb.splitlines(), f"native/{name}", f"wasm/{name}", lineterm="", n=1
        )
    )
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)


def compare(reference: str, candidate: str) -> Comparison:
    with zipfile.ZipFile(reference) as za, zipfile.ZipFile(candidate) as zb:
        ia = {i.filename: i for i in za.infolist()}
        ib = {i.filename: i for i in zb.infolist()}
        is_record = lambda n: n.endswith(".dist-info/RECORD") and n.count("/") == 1
        is_wheel = lambda n: n.endswith(".dist-info/WHEEL") and n.count("/") == 1
        result = Comparison(identical_files=True)
        result.only_in_reference = sorted(n for n in ia if n not in ib and not is_record(n))
        result.only_in_candidate = sorted(n for n in ib if n not in ia and not is_record(n))
        gens = ["", ""]
        for name in sorted(set(ia) & set(ib)):
            a, b = za.read(name), zb.read(name)
            if is_record(name):
                continue
            if is_wheel(name):
                a, gens[0] = strip_generator(a)
                b, gens[1] = strip_generator(b)
            if a != b:
                result.differing.append({"member": name, "diff": text_diff(a, b, name)})
        result.generator = (gens[0], gens[1])
        result.identical_files = not (
            result.only_in_reference or result.only_in_candidate or result.differing
        )
        if Path(reference).name != Path(candidate).name:
            result.wheel_name_differs = f"{Path(reference).name} vs {Path(candidate).name}"
        result.record = compare_record(za, zb, ia, ib, is_record)
        result.archive = compare_archive(za.infolist(), zb.infolist())
    result.same_file = sha256_file(Path(reference)) == sha256_file(Path(candidate))
    return result


def compare_record(za, zb, ia, ib, is_record) -> str:
    ra = [n for n in ia if is_record(n)]
    rb = [n for n in ib if is_record(n)]
    if len(ra) != 1 or len(rb) != 1:
        return f"RECORD files: {ra} vs {rb}"
    a = za.read(ra[0]).decode(errors="replace").splitlines()
    b = zb.read(rb[0]).decode(errors="replace").splitlines()
    if a == b:
        return "identical"
    not_wheel = lambda rows: [r for r in rows if ".dist-info/WHEEL," not in r]
    if not_wheel(a) == not_wheel(b):
        return "identical but for the WHEEL row (WHEEL's bytes differ)"
    if sorted(not_wheel(a)) == sorted(not_wheel(b)):
        return "same rows (but for WHEEL), in another order"
    only_a = sorted(set(not_wheel(a)) - set(not_wheel(b)))
    only_b = sorted(set(not_wheel(b)) - set(not_wheel(a)))
    return f"rows differ: {len(only_a)} only native, {len(only_b)} only wasm: " + "; ".join(
        only_a[:3] + only_b[:3]
    )


def compare_archive(la: list[zipfile.ZipInfo], lb: list[zipfile.ZipInfo]) -> list[str]:
    notes = []
    if [i.filename for i in la] != [i.filename for i in lb] and sorted(
        i.filename for i in la
    ) == sorted(i.filename for i in lb):
        notes.append("member order differs")
    ib = {i.filename: i for i in lb}
    for what, key in [
        ("timestamps", lambda i: i.date_time),
        ("permission bits", lambda i: i.external_attr >> 16),
        ("compression", lambda i: i.compress_type),
    ]:
        differing = [i.filename for i in la if i.filename in ib and key(i) != key(ib[i.filename])]
        if differing:
            i = next(x for x in la if x.filename == differing[0])
            j = ib[differing[0]]
            fmt = oct if what == "permission bits" else str
            notes.append(
                f"{what} of {len(differing)} members, e.g. {differing[0]}: "
                f"{fmt(key(i))} vs {fmt(key(j))}"
            )
    return notes


# --- driver -------------------------------------------------------------------------------


def find_tool(explicit: str | None, names: list[str], what: str) -> str:
    if explicit:
        return explicit
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    sys.exit(f"error: cannot find {what} (tried {', '.join(names)}); pass it explicitly")


def default_wasm_build() -> list[str]:
    repo = Path(__file__).resolve().parent.parent
    target = os.environ.get("CARGO_TARGET_DIR") or str(repo / "target")
    return [str(Path(target) / "release" / "wasm-build"), "wasm-build"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", help="name==version (default: a fixed list)")
    parser.add_argument("--python-build", help="a Python with `build` installed [python3 on PATH]")
    parser.add_argument("--uv", help="the uv executable [uv on PATH]")
    parser.add_argument("--no-uv", action="store_true", help="skip the uv control build")
    parser.add_argument("--wasm-build", help="the wasm-build executable")
    parser.add_argument("--wasm-build-arg", action="append", default=[], help="extra argument")
    parser.add_argument("--work", help="work folder [TMPDIR/wasm-build-bench/compare]",
                        default=os.path.join(tempfile.gettempdir(), "wasm-build-bench", "compare"))
    parser.add_argument("--epoch", default=DEFAULT_EPOCH, help="SOURCE_DATE_EPOCH for all builds")
    parser.add_argument("--index-json", default="https://pypi.org/pypi", help="PyPI JSON API")
    args = parser.parse_args()

    specs = args.specs or DEFAULT_SPECS
    python = find_tool(args.python_build, ["python3", "python"], "a Python with `build`")
    uv = None if args.no_uv else find_tool(args.uv, ["uv"], "uv")
    wasm_build = find_tool(args.wasm_build, default_wasm_build(), "wasm-build")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SOURCE_DATE_EPOCH=args.epoch, PYTHONHASHSEED="0")

    versions = {
        "build": subprocess.run([python, "-m", "build", "--version"], capture_output=True,
                                text=True).stdout.strip(),
        "python": subprocess.run([python, "--version"], capture_output=True,
                                 text=True).stdout.strip(),
        "uv": uv and subprocess.run([uv, "--version"], capture_output=True,
                                    text=True).stdout.strip(),
        "wasm-build": subprocess.run([wasm_build, "--version"], capture_output=True,
                                     text=True).stdout.strip(),
    }
    print(f"# tools: {versions}", file=sys.stderr)
    print(f"# load average: {os.getloadavg()}", file=sys.stderr)

    outcomes = []
    for spec in specs:
        print(f"# {spec}", file=sys.stderr)
        try:
            sdist = fetch_sdist(spec, work / "sdists", args.index_json)
        except Exception as e:  # noqa: BLE001 - reported, the run goes on
            outcomes.append(Outcome(spec, "?", [], {}, verdict=f"download failed: {e}"))
            print(f"#   -> {outcomes[-1].verdict}", file=sys.stderr)
            continue
        backend, requires = build_system(sdist)
        base = work / "builds" / spec.replace("==", "-")
        cmds = {
            "native": [python, "-m", "build", "--wheel", "--outdir", str(base / "native"),
                       str(sdist)],
            "wasm": [wasm_build, str(sdist), "--wheel", "-o", str(base / "wasm"),
                     *args.wasm_build_arg],
        }
        if uv:
            cmds["uv"] = [uv, "build", "--wheel", "--python", python, "--out-dir",
                          str(base / "uv"), str(sdist)]
        builds = {tool: run_build(tool, cmd, base / tool, env) for tool, cmd in cmds.items()}
        for b in builds.values():
            status = f"{b.seconds:6.1f} s" if b.ok else "FAILED"
            print(f"#   {b.tool:6} {status} {Path(b.wheel).name if b.wheel else ''}",
                  file=sys.stderr)
        outcome = Outcome(spec, backend, requires, builds)
        nat, wasm = builds["native"], builds["wasm"]
        if nat.ok and wasm.ok:
            outcome.wasm_vs_native = compare(nat.wheel, wasm.wheel)
        if uv and nat.ok and builds["uv"].ok:
            outcome.uv_vs_native = compare(nat.wheel, builds["uv"].wheel)
        c = outcome.wasm_vs_native
        if c and not (c.identical_files and not c.archive and not c.wheel_name_differs):
            again_cmd = [python, "-m", "build", "--wheel", "--outdir", str(base / "native2"),
                         str(sdist)]
            again = run_build("native2", again_cmd, base / "native2", env)
            if again.ok:
                outcome.native_vs_native = compare(nat.wheel, again.wheel)
        if c and any(n.endswith((".so", ".pyd")) for n in c.only_in_reference):
            nocc = run_build("native-no-cc", [python, "-m", "build", "--wheel", "--outdir",
                                              str(base / "native-no-cc"), str(sdist)],
                             base / "native-no-cc", dict(env, CC="/bin/false", CXX="/bin/false"))
            builds["native-no-cc"] = nocc
            if nocc.ok:
                outcome.wasm_vs_native_no_compiler = compare(nocc.wheel, wasm.wheel)
        outcome.verdict = verdict(outcome)
        print(f"#   -> {outcome.verdict}", file=sys.stderr)
        outcomes.append(outcome)

    (work / "results.json").write_text(
        json.dumps({"tools": versions, "epoch": args.epoch,
                    "outcomes": [asdict(o) for o in outcomes]}, indent=1)
    )
    print(table(outcomes))
    print(f"# load average at the end: {os.getloadavg()}", file=sys.stderr)
    print(f"\nDetails: {work / 'results.json'}", file=sys.stderr)
    return 0 if all(o.verdict.startswith("identical") for o in outcomes) else 1


def describe(differing: list[dict]) -> list[str]:
    """Member names, with the changed lines when they are few."""
    out = []
    for d in differing:
        changed = [l for l in d["diff"].splitlines()
                   if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        if changed and len(changed) <= 4:
            out.append(f"{d['member']} (`" + "` / `".join(changed) + "`)")
        else:
            out.append(d["member"])
    return out


def verdict(o: Outcome) -> str:
    failed = [t for t, b in o.builds.items() if not b.ok]
    if "native" in failed or "wasm" in failed:
        return "build failed: " + ", ".join(failed)
    c = o.wasm_vs_native
    if c.identical_files and not c.archive and not c.wheel_name_differs:
        return "identical" + (" (the same .whl bytes)" if c.same_file else "")
    parts = []
    if c.wheel_name_differs:
        parts.append(f"file name: {c.wheel_name_differs}")
    if c.only_in_reference:
        parts.append(f"only native: {', '.join(c.only_in_reference)}")
    if c.only_in_candidate:
        parts.append(f"only wasm: {', '.join(c.only_in_candidate)}")
    if c.differing:
        parts.append("bytes differ: " + ", ".join(describe(c.differing)))
    if c.identical_files:
        parts.insert(0, "identical files")
    parts += c.archive
    if c.generator[0] != c.generator[1]:
        parts.append(f"backend versions differ: {c.generator[0]!r} vs {c.generator[1]!r}")
    n = o.native_vs_native
    if n is not None and not (n.identical_files and not n.archive):
        parts.append("(native build not reproducible itself)")
    f = o.wasm_vs_native_no_compiler
    if f is not None:
        if f.identical_files and not f.archive and not f.wheel_name_differs:
            parts.append("**identical to the native build without a C compiler**")
        else:
            what = describe(f.differing) + f.only_in_reference \
                + f.only_in_candidate + f.archive
            if f.wheel_name_differs:
                what.insert(0, f"file name: {f.wheel_name_differs}")
            parts.append("**against the native build without a C compiler: "
                         + "; ".join(what) + "**")
    return "; ".join(parts)


def table(outcomes: list[Outcome]) -> str:
    rows = ["| sdist | backend | native / uv / wasm-build (s) | wasm-build vs `python -m build` "
            "| RECORD | uv vs `python -m build` |",
            "|---|---|---|---|---|---|"]
    for o in outcomes:
        times = " / ".join(
            (f"{o.builds[t].seconds:.1f}" if o.builds[t].ok else "fail") if t in o.builds else "-"
            for t in ("native", "uv", "wasm")
        )
        gen = o.wasm_vs_native.generator[0].removeprefix("Generator: ") if o.wasm_vs_native else ""
        backend = o.backend + (f" ({gen})" if gen else "")
        record = o.wasm_vs_native.record if o.wasm_vs_native else ""
        uvc = o.uv_vs_native
        uv = ("identical" + (" (same bytes)" if uvc.same_file else "")
              if uvc.identical_files and not uvc.archive else
              "; ".join([d["member"] for d in uvc.differing] + uvc.archive)) if uvc else "-"
        rows.append(f"| {o.spec} | {backend} | {times} | {o.verdict} | {record} | {uv} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
