"""The seed library's README programs, verbatim: they run unchanged, write the records the
seed would write, and a second run runs nothing."""
import re

from conftest import read_jsonl, run_script

MAP_EXAMPLE = '''\
import pararun as pr
import time

def process_file(filename):
    time.sleep(0.1)  # Simulate blocking work
    return {"id": filename, "status": "done"}

# Works with Lists or Generators
files = (f"data_{i}.txt" for i in range(100))

# Result is saved to 'results.jsonl' automatically
pr.map(
    func=process_file,
    iterable=files,
    n_workers=4,
    cache_path="results.jsonl"
)
'''

ASYNC_EXAMPLE = '''\
import pararun as pr
import asyncio

async def fetch_url(item):
    await asyncio.sleep(0.1) # Simulate network request
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


def summary(stderr):
    m = re.search(r"ran (\d+) \((\d+) succeeded, (\d+) failed\), (\d+) cached", stderr)
    assert m, stderr
    return tuple(int(g) for g in m.groups())


def test_map_example_without_main_guard(workdir):
    (workdir / "example.py").write_text(MAP_EXAMPLE)
    first = run_script("example.py", workdir)
    assert first.returncode == 0, first.stderr
    assert summary(first.stderr) == (100, 100, 0, 0)
    records = read_jsonl(workdir / "results.jsonl")
    expected = [{"id": f"data_{i}.txt", "status": "done"} for i in range(100)]
    assert sorted(records, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])
    assert "Traceback" not in first.stderr
    second = run_script("example.py", workdir)
    assert second.returncode == 0, second.stderr
    assert summary(second.stderr) == (0, 0, 0, 100)
    assert len(read_jsonl(workdir / "results.jsonl")) == 100


def test_async_example_second_run_runs_nothing(workdir):
    (workdir / "example.py").write_text(ASYNC_EXAMPLE)
    first = run_script("example.py", workdir)
    assert first.returncode == 0, first.stderr
    assert summary(first.stderr) == (100, 100, 0, 0)
    records = read_jsonl(workdir / "async_results.jsonl")
    expected = [{"id": f"https://example.com/{i}", "status": 200} for i in range(100)]
    assert sorted(records, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])
    second = run_script("example.py", workdir)
    assert second.returncode == 0, second.stderr
    assert summary(second.stderr) == (0, 0, 0, 100)


TWO_RUNS = '''\
import pararun

def first(i):
    return {"id": i}

pararun.map(first, range(4), n_workers=2, cache_path="one.jsonl", progress=False)

def second(i):
    return {"id": i, "second": True}

pararun.map(second, range(4), n_workers=2, cache_path="two.jsonl", progress=False)
'''


def test_a_script_without_a_guard_may_call_pararun_twice(workdir):
    # A worker for the second call runs the script past the first call (skipped, not run
    # again) up to the second, where its function is defined.
    (workdir / "two.py").write_text(TWO_RUNS)
    done = run_script("two.py", workdir)
    assert done.returncode == 0, done.stderr
    assert sorted(r["id"] for r in read_jsonl(workdir / "one.jsonl")) == [0, 1, 2, 3]
    assert [r.get("second") for r in read_jsonl(workdir / "two.jsonl")] == [True] * 4
