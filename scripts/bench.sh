#!/usr/bin/env bash
# pararun's benchmark: prints figures and writes them to a folder; asserts nothing.
#
#   scripts/bench.sh                 # everything, 5 reps (about 15 minutes on 2 cores)
#   scripts/bench.sh --install       # first install the peers (GNU parallel, rust-parallel,
#                                    # the Python pararun library); idempotent
#   REPS=3 ONLY=a,c scripts/bench.sh # a subset of the peer workloads, fewer reps
#   SKIP_PEERS=1 scripts/bench.sh    # only pararun's own workloads (skip, memory)
#   THROUGHPUT=p,c,j scripts/bench.sh # which throughput workloads (default all: p,c,j,h; "none" skips)
#   BIG=1 SKIP_PEERS=1 scripts/bench.sh  # also load a 10M-record cache (550 MB, ~1 minute more)
#
# Peer workloads (scripts/bench/bench.py, side by side in one run, rows interleaved):
#   a  5,000 trivial jobs at -j 2 and -j 8        b  5,000 jobs printing one JSON line each
#   c  300 small Python items: per-process, --persistent, the Python library's process pool
#   d  the bare spawn floor (fork+exec and posix_spawn of /bin/true)   e  peak RSS of every row
# Throughput workloads (scripts/bench/throughput.py, issue 13):
#   p  100k trivial Python items through --persistent --cache vs multiprocessing.Pool(2)
#   c  10k x asyncio.sleep(0.1) through one concurrent worker, 500 in flight
#   j  10k x sleep 1 at -j 1000
#   h  2k x curl at -j 1000 against a local server taking 1 s, and xargs -P 1000 doing the same
# pararun's own workloads (below):
#   skip    a 1M-record cache (and with BIG=1 a 10M one): load time and peak RSS, and the rate
#           of skipping a fully cached 1M input
#   memory  peak RSS at 200k vs 2M input lines, without a cache and with one (bytes per key)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--install" ]; then
  bash scripts/bench/install-peers.sh
fi
cargo build --release --quiet
export PARARUN="${CARGO_TARGET_DIR:-$PWD/target}/release/pararun"
REPS="${REPS:-5}"
OUT="${OUT:-$PWD/bench-results-$(date +%Y-%m-%d)}"
mkdir -p "$OUT"
if [ -z "${SKIP_PEERS:-}" ]; then
  python3 scripts/bench/bench.py --reps "$REPS" --only "${ONLY:-a,b,c,d}" --out "$OUT"
fi
command -v /usr/bin/time >/dev/null || { echo "memory figures need GNU time: apt-get install time" >&2; exit 1; }
if [ "${THROUGHPUT:-p,c,j,h}" != none ]; then
  python3 scripts/bench/throughput.py --reps "$REPS" --only "${THROUGHPUT:-p,c,j,h}" | tee "$OUT/throughput.md"
fi
REPS="$REPS" python3 - "$OUT" <<'PY' | tee "$OUT/pararun-own.md"
import os, shutil, statistics, subprocess, sys, tempfile, time

PARARUN = os.environ["PARARUN"]
REPS = int(os.environ["REPS"])
tmp = tempfile.mkdtemp(prefix="pararun-bench-")

def run(argv, stdin_path=os.devnull, ok=(0,)):
    """Wall seconds and peak RSS (KiB) of one run."""
    with open(stdin_path, "rb") as f:
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdin=f,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
    if p.returncode not in ok:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr}")
    return wall, int(p.stderr.strip().splitlines()[-1])

def write_items(path, n):
    with open(path, "w") as f:
        f.writelines(f'{{"id":{i},"text":"item number {i}"}}\n' for i in range(n))

print(f"# pararun's own workloads, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
      f"load {os.getloadavg()[0]:.2f}, medians of {REPS}")

# skip: a fully cached input is skipped without running anything
def write_cache(path, n):
    """Records like pararun's: the key first, then the result's fields (50-60 bytes)."""
    with open(path, "w") as f:
        f.writelines(f'{{"id":{i},"words":3,"upper":"ITEM NUMBER {i}"}}\n' for i in range(n))

def load_cache(n):
    """Prints the wall time and peak RSS of loading an n-record cache with nothing to run, and
    of `pararun status` on that cache (issue 22: no slower than the load), the two interleaved
    run by run; returns the load's median wall seconds."""
    write_cache(cache, n)
    runs, status = [], []
    for _ in range(REPS):
        runs.append(run([PARARUN, "-q", "-i", empty, "--cache", cache, "--", "/bin/true"]))
        # 1: not known to be complete (no input given, no state file): still a full answer.
        status.append(run([PARARUN, "status", cache], ok=(0, 1)))
    walls = sorted(w for w, _ in runs)
    swalls = sorted(w for w, _ in status)
    print(f"| {n:,} | {os.path.getsize(cache) / 1e6:.0f} MB | {statistics.median(walls):.2f} s "
          f"({', '.join(f'{w:.2f}' for w in walls)}) | {n / statistics.median(walls) / 1e6:.1f} M/s "
          f"| {max(r for _, r in runs) / 1024:.0f} MiB | {statistics.median(swalls):.2f} s "
          f"({', '.join(f'{w:.2f}' for w in swalls)}), {max(r for _, r in status) / 1024:.0f} MiB |",
          flush=True)
    return statistics.median(walls)

items, cache, empty = (os.path.join(tmp, x) for x in ("in.jsonl", "cache.jsonl", "empty"))
open(empty, "w").close()
print(f"\n## cache load: `pararun -q -i EMPTY --cache CACHE -- /bin/true`, medians of {REPS}, "
      f"load {os.getloadavg()[0]:.2f}")
print("| records | size | load (runs) | records/s | peak RSS | `pararun status CACHE` (runs), RSS |")
print("| --- | --- | --- | --- | --- | --- |")
if os.environ.get("BIG"):
    load_cache(10_000_000)
n = 1_000_000
lm = load_cache(n)
write_items(items, n)
skip = [run([PARARUN, "-q", "-i", items, "--cache", cache, "--", "/bin/true"])[0] for _ in range(REPS)]
sm = statistics.median(skip)
print(f"\n## skip: {n:,} cached records, {n:,} input items, all cached")
print(f"- load + skip every item: {sm:.3f} s; skip rate beyond the load: {n / max(sm - lm, 1e-9) / 1e6:.2f} M items/s")

# memory: items flow through `cat` as a persistent worker (it echoes each JSON line back, which
# is a valid result), so millions of items pass through the whole pipeline in seconds.
print("\n## memory: peak RSS, items through 8 persistent `cat` workers")
print("| input lines | no cache: RSS | s | with --cache: RSS | s |")
print("| --- | --- | --- | --- | --- |")
rss = {}
for n in (200_000, 2_000_000):
    write_items(items, n)
    rm = lambda p: os.path.exists(p) and os.remove(p)
    no_cache = run([PARARUN, "-q", "-j", "8", "--persistent", "-i", items, "--", "cat"])
    rm(cache)
    with_cache = run([PARARUN, "-q", "-j", "8", "--persistent", "-i", items, "--cache", cache, "--", "cat"])
    rss[n] = (no_cache[1], with_cache[1])
    print(f"| {n:,} | {no_cache[1] / 1024:.1f} MiB | {no_cache[0]:.1f} | {with_cache[1] / 1024:.1f} MiB | {with_cache[0]:.1f} |")
flat = rss[2_000_000][0] / rss[200_000][0]
per_key = (rss[2_000_000][1] - rss[200_000][1]) * 1024 / 1_800_000
print(f"- without a cache, RSS at 2M lines is {flat:.2f}x that at 200k (flat memory: ~1.0x)")
print(f"- with a cache: {per_key:.1f} bytes of RSS per extra key")
shutil.rmtree(tmp)
PY
echo "figures written to $OUT"
