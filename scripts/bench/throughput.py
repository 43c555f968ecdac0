#!/usr/bin/env python3
"""throughput.py - issue 13's throughput workloads, side by side in one run (stdlib only).

Usage (from the repository root, after `cargo build --release`):
    PARARUN=target/release/pararun python3 scripts/bench/throughput.py [--reps 3] [--only p,c,j]
    PARARUN_OLD=/path/to/old/pararun ... adds each pararun row again for that build, interleaved

Workloads (reps interleaved, so drift on a shared machine hits every row alike):
  p  100,000 trivial Python items at -j 2: pararun --persistent with --cache (a worker that
     prints each line back and flushes), against multiprocessing.Pool(2).imap_unordered
     (chunksize=256) writing the results to a file
  c  the concurrent protocol: 10,000 items each awaiting asyncio.sleep(0.1), one worker
     process (examples/async_worker.py), 500 in flight (ideal 2.0 s)
  j  10,000 x `sleep 1` at -j 1000 (ideal 10 s), pararun's peak RSS
  h  2,000 x `curl` at -j 1000 against a local HTTP server that takes 1 s over each answer
     (ideal 2 s): a thousand sockets and pipes at once
Prints a Markdown table: medians of the reps, and peak RSS (largest process) via GNU time.
"""
import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable

ECHO_WORKER = """import sys
for line in sys.stdin:
    sys.stdout.write(line)
    sys.stdout.flush()
"""

POOL = """import multiprocessing, sys
def work(line):
    return line
if __name__ == "__main__":
    with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out, multiprocessing.Pool(2) as pool:
        for result in pool.imap_unordered(work, f, chunksize=256):
            out.write(result)
"""


def timed(argv, stdin=None):
    """Wall seconds and peak RSS (KiB) of one run, which must succeed."""
    with open(stdin or os.devnull, "rb") as f:
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdin=f,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr[-2000:]}")
    return wall, int(p.stderr.strip().splitlines()[-1])


def rows_p(tmp, pararun):
    items = os.path.join(tmp, "p-items.jsonl")
    with open(items, "w") as f:
        f.writelines(f'{{"id":{i}}}\n' for i in range(100_000))
    worker = os.path.join(tmp, "echo_worker.py")
    pool = os.path.join(tmp, "pool.py")
    with open(worker, "w") as f:
        f.write(ECHO_WORKER)
    with open(pool, "w") as f:
        f.write(POOL)
    cache = os.path.join(tmp, "p-cache.jsonl")

    def run_pararun():
        if os.path.exists(cache):
            os.remove(cache)
        return timed([pararun, "-q", "-j", "2", "--persistent", "-i", items, "--cache", cache,
                      "--", PY, worker])

    return [
        ("100k Python items, pararun --persistent --cache, -j 2", run_pararun),
        ("100k Python items, multiprocessing.Pool(2), chunksize=256",
         lambda: timed([PY, pool, items, os.path.join(tmp, "pool-out.jsonl")])),
    ]


def rows_c(tmp, pararun):
    items = os.path.join(tmp, "c-items.jsonl")
    with open(items, "w") as f:
        f.writelines(f'{{"id":{i}}}\n' for i in range(10_000))
    worker = os.path.join(ROOT, "examples", "async_worker.py")
    return [("10k x asyncio.sleep(0.1), one worker, 500 in flight (ideal 2.0 s)",
             lambda: timed([pararun, "-q", "-j", "1", "--persistent", "--protocol",
                            "concurrent", "--pipeline", "500", "-i", items, "--", PY, worker]))]


def rows_j(tmp, pararun):
    items = os.path.join(tmp, "j-items.txt")
    with open(items, "w") as f:
        f.writelines(f"{i}\n" for i in range(10_000))
    return [("10k x sleep 1 at -j 1000 (ideal 10 s)",
             lambda: timed([pararun, "-q", "-j", "1000", "--stdin", "--capture", "text",
                            "-i", items, "--", "sleep", "1"]))]


SLOW_SERVER = """import http.server, socketserver, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(1)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 4096
    daemon_threads = True
server = Server(("127.0.0.1", 0), Slow)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def rows_h(tmp, pararun):
    if shutil.which("curl") is None:
        print("throughput: no curl on PATH; skipping workload h", file=sys.stderr)
        return []
    items = os.path.join(tmp, "h-items.txt")
    with open(items, "w") as f:
        f.writelines(f"{i}\n" for i in range(2_000))
    server = subprocess.Popen([PY, "-c", SLOW_SERVER], stdout=subprocess.PIPE, text=True)
    atexit.register(server.kill)
    port = server.stdout.readline().strip()
    url = f"http://127.0.0.1:{port}/item/{{}}"
    # Starting curl (dynamic linking of libcurl and its TLS libraries) costs far more CPU than
    # the request: xargs -P running the same commands is the floor to compare with.
    return [("2k x curl at -j 1000, local server taking 1 s (ideal 2 s)",
             lambda: timed([pararun, "-q", "-j", "1000", "--capture", "text", "-i", items,
                            "--", "curl", "-sf", url])),
            ("the same through xargs -P 1000",
             lambda: timed(["xargs", "-P", "1000", "-I{}", "curl", "-sf", url], stdin=items))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="p,c,j,h")
    args = parser.parse_args()
    pararun = os.environ.get("PARARUN") or os.path.join(ROOT, "target", "release", "pararun")
    tmp = tempfile.mkdtemp(prefix="pararun-throughput-")
    rows = []
    # PARARUN_OLD: an older build run beside this one, row for row, to show a change costs
    # nothing (the rows interleave, so both see the same load).
    old = os.environ.get("PARARUN_OLD")
    for part, make in (("p", rows_p), ("c", rows_c), ("j", rows_j), ("h", rows_h)):
        if part in args.only.split(","):
            new_rows = make(tmp, pararun)
            rows += new_rows
            if old:
                rows += [(f"{name} [old build]", run) for name, run in make(tmp, old)
                         if "pararun" in name or part in "cj"]
    results = {name: [] for name, _ in rows}
    for _ in range(args.reps):
        for name, run in rows:
            results[name].append(run())
    print(f"# throughput, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}, medians of {args.reps}\n")
    print("| workload | time (median) | all runs | peak RSS |")
    print("| --- | ---: | --- | ---: |")
    for name, runs in results.items():
        walls = [w for w, _ in runs]
        rss = max(r for _, r in runs)
        print(f"| {name} | {statistics.median(walls):.2f} s | "
              f"{', '.join(f'{w:.2f}' for w in walls)} | {rss / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
