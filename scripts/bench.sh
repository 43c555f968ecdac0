#!/usr/bin/env bash
# pararun's benchmark: prints figures, asserts nothing.
#
#   scripts/bench.sh            # all workloads, 5 reps
#   REPS=3 scripts/bench.sh spawn skip
#
# Workloads (each timed side by side in one run, rows interleaved, medians reported):
#   spawn  5,000 trivial jobs (/bin/true ITEM) at -j 2 and -j 8: xargs -P vs pararun, with and
#          without a cache; overhead per job relative to xargs.
#   skip   a 1M-line input whose keys are all in a 1M-record cache: load time and skip rate.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
export PARARUN="$PWD/target/release/pararun"
export REPS="${REPS:-5}"
exec python3 - "$@" <<'PY'
import os, shutil, statistics, subprocess, sys, tempfile, time

PARARUN = os.environ["PARARUN"]
REPS = int(os.environ["REPS"])
which = sys.argv[1:] or ["spawn", "skip"]
tmp = tempfile.mkdtemp(prefix="pararun-bench-")

def timed(argv, stdin_path, env=None):
    with open(stdin_path, "rb") as f:
        t = time.perf_counter()
        subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, check=True, env=env)
        return time.perf_counter() - t

def rm(path):
    if os.path.exists(path):
        os.remove(path)

print(f"# pararun benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
      f"load {os.getloadavg()[0]:.2f}, {REPS} reps, medians")

if "spawn" in which:
    n = 5000
    items = os.path.join(tmp, "n.txt")
    with open(items, "w") as f:
        f.writelines(f"{i}\n" for i in range(1, n + 1))
    cache = os.path.join(tmp, "spawn.jsonl")
    print(f"\n## spawn: {n} x /bin/true ITEM")
    print("| -j | tool | median s | min s | max s | jobs/s | vs xargs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for j in (2, 8):
        rows = {
            "xargs -P": lambda: timed(["xargs", "-P", str(j), "-n", "1", "/bin/true"], items),
            "pararun --cache": lambda: (rm(cache), timed([PARARUN, "-q", "-j", str(j), "--capture", "text", "--cache", cache, "--", "/bin/true"], items))[1],
            "pararun (no cache)": lambda: timed([PARARUN, "-q", "-j", str(j), "--capture", "text", "--", "/bin/true"], items),
        }
        times = {k: [] for k in rows}
        names = list(rows)
        for rep in range(REPS):
            for name in (names if rep % 2 == 0 else names[::-1]):
                times[name].append(rows[name]())
        base = statistics.median(times["xargs -P"])
        for name in names:
            med = statistics.median(times[name])
            print(f"| {j} | {name} | {med:.3f} | {min(times[name]):.3f} | {max(times[name]):.3f} "
                  f"| {n / med:.0f} | {base / med:.2f}x |")
        for name in names[1:]:
            extra = (statistics.median(times[name]) - base) / n * 1e6
            print(f"|   | {name}: overhead over xargs | {extra:+.0f} us/job | | | | |")

if "skip" in which:
    n = 1_000_000
    items = os.path.join(tmp, "skip-in.jsonl")
    cache = os.path.join(tmp, "skip-cache.jsonl")
    empty = os.path.join(tmp, "empty.jsonl")
    with open(items, "w") as f:
        f.writelines(f'{{"id":{i},"text":"item number {i}"}}\n' for i in range(n))
    with open(cache, "w") as f:
        f.writelines(f'{{"id":{i},"words":3,"upper":"ITEM NUMBER {i}"}}\n' for i in range(n))
    open(empty, "w").close()
    load, skip = [], []
    for _ in range(REPS):
        load.append(timed([PARARUN, "-q", "-i", empty, "--cache", cache, "--", "/bin/true"], empty))
        skip.append(timed([PARARUN, "-q", "-i", items, "--cache", cache, "--", "/bin/true"], empty))
    lm, sm = statistics.median(load), statistics.median(skip)
    size = os.path.getsize(cache) / 1e6
    print(f"\n## skip: {n:,} cached records ({size:.0f} MB), {n:,} input items all cached")
    print(f"- load the cache (empty input): {lm:.3f} s ({n / lm / 1e6:.2f} M records/s)")
    print(f"- load + skip every item:       {sm:.3f} s")
    print(f"- skip rate (beyond the load):  {n / max(sm - lm, 1e-9) / 1e6:.2f} M items/s")

shutil.rmtree(tmp)
PY
