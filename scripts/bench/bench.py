#!/usr/bin/env python3
"""bench.py - time pararun against its peers, side by side in one run (stdlib only).

Usage (from any directory):
    python3 scripts/bench/bench.py [--reps 3] [--only a,b,c,d] [--out DIR]
    PARARUN=target/release/pararun python3 scripts/bench/bench.py

Workloads (every tool runs the same items, reps interleaved tool by tool so drift hits all alike):
  a  5,000 trivial jobs `/bin/true <item>` at -j 2 and -j 8
  b  5,000 jobs each printing one JSON line, collected into one output file (-j 2)
  c  300 small Python items (-j 2): per-process `python work.py ITEM` under xargs, GNU parallel,
     rust-parallel and pararun; pararun --persistent; the Python library's process-pool map
  d  bare spawn floor: a C helper (spawnfloor.c, built with cc) runs /bin/true 5,000 times with
     1, 2 and 8 children alive, via fork+exec and via posix_spawn
  e  peak RSS of every row via /usr/bin/time (max RSS of the largest process in the tree)

Peers are found on PATH or under ${BENCH_HOME:-~/.cache/pararun-bench} (see install-peers.sh).
A tool that is missing is skipped, and so are pararun's rows when PARARUN is not given.
pararun's command lines can be overridden with PARARUN_ARGS_A / _B / _C / _CP (see DEFAULT_PARARUN).
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_HOME = os.environ.get("BENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "pararun-bench")

# pararun's argument templates, tokenised with shlex; @J@ @CACHE@ @OUT@ @PY@ @WORK@ are substituted
# per token. Items are plain numbers for a and b, JSONL {"id": N} for c.
DEFAULT_PARARUN = {
    "A": "-q -j @J@ --capture text --cache @CACHE@ -- /bin/true",
    "B": "-q -j @J@ --cache @OUT@ -- printf '{\"id\":%s,\"v\":1}\\n' <>",
    "C": "-q -j @J@ --cache @OUT@ -- @PY@ @WORK@ <>",
    "CP": "-q -j @J@ --persistent --cache @OUT@ -- @PY@ @WORK@ --worker",
}
JSON_FMT = '{"id":%s,"v":1}\n'


def which(name, extra_dirs=()):
    for d in extra_dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def version_of(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


def find_tools(args):
    t = {}
    t["xargs"] = which("xargs")
    par = which("parallel")
    if par and "GNU parallel" in version_of([par, "--version"]):
        t["parallel"] = par
    t["rust-parallel"] = which("rust-parallel", [os.path.join(BENCH_HOME, "cargo", "bin")])
    vpy = os.path.join(BENCH_HOME, "venv", "bin", "python")
    if os.path.exists(vpy) and subprocess.run([vpy, "-c", "import pararun"], capture_output=True).returncode == 0:
        t["pylib"] = vpy
    t["python"] = vpy if os.path.exists(vpy) else sys.executable
    pr = args.pararun or os.environ.get("PARARUN")
    if pr:
        pr = os.path.abspath(pr) if os.sep in pr else shutil.which(pr)
        if not pr or not os.access(pr, os.X_OK):
            sys.exit(f"bench.py: PARARUN={args.pararun or os.environ.get('PARARUN')} is not an executable")
        t["pararun"] = pr
    old = os.environ.get("PARARUN_OLD")
    if old and os.access(old, os.X_OK):
        t["pararun-old"] = os.path.abspath(old)
    t["time"] = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    t["floor"] = build_floor()
    return {k: v for k, v in t.items() if v}


def build_floor():
    src = os.path.join(HERE, "spawnfloor.c")
    exe = os.path.join(BENCH_HOME, "spawnfloor")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        if not cc:
            print("bench.py: no C compiler, skipping the spawn floor", file=sys.stderr)
            return None
        os.makedirs(BENCH_HOME, exist_ok=True)
        subprocess.run([cc, "-O2", "-o", exe, src], check=True)
    return exe


def tool_versions(t):
    v = {}
    if "xargs" in t:
        v["xargs"] = version_of([t["xargs"], "--version"])
    if "parallel" in t:
        v["GNU parallel"] = version_of([t["parallel"], "--version"])
    if "rust-parallel" in t:
        v["rust-parallel"] = version_of([t["rust-parallel"], "--version"])
    if "pylib" in t:
        v["pararun (PyPI)"] = version_of([t["pylib"], "-c", "import importlib.metadata as m; print(m.version('pararun'))"])
    if "pararun" in t:
        v["pararun (this project)"] = version_of([t["pararun"], "--version"])
    v["python"] = version_of([t["python"], "--version"])
    return v


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


class Case:
    """One row: a command that runs N items and must leave `expect` lines in `check_file`."""

    def __init__(self, workload, tool, argv, stdin, n, out=None, check_file=None, fresh=(), jobs=None):
        self.workload, self.tool, self.argv, self.stdin, self.n = workload, tool, argv, stdin, n
        self.out = out                      # where the command's stdout goes (None: /dev/null)
        self.check_file = check_file or out  # file whose line count must equal n
        self.fresh = list(fresh)            # files removed before every run (caches)
        self.jobs = jobs
        self.times, self.rss, self.errors = [], [], []


def run_case(c, tools, work_dir):
    for f in c.fresh + ([c.out] if c.out else []):
        if os.path.exists(f):
            os.remove(f)
    rss_file = os.path.join(work_dir, "rss.txt")
    argv = ([tools["time"], "-f", "%M", "-o", rss_file] if "time" in tools else []) + c.argv
    err_path = os.path.join(work_dir, "stderr.txt")
    with open(c.stdin, "rb") as fin, open(c.out or os.devnull, "wb") as fout, open(err_path, "wb") as ferr:
        t0 = time.perf_counter()
        rc = subprocess.run(argv, stdin=fin, stdout=fout, stderr=ferr, cwd=work_dir).returncode
        dt = time.perf_counter() - t0
    ok = rc == 0
    why = f"exit {rc}" if rc else ""
    if ok and c.check_file:
        with open(c.check_file, "rb") as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        if len(lines) != c.n:
            ok, why = False, f"{len(lines)} result lines, expected {c.n}"
        else:
            try:
                for ln in lines:
                    json.loads(ln)
            except ValueError:
                ok, why = False, "a result line is not JSON"
    if not ok:
        with open(err_path, "rb") as f:
            tail = f.read()[-300:].decode(errors="replace").strip()
        c.errors.append(f"{why}: {tail}")
        return
    c.times.append(dt)
    if "time" in tools:
        try:
            with open(rss_file) as f:
                c.rss.append(int(f.read().split()[-1]))
        except (OSError, ValueError, IndexError):
            pass


def warm_up(c, work_dir):
    head = c.stdin + ".head"
    if not os.path.exists(head):
        with open(c.stdin, "rb") as f, open(head, "wb") as g:
            g.writelines(f.readlines()[:50])
    for f in c.fresh + ([c.out] if c.out else []):
        if os.path.exists(f):
            os.remove(f)
    with open(head, "rb") as fin:
        subprocess.run(c.argv, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work_dir)


def pararun_argv(tools, key, **subst):
    tmpl = os.environ.get(f"PARARUN_ARGS_{key}", DEFAULT_PARARUN[key])
    out = []
    for tok in shlex.split(tmpl):
        for k, v in subst.items():
            tok = tok.replace(f"@{k}@", str(v))
        out.append(tok)
    return [tools["pararun"]] + out


def build_cases(tools, wd, sel, n_trivial, n_py):
    nums = os.path.join(wd, f"nums{n_trivial}.txt")
    with open(nums, "w") as f:
        f.write("".join(f"{i}\n" for i in range(1, n_trivial + 1)))
    pnums = os.path.join(wd, f"nums{n_py}.txt")
    with open(pnums, "w") as f:
        f.write("".join(f"{i}\n" for i in range(1, n_py + 1)))
    pjsonl = os.path.join(wd, f"items{n_py}.jsonl")
    with open(pjsonl, "w") as f:
        f.write("".join(json.dumps({"id": i}) + "\n" for i in range(1, n_py + 1)))
    work = os.path.join(HERE, "work.py")
    py = tools["python"]
    groups = []  # list of (workload name, [cases])

    if "a" in sel:
        for j in (2, 8):
            w, cs = f"a: {n_trivial} x /bin/true, -j {j}", []
            if "floor" in tools:
                cs.append(Case(w, "floor (posix_spawn)", [tools["floor"], "spawn", str(n_trivial), str(j)], nums, n_trivial, jobs=j))
            if "xargs" in tools:
                cs.append(Case(w, "xargs -P", [tools["xargs"], "-P", str(j), "-n", "1", "/bin/true"], nums, n_trivial, jobs=j))
            if "parallel" in tools:
                cs.append(Case(w, "GNU parallel", [tools["parallel"], "-j", str(j), "/bin/true"], nums, n_trivial, jobs=j))
            if "rust-parallel" in tools:
                cs.append(Case(w, "rust-parallel", [tools["rust-parallel"], "-j", str(j), "/bin/true"], nums, n_trivial, jobs=j))
            if "pararun" in tools:
                cache = os.path.join(wd, f"a{j}.cache.jsonl")
                cs.append(Case(w, "pararun", pararun_argv(tools, "A", J=j, CACHE=cache), nums, n_trivial,
                               check_file=cache, fresh=[cache], jobs=j))
            groups.append((w, cs))

    if "b" in sel:
        j = 2
        w, cs = f"b: {n_trivial} x printf JSON line -> one file, -j {j}", []
        out = os.path.join(wd, "b.out.jsonl")
        if "floor" in tools:
            cs.append(Case(w, "floor (posix_spawn)", [tools["floor"], "spawn", str(n_trivial), str(j)], nums, n_trivial, jobs=j))
        if "xargs" in tools:
            cs.append(Case(w, "xargs -P", [tools["xargs"], "-P", str(j), "-I{}", "printf", JSON_FMT, "{}"], nums, n_trivial, out=out, jobs=j))
        if "parallel" in tools:
            cs.append(Case(w, "GNU parallel", [tools["parallel"], "-j", str(j), "-q", "printf", JSON_FMT], nums, n_trivial, out=out, jobs=j))
        if "rust-parallel" in tools:
            cs.append(Case(w, "rust-parallel", [tools["rust-parallel"], "-j", str(j), "printf", JSON_FMT], nums, n_trivial, out=out, jobs=j))
        if "pararun" in tools:
            cs.append(Case(w, "pararun", pararun_argv(tools, "B", J=j, OUT=out), nums, n_trivial, check_file=out, fresh=[out], jobs=j))
        groups.append((w, cs))

    if "c" in sel:
        j = 2
        w, cs = f"c: {n_py} small Python items, -j {j}", []
        out = os.path.join(wd, "c.out.jsonl")
        if "xargs" in tools:
            cs.append(Case(w, "xargs -P (per-process)", [tools["xargs"], "-P", str(j), "-n", "1", py, work], pnums, n_py, out=out, jobs=j))
        if "parallel" in tools:
            cs.append(Case(w, "GNU parallel (per-process)", [tools["parallel"], "-j", str(j), "-q", py, work], pnums, n_py, out=out, jobs=j))
        if "rust-parallel" in tools:
            cs.append(Case(w, "rust-parallel (per-process)", [tools["rust-parallel"], "-j", str(j), py, work], pnums, n_py, out=out, jobs=j))
        if "pylib" in tools:
            cs.append(Case(w, "py pararun 0.1.0 map (process pool)",
                           [tools["pylib"], os.path.join(HERE, "pylib_map.py"), str(n_py), out, str(j), "process"],
                           pnums, n_py, check_file=out, fresh=[out], jobs=j))
        if "pararun" in tools:
            cs.append(Case(w, "pararun (per-process)", pararun_argv(tools, "C", J=j, OUT=out, PY=py, WORK=work),
                           pjsonl, n_py, check_file=out, fresh=[out], jobs=j))
            cs.append(Case(w, "pararun --persistent", pararun_argv(tools, "CP", J=j, OUT=out, PY=py, WORK=work),
                           pjsonl, n_py, check_file=out, fresh=[out], jobs=j))
        groups.append((w, cs))

    if "d" in sel and "floor" in tools:
        w, cs = f"d: spawn floor, {n_trivial} x /bin/true (C helper)", []
        for j in (1, 2, 8):
            for mode in ("fork", "spawn"):
                name = f"{'fork+exec' if mode == 'fork' else 'posix_spawn'}, {j} at once"
                cs.append(Case(w, name, [tools["floor"], mode, str(n_trivial), str(j)], nums, n_trivial, jobs=j))
        groups.append((w, cs))
    if "pararun-old" in tools:
        # PARARUN_OLD: every pararun row again with an older build, in the same group, so the
        # two run interleaved under the same load.
        for _, cs in groups:
            for c in [c for c in cs if c.tool.startswith("pararun")]:
                argv = [tools["pararun-old"]] + c.argv[1:]
                cs.append(Case(c.workload, c.tool + " [old build]", argv, c.stdin, c.n, out=c.out,
                               check_file=c.check_file, fresh=c.fresh, jobs=c.jobs))
    return groups


def fmt_s(x):
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


def report(groups, meta, n_trivial):
    lines = []
    lines.append(f"machine: nproc={meta['machine']['nproc']}, cpu={meta['machine']['cpu']}, kernel {meta['machine']['kernel']}; "
                 f"{meta['machine']['date']}; reps={meta['reps']}; "
                 f"load avg (1 min) at start {meta['loadavg_start'][0]:.2f}, at end {meta['loadavg_end'][0]:.2f}")
    lines.append("versions: " + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()))
    lines.append("")
    lines.append("thr vs xargs = median(xargs) / median(tool): above 1 is faster than xargs -P. "
                 "overhead = (median(tool) - median(floor)) / jobs, the floor being posix_spawn of /bin/true "
                 "with the same -j in the same run.")
    lines.append("")
    lines.append("| workload | tool | median s | min s | max s | jobs/s | thr vs xargs | overhead us/job | peak RSS MiB | runs ok |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for w, cs in groups:
        base = next((c for c in cs if c.tool.startswith("xargs") and c.times), None)
        floor = next((c for c in cs if c.tool.startswith("floor") and c.times), None)
        for c in cs:
            if not c.times:
                lines.append(f"| {w} | {c.tool} | FAILED | | | | | | | 0/{meta['reps']}: {c.errors[-1][:120] if c.errors else ''} |")
                continue
            med = statistics.median(c.times)
            thr = f"{statistics.median(base.times) / med:.2f}x" if base else ""
            ovh = ""
            if floor and c is not floor and not w.startswith("c"):
                ovh = f"{(med - statistics.median(floor.times)) / c.n * 1e6:.0f}"
            rss = f"{max(c.rss) / 1024:.1f}" if c.rss else ""
            okc = f"{len(c.times)}/{len(c.times) + len(c.errors)}"
            if c.errors:
                okc += f" ({c.errors[-1][:80]})"
            lines.append(f"| {w} | {c.tool} | {fmt_s(med)} | {fmt_s(min(c.times))} | {fmt_s(max(c.times))} | "
                         f"{c.n / med:.0f} | {thr} | {ovh} | {rss} | {okc} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of every row (default 3)")
    ap.add_argument("--only", default="a,b,c,d", help="workloads to run, e.g. a,c (default a,b,c,d)")
    ap.add_argument("--jobs-trivial", type=int, default=5000, help="items in workloads a, b, d (default 5000)")
    ap.add_argument("--jobs-python", type=int, default=300, help="items in workload c (default 300)")
    ap.add_argument("--pararun", help="pararun binary (default: $PARARUN; rows skipped when neither is set)")
    ap.add_argument("--out", help="directory for results.md and results.json (default: ./bench-results-DATE)")
    args = ap.parse_args()

    tools = find_tools(args)
    sel = set(args.only.split(","))
    meta = {"machine": machine(), "reps": args.reps, "versions": tool_versions(tools),
            "tools": tools, "skipped": [t for t in ("xargs", "parallel", "rust-parallel", "pylib", "pararun", "floor", "time") if t not in tools]}
    out_dir = os.path.abspath(args.out or f"bench-results-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out_dir, exist_ok=True)
    print(f"bench.py: tools {json.dumps({k: v for k, v in tools.items()})}", file=sys.stderr)
    if meta["skipped"]:
        print(f"bench.py: skipping rows for: {', '.join(meta['skipped'])}", file=sys.stderr)

    meta["loadavg_start"] = os.getloadavg()
    if meta["loadavg_start"][0] > 0.5:
        print(f"bench.py: warning: load average {meta['loadavg_start'][0]:.2f} at start; "
              "another process is busy and will skew absolute times (ratios suffer less)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pararun-bench-") as wd:
        groups = build_cases(tools, wd, sel, args.jobs_trivial, args.jobs_python)
        t_start = time.perf_counter()
        for w, cs in groups:
            # untimed warm-up on the first 50 items: page cache, perl/python module caches
            for c in cs:
                if not c.tool.startswith(("floor", "fork", "posix")):
                    warm_up(c, wd)
            for r in range(args.reps):
                for c in (cs if r % 2 == 0 else list(reversed(cs))):
                    before = len(c.times)
                    run_case(c, tools, wd)
                    last = f"{c.times[-1]:.3f}s" if len(c.times) > before else "FAILED: " + c.errors[-1][:200]
                    print(f"  [{time.perf_counter() - t_start:6.0f}s] {w} | {c.tool} | rep {r + 1}: {last}", file=sys.stderr)
    meta["loadavg_end"] = os.getloadavg()
    text = report(groups, meta, args.jobs_trivial)
    print(text)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": [{"workload": c.workload, "tool": c.tool, "n": c.n, "jobs": c.jobs,
                                            "times_s": c.times, "rss_kib": c.rss, "errors": c.errors}
                                           for _, cs in groups for c in cs]}, f, indent=1)
    print(f"bench.py: wrote {out_dir}/results.md and results.json", file=sys.stderr)


if __name__ == "__main__":
    main()
