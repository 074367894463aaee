"""Calls PEP 517 / PEP 660 hooks of a build backend inside the wasm-build sandbox.

The host writes /wasm-build/io/input.json:

    {"backend": "module:object", "backend_path": ["/src/..."], "source_dir": "/src",
     "env_dir": "/wasm-build/env", "executables": ["bin/tool", ...],
     "calls": [{"hook": "...", "kwargs": {...}, "stop_unless_within": [...] | null}, ...]}

and reads /wasm-build/io/output.json:

    {"results": [{"hook": "...", "status": "ok", "return_value": ...}
                 | {"hook": "...", "status": "<failure>", "message": "...", "traceback": "..."}],
     "stopped_for_requirements": false}

Failure statuses: backend_unavailable, backend_invalid, hook_missing, unsupported, exception.
Calls run in order in this one interpreter, so the backend is imported once; a call stops
the sequence when it fails, or when it is a get_requires_* hook whose answer is not within
`stop_unless_within` (the host must then install more and start a new instance).

With {"prepare": true, "open_fds": N} in place of "calls", the runner only sets up and imports
the backend, keeps both in sys.modules[PREPARED] and writes {"prepared": true} (or the
failure). The host keeps that instance's memory (see "The prepared backend" in
docs/runtime.md) and starts later runs of the same backend and environment from it: they
find the backend imported and skip the import. N is how many file descriptors the instance
was started with: a backend that leaves a file open cannot be kept, since the descriptor
would name another file in the next instance.

Standard library only. Nothing here is trusted by the host: the backend runs in this very
interpreter and can rewrite any of it. The host checks everything it reads back.
"""

import json
import os
import stat
import sys
import traceback
import zipfile

IO_DIR = "/wasm-build/io"

HOOKS = {
    "get_requires_for_build_wheel",
    "get_requires_for_build_sdist",
    "get_requires_for_build_editable",
    "prepare_metadata_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "build_wheel",
    "build_sdist",
    "build_editable",
}


class HookFailure(Exception):
    """A failure the host turns into a typed error."""

    def __init__(self, status, message, tb=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.traceback = tb


class _NeverRaised(Exception):
    """Stands in for a backend's UnsupportedOperation when it defines none."""


# Where a prepared instance keeps its backend, for the runs started from it.
PREPARED = "_wasm_build_prepared"


def main():
    with open(os.path.join(IO_DIR, "input.json"), encoding="utf-8") as f:
        request = json.load(f)
    # A fixed start-up state: the runner's own folder is not an import location, the
    # source tree is the working directory, ~ is a scratch folder.
    sys.path[:] = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
    source_dir = request["source_dir"]
    os.chdir(source_dir)
    home = os.environ.get("HOME")
    if home:
        os.makedirs(home, exist_ok=True)
    sys.dont_write_bytecode = True
    identity = (request["backend"], request["env_dir"], source_dir)
    prepared = sys.modules.get(PREPARED)
    if prepared is not None and prepared.identity == identity and not request.get("prepare"):
        backend, modes = prepared.backend, prepared.modes
    else:
        modes = install_stat_shim()
        import site

        site.addsitedir(request["env_dir"])
        try:
            backend = load_backend(request["backend"], request.get("backend_path") or [])
        except HookFailure as failure:
            hook = "import" if request.get("prepare") else request["calls"][0]["hook"]
            write_output({"results": [failure_result(hook, failure)], "stopped_for_requirements": False})
            return
        if request.get("prepare"):
            prepare(identity, backend, modes, request["open_fds"])
            return
    mark_executables(modes, source_dir, request.get("executables") or [])

    results = []
    stopped = False
    for call in request["calls"]:
        mark_running(call["hook"])
        result = call_hook(backend, call["hook"], call.get("kwargs") or {})
        results.append(result)
        if result["status"] != "ok":
            break
        allowed = call.get("stop_unless_within")
        if allowed is not None and not set(result["return_value"]) <= set(allowed):
            stopped = True
            break
    write_output({"results": results, "stopped_for_requirements": stopped})


def prepare(identity, backend, modes, open_fds):
    """Keeps the imported backend for the runs started from this instance's memory."""
    import types

    # Descriptors 0-2 and the mounts, numbered from 3 in order: anything else is a file the
    # backend's import left open.
    for fd in range(open_fds, open_fds + 64):
        try:
            os.fstat(fd)
        except OSError:
            continue
        failure = HookFailure("unsupported", "importing the backend left file descriptor %d open" % fd)
        write_output({"results": [failure_result("import", failure)], "stopped_for_requirements": False})
        return
    kept = types.ModuleType(PREPARED)
    kept.identity, kept.backend, kept.modes = identity, backend, modes
    sys.modules[PREPARED] = kept
    write_output({"prepared": True})


def mark_running(hook):
    """Tells the host which hook runs, should the sandbox have to stop it."""
    with open(os.path.join(IO_DIR, "running"), "w", encoding="utf-8") as f:
        f.write(hook)


def write_output(payload):
    path = os.path.join(IO_DIR, "output.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(payload, f)
    os.replace(path + ".tmp", path)


def failure_result(hook, failure):
    return {
        "hook": hook,
        "status": failure.status,
        "message": failure.message,
        "traceback": failure.traceback,
    }


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
    if hook not in HOOKS:
        return failure_result(hook, HookFailure("hook_missing", "unknown hook `%s`" % hook))
    unsupported = getattr(backend, "UnsupportedOperation", _NeverRaised)
    if not (isinstance(unsupported, type) and issubclass(unsupported, BaseException)):
        unsupported = _NeverRaised
    try:
        value = FALLBACKS.get(hook, call_required)(backend, hook, kwargs)
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


def call_required(backend, hook, kwargs):
    function = getattr(backend, hook, None)
    if function is None:
        raise HookFailure("hook_missing", "the backend has no `%s` hook" % hook)
    return function(**kwargs)


def get_requires(backend, hook, kwargs):
    function = getattr(backend, hook, None)
    if function is None:
        return []
    value = function(**kwargs)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise HookFailure(
            "exception", "`%s` returned %r, not a list of strings" % (hook, value)
        )
    return list(value)


def prepare_metadata(backend, hook, kwargs):
    """PEP 517 fallback: without the hook, build the wheel and take its .dist-info."""
    function = getattr(backend, hook, None)
    if function is not None:
        return function(**kwargs)
    build_hook = "build_wheel" if hook.endswith("_wheel") else "build_editable"
    build = getattr(backend, build_hook, None)
    if build is None:
        raise HookFailure("hook_missing", "the backend has neither `%s` nor `%s`" % (hook, build_hook))
    metadata_dir = kwargs["metadata_directory"]
    wheel_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "wasm-build-metadata-wheel")
    os.makedirs(wheel_dir, exist_ok=True)
    wheel_name = build(wheel_dir, config_settings=kwargs.get("config_settings"))
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


if __name__ == "__main__":
    main()
