"""Writes seed corpora for the fuzz targets into corpus/<target>/ (stdlib only).

Seeds are artifacts as Python's own tarfile and zipfile write them: a realistic sdist
(PAX tar with PKG-INFO, an executable, an in-tree symlink, a hard link), one with escaping
members, a correct wheel (deflated and stored) with a RECORD, and for `zip_strict` the
other shapes zipfile writes (data descriptors, zip64 local headers, comments, folders,
UTF-8 names, an empty archive).
"""

import base64
import hashlib
import io
import pathlib
import tarfile
import zipfile

HERE = pathlib.Path(__file__).parent


def tar_bytes(top, extra=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name, data=b"", kind=tarfile.REGTYPE, link="", mode=0o644):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            info.linkname = link
            info.mode = mode
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add(top, kind=tarfile.DIRTYPE, mode=0o755)
        add(f"{top}/PKG-INFO", b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\ndesc\n")
        add(f"{top}/pyproject.toml", b"[build-system]\n")
        add(f"{top}/src/pkg/__init__.py", b"x = 1\n")
        add(f"{top}/bin/run", b"#!/bin/sh\n", mode=0o755)
        add(f"{top}/docs/link", kind=tarfile.SYMTYPE, link="../pyproject.toml")
        add(f"{top}/src/pkg/hard.py", kind=tarfile.LNKTYPE, link=f"{top}/src/pkg/__init__.py")
        for args in extra:
            add(*args)
    return buf.getvalue()


def record(files):
    lines = []
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    lines.append("demo-1.0.dist-info/RECORD,,")
    return ("\n".join(lines) + "\n").encode()


def main():
    escaping = [
        ("pkg-1.0/l", b"", tarfile.SYMTYPE, "../../x"),
        ("pkg-1.0/a/../../b", b"x"),
    ]
    for target in ("extract_sdist", "verify_sdist"):
        folder = HERE / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "good.tar").write_bytes(tar_bytes("pkg-1.0"))
        (folder / "escape.tar").write_bytes(tar_bytes("pkg-1.0", escaping))

    files = [
        ("demo/__init__.py", b"print(1)\n"),
        ("demo-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"),
        ("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        ("demo-1.0.data/scripts/x", b"#!python\n"),
    ]
    folder = HERE / "corpus" / "verify_wheel"
    folder.mkdir(parents=True, exist_ok=True)
    for name, compression in (("deflated.zip", zipfile.ZIP_DEFLATED), ("stored.zip", zipfile.ZIP_STORED)):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression) as wheel:
            for path, data in files:
                wheel.writestr(path, data)
            wheel.writestr("demo-1.0.dist-info/RECORD", record(files))
        (folder / name).write_bytes(buf.getvalue())

    folder = HERE / "corpus" / "zip_strict"
    folder.mkdir(parents=True, exist_ok=True)
    for seed in (HERE / "corpus" / "verify_wheel").iterdir():
        (folder / seed.name).write_bytes(seed.read_bytes())
    for name, stream, zip64, comment in (
        ("streamed.zip", True, False, b""),
        ("zip64.zip", False, True, b""),
        ("streamed-zip64.zip", True, True, b""),
        ("commented.zip", False, False, b"a comment"),
    ):
        buf = io.BytesIO()
        target = Unseekable(buf) if stream else buf
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("pkg/", b"")
            z.writestr("pkg/caf\u00e9.py", "x = '\u00e9'\n")
            with z.open("pkg/data.txt", "w", force_zip64=zip64) as f:
                f.write(b"data " * 100)
            z.comment = comment
        (folder / name).write_bytes(buf.getvalue())
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    (folder / "empty.zip").write_bytes(buf.getvalue())


class Unseekable(io.RawIOBase):
    """A stream zipfile cannot seek in: it writes data descriptors."""

    def __init__(self, inner):
        self.inner = inner

    def writable(self):
        return True

    def write(self, b):
        return self.inner.write(b)


if __name__ == "__main__":
    main()
