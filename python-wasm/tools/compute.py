"""CPU-bound workload for comparing interpreter builds (python-wasm/tools/variant-bench.py).
Prints one JSON object: seconds per item and the total. Deterministic work, no I/O."""
import hashlib
import json
import re
import time
import zlib


def int_loop():
    s = 0
    for i in range(1_500_000):
        s += i * i % 7
    return s


def dict_alloc():
    d = {}
    for i in range(200_000):
        d[str(i)] = [i, i + 1, (i, str(i))]
    return sum(len(v) for v in d.values())


class Node:
    __slots__ = ("value", "children")

    def __init__(self, value):
        self.value = value
        self.children = []


def objects():
    root = Node(0)
    layer = [root]
    n = 1
    while n < 150_000:
        nxt = []
        for node in layer:
            for _ in range(3):
                child = Node(n)
                node.children.append(child)
                nxt.append(child)
                n += 1
        layer = nxt
    total, stack = 0, [root]
    while stack:
        node = stack.pop()
        total += node.value
        stack.extend(node.children)
    return total


def json_roundtrip():
    data = [{"name": f"pkg{i}", "version": f"1.{i}.0", "deps": [f"d{j}" for j in range(5)], "ok": True, "w": i / 3}
            for i in range(5000)]
    for _ in range(4):
        data = json.loads(json.dumps(data))
    return len(data)


def regex():
    text = " ".join(f"name-{i}>=1.{i % 10},<2; python_version >= '3.{i % 13}'" for i in range(4000))
    pat = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*([<>=!~]=?)\s*([0-9][0-9.]*)")
    return sum(len(pat.findall(text)) for _ in range(5))


def sha256():
    return hashlib.sha256(b"wasm-build" * 800_000).hexdigest()


def zlib_work():
    data = b"".join(b"line %d of some text that compresses reasonably well\n" % i for i in range(100_000))
    c = zlib.compress(data, 6)
    return len(zlib.decompress(c))


def strings():
    parts = []
    for i in range(200_000):
        parts.append(f"{i:08d}".replace("0", "o").upper())
    return len("".join(sorted(parts)))


ITEMS = [int_loop, dict_alloc, objects, json_roundtrip, regex, sha256, zlib_work, strings]

res = {}
t_all = time.perf_counter()
for f in ITEMS:
    t0 = time.perf_counter()
    f()
    res[f.__name__] = round(time.perf_counter() - t0, 4)
res["total"] = round(time.perf_counter() - t_all, 4)
print(json.dumps(res))
