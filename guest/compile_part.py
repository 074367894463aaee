# Compiles one part of a build environment's modules to bytecode: run as
# `python -S -c <this> PART PARTS ROOT`, once for each PART in 0..PARTS, all at once.
#
# Every run walks ROOT the same way and splits its `.py` files into PARTS parts of about the
# same size in source bytes (largest first, each to the part with the fewest bytes so far),
# so the parts are disjoint and together cover what `python -m compileall ROOT` would
# compile. Files are compiled as compileall does (quiet, unchecked-hash `.pyc`); one that
# does not compile only lacks its bytecode. Nothing here imports the environment's code.
# With PARTS = 1 it is compileall over ROOT.
import compileall
import os
import py_compile
import sys
from importlib.util import cache_from_source

part, parts, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

# Sources that share a `.pyc` (`py.py` and `.py` both compile to `py.<tag>.pyc`) stay in one
# part, compiled in compileall's order, so that the last one wins as with compileall and
# no two runs write one file.
groups = {}
for folder, subfolders, files in os.walk(root):
    # As compileall's own walk: never into `__pycache__`, which the other runs are filling.
    subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
    for name in sorted(files):
        if name.endswith(".py"):
            path = os.path.join(folder, name)
            try:
                size = os.lstat(path).st_size
            except OSError:
                continue
            group = groups.setdefault(cache_from_source(path), [0, []])
            group[0] += size
            group[1].append(path)

# Largest first, ties by `.pyc` path: every run computes the same split.
ordered = sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))
loads = [0] * parts
mine = []
for pyc, (size, paths) in ordered:
    lightest = loads.index(min(loads))
    loads[lightest] += size
    if lightest == part:
        mine.extend(paths)

for path in sorted(mine):
    compileall.compile_file(
        path,
        quiet=2,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
