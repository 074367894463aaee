# Compiles Python sources of an in-tree backend (`backend-path`) to bytecode for the host's
# cache: run as `python -S -c <this> LIST OUT ROOM EACH`, with the source tree mounted
# read-only where the hooks see it and nothing of the project imported.
#
# LIST is a JSON list of [guest path, key] pairs; key is sha256(guest path + NUL + bytes) of
# the file as the host read it before any hook ran. A file whose bytes no longer give its
# key (a hook changed it) is skipped, and so is one whose compile fails or warns (a
# SyntaxWarning belongs to each import, which bytecode would silence): its import compiles
# it from source, as without bytecode, and the latter get OUT/<key> holding one NUL byte,
# so that no later build tries again. Each other file is compiled as the import system
# compiles a source (`compile(bytes, path, "exec", dont_inherit=True)`, no -O) and written
# to OUT/<key> (through a temporary name, so that every OUT/<key> is whole): the
# interpreter's magic number, then the marshalled code object. A file whose bytecode is
# larger than EACH bytes, or than what is left of ROOM bytes for all together, gets the
# one-byte entry too: the next run would find no more room for it.
#
# Integer literals are held to the smallest limit a backend can set
# (`sys.set_int_max_str_digits(640)`): a file whose compile depends on the limit is left to
# each import, which compiles it under the limit the backend set.
import sys

# `-c` puts the working directory first on sys.path: nothing may come from there.
sys.path[:] = [p for p in sys.path if p not in ("", ".")]

import hashlib  # noqa: E402
import json  # noqa: E402
import marshal  # noqa: E402
import os  # noqa: E402
import warnings  # noqa: E402
from importlib.util import MAGIC_NUMBER  # noqa: E402

sys.set_int_max_str_digits(640)
listing, out, room, each = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(listing, encoding="utf-8") as f:
    wanted = json.load(f)
for path, key in wanted:
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError:
        continue
    if hashlib.sha256(path.encode("utf-8") + b"\0" + source).hexdigest() != key:
        continue
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            code = compile(source, path, "exec", dont_inherit=True, optimize=0)
        except Exception:  # SyntaxError, and the parser's MemoryError or RecursionError
            code = None
    data = b"\0" if code is None or warned else MAGIC_NUMBER + marshal.dumps(code)
    if len(data) > min(each, room):
        data = b"\0"
    room -= len(data)
    with open(os.path.join(out, key + ".tmp"), "wb") as f:
        f.write(data)
    os.rename(os.path.join(out, key + ".tmp"), os.path.join(out, key))
