"""Against a service that says 429 (issue 24): a local HTTP server on 127.0.0.1 that admits at
most 8 requests at once, each taking about 100 ms, and answers the rest 429 with
`Retry-After: 1`. N items go through `curl` behind examples/call_api.sh (a 429 becomes exit 75,
pararun's throttle), side by side in one run, rows interleaved:

- fixed `-j 8`, the best a user who knew the limit could give;
- plain `-j 64`, the guess of one who did not;
- `-j 64 --adaptive`, which must come near the first without knowing.

    PARARUN=target/release/pararun python3 scripts/bench/throttle.py [--items 2000] [--reps 1]

For each row: wall time, requests the server answered 429 (and their share), items failed.
"""
import argparse
import http.server
import os
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOTS, WORK = 8, 0.1


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.slots = threading.BoundedSemaphore(SLOTS)
        self.lock = threading.Lock()
        self.ok = self.throttled = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        if not server.slots.acquire(blocking=False):
            with server.lock:
                server.throttled += 1
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            time.sleep(WORK)
            body = b'{"answer": 42}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            server.slots.release()
        with server.lock:
            server.ok += 1

    def log_message(self, *args):
        pass


def run(pararun, server, items, tmp, jobs, adaptive):
    cache = os.path.join(tmp, f"cache-{jobs}-{adaptive}.jsonl")
    if os.path.exists(cache):
        os.remove(cache)
    with server.lock:
        server.ok = server.throttled = 0
    argv = [pararun, "-q", "-j", str(jobs), "-i", items, "--cache", cache, "--max-throttled", "1000"]
    if adaptive:
        argv.append("--adaptive")
    argv += ["--", "sh", os.path.join(ROOT, "examples", "call_api.sh"), "<>"]
    env = dict(os.environ, API_URL=f"http://127.0.0.1:{server.server_address[1]}/answer")
    start = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    with open(cache) as f:
        done = sum(1 for line in f if line.strip())
    with server.lock:
        return wall, server.throttled, server.ok, done, p.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    pararun = os.environ.get("PARARUN") or os.path.join(ROOT, "target", "release", "pararun")
    tmp = tempfile.mkdtemp(prefix="pararun-throttle-")
    items = os.path.join(tmp, "items.jsonl")
    with open(items, "w") as f:
        f.writelines(f'{{"id":{i}}}\n' for i in range(args.items))
    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = [("fixed -j 8", 8, False), ("plain -j 64", 64, False), ("-j 64 --adaptive", 64, True)]
    results = {name: [] for name, _, _ in rows}
    for _ in range(args.reps):
        for name, jobs, adaptive in rows:
            results[name].append(run(pararun, server, items, tmp, jobs, adaptive))
    server.shutdown()
    print(f"# throttle, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; {args.items} items, server: {SLOTS} at once, "
          f"{WORK * 1000:.0f} ms each, 429 with Retry-After: 1 past that; ideal "
          f"{args.items * WORK / SLOTS:.1f} s\n")
    print("| setting | time (median) | all runs | 429s | share of requests | items done | exit |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- |")
    best = statistics.median(w for w, *_ in results["fixed -j 8"])
    for name, runs in results.items():
        walls = [w for w, *_ in runs]
        wall, throttled, ok, done, code = runs[-1]
        share = throttled / max(throttled + ok, 1)
        print(f"| {name} | {statistics.median(walls):.2f} s ({statistics.median(walls) / best:.2f}x) | "
              f"{', '.join(f'{w:.2f}' for w in walls)} | {throttled} | {share:.1%} | {done} | {code} |")


if __name__ == "__main__":
    sys.exit(main())
