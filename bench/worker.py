#!/usr/bin/env python3
"""What the Redis queue costs: `wasm-build worker` against building without a queue.

  1. throughput: N jobs (distinct small sdists, the same options) through
       - one `wasm-build build SDIST` process per job, 2 at a time,
       - one `wasm-build build -j 2 SDIST...` process (one warm frontend),
       - 1 worker (-j 1), 1 worker (-j 2), 2 workers (-j 1 each);
  2. latency: on an idle worker, from XADD to the worker's `job-started` log line;
  3. backlog: B jobs through 2 workers, checking that every job has exactly one result.

Every job is a real build: each sdist is its own project (`bench-demo-<i>`, the in-tree
fixture's standard-library backend), so no result is answered from the store. Needs
redis-server on PATH and a built wasm-build; standard library only. Starts its own
redis-server on a random port in a temporary folder, writes nothing into the repository.

    python3 bench/worker.py [--jobs 60] [--backlog 10000] [--wasm-build PATH]
"""

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = (ROOT / "tests/fixtures/intree/_build/backend.py").read_bytes()


def find_wasm_build():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release/wasm-build")


class Redis:
    """A minimal RESP client: enough for XADD, XLEN, XRANGE, XPENDING."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))

    def read(self):
        line = self.file.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def pipeline(self, commands):
        for start in range(0, len(commands), 1000):
            chunk = commands[start : start + 1000]
            for args in chunk:
                self.send(*args)
            for _ in chunk:
                self.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(folder):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
         "--save", "", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            Redis(port).call("PING")
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("redis-server did not start")


def make_sdist(folder, i):
    """The in-tree fixture as project bench-demo-<i>: a tiny, fast, distinct sdist."""
    name, package, version = "bench-demo-%d" % i, "bench_demo_%d" % i, "1.0"
    top = "%s-%s" % (package, version)
    files = {
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
            'backend-path = ["_build"]\n\n[project]\nname = "%s"\nversion = "%s"\n'
            % (name, version)
        ).encode(),
        "_build/backend.py": BACKEND,
        "%s/__init__.py" % package: b"VALUE = %d\n" % i,
        "PKG-INFO": ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)).encode(),
    }
    path = os.path.join(folder, top + ".tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(top + "/" + rel)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def job(i, sdist, outdir, run):
    return json.dumps({
        "id": "%s-%d" % (run, i),
        "source": {"path": sdist, "sha256": sha256(sdist)},
        "build": ["wheel"],
        "artifacts": {"dir": outdir},
    })


class Workers:
    def __init__(self, wasm_build, port, stream, count, jobs_each, logdir):
        self.procs, self.logs = [], []
        for n in range(count):
            log = os.path.join(logdir, "%s-%d.jsonl" % (stream, n))
            self.logs.append(log)
            self.procs.append(subprocess.Popen(
                [wasm_build, "worker", "--redis", "redis://127.0.0.1:%d/" % port,
                 "--stream", stream, "--group", "bench", "--consumer", "%s-%d" % (stream, n),
                 "-j", str(jobs_each)],
                stdout=subprocess.DEVNULL, stderr=open(log, "w"),
            ))
        # Ready once each has logged "started" (the engine is warm).
        deadline = time.time() + 120
        while not all(self.events("started", log) for log in self.logs):
            if time.time() > deadline:
                raise SystemExit("workers did not start: see %s" % logdir)
            time.sleep(0.05)

    @staticmethod
    def events(event, log):
        out = []
        with open(log) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("event") == event:
                    out.append(entry)
        return out

    def stop(self):
        for p in self.procs:
            p.terminate()
        codes = [p.wait() for p in self.procs]
        assert codes == [0] * len(codes), codes


def wait_results(r, stream, count, limit):
    deadline = time.time() + limit
    while r.call("XLEN", stream + ".results") < count:
        if time.time() > deadline:
            raise SystemExit("%s: only %d of %d results" % (
                stream, r.call("XLEN", stream + ".results"), count))
        time.sleep(0.05)


def check_results(r, stream, count):
    entries = r.call("XRANGE", stream + ".results", "-", "+")
    ids = {}
    for _, fields in entries:
        result = json.loads(dict(zip(fields[::2], fields[1::2]))["result"])
        assert result["status"] == "ok", result
        ids[result["job_id"]] = ids.get(result["job_id"], 0) + 1
    lost = count - len(ids)
    duplicated = sum(n - 1 for n in ids.values())
    return lost, duplicated


def through_workers(args, port, sdists, work, stream, count, jobs_each, limit=3600):
    r = Redis(port)
    outdir = os.path.join(work, "out-" + stream)
    os.makedirs(outdir)
    workers = Workers(args.wasm_build, port, stream, count, jobs_each, work)
    start = time.time()
    r.pipeline([("XADD", stream, "*", "job", job(i, s, outdir, stream))
                for i, s in enumerate(sdists)])
    wait_results(r, stream, len(sdists), limit)
    elapsed = time.time() - start
    workers.stop()
    lost, duplicated = check_results(r, stream, len(sdists))
    return elapsed, lost, duplicated


def cli_per_job(args, sdists, work, parallel):
    outdir = os.path.join(work, "out-cli")
    start = time.time()

    def one(sdist):
        subprocess.run([args.wasm_build, "build", "-q", "-o", outdir, sdist],
                       check=True, stdout=subprocess.DEVNULL)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, sdists))
    return time.time() - start


def cli_one_process(args, sdists, work, jobs, name="j"):
    """One `wasm-build build -j N SDIST...`: many sources on one warm frontend."""
    outdir = os.path.join(work, "out-cli-" + name)
    start = time.time()
    subprocess.run([args.wasm_build, "build", "-q", "-j", str(jobs), "-o", outdir, *sdists],
                   check=True, stdout=subprocess.DEVNULL)
    return time.time() - start


def latency(args, port, sdists, work, samples):
    r = Redis(port)
    stream = "latency"
    outdir = os.path.join(work, "out-latency")
    os.makedirs(outdir)
    workers = Workers(args.wasm_build, port, stream, 1, 1, work)
    added = {}
    for i, sdist in enumerate(sdists[:samples]):
        # Idle worker: wait for the previous result, then a pause, then XADD.
        wait_results(r, stream, i, 120)
        time.sleep(0.3)
        added["%s-%d" % (stream, i)] = time.time()
        r.call("XADD", stream, "*", "job", job(i, sdist, outdir, stream))
    wait_results(r, stream, samples, 120)
    workers.stop()
    starts = {e["job_id"]: e["ts"] for e in Workers.events("job-started", workers.logs[0])}
    return sorted((starts[k] - t) * 1000 for k, t in added.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--wasm-build", default=find_wasm_build())
    parser.add_argument("--cli-first", action="store_true",
                        help="time the one -j 2 process before the workers' backlog, not after")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not on PATH (apt-get install -y redis-server)")
    work = tempfile.mkdtemp(prefix="wasm-build-bench-worker-")
    redis_proc, port = start_redis(work)
    try:
        sources = os.path.join(work, "sdists")
        os.makedirs(sources)
        total = max(args.jobs, args.backlog, args.latency_samples)
        sdists = [make_sdist(sources, i) for i in range(total)]
        n = args.jobs
        rows = []
        cli = cli_per_job(args, sdists[:n], work, 2)
        rows.append(("CLI, one process per job, 2 at a time", cli, 0, 0))
        rows.append(("CLI, one process, -j 2, all sources", cli_one_process(args, sdists[:n], work, 2), 0, 0))
        for label, count, each in [("1 worker, -j 1", 1, 1), ("1 worker, -j 2", 1, 2),
                                   ("2 workers, -j 1 each", 2, 1)]:
            stream = "tp-%d-%d" % (count, each)
            elapsed, lost, dup = through_workers(args, port, sdists[:n], work, stream, count, each)
            rows.append((label, elapsed, lost, dup))
        print("## Throughput, %d jobs (distinct sdists, each a real build)\n" % n)
        print("| how | seconds | jobs/min | lost | duplicated |\n|---|---|---|---|---|")
        for label, elapsed, lost, dup in rows:
            print("| %s | %.1f | %.0f | %d | %d |" % (label, elapsed, n / elapsed * 60, lost, dup))
        lat = latency(args, port, sdists, work, args.latency_samples)
        print("\n## XADD to build start on an idle worker, %d samples (ms)\n" % len(lat))
        print("min %.1f, median %.1f, max %.1f" % (lat[0], lat[len(lat) // 2], lat[-1]))
        if args.backlog:
            b = args.backlog
            # The yardstick: the same jobs through one `-j 2` process, run before or
            # after the workers (--cli-first) to show how much the order moves the ratio.
            if args.cli_first:
                one = cli_one_process(args, sdists[:b], work, 2, "backlog")
            elapsed, lost, dup = through_workers(args, port, sdists[:b], work, "backlog", 2, 1)
            print("\n## Backlog: %d jobs through 2 workers (-j 1 each)\n" % b)
            print("%.1f s, %.0f jobs/min, lost %d, duplicated %d" % (
                elapsed, b / elapsed * 60, lost, dup))
            if not args.cli_first:
                one = cli_one_process(args, sdists[:b], work, 2, "backlog")
            print("one `wasm-build build -j 2` process over the same %d sdists: %.1f s, "
                  "%.0f jobs/min; 2 workers take %.2fx its time" % (b, one, b / one * 60, elapsed / one))
    finally:
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
