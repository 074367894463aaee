#!/usr/bin/env python3
"""Helpers shared by python-wasm/build-runtime and python-wasm/verify-reproducible.

Standard library only; runs on Python >= 3.11 (the host's python3, or the recipe's native 3.13.5).

Subcommands
  manifest DIR              stdlib manifest of the tree under DIR (the guest prefix root, holding
                            lib/python3.13/...): prints "manifest-sha256 files size"
  tar-manifest ARCHIVE      the same, computed over a .tar or .tar.gz without unpacking it; also
                            checks that the archive is in the canonical form `pack` writes
  pack DIR OUT --mtime N    deterministic tar of DIR (OUT "-" for stdout; not compressed)
  recorded TOML NAME        the values runtime.toml records for runtime NAME, as JSON
  update-toml TOML FRAGMENT replace (or append) the block between the BEGIN/END markers in TOML
                            with the contents of FRAGMENT

The manifest hash (the Rust host computes the same over the unpacked tree): for every regular
file under the root, with its path relative to the root ('/' separators, e.g.
lib/python3.13/os.py), sorted by the path's UTF-8 bytes, one line
    "{sha256 hex of contents} {size in bytes} {path}\\n"
and the manifest hash is the sha256 hex of the concatenation of all lines. Directories are
implied; any other file type (symlink, fifo, ...) is an error.
"""

import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

BEGIN_MARK = '# BEGIN cpython-3.13 (written by python-wasm/build-runtime; edit the recipe, not this block)'
END_MARK = '# END cpython-3.13'


def die(msg):
    print(f"runtime-files: error: {msg}", file=sys.stderr)
    sys.exit(1)


def walk_tree(root):
    """Return (dirs, files): sorted lists of relative paths ('/'-separated)."""
    dirs, files = [], []

    def visit(abs_dir, rel_dir):
        with os.scandir(abs_dir) as it:
            entries = sorted(it, key=lambda e: e.name.encode("utf-8"))
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            st = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                dirs.append(rel)
                visit(e.path, rel)
            elif stat.S_ISREG(st.st_mode):
                files.append(rel)
            else:
                die(f"{os.path.join(abs_dir, e.name)}: not a regular file or directory")

    visit(root, "")
    key = lambda p: p.encode("utf-8")
    return sorted(dirs, key=key), sorted(files, key=key)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def manifest_of(entries):
    """entries: iterable of (path, sha256hex, size). Returns (hash, files, total size)."""
    entries = sorted(entries, key=lambda e: e[0].encode("utf-8"))
    h = hashlib.sha256()
    total = 0
    for path, digest, size in entries:
        if "\n" in path:
            die(f"newline in path {path!r}")
        h.update(f"{digest} {size} {path}\n".encode("utf-8"))
        total += size
    return h.hexdigest(), len(entries), total


def cmd_manifest(args):
    if len(args) != 1:
        die("usage: manifest DIR")
    root = args[0]
    _, files = walk_tree(root)
    entries = []
    for rel in files:
        p = os.path.join(root, rel)
        entries.append((rel, sha256_file(p), os.lstat(p).st_size))
    digest, n, size = manifest_of(entries)
    print(digest, n, size)


def open_tar(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def cmd_tar_manifest(args):
    if len(args) != 1:
        die("usage: tar-manifest ARCHIVE")
    problems = []
    entries = []
    names = []
    seen = set()
    mtimes = set()
    with open_tar(args[0]) as tf:
        for m in tf:
            name = m.name
            names.append(name)
            parts = name.split("/")
            if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
                problems.append(f"unsafe member name {name!r}")
            if name in seen:
                problems.append(f"duplicate member {name!r}")
            seen.add(name)
            if m.uid != 0 or m.gid != 0 or m.uname not in ("", "root") or m.gname not in ("", "root"):
                problems.append(f"{name}: owner not 0/0")
            mtimes.add(m.mtime)
            if m.isdir():
                if m.mode != 0o755:
                    problems.append(f"{name}: dir mode {oct(m.mode)}")
            elif m.isreg():
                if m.mode != 0o644:
                    problems.append(f"{name}: file mode {oct(m.mode)}")
                data = tf.extractfile(m).read()
                entries.append((name, hashlib.sha256(data).hexdigest(), len(data)))
            else:
                problems.append(f"{name}: not a regular file or directory")
    if names != sorted(names, key=lambda n: n.encode("utf-8")):
        problems.append("members are not sorted by name")
    if len(mtimes) > 1:
        problems.append(f"members have {len(mtimes)} different mtimes")
    for p in problems[:20]:
        print(f"runtime-files: {p}", file=sys.stderr)
    if problems:
        die(f"{args[0]}: {len(problems)} problem(s)")
    digest, n, size = manifest_of(entries)
    print(digest, n, size)


def cmd_pack(args):
    if len(args) != 4 or args[2] != "--mtime":
        die("usage: pack DIR OUT --mtime N")
    root, out, mtime = args[0], args[1], int(args[3])
    dirs, files = walk_tree(root)
    members = [(d, True) for d in dirs] + [(f, False) for f in files]
    members.sort(key=lambda m: m[0].encode("utf-8"))
    sink = sys.stdout.buffer if out == "-" else open(out, "wb")
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for rel, is_dir in members:
            ti = tarfile.TarInfo(rel)
            ti.mtime = mtime
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            if is_dir:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            else:
                p = os.path.join(root, rel)
                ti.type = tarfile.REGTYPE
                ti.mode = 0o644
                ti.size = os.lstat(p).st_size
                with open(p, "rb") as f:
                    tf.addfile(ti, f)
    if out != "-":
        sink.close()


def cmd_recorded(args):
    import tomllib

    if len(args) != 2:
        die("usage: recorded TOML NAME")
    with open(args[0], "rb") as f:
        doc = tomllib.load(f)
    rt = doc.get("runtimes", {}).get(args[1])
    if rt is None:
        die(f"{args[0]}: no [runtimes.\"{args[1]}\"]")
    mod, std = rt.get("module", {}), rt.get("stdlib", {})
    out = {
        "default": doc.get("default"),
        "module-file": mod.get("file"),
        "module-sha256": mod.get("sha256"),
        "module-size": mod.get("size"),
        "module-gz-sha256": mod.get("gz-sha256"),
        "stdlib-file": std.get("file"),
        "stdlib-manifest-sha256": std.get("manifest-sha256"),
        "stdlib-files": std.get("files"),
        "stdlib-size": std.get("size"),
        "stdlib-gz-sha256": std.get("gz-sha256"),
        "variant": rt.get("provenance", {}).get("variant"),
    }
    json.dump(out, sys.stdout, indent=1)
    print()


def cmd_update_toml(args):
    import tomllib

    if len(args) != 2:
        die("usage: update-toml TOML FRAGMENT")
    with open(args[0], encoding="utf-8") as f:
        text = f.read()
    with open(args[1], encoding="utf-8") as f:
        block = f"{BEGIN_MARK}\n{f.read().strip()}\n{END_MARK}\n"
    if BEGIN_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        if END_MARK not in rest:
            die(f"{args[0]}: BEGIN marker without END marker")
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        new = text.rstrip("\n") + "\n\n" + block
    tomllib.loads(new)  # refuse to write something that does not parse
    tmp = args[0] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(tmp, args[0])


COMMANDS = {
    "manifest": cmd_manifest,
    "tar-manifest": cmd_tar_manifest,
    "pack": cmd_pack,
    "recorded": cmd_recorded,
    "update-toml": cmd_update_toml,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        die(f"usage: {os.path.basename(sys.argv[0])} {{{'|'.join(COMMANDS)}}} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
