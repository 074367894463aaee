"""Calls PEP 517 / PEP 660 hooks of a build backend inside the wasm-build sandbox.

The host writes /wasm-build/io/input.json:

    {"backend": "module:object", "backend_path": ["/src/..."], "source_dir": "/src",
     "env_dir": "/wasm-build/env", "executables": ["bin/tool", ...], "seed": "<hex>" | null,
     "markers": {"python_version": "3.13", "sys_platform": "wasi", ...},
     "calls": [{"hook": "...", "kwargs": {...}, "stop_unless_within": [...] | null}, ...]}

and reads /wasm-build/io/output.json:

    {"results": [{"hook": "...", "status": "ok", "return_value": ...}
                 | {"hook": "...", "status": "<failure>", "message": "...", "traceback": "..."}],
     "stopped_for_requirements": false,
     "processes": [{"hook": "...", "how": "subprocess", "argv": ["git", "describe"]}, ...],
     "warnings": [{"hook": "...", "category": "SetuptoolsDeprecationWarning",
                   "message": "...", "location": "setuptools/dist.py:760"}, ...]}

Failure statuses: backend_unavailable, backend_invalid, hook_missing, unsupported, exception,
and prepared_mismatch (below). Calls run in order in this one interpreter, so the backend is
imported once; a call stops the sequence when it fails, or when it is a get_requires_* hook
whose answer is not within `stop_unless_within` (the host must then install more and start
a new instance). Requirements whose marker is false in the guest's environment (`markers`,
the values the host resolves with) with no extra (`NAME ; extra == "test"`,
`NAME ; python_version < "3.10"`), which frontends never install for a build, do not stop
it. Hooks are called positionally, as pyproject-hooks calls them: the names in
`kwargs` only say which argument is which (PROTOCOL below).

`processes`: every attempt to start a program or a thread (WASI has neither), in order, at
most 64, each argv cut to 16 items of 200 characters; `hook` is the hook running, or
"import". `how` is subprocess, system, popen, posix_spawn, exec, spawn, fork (a
multiprocessing process or pool) or thread. The backend sees what a machine without the
program shows: FileNotFoundError (ENOENT) from Popen, exec* and posix_spawn*; status 127
from a shell (os.system, os.popen, shell=True) and from spawn*(P_WAIT);
RuntimeError("can't start new thread") as before.

`warnings`: the Python warnings the backend showed (those `warnings.warn` let through its
filters; they still go to stderr as well), each distinct one once, at most 32, the message cut
to 2000 characters; `hook` as for `processes`.

`seed`: just before the first hook call, `random` and `tempfile`'s name sequence are seeded
afresh, from the seed when given (hex), else from os.urandom, so that runs started from one
prepared image do not share their random state.

With {"prepare": true, "open_fds": N} in place of "calls", the runner only sets up and imports
the backend, keeps both in sys.modules and writes {"prepared": true, "assumed_absent":
["/src/Modules/Setup", ...]}, or {"prepared": false, "reason": "..."} when the import cannot
be kept: it failed, left a file open (N is how many descriptors the instance started with;
another would name another file in the next instance), started a program, or looked at
the project (the prepare run has an empty source folder: what it saw would not be what a
hook run sees; judge_looks). The host keeps that instance's memory (see "The prepared
backend" in docs/runtime.md) and starts later runs of the same backend and environment from
it: they find the backend imported and skip the import. Such a run first checks that the
paths the import found missing (`assumed_absent`) are missing here too; if one exists, the
run calls no hook and answers the first call with status prepared_mismatch: the host must
run the calls again, importing the backend afresh.

Set-up, once per interpreter: the stat shim (native-looking modes), the process and thread
stand-ins, os.umask, and stand-in modules for what this CPython lacks (mmap, ssl, ctypes),
which import fine and raise OSError when used. See docs/runtime.md, "What the guest
interpreter lacks".

Standard library only. Nothing here is trusted by the host: the backend runs in this very
interpreter and can rewrite any of it. The host checks everything it reads back.
"""

import errno
import json
import os
import re
import stat
import sys
import traceback
import types
import zipfile

IO_DIR = "/wasm-build/io"

# Each hook's parameters in order, as pyproject-hooks passes them (positionally).
PROTOCOL = {
    "get_requires_for_build_wheel": ("config_settings",),
    "get_requires_for_build_sdist": ("config_settings",),
    "get_requires_for_build_editable": ("config_settings",),
    "prepare_metadata_for_build_wheel": ("metadata_directory", "config_settings"),
    "prepare_metadata_for_build_editable": ("metadata_directory", "config_settings"),
    "build_wheel": ("wheel_directory", "config_settings", "metadata_directory"),
    "build_editable": ("wheel_directory", "config_settings", "metadata_directory"),
    "build_sdist": ("sdist_directory", "config_settings"),
}

# Where an interpreter keeps its set-up (GUEST) and a prepared instance its backend.
GUEST = "_wasm_build_guest"
PREPARED = "_wasm_build_prepared"

MAX_PROCESSES, MAX_ARGS, MAX_ARG_CHARS = 64, 16, 200
MAX_WARNINGS, MAX_WARNING_CHARS, MAX_WARNING_NAME = 32, 2000, 300


class HookFailure(Exception):
    """A failure the host turns into a typed error."""

    def __init__(self, status, message, tb=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.traceback = tb


class _NeverRaised(Exception):
    """Stands in for a backend's UnsupportedOperation when it defines none."""


def main():
    """Runs what input.json asks; returns whether the interpreter may end at once (a hook run,
    whose memory nobody keeps) rather than finalize (a prepare run returns to the host)."""
    with open(os.path.join(IO_DIR, "input.json"), encoding="utf-8") as f:
        request = json.load(f)
    run(request)
    return not request.get("prepare")


def run(request):
    # A fixed start-up state: the runner's own folder is not an import location, the
    # source tree is the working directory, ~ is a scratch folder.
    sys.path[:] = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
    source_dir = request["source_dir"]
    os.chdir(source_dir)
    home = os.environ.get("HOME")
    if home:
        os.makedirs(home, exist_ok=True)
    sys.dont_write_bytecode = True
    guest = sys.modules.get(GUEST) or set_up()
    guest.git, guest.git_commands = git_emulation(guest, request.get("git")), []
    identity = (request["backend"], request["env_dir"], source_dir)
    prepared = sys.modules.get(PREPARED)
    if prepared is not None and prepared.identity == identity and not request.get("prepare"):
        backend = prepared.backend
        mismatch = verify_prepared(prepared, request["calls"][0]["hook"])
        if mismatch:
            write_output({"results": [mismatch], "stopped_for_requirements": False})
            return
    else:
        guest.hook = "import"
        if request.get("prepare"):
            prepare(guest, identity, request)
            return
        import site

        site.addsitedir(request["env_dir"])
        use_bytecode(guest, request.get("bytecode"), request.get("backend_path") or [])
        try:
            backend = load_backend(request["backend"], request.get("backend_path") or [])
        except HookFailure as failure:
            hook = request["calls"][0]["hook"]
            write_output({"results": [failure_result(hook, failure)], "stopped_for_requirements": False})
            return
    mark_executables(guest.modes, source_dir, request.get("executables") or [])
    reseed(guest, request.get("seed"))

    results = []
    stopped = False
    for call in request["calls"]:
        guest.hook = call["hook"]
        mark_running(call["hook"])
        result = call_hook(backend, call["hook"], call.get("kwargs") or {})
        results.append(result)
        if result["status"] != "ok":
            break
        allowed = call.get("stop_unless_within")
        if allowed is not None and any(
            r not in allowed and not not_needed(r, request.get("markers"))
            for r in result["return_value"]
        ):
            stopped = True
            break
    write_output({"results": results, "stopped_for_requirements": stopped})


def not_needed(requirement, markers):
    """Whether a build installs nothing for `requirement`: its marker is false in the
    guest's environment (`markers`, the values the host resolves with) with no extra, as
    pypa/build and uv evaluate get_requires_* answers. Only what is certain is decided (a
    plain requirement, a marker of known variables compared as PEP 508 says); anything else
    counts as needed, and the host resolves it as before."""
    if not isinstance(requirement, str):
        return False
    head, semicolon, marker = requirement.partition(";")
    if not semicolon or not _REQUIREMENT_HEAD.fullmatch(head):
        return False
    tokens = _marker_tokens(marker)
    if tokens is None:
        return False
    environment = dict(markers or {}, extra="")
    value, rest = _marker_or(tokens, environment)
    return value is False and not rest


# `name [extras] specifiers`, without a URL: the part before `;` of a requirement that
# pip, pypa/build and the host (pep508_rs) all parse. ASCII only, spaces and tabs only,
# numbers that fit a u64, each operator with the versions PEP 440 allows it (`.*` only
# after `==`/`!=`, a local version only with those, `~=` with two release numbers; no
# `===`, which pep508_rs refuses).
_N = r"[0-9]{1,18}"
_WS = r"[ \t]*"
_RELEASE_SEGMENTS = r"v?(?:" + _N + r"!)?" + _N + r"(?:\." + _N + r")*"
_SUFFIXES = (
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?:" + _N + r")?)?"
    r"(?:-" + _N + r"|[-_.]?(?:post|rev|r)[-_.]?(?:" + _N + r")?)?"
    r"(?:[-_.]?dev[-_.]?(?:" + _N + r")?)?"
)
_LOCAL = r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?"
_SPECIFIER = _WS + (
    r"(?:(?:==|!=)" + _WS + _RELEASE_SEGMENTS + r"(?:\.\*|" + _SUFFIXES + _LOCAL + r")"
    r"|~=" + _WS + r"v?(?:" + _N + r"!)?" + _N + r"(?:\." + _N + r")+" + _SUFFIXES
    + r"|(?:<=|>=|<|>)" + _WS + _RELEASE_SEGMENTS + _SUFFIXES + r")"
) + _WS
_SPECIFIERS = _SPECIFIER + r"(?:," + _SPECIFIER + r")*"
_NAME = r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?"
_EXTRAS = r"(?:\[" + _WS + r"(?:" + _NAME + r"(?:" + _WS + "," + _WS + _NAME + r")*)?" + _WS + r"\])?"
_REQUIREMENT_HEAD = re.compile(
    _WS + _NAME + _WS + _EXTRAS + _WS + r"(?:" + _SPECIFIERS + r"|\(" + _SPECIFIERS + r"\))?" + _WS,
    re.IGNORECASE | re.ASCII,
)
# A string holds no backslash (packaging decodes escapes, pep508_rs does not), nor a
# character packaging refuses in one.
_MARKER_TOKEN = re.compile(
    r"[ \t]*('[^'\\\0\r\n]*'|\"[^\"\\\0\r\n]*\"|===|==|!=|<=|>=|~=|<|>|\(|\)|[A-Za-z_][A-Za-z0-9_.]*)",
    re.ASCII,
)
# Variables compared as versions, and those compared as strings (PEP 508).
_VERSION_VARIABLES = {"python_version", "python_full_version", "implementation_version"}
_STRING_VARIABLES = {
    "os_name", "sys_platform", "platform_machine", "platform_python_implementation",
    "platform_system", "implementation_name", "extra",
}
_RELEASE = re.compile(_N + r"(?:\." + _N + r")*")


def _marker_tokens(marker):
    """The marker's tokens, or None when something in it is not PEP 508's (or is, but
    pep508_rs refuses it: `and`, `or` and `not` must be followed by a space)."""
    tokens, at = [], 0
    while marker[at:].strip(" \t"):
        match = _MARKER_TOKEN.match(marker, at)
        if not match:
            return None
        at = match.end()
        if match.group(1) in ("and", "or", "not") and marker[at : at + 1] not in (" ", "\t"):
            return None
        tokens.append(match.group(1))
    return tokens


def _marker_or(tokens, environment):
    """`and`-groups joined by `or`: (True, False or None for undecided, tokens left). One
    undecided comparison leaves the whole marker undecided, whatever the others say: a
    tool may reject the marker for it (an unknown variable, an order on strings)."""
    return _joined(tokens, environment, "or", _marker_and, any)


def _marker_and(tokens, environment):
    return _joined(tokens, environment, "and", _marker_atom, all)


def _joined(tokens, environment, keyword, operand, combine):
    """Operands joined by `keyword`, their values combined (`any`, `all`) when all are
    decided."""
    value, tokens = operand(tokens, environment)
    values = [value]
    while tokens[:1] == [keyword]:
        value, tokens = operand(tokens[1:], environment)
        values.append(value)
    return (None if None in values else combine(values)), tokens


def _marker_atom(tokens, environment):
    """A parenthesized marker or one comparison; a malformed one is undecided and leaves
    a token behind, so that the whole marker is."""
    if tokens[:1] == ["("]:
        value, rest = _marker_or(tokens[1:], environment)
        if rest[:1] != [")"]:
            return None, ["?"]
        return value, rest[1:]
    if tokens[1:3] == ["not", "in"]:
        left, op, right, rest = tokens[0], "not in", tokens[3:4], tokens[4:]
    else:
        left, op, right, rest = tokens[0:1], tokens[1:2], tokens[2:3], tokens[3:]
        left, op = (left[0] if left else None), (op[0] if op else None)
    if not right or op not in ("<", "<=", ">", ">=", "==", "!=", "in", "not in"):
        return None, ["?"]
    return _compare(left, op, right[0], environment), rest


def _compare(left, op, right, environment):
    """`left op right` with one side a variable, the other a string; None when PEP 508
    leaves the answer to the tool or this environment lacks the variable."""
    quoted = [side[:1] in ("'", '"') for side in (left, right)]
    if quoted != [True, False] and quoted != [False, True]:
        return None
    variable = right if quoted[0] else left
    if variable not in environment:
        return None
    values = [side[1:-1] if side[:1] in ("'", '"') else environment[side] for side in (left, right)]
    literal = values[0] if quoted[0] else values[1]
    if variable in _VERSION_VARIABLES:
        return _compare_versions(variable, environment[variable], literal, op, quoted[1])
    if variable not in _STRING_VARIABLES or op not in ("==", "!=", "in", "not in"):
        return None
    # Tools differ on a substring test of `extra` (normalised or not, a list or a string).
    if variable == "extra" and op in ("in", "not in"):
        return None
    # A literal that could be a version is compared as one by some tools: not decided.
    if literal.strip().lstrip("vV")[:1].isdigit() or not any(c.isalnum() for c in literal):
        return None
    if op in ("in", "not in"):
        return (values[0] in values[1]) == (op == "in")
    return (values[0] == values[1]) == (op == "==")


def _compare_versions(variable, value, literal, op, value_first):
    """PEP 440's answer for a final release `value` against `literal`, a release or the
    pre-release of one (`3.11.0a7`) whose release differs from `value`'s."""
    literal_match = _RELEASE_OR_PRE.fullmatch(literal)
    if op in ("in", "not in") or not (_RELEASE.fullmatch(value) and literal_match):
        return None
    release, pre = literal_match.groups()
    if variable == "python_version" and release.count(".") > 1:
        return None
    own, other = (tuple(int(part) for part in v.split(".")) for v in (value, release))
    width = max(len(own), len(other))
    own += (0,) * (width - len(own))
    other += (0,) * (width - len(other))
    if pre and own == other:
        return None
    return _ORDER[op](own, other) if value_first else _ORDER[op](other, own)


_RELEASE_OR_PRE = re.compile("(" + _N + r"(?:\." + _N + r")*)((?:a|b|rc)" + _N + ")?")
_ORDER = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def set_up():
    """What every run of this interpreter gets, before anything of the environment runs."""
    guest = types.ModuleType(GUEST)
    guest.hook, guest.how, guest.processes, guest.seed = "import", None, [], None
    guest.git, guest.git_commands = None, []
    guest.warnings, guest.warning_keys = [], set()
    guest.modes = install_stat_shim()
    install_processes(guest)
    install_warnings(guest)
    sys.meta_path.insert(0, GuestFinder(guest))
    sys.modules[GUEST] = guest
    return guest


def prepare(guest, identity, request):
    """Imports the backend and keeps it for the runs started from this instance's memory,
    unless the import did something a hook run would see differently."""
    import site

    source_dir = os.path.normpath(request["source_dir"])
    stop_watching = watch_project(source_dir)
    try:
        site.addsitedir(request["env_dir"])
        backend = load_backend(request["backend"], [])
    except HookFailure as failure:
        stop_watching()
        return write_output(not_prepared("importing the backend failed: " + failure.message))
    looks = stop_watching()
    assumed, why = judge_looks(looks, source_dir)
    if why:
        return write_output(not_prepared("importing the backend looked at the project: " + why))
    started = [p for p in guest.processes if p["how"] != "thread"]
    if started:
        return write_output(not_prepared("importing the backend started a program: " + " ".join(started[0]["argv"])))
    # Descriptors 0-2 and the mounts, numbered from 3 in order: anything else is a file the
    # backend's import left open.
    open_fds = request["open_fds"]
    for fd in range(open_fds, open_fds + 64):
        try:
            os.fstat(fd)
        except OSError:
            continue
        return write_output(not_prepared("importing the backend left file descriptor %d open" % fd))
    kept = types.ModuleType(PREPARED)
    kept.identity, kept.backend, kept.assumed_absent = identity, backend, assumed
    sys.modules[PREPARED] = kept
    write_output({"prepared": True, "assumed_absent": assumed})


# Files every project has one of: an import that looks for them reads the project.
PROJECT_FILES = {"pyproject.toml", "setup.py", "setup.cfg", "PKG-INFO"}


def judge_looks(looks, source_dir):
    """Whether a fresh import in a hook run would see what the prepare run's import saw in
    its empty source folder. Returns (paths assumed absent, why not or None).

    Acceptable: a stat of the source folder itself (a folder in every run), and a look for
    a path that was not there and that a project seldom has (the stdlib's sysconfig, with
    sys.executable empty, checks the working directory for Modules/Setup: setuptools'
    import does). Those paths are checked again in each hook run (verify_prepared)."""
    assumed = []
    for event, path in looks:
        if path == source_dir:
            if event in ("os.stat", "os.lstat", "os.access"):
                continue
            return None, "%s %s" % (event, path)
        if event in ("os.listdir", "os.scandir") or exists(path):
            return None, "%s %s" % (event, path)
        if os.path.relpath(path, source_dir) in PROJECT_FILES:
            return None, "%s %s" % (event, path)
        if path not in assumed:
            assumed.append(path)
    if os.listdir(source_dir):
        return None, "it wrote into the source folder"
    return assumed, None


def exists(path):
    """Whether `path` is there; anything but a clear "no" counts as there."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        pass
    return True


def verify_prepared(prepared, first_hook):
    """The paths the prepared import found missing must be missing here too, or this run
    would not compute what a fresh import computes: then the host must import afresh."""
    for path in prepared.assumed_absent:
        if exists(path):
            return failure_result(first_hook, HookFailure(
                "prepared_mismatch",
                "the prepared backend was imported where %s did not exist, and this project has it" % path,
            ))
    return None


def not_prepared(reason):
    return {"prepared": False, "reason": reason}


def mark_running(hook):
    """Tells the host which hook runs, should the sandbox have to stop it."""
    with open(os.path.join(IO_DIR, "running"), "w", encoding="utf-8") as f:
        f.write(hook)


def write_output(payload):
    guest = sys.modules.get(GUEST)
    if "results" in payload and guest is not None:
        payload["processes"] = guest.processes
        payload["warnings"] = getattr(guest, "warnings", [])
        payload["git"] = getattr(guest, "git_commands", [])
        payload["bytecode"] = {
            "used": getattr(guest, "bytecode_used", 0),
            "compiled": getattr(guest, "bytecode_compiled", []),
        }
    # Strings from the backend may hold lone surrogates, which JSON parsers refuse.
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace")
    path = os.path.join(IO_DIR, "output.json")
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def failure_result(hook, failure):
    return {
        "hook": hook,
        "status": failure.status,
        "message": failure.message,
        "traceback": failure.traceback,
    }


# At most this many paths of in-tree modules compiled from source are reported.
MAX_COMPILED_REPORTED = 2000


def use_bytecode(guest, folder, roots):
    """Imports the in-tree backend's modules (below `roots`, the backend-path folders) from
    the bytecode the host compiled earlier, in `folder`, where there is some: the file
    named by sha256(path + NUL + bytes) of the source about to be imported, so that only
    the bytecode of exactly this file at this path is ever taken. Anything else is compiled
    from source as before, and its path reported for the host to compile for later runs.
    Bytecode never changes what a module is: the host made it with `compile()` of the same
    bytes at the same path, as the import system would."""
    guest.bytecode_used, guest.bytecode_compiled = 0, []
    if not folder or not roots or sys.flags.optimize:
        return
    import hashlib
    import marshal
    from importlib.machinery import (
        BYTECODE_SUFFIXES,
        EXTENSION_SUFFIXES,
        SOURCE_SUFFIXES,
        ExtensionFileLoader,
        FileFinder,
        SourceFileLoader,
        SourcelessFileLoader,
    )
    from importlib.util import MAGIC_NUMBER

    from importlib.util import cache_from_source

    class BytecodeLoader(SourceFileLoader):
        def get_code(self, fullname):
            path = self.get_filename(fullname)
            # A `.pyc` the import system would consider (shipped, written by an earlier
            # run, under a pycache prefix) is its to judge, as without bytecode.
            if has_pyc(path):
                return super().get_code(fullname)
            try:
                source = self.get_data(path)
            except OSError:
                return super().get_code(fullname)
            key = hashlib.sha256(os.fsencode(path) + b"\0" + source).hexdigest()
            try:
                with open(os.path.join(folder, key), "rb") as f:
                    data = f.read()
            except OSError:
                data = b""
            if data[:4] == MAGIC_NUMBER:
                try:
                    code = marshal.loads(memoryview(data)[4:])
                except (EOFError, ValueError, TypeError):
                    pass
                else:
                    guest.bytecode_used += 1
                    return code
            if len(guest.bytecode_compiled) < MAX_COMPILED_REPORTED:
                guest.bytecode_compiled.append(path)
            return super().get_code(fullname)

    def has_pyc(path):
        try:
            return os.path.exists(cache_from_source(path))
        except (NotImplementedError, ValueError):
            return False

    # Named as the loader it stands in for: what a backend looking at `__loader__` sees
    # without bytecode.
    BytecodeLoader.__name__ = BytecodeLoader.__qualname__ = SourceFileLoader.__name__
    BytecodeLoader.__module__ = SourceFileLoader.__module__
    roots = [root.rstrip("/") for root in roots if root.rstrip("/")]

    def below_roots(path):
        return isinstance(path, str) and any(
            path == root or path.startswith(root + "/") for root in roots
        )

    loaders = [
        (ExtensionFileLoader, EXTENSION_SUFFIXES),
        (BytecodeLoader, SOURCE_SUFFIXES),
        (SourcelessFileLoader, BYTECODE_SUFFIXES),
    ]

    def in_tree_finder(path):
        # Folders only: a zip file below backend-path is zipimport's, as without bytecode.
        if below_roots(path) and os.path.isdir(path):
            return FileFinder(path, *loaders)
        raise ImportError("not a folder below backend-path")

    sys.path_hooks.insert(0, in_tree_finder)
    for path in [p for p in sys.path_importer_cache if below_roots(p)]:
        del sys.path_importer_cache[path]


def load_backend(spec, backend_path):
    """Imports `module:object` as PEP 517 says, checking an in-tree backend's origin."""
    module_name, _, object_path = spec.partition(":")
    sys.path[:0] = backend_path
    try:
        import importlib

        obj = importlib.import_module(module_name)
    except ImportError:
        raise HookFailure(
            "backend_unavailable",
            "cannot import build backend module `%s`" % module_name,
            traceback.format_exc(),
        )
    except BaseException as e:
        raise HookFailure(
            "backend_unavailable",
            "importing build backend module `%s` raised %s" % (module_name, type(e).__name__),
            traceback.format_exc(),
        )
    if backend_path:
        origin = getattr(obj, "__file__", None) or ""
        if not any(is_within(origin, p) for p in backend_path):
            raise HookFailure(
                "backend_invalid",
                "backend module `%s` was imported from %s, not from backend-path %s"
                % (module_name, origin or "a built-in location", backend_path),
            )
    for attr in filter(None, object_path.split(".")):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise HookFailure(
                "backend_unavailable",
                "build backend module `%s` has no object `%s`" % (module_name, object_path),
                traceback.format_exc(),
            )
    return obj


def is_within(path, folder):
    path = os.path.normcase(os.path.abspath(path))
    folder = os.path.normcase(os.path.abspath(folder))
    return os.path.commonpath([path, folder]) == folder


def call_hook(backend, hook, kwargs):
    if hook not in PROTOCOL:
        return failure_result(hook, HookFailure("hook_missing", "unknown hook `%s`" % hook))
    unsupported = getattr(backend, "UnsupportedOperation", _NeverRaised)
    if not (isinstance(unsupported, type) and issubclass(unsupported, BaseException)):
        unsupported = _NeverRaised
    args = [kwargs.get(name) for name in PROTOCOL[hook]]
    try:
        value = FALLBACKS.get(hook, call_required)(backend, hook, args)
    except HookFailure as failure:
        return failure_result(hook, failure)
    except unsupported:
        return failure_result(
            hook,
            HookFailure(
                "unsupported",
                "the backend does not support `%s` for this project" % hook,
                traceback.format_exc(),
            ),
        )
    except BaseException as e:
        # SystemExit and KeyboardInterrupt too: the host needs a result, not a silent exit.
        return failure_result(
            hook,
            HookFailure(
                "exception",
                "`%s` raised %s: %s" % (hook, type(e).__name__, e),
                traceback.format_exc(),
            ),
        )
    return {"hook": hook, "status": "ok", "return_value": value}


def call_required(backend, hook, args):
    function = getattr(backend, hook, None)
    if function is None:
        raise HookFailure("hook_missing", "the backend has no `%s` hook" % hook)
    return function(*args)


def get_requires(backend, hook, args):
    function = getattr(backend, hook, None)
    if function is None:
        return []
    value = function(*args)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise HookFailure(
            "exception", "`%s` returned %r, not a list of strings" % (hook, value)
        )
    return list(value)


def prepare_metadata(backend, hook, args):
    """PEP 517 fallback: without the hook, build the wheel and take its .dist-info."""
    function = getattr(backend, hook, None)
    if function is not None:
        return function(*args)
    build_hook = "build_wheel" if hook.endswith("_wheel") else "build_editable"
    build = getattr(backend, build_hook, None)
    if build is None:
        raise HookFailure("hook_missing", "the backend has neither `%s` nor `%s`" % (hook, build_hook))
    metadata_dir, config_settings = args
    wheel_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "wasm-build-metadata-wheel")
    os.makedirs(wheel_dir, exist_ok=True)
    wheel_name = build(wheel_dir, config_settings)
    with zipfile.ZipFile(os.path.join(wheel_dir, wheel_name)) as wheel:
        dist_infos = {
            name.split("/", 1)[0]
            for name in wheel.namelist()
            if name.split("/", 1)[0].endswith(".dist-info")
        }
        if len(dist_infos) != 1:
            raise HookFailure(
                "exception", "the wheel %s has %d .dist-info folders" % (wheel_name, len(dist_infos))
            )
        dist_info = dist_infos.pop()
        for name in wheel.namelist():
            if name.startswith(dist_info + "/") and not name.endswith("/"):
                wheel.extract(name, metadata_dir)
    return dist_info


FALLBACKS = {
    "get_requires_for_build_wheel": get_requires,
    "get_requires_for_build_sdist": get_requires,
    "get_requires_for_build_editable": get_requires,
    "prepare_metadata_for_build_wheel": prepare_metadata,
    "prepare_metadata_for_build_editable": prepare_metadata,
}


def reseed(guest, seed):
    """Fresh random state for this run: an interpreter started from a prepared image would
    otherwise repeat the prepare run's `random` sequence and temporary file names. Modules
    imported later seed themselves (GuestFinder seeds them from `seed` too)."""
    guest.seed = bytes.fromhex(seed) if seed is not None else None
    for name in ("random", "tempfile"):
        module = sys.modules.get(name)
        if module is not None:
            SEEDED[name](guest, module)


def seed_random(guest, module):
    module.seed(None if guest.seed is None else b"random:" + guest.seed)


def seed_tempfile(guest, module):
    if guest.seed is None:
        module._name_sequence = None  # made again, from os.urandom, on first use
        return
    names = module._RandomNameSequence()
    names._rng, names._rng_pid = module._Random(b"tempfile:" + guest.seed), os.getpid()
    module._name_sequence = names


SEEDED = {"random": seed_random, "tempfile": seed_tempfile}


# --- Does importing the backend look at the project? (prepare runs only) -----------------

# The functions that name files, by module, with how many leading path arguments they take.
WATCHED = {
    "os": {"open": 1, "listdir": 1, "scandir": 1, "stat": 1, "lstat": 1, "access": 1,
           "readlink": 1, "mkdir": 1, "remove": 1, "unlink": 1, "rmdir": 1, "rename": 2,
           "replace": 2, "link": 2, "symlink": 2, "truncate": 1, "utime": 1, "chmod": 1},
    "io": {"open": 1, "open_code": 1},
    "builtins": {"open": 1},
}


def watch_project(source_dir):
    """Records every look at `source_dir` or below (relative paths included) until the
    returned function is called; that function returns the looks as (function, path).

    The functions of WATCHED are wrapped meanwhile, under both names (os and posix: the
    import system calls posix's), and put back afterwards, so hook runs pay nothing. Not
    an audit hook: it could not be removed, and would cost each hook run ~1 us per audit
    event (~1.5 ms for a setuptools build). What bypasses these names (io.FileIO, C code)
    is not seen; files it creates are (the source folder must stay empty)."""
    import builtins
    import io

    looks = []
    on = True

    def look(name, path):
        if isinstance(path, int) or len(looks) > 256:
            return
        if len(looks) == 256:
            looks.append(("more than 256 looks, such as", source_dir))
            return
        try:
            path = "." if path is None else os.fsdecode(path)
            full = os.path.normpath(os.path.join(os.getcwd(), path))
        except Exception:
            return
        if full == source_dir or full.startswith(source_dir + "/"):
            looks.append((name, full))

    def watching(name, paths, real):
        def wrapper(*args, **kwargs):
            if on:
                given = args[:paths] or [kwargs[k] for k in ("path", "file", "src", "dst") if k in kwargs]
                if not given and name.endswith(("listdir", "scandir")):
                    given = [None]  # the working directory
                for path in given:
                    look(name, path)
            return real(*args, **kwargs)

        wrapper.__name__ = getattr(real, "__name__", name)
        wrapper.__wrapped__ = real
        return wrapper

    replaced = []
    modules = {"os": (os, sys.modules["posix"]), "io": (io,), "builtins": (builtins,)}
    for group, names in WATCHED.items():
        for name, paths in names.items():
            for module in modules[group]:
                real = getattr(module, name, None)
                if real is not None:
                    wrapper = watching("%s.%s" % (group, name), paths, real)
                    setattr(module, name, wrapper)
                    replaced.append((module, name, real, wrapper))

    def stop():
        nonlocal on
        on = False
        for module, name, real, wrapper in replaced:
            if getattr(module, name) is wrapper:
                setattr(module, name, real)
        return looks

    return stop


# --- Programs and threads ----------------------------------------------------------------

SHELL = "/bin/sh"
# Where shutil.which finds git when the emulation answers it (no file is there).
GIT_PROGRAM = "/usr/bin/git"


def install_warnings(guest):
    """Records each warning shown (what passed the warning filters) for the host, which
    reports it without -v; it is shown on stderr as before."""
    import warnings

    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            record_warning(guest, message, category, filename, lineno)
        except Exception:
            pass
        return shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def record_warning(guest, message, category, filename, lineno):
    entry = {
        "hook": guest.hook,
        "category": str(getattr(category, "__name__", category))[:MAX_WARNING_NAME],
        "message": str(message)[:MAX_WARNING_CHARS],
        "location": ("%s:%s" % (filename, lineno))[:MAX_WARNING_NAME],
    }
    key = (entry["category"], entry["message"], entry["location"])
    if key in guest.warning_keys or len(guest.warnings) >= MAX_WARNINGS:
        return
    guest.warning_keys.add(key)
    guest.warnings.append(entry)


def record(guest, how, argv):
    """Remembers an attempt to start something, for the host's report."""
    if len(guest.processes) >= MAX_PROCESSES:
        return
    items = []
    for arg in list(argv)[:MAX_ARGS]:
        try:
            arg = os.fsdecode(arg)
        except TypeError:
            arg = repr(arg)
        items.append(arg[:MAX_ARG_CHARS])
    guest.processes.append({"hook": guest.hook, "how": how, "argv": items})


def not_found(path):
    """What exec, posix_spawn and Popen raise on a host without the program."""
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def shell_says_not_found(command):
    """What /bin/sh (dash) prints for a command whose program does not exist; the shell
    itself is not emulated, so this is its answer to every command line."""
    if isinstance(command, bytes):
        command = os.fsdecode(command)
    words = str(command).split()
    return ("%s: 1: %s: not found\n" % (SHELL, words[0] if words else "")).encode()


def git_emulation(guest, mounted):
    """With a repository mounted ({"repo": "/src/.git", "lib": dulwich's folder}): a
    function answering a `git` command line from it (git_emulation.py), which records each
    answer for the host; None without one, so that git stays a missing program."""
    if not mounted:
        return None
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "git_emulation.py")
    spec = importlib.util.spec_from_file_location("_wasm_build_git", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(argv, cwd, env, stdin):
        argv = [os.fsdecode(os.fspath(arg)) if isinstance(arg, (bytes, os.PathLike)) else str(arg) for arg in argv]
        if cwd is not None:
            cwd = os.fsdecode(os.fspath(cwd))
        if isinstance(stdin, str):
            stdin = stdin.encode()
        status, out, err, refused = module.answer(argv, cwd, mounted["repo"], mounted["lib"],
                                                  os.environ if env is None else env, stdin or b"")
        if len(guest.git_commands) < MAX_PROCESSES:
            guest.git_commands.append({"hook": guest.hook, "argv": [a[:MAX_ARG_CHARS] for a in argv[:MAX_ARGS]],
                                       "status": status, "refused": refused})
        return status, out, err

    return run


def install_processes(guest):
    """WASI has no processes: make starting one look as it does on a host where the program
    does not exist, and record each attempt (subprocess is patched when imported)."""

    def system(command):
        record(guest, "system", [SHELL, "-c", command])
        sys.stderr.write(shell_says_not_found(command).decode())
        return 127 << 8  # a wait status: exit code 127, "command not found"

    real_popen = os.popen

    def popen(cmd, mode="r", buffering=-1):
        guest.how = "popen"  # os.popen runs subprocess.Popen(cmd, shell=True)
        try:
            return real_popen(cmd, mode, buffering)
        finally:
            guest.how = None

    def exec_(name):
        def function(path, *args):
            argv = args[0] if name.startswith("execv") else args
            if name in ("execle", "execlpe"):
                argv = argv[:-1]  # the environment
            record(guest, "exec", [path] + list(argv)[1:])
            raise not_found(path)

        function.__name__ = name
        return function

    def spawn(name):
        def function(mode, path, *args):
            argv = args[0] if name.startswith("spawnv") else args
            if name in ("spawnle", "spawnlpe"):
                argv = argv[:-1]
            record(guest, "spawn", [path] + list(argv)[1:])
            if mode == os.P_WAIT:
                return 127  # what the forked child's failed exec exits with
            raise not_found(path)

        function.__name__ = name
        return function

    def posix_spawn(name):
        def function(path, argv, env, **kwargs):
            record(guest, "posix_spawn", [path] + list(argv)[1:])
            raise not_found(path)

        function.__name__ = name
        return function

    os.system, os.popen = system, popen
    for name in ("execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe"):
        setattr(os, name, exec_(name))
    for name in ("posix_spawn", "posix_spawnp"):
        setattr(os, name, posix_spawn(name))
    for name, value in (("P_WAIT", 0), ("P_NOWAIT", 1), ("P_NOWAITO", 1)):
        if not hasattr(os, name):
            setattr(os, name, value)
    for name in ("spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"):
        setattr(os, name, spawn(name))
    # To read os.system's status; pure arithmetic, missing from WASI's os.
    for name, function in (
        ("WIFEXITED", lambda status: status & 0x7F == 0),
        ("WEXITSTATUS", lambda status: (status >> 8) & 0xFF),
        ("WIFSIGNALED", lambda status: 0 < status & 0x7F < 0x7F),
        ("WTERMSIG", lambda status: status & 0x7F),
        ("waitstatus_to_exitcode", lambda status: (status >> 8) & 0xFF if status & 0x7F == 0 else -(status & 0x7F)),
    ):
        if not hasattr(os, name):
            setattr(os, name, function)
    if not hasattr(os, "umask"):
        # No permission bits in WASI; a native build usually runs with 022, which is also
        # what the stat shim's default modes (0644, 0755) correspond to.
        umask = [0o022]

        def set_umask(mask):
            previous, umask[0] = umask[0], mask & 0o777
            return previous

        set_umask.__name__ = "umask"
        os.umask = set_umask
    # A thread cannot start (RuntimeError, as before): record the attempt.
    import _thread

    patch_threads(guest, _thread, ("start_new_thread", "start_joinable_thread", "start_new"))


def patch_threads(guest, module, names):
    for name in names:
        real = getattr(module, name, None)
        if real is not None:
            setattr(module, name, recording_thread(guest, real))


def recording_thread(guest, real):
    def start(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        except RuntimeError:
            record(guest, "thread", [])
            raise

    return start


def patch_subprocess(guest, module):
    """subprocess.Popen (and run, call, check_output, getoutput... built on it): the program
    is missing. A command line for the shell gets the shell's answer: status 127."""
    real = module.Popen
    code = real.__init__.__code__
    names = code.co_varnames[2 : code.co_argcount]  # after self and args

    class Popen(real):
        __doc__ = real.__doc__

        def __init__(self, args, *more, **options):
            options.update(zip(names, more))
            shell, executable = options.get("shell"), options.get("executable")
            if isinstance(args, (str, bytes)) or (isinstance(args, os.PathLike) and not shell):
                argv = [args]
            else:
                argv = list(args)
            if shell:
                argv = [SHELL, "-c"] + argv
            if executable is not None:
                argv[0] = executable
            program = argv[0] if argv else ""
            if not shell and guest.git is not None and os.path.basename(os.fsdecode(os.fspath(program))) == "git":
                self._git(args, argv, module, options)
                return
            record(guest, guest.how or "subprocess", argv)
            if not shell:
                raise not_found(argv[0])
            self._exited(args, module, options)

        def _git(self, args, argv, module, options):
            """`git`, answered by the emulation; with a stdin pipe, once its input is known."""
            call = (argv, options.get("cwd"), options.get("env"))
            self._pending = None
            if options.get("stdin") == module.PIPE and "--stdin" in call[0]:
                self._answered(args, module, options, 0, b"", b"")
                self._pending = (call, module, options)
            else:
                self._answered(args, module, options, *guest.git(*call, b""))

        def _answered(self, args, module, options, status, out, err):
            """The state of a Popen whose program has exited with `status`."""
            self.args, self.pid, self.returncode = args, None, status
            self.encoding, self.errors = options.get("encoding"), options.get("errors")
            self.text_mode = bool(self.encoding or self.errors or options.get("text") or options.get("universal_newlines"))
            self.universal_newlines = self.text_mode
            self._communication_started, self._input, self.pipesize = False, None, -1
            stdin, stdout, stderr = (options.get(k) for k in ("stdin", "stdout", "stderr"))
            self.stdin = self._stream(b"") if stdin == module.PIPE else None
            if stderr == module.STDOUT:
                self.stdout, self.stderr = self._deliver(stdout, out + err, sys.stdout, module), None
            else:
                self.stdout = self._deliver(stdout, out, sys.stdout, module)
                self.stderr = self._deliver(stderr, err, sys.stderr, module)

        def _exited(self, args, module, options):
            """The state of a Popen whose shell has exited with 127."""
            self.args, self.pid, self.returncode = args, None, 127
            self.encoding, self.errors = options.get("encoding"), options.get("errors")
            self.text_mode = bool(self.encoding or self.errors or options.get("text") or options.get("universal_newlines"))
            self.universal_newlines = self.text_mode
            self._communication_started, self._input, self.pipesize = False, None, -1
            stdin, stdout, stderr = (options.get(k) for k in ("stdin", "stdout", "stderr"))
            message = shell_says_not_found(args[0] if isinstance(args, (list, tuple)) and args else args)
            self.stdin = self._stream(b"") if stdin == module.PIPE else None
            if stderr == module.STDOUT:
                self.stdout, self.stderr = self._deliver(stdout, message, sys.stdout, module), None
            else:
                self.stdout = self._stream(b"") if stdout == module.PIPE else None
                self.stderr = self._deliver(stderr, message, sys.stderr, module)

        def _deliver(self, target, data, inherited, module):
            """Where the shell's message goes: a pipe (returned), or written out."""
            if target == module.PIPE:
                return self._stream(data)
            try:
                if target is None:
                    inherited.write(data.decode())
                elif target != module.DEVNULL:
                    os.write(target if isinstance(target, int) else target.fileno(), data)
            except (OSError, AttributeError, ValueError):
                pass
            return None

        def _stream(self, data):
            import io

            stream = io.BytesIO(data)
            return io.TextIOWrapper(stream, self.encoding, self.errors) if self.text_mode else stream

        def _settle(self, input=None):
            """Answers a git command that reads its input, now that the input is known."""
            pending = getattr(self, "_pending", None)
            if pending is not None:
                self._pending = None
                call, module, options = pending
                if isinstance(input, str):
                    input = input.encode(self.encoding or "utf-8", self.errors or "strict")
                self._answered(self.args, module, options, *guest.git(*call, input or b""))

        def poll(self):
            self._settle()
            return self.returncode

        def wait(self, timeout=None):
            self._settle()
            return self.returncode

        def communicate(self, input=None, timeout=None):
            self._settle(input)
            out = self.stdout.read() if self.stdout else None
            err = self.stderr.read() if self.stderr else None
            for stream in (self.stdin, self.stdout, self.stderr):
                if stream:
                    stream.close()
            self._communication_started = True
            return out, err

    Popen.__module__ = real.__module__
    module.Popen = Popen


def patch_multiprocessing_process(guest, module):
    real_start = module.BaseProcess.start

    def start(self):
        record(guest, "fork", [])
        raise unavailable_error("multiprocessing.Process.start")

    start.__wrapped__ = real_start
    module.BaseProcess.start = start


def patch_multiprocessing_context(guest, module):
    # Patched before multiprocessing/__init__.py binds the default context's methods.
    for name, starts in (("Pool", True), ("Manager", True), ("Pipe", False), ("Queue", False),
                         ("JoinableQueue", False), ("SimpleQueue", False)):
        setattr(module.BaseContext, name, unavailable_method("multiprocessing." + name, guest if starts else None))


def unavailable_method(name, guest=None):
    def method(self, *args, **kwargs):
        if guest is not None:
            record(guest, "fork", [])
        raise unavailable_error(name)

    method.__name__ = name.rpartition(".")[2]
    return method


def patch_socket(guest, module):
    # Name resolution is absent from WASI's socket module; say so with an OSError.
    for name in ("gethostname", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getaddrinfo",
                 "getnameinfo", "getservbyname", "getservbyport", "getprotobyname"):
        if not hasattr(module, name) or (name == "getaddrinfo" and not hasattr(module._socket, name)):
            setattr(module, name, unavailable("socket." + name))


def unavailable_error(name):
    return OSError(errno.ENOTSUP, "%s is not available in the wasm-build sandbox" % name)


def unavailable(name):
    def function(*args, **kwargs):
        raise unavailable_error(name)

    function.__name__ = function.__qualname__ = name.rpartition(".")[2]
    return function


# Modules patched when (or if already) imported: name -> patch(guest, module).
def patch_which(guest, module):
    """shutil.which("git") finds git when a repository is mounted (the emulation answers
    it), so that tools which look before they run see what a machine with git shows."""
    real = module.which

    def which(cmd, mode=os.F_OK | os.X_OK, path=None):
        if guest.git is not None and path is None and os.path.basename(os.fsdecode(os.fspath(cmd))) == "git":
            return GIT_PROGRAM
        return real(cmd, mode, path)

    which.__doc__, which.__wrapped__ = real.__doc__, real
    module.which = which


PATCHES = {
    "subprocess": patch_subprocess,
    "shutil": patch_which,
    "threading": lambda guest, module: patch_threads(guest, module, ("_start_new_thread", "_start_joinable_thread")),
    "multiprocessing.process": patch_multiprocessing_process,
    "multiprocessing.context": patch_multiprocessing_context,
    "socket": patch_socket,
    "random": lambda guest, module: guest.seed is not None and seed_random(guest, module),
    "tempfile": lambda guest, module: guest.seed is not None and seed_tempfile(guest, module),
}


class GuestFinder:
    """First on sys.meta_path: patches PATCHES as they are imported, and stands in for the
    modules of STANDINS whose real part no other finder has (a real module always wins)."""

    def __init__(self, guest):
        self.guest = guest
        for name, patch in PATCHES.items():
            if name in sys.modules:
                patch(guest, sys.modules[name])

    def find_spec(self, name, path=None, target=None):
        if name in STANDINS:
            real, build = STANDINS[name]
            if self._others(real, None, None) is None:
                import importlib.util

                return importlib.util.spec_from_loader(
                    name, StandIn(build), origin="wasm-build stand-in", is_package=name == "ctypes"
                )
        if name in PATCHES:
            spec = self._others(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = Patching(spec.loader, PATCHES[name], self.guest)
                return spec
        return None

    def _others(self, name, path, target):
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None:
                spec = find(name, path, target)
                if spec is not None:
                    return spec
        return None


class Patching:
    """The real loader, then the patch; the module keeps the real loader."""

    def __init__(self, loader, patch, guest):
        self.loader, self.patch, self.guest = loader, patch, guest

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.patch(self.guest, module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class StandIn:
    """Loads a stand-in module made by `build(module)`."""

    def __init__(self, build):
        self.build = build

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = "wasm-build's stand-in: this interpreter has no %s." % module.__name__
        self.build(module)


class Unavailable:
    """Base of the stand-ins' classes: subclassing works, making an instance raises."""

    _standin = "?"

    def __new__(cls, *args, **kwargs):
        raise unavailable_error(cls._standin)


def standin_class(module, name, bases=(Unavailable,), meta=type):
    return meta(name, bases, {"_standin": "%s.%s" % (module.__name__, name), "__module__": module.__name__})


def fill(module, functions=(), classes=(), constants=None):
    for name in functions:
        setattr(module, name, unavailable("%s.%s" % (module.__name__, name)))
    for name in classes:
        setattr(module, name, standin_class(module, name))
    vars(module).update(constants or {})


def build_mmap(module):
    # Linux's values: what `import mmap` gives a setup.py natively.
    fill(module, classes=("mmap",), constants=dict(
        error=OSError, ACCESS_DEFAULT=0, ACCESS_READ=1, ACCESS_WRITE=2, ACCESS_COPY=3,
        PAGESIZE=4096, ALLOCATIONGRANULARITY=4096, MAP_SHARED=1, MAP_PRIVATE=2,
        MAP_ANON=32, MAP_ANONYMOUS=32, PROT_READ=1, PROT_WRITE=2, PROT_EXEC=4,
        MADV_NORMAL=0, MADV_RANDOM=1, MADV_SEQUENTIAL=2, MADV_WILLNEED=3, MADV_DONTNEED=4))


def build_ssl(module):
    import enum

    class SSLError(OSError):
        pass

    errors = dict(SSLError=SSLError)
    for name in ("SSLZeroReturnError", "SSLWantReadError", "SSLWantWriteError", "SSLSyscallError", "SSLEOFError"):
        errors[name] = type(name, (SSLError,), {})
    errors["SSLCertVerificationError"] = errors["CertificateError"] = type("SSLCertVerificationError", (SSLError, ValueError), {})
    for error in errors.values():
        error.__module__ = "ssl"
    fill(
        module,
        functions=("create_default_context", "_create_default_https_context", "_create_unverified_context",
                   "_create_stdlib_context", "get_default_verify_paths", "get_server_certificate",
                   "DER_cert_to_PEM_cert", "PEM_cert_to_DER_cert", "cert_time_to_seconds",
                   "RAND_bytes", "RAND_status", "RAND_add", "wrap_socket", "match_hostname"),
        classes=("SSLContext", "SSLSocket", "SSLObject", "MemoryBIO", "SSLSession"),
        constants=dict(
            errors, socket_error=OSError, OPENSSL_VERSION="none (wasm-build sandbox)",
            OPENSSL_VERSION_INFO=(0, 0, 0, 0, 0), OPENSSL_VERSION_NUMBER=0,
            HAS_SNI=False, HAS_ALPN=False, HAS_ECDH=False, HAS_NPN=False,
            HAS_NEVER_CHECK_COMMON_NAME=False, HAS_SSLv2=False, HAS_SSLv3=False, HAS_TLSv1=False,
            HAS_TLSv1_1=False, HAS_TLSv1_2=False, HAS_TLSv1_3=False,
            PROTOCOL_SSLv23=2, PROTOCOL_TLS=2, PROTOCOL_TLS_CLIENT=16, PROTOCOL_TLS_SERVER=17,
            CERT_NONE=0, CERT_OPTIONAL=1, CERT_REQUIRED=2,
            OP_ALL=0x80000050, OP_NO_SSLv2=0, OP_NO_SSLv3=0x2000000, OP_NO_TLSv1=0x4000000,
            OP_NO_TLSv1_1=0x10000000, OP_NO_TLSv1_2=0x8000000, OP_NO_TLSv1_3=0x20000000,
            OP_NO_COMPRESSION=0x20000, OP_NO_TICKET=0x4000, OP_CIPHER_SERVER_PREFERENCE=0x400000,
            OP_SINGLE_DH_USE=0, OP_SINGLE_ECDH_USE=0, OP_NO_RENEGOTIATION=0x40000000,
            VERIFY_DEFAULT=0, VERIFY_CRL_CHECK_LEAF=4, VERIFY_CRL_CHECK_CHAIN=12,
            VERIFY_X509_STRICT=32, VERIFY_X509_TRUSTED_FIRST=32768, VERIFY_X509_PARTIAL_CHAIN=0x80000,
            VERIFY_ALLOW_PROXY_CERTS=64, CHANNEL_BINDING_TYPES=["tls-unique"],
            TLSVersion=enum.IntEnum("TLSVersion", dict(
                MINIMUM_SUPPORTED=-2, MAXIMUM_SUPPORTED=-1, SSLv3=768, TLSv1=769, TLSv1_1=770,
                TLSv1_2=771, TLSv1_3=772), module="ssl"),
            Purpose=enum.Enum("Purpose", dict(
                SERVER_AUTH="1.3.6.1.5.5.7.3.1", CLIENT_AUTH="1.3.6.1.5.5.7.3.2"), module="ssl"),
        ),
    )


def build_ctypes(module):
    class CDataType(type):
        """ctypes' types multiply into array types (`c_char * 16`) at module level."""

        def __mul__(cls, length):
            return CDataType("%s_Array_%d" % (cls.__name__, length), (module.Array,), {"_length_": length, "_type_": cls})

        __rmul__ = __mul__

    def ctype(name, base=Unavailable):
        made = standin_class(module, name, (base,), CDataType)
        setattr(module, name, made)
        return made

    for name in ("_SimpleCData", "_Pointer", "_CFuncPtr", "Array", "Structure", "Union"):
        ctype(name)
    for name in ("BigEndianStructure", "LittleEndianStructure"):
        ctype(name, module.Structure)
    for name in ("BigEndianUnion", "LittleEndianUnion"):
        ctype(name, module.Union)
    for name in ("c_bool", "c_char", "c_wchar", "c_byte", "c_ubyte", "c_short", "c_ushort", "c_int",
                 "c_uint", "c_long", "c_ulong", "c_longlong", "c_ulonglong", "c_size_t", "c_ssize_t",
                 "c_time_t", "c_float", "c_double", "c_longdouble", "c_char_p", "c_wchar_p", "c_void_p",
                 "c_int8", "c_int16", "c_int32", "c_int64", "c_uint8", "c_uint16", "c_uint32",
                 "c_uint64", "py_object"):
        ctype(name, module._SimpleCData)
    pointers = {}

    def POINTER(cls):
        if cls not in pointers:
            pointers[cls] = CDataType("LP_%s" % getattr(cls, "__name__", cls), (module._Pointer,), {})
        return pointers[cls]

    def CFUNCTYPE(restype, *argtypes, **kwargs):
        return CDataType("CFunctionType", (module._CFuncPtr,), {})

    class LibraryLoader:
        def __init__(self, dlltype):
            self._dlltype = dlltype

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            raise unavailable_error("ctypes (loading %s)" % name)

        def __getitem__(self, name):
            return getattr(self, name)

        LoadLibrary = unavailable("ctypes.LibraryLoader.LoadLibrary")

    fill(
        module,
        functions=("sizeof", "alignment", "byref", "addressof", "pointer", "cast", "resize",
                   "memmove", "memset", "string_at", "wstring_at", "create_string_buffer",
                   "create_unicode_buffer", "c_buffer", "get_errno", "set_errno", "SetPointerType"),
        classes=("CDLL", "PyDLL"),
        constants=dict(
            __version__="1.1.0", RTLD_GLOBAL=256, RTLD_LOCAL=0, DEFAULT_MODE=0,
            ArgumentError=type("ArgumentError", (Exception,), {"__module__": "ctypes"}),
            POINTER=POINTER, CFUNCTYPE=CFUNCTYPE, PYFUNCTYPE=CFUNCTYPE,
            ARRAY=lambda cls, length: cls * length, LibraryLoader=LibraryLoader,
        ),
    )
    module.cdll, module.pydll = LibraryLoader(module.CDLL), LibraryLoader(module.PyDLL)
    module.pythonapi = LibraryLoader(module.PyDLL)


def build_ctypes_util(module):
    # As on a host where the library is not installed.
    module.find_library = lambda name: None


# Stand-in modules: name -> (the module whose absence calls for it, how to make it).
STANDINS = {
    "mmap": ("mmap", build_mmap),
    "ssl": ("_ssl", build_ssl),
    "ctypes": ("_ctypes", build_ctypes),
    "ctypes.util": ("_ctypes", build_ctypes_util),
}


# --- Modes ---------------------------------------------------------------------------------


def file_id(result):
    return (result.st_dev, result.st_ino)


def mark_executables(modes, source_dir, executables):
    """The files the host saw as executable in the source tree get 0o755 (see the shim)."""
    for path in executables:
        try:
            # The shim's stat (if installed) changes only the mode, not the file's identity.
            result = os.stat(os.path.join(source_dir, path))
        except OSError:
            continue
        modes[file_id(result)] = (stat.S_IFMT(result.st_mode), 0o755)


def install_stat_shim():
    """WASI preview 1 has no permission bits: stat reports mode 0 for every file and chmod
    does nothing, yet backends copy modes into sdist and wheel members. Report what a native
    build would see: the mode last set with chmod in this run, else 0o755 for the files the
    host saw as executable (mark_executables), else 0o644 for files and 0o755 for folders.
    Returns the table of modes.

    Modes are kept per file (device and inode, which WASI does report), so they follow the
    file through renames and are found by fstat too (wheel writers stat the open file). An
    inode is reused by the next file or folder made once its file is gone: removing,
    renaming over and removing folders forget the mode, and a mode applies only to the kind
    of file it was set on."""
    real_stat, real_lstat, real_fstat = os.stat, os.lstat, os.fstat
    real_chmod, real_fchmod = getattr(os, "chmod", None), getattr(os, "fchmod", None)
    modes = {}

    def with_mode(result):
        mode = result.st_mode
        if stat.S_IMODE(mode):
            return result
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFREG:
            default = 0o644
        elif kind == stat.S_IFDIR:
            default = 0o755
        elif kind == stat.S_IFLNK:
            return _with_perm(result, kind, 0o777)
        else:
            return result
        kept_kind, perm = modes.get(file_id(result), (kind, default))
        return _with_perm(result, kind, perm if kept_kind == kind else default)

    def patched_stat(path, *args, **kwargs):
        return with_mode(real_stat(path, *args, **kwargs))

    def patched_lstat(path, *args, **kwargs):
        return with_mode(real_lstat(path, *args, **kwargs))

    def patched_fstat(fd):
        return with_mode(real_fstat(fd))

    def remember(result, mode):
        # A mode without any permission bit comes from a stat the shim did not see (such as
        # os.DirEntry.stat, which cannot be patched) copied by shutil.copymode: keep the
        # default instead of publishing a file nobody may read.
        if stat.S_IMODE(mode):
            modes[file_id(result)] = (stat.S_IFMT(result.st_mode), stat.S_IMODE(mode))

    def patched_chmod(path, mode, *args, dir_fd=None, follow_symlinks=True, **kwargs):
        if real_chmod is not None:
            real_chmod(path, mode, *args, dir_fd=dir_fd, follow_symlinks=follow_symlinks, **kwargs)
        remember((real_stat if follow_symlinks else real_lstat)(path, dir_fd=dir_fd), mode)

    def patched_fchmod(fd, mode):
        if real_fchmod is not None:
            real_fchmod(fd, mode)
        remember(real_fstat(fd), mode)

    def identity(path, dir_fd=None):
        try:
            return file_id(real_lstat(path, dir_fd=dir_fd))
        except (OSError, NotImplementedError, TypeError, ValueError):
            return None

    def forgetting(remove):
        def patched(path, *args, dir_fd=None, **kwargs):
            gone = identity(path, dir_fd)
            remove(path, *args, dir_fd=dir_fd, **kwargs)
            modes.pop(gone, None)

        return patched

    def forgetting_target(move):
        # What a rename replaces is gone; the moved file keeps its identity and its mode.
        def patched(src, dst, *args, src_dir_fd=None, dst_dir_fd=None, **kwargs):
            moved, replaced = identity(src, src_dir_fd), identity(dst, dst_dir_fd)
            move(src, dst, *args, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, **kwargs)
            if replaced != moved:
                modes.pop(replaced, None)

        return patched

    os.stat, os.lstat, os.fstat = patched_stat, patched_lstat, patched_fstat
    os.chmod, os.fchmod = patched_chmod, patched_fchmod
    os.unlink, os.remove, os.rmdir = forgetting(os.unlink), forgetting(os.remove), forgetting(os.rmdir)
    os.rename, os.replace = forgetting_target(os.rename), forgetting_target(os.replace)
    return modes


def _with_perm(result, kind, perm):
    _, (fields, extra) = result.__reduce__()
    return os.stat_result((kind | perm,) + tuple(fields[1:]), extra)


def end_now():
    """Ends a hook run the way finalizing would as far as anyone can see (exit handlers run,
    standard streams flushed, status 0) but without it: finalizing tears down every module
    and collects the whole heap, the backend's included, which was ~18 % of a small build's
    time in the guest. The output is written by then; the host reads nothing else."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


if __name__ == "__main__":
    if main():
        end_now()
