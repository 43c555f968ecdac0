#!/usr/bin/env python3
"""Benchmark the Python package against the library it replaces, side by side in one run.

    python3 scripts/bench_python.py [--reps 3] [--only trivial,async,crash,resume]
        [--seed-python PATH] [--python PATH]

Rows (each run in a fresh interpreter; reps interleaved, medians reported):
  trivial  100,000 trivial items ({"id": i} -> {"id": i, "sq": i*i}) at 2 workers, with a cache:
           pararun.map (default pipeline, and 256 items in flight per worker), the seed
           library's pr.map (process backend), and
           multiprocessing.Pool(2).imap_unordered(chunksize=256) writing a file.
  async    10,000 items of `await asyncio.sleep(0.1)` through aio_map(n_workers=500): pararun's
           and the seed's (ideal 2.0 s: 20 waves of 0.1 s).
  crash    3,000 items of 1 ms at 2 workers, the program killed with kill -9 after 1.2 s:
           finished results (a side file each item appends to) missing from the cache, and
           the processes of the run still alive 2 s later (then killed).
  resume   the seed README's async example run twice: items run by the second run.

--python is the interpreter with this package installed (default: this one; PARARUN_BIN and
PYTHONPATH are honoured). --seed-python is one with the seed library, pararun 0.1.0 from PyPI
(default: $BENCH_HOME/venv/bin/python, as ../shared/bench/install-peers.sh makes it; seed rows
are skipped when it is missing). Prints a markdown table.
"""
import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TRIVIAL = r'''
import json, sys, multiprocessing

def work(item):
    i = item["id"]
    return {"id": i, "sq": i * i}

if __name__ == "__main__":
    mode, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    items = ({"id": i} for i in range(n))
    if mode == "mp":
        with multiprocessing.Pool(2) as pool, open(path, "w") as f:
            for r in pool.imap_unordered(work, items, chunksize=256):
                f.write(json.dumps(r) + "\n")
    else:
        import pararun
        kw = {"progress": False} if mode != "seed" else {}
        if mode == "new256":
            kw["pipeline"] = 256
        pararun.map(work, items, n_workers=2, backend="process", cache_path=path, key_field="id",
                    total=n, **kw)
'''

ASYNC = r'''
import asyncio, sys
import pararun

async def work(item):
    await asyncio.sleep(0.1)
    return {"ok": True}

async def main():
    n = int(sys.argv[2])
    kw = {"progress": False} if sys.argv[1] == "new" else {}
    await pararun.aio_map(work, ({"id": i} for i in range(n)), n_workers=500,
                          cache_path=sys.argv[3], total=n, **kw)

if __name__ == "__main__":
    asyncio.run(main())
'''

CRASH = r'''
import os, sys, time
import pararun

SIDE = sys.argv[1]

def job(item):
    time.sleep(0.001)
    fd = os.open(SIDE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%d\n" % item["id"])
    os.close(fd)
    return {"id": item["id"]}

if __name__ == "__main__":
    pararun.map(job, ({"id": i} for i in range(3000)), n_workers=2, backend="process",
                cache_path=sys.argv[2], total=3000)
'''

SEED_ASYNC_EXAMPLE = r'''
import pararun as pr
import asyncio

COUNT = "count.txt"

async def fetch_url(item):
    await asyncio.sleep(0.1) # Simulate network request
    with open(COUNT, "a") as f:
        f.write("1\n")
    return {"id": item["url"], "status": 200}

async def main():
    urls = [{"url": f"https://example.com/{i}"} for i in range(100)]

    await pr.aio_map(
        func=fetch_url,
        iterable=urls,
        n_workers=10,
        cache_path="async_results.jsonl"
    )

if __name__ == "__main__":
    asyncio.run(main())
'''


def lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0


def env_for(python):
    """The seed's interpreter must import its own pararun, not this package through a
    PYTHONPATH set for development."""
    env = dict(os.environ)
    if python == SEED[0]:
        env.pop("PYTHONPATH", None)
    return env


SEED = [None]


def timed(argv, cwd, expect_lines=None, out=None):
    start = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=env_for(argv[0]))
    took = time.monotonic() - start
    if p.returncode != 0:
        raise RuntimeError(f"{argv} exited {p.returncode}: {p.stderr.decode()[-500:]}")
    if expect_lines is not None and lines(out) != expect_lines:
        raise RuntimeError(f"{argv}: {lines(out)} lines in {out}, expected {expect_lines}")
    return took


def bench(rows, reps, wd):
    """rows: name -> (argv builder(out path), expected lines). Reps interleaved, order
    reversed every other rep. Returns name -> list of seconds."""
    times = {name: [] for name in rows}
    names = list(rows)
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else names[::-1]):
            make, expect = rows[name]
            out = os.path.join(wd, f"out-{name.replace(' ', '_')}-{rep}.jsonl")
            times[name].append(timed(make(out), wd, expect, out))
    return times


def crash_lost(python, wd, tag):
    d = tempfile.mkdtemp(prefix=f"crash-{tag}-", dir=wd)
    prog = os.path.join(d, "prog.py")
    with open(prog, "w") as f:
        f.write(CRASH)
    side, cache = os.path.join(d, "side.txt"), os.path.join(d, "cache.jsonl")
    p = subprocess.Popen([python, prog, side, cache], cwd=d, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env_for(python))
    time.sleep(1.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    time.sleep(2.0)  # let whatever outlived the program finish (pararun stops its workers)
    left = leftovers(d)
    for pid in left:  # the seed's process pool outlives it; end what this benchmark started
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    with open(side) if os.path.exists(side) else open(os.devnull) as f:
        finished = {int(x) for x in f if x.strip()}
    cached = set()
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                try:
                    cached.add(json.loads(line)["id"])
                except (ValueError, KeyError):
                    pass
    return len(finished), len(finished - cached), len(left)


def leftovers(directory):
    """Pids of live processes whose command line names `directory` (the program's workers)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if directory.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(pid))
        except OSError:
            pass
    return found


def resume_reruns(python, wd, tag):
    d = tempfile.mkdtemp(prefix=f"resume-{tag}-", dir=wd)
    with open(os.path.join(d, "example.py"), "w") as f:
        f.write(SEED_ASYNC_EXAMPLE)
    subprocess.run([python, "example.py"], cwd=d, capture_output=True, check=True,
                   env=env_for(python))
    first = lines(os.path.join(d, "count.txt"))
    subprocess.run([python, "example.py"], cwd=d, capture_output=True, check=True,
                   env=env_for(python))
    return first, lines(os.path.join(d, "count.txt")) - first


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="trivial,async,crash,resume")
    ap.add_argument("--python", default=sys.executable)
    bench_home = os.environ.get("BENCH_HOME") or os.path.expanduser("~/.cache/pararun-bench")
    ap.add_argument("--seed-python", default=os.path.join(bench_home, "venv", "bin", "python"))
    ap.add_argument("--items", type=int, default=100_000)
    args = ap.parse_args()
    only = set(args.only.split(","))
    seed = args.seed_python if os.path.exists(args.seed_python) else None
    SEED[0] = seed
    if seed is None:
        print(f"(no seed library at {args.seed_python}: seed rows skipped)", file=sys.stderr)
    wd = tempfile.mkdtemp(prefix="pararun-bench-python-")
    for name, text in (("trivial.py", TRIVIAL), ("async.py", ASYNC)):
        with open(os.path.join(wd, name), "w") as f:
            f.write(text)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# pararun Python package benchmark, {now}")
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"Python {platform.python_version()}, {args.reps} reps (median, min-max)\n")
    print("| workload | tool | time | vs |")
    print("| --- | --- | ---: | --- |")

    def show(workload, times, base):
        for name, ts in times.items():
            med = statistics.median(ts)
            ratio = "" if name == base else f"{med / statistics.median(times[base]):.2f}x the time of {base}"
            print(f"| {workload} | {name} | {med:.2f} s ({min(ts):.2f}-{max(ts):.2f}) | {ratio} |")
        sys.stdout.flush()

    n = args.items
    if "trivial" in only:
        rows = {"pararun.map": (lambda out: [args.python, "trivial.py", "new", str(n), out], n),
                "pararun.map(pipeline=256)": (lambda out: [args.python, "trivial.py", "new256", str(n), out], n)}
        if seed:
            rows["seed pr.map"] = (lambda out: [seed, "trivial.py", "seed", str(n), out], n)
        rows["mp.Pool(2).imap_unordered"] = (lambda out: [args.python, "trivial.py", "mp", str(n), out], n)
        show(f"{n:,} trivial items, 2 workers", bench(rows, args.reps, wd), "pararun.map")
    if "async" in only:
        rows = {"pararun.aio_map": (lambda out: [args.python, "async.py", "new", "10000", out], 10000)}
        if seed:
            rows["seed pr.aio_map"] = (lambda out: [seed, "async.py", "seed", "10000", out], 10000)
        show("10,000 x asyncio.sleep(0.1), n_workers=500", bench(rows, args.reps, wd), "pararun.aio_map")
    if "crash" in only:
        for tag, py in (("pararun.map", args.python), ("seed pr.map", seed)):
            if py:
                finished, lost, left = crash_lost(py, wd, tag.split()[0])
                print(f"| kill -9 at 1.2 s, 3,000 x 1 ms | {tag} | {lost} lost of {finished} "
                      f"finished; {left} processes still running 2 s later | |")
    if "resume" in only:
        for tag, py in (("pararun.aio_map", args.python), ("seed pr.aio_map", seed)):
            if py:
                first, second = resume_reruns(py, wd, tag.split()[0])
                print(f"| the seed's async example, run twice | {tag} | second run ran {second} of 100 | |")


if __name__ == "__main__":
    main()
