"""pararun.serve makes a module a worker for the pararun CLI; and functions from modules the
script imports."""
import json
import re
import subprocess
import sys

import pytest

from conftest import read_jsonl, run_script
from pararun._binary import find_binary

SYNC_WORKER = '''\
import pararun

def work(item):
    if item["text"] == "boom":
        raise ValueError("boom")
    return {"words": len(item["text"].split())}

pararun.serve(work)
'''

ASYNC_WORKER = '''\
import asyncio
import pararun

async def work(item):
    await asyncio.sleep(0.2)
    if item["text"] == "boom":
        raise ValueError("boom")
    return {"words": len(item["text"].split())}

if __name__ == "__main__":
    pararun.serve(work)
'''


def write_items(path, n, boom=None):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "text": "boom" if i == boom else "a b " * (i % 4)}) + "\n")


def run_cli(args, cwd):
    return subprocess.run([find_binary(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("protocol", ["ordered", "concurrent"])
def test_serve_a_plain_function(workdir, protocol):
    (workdir / "worker.py").write_text(SYNC_WORKER)
    write_items(workdir / "items.jsonl", 50, boom=7)
    out = run_cli(["--persistent", "--protocol", protocol, "-j", "2", "-i", "items.jsonl",
                   "--cache", "out.jsonl", "--failures", "f.jsonl", "--",
                   sys.executable, "worker.py"], workdir)
    assert out.returncode == 1, out.stderr  # one item failed
    records = read_jsonl(workdir / "out.jsonl")
    assert sorted(r["id"] for r in records) == [i for i in range(50) if i != 7]
    assert all(r["words"] == 2 * (r["id"] % 4) for r in records)
    (failure,) = read_jsonl(workdir / "f.jsonl")
    assert failure["key"] == 7
    assert "ValueError: boom" in (failure["detail"] or "") + (failure["stderr_tail"] or "")


def test_serve_a_coroutine_function_concurrently(workdir):
    (workdir / "worker.py").write_text(ASYNC_WORKER)
    write_items(workdir / "items.jsonl", 200, boom=3)
    out = run_cli(["--persistent", "--protocol", "concurrent", "--pipeline", "100", "-j", "1",
                   "-i", "items.jsonl", "--cache", "out.jsonl", "--", sys.executable,
                   "worker.py"], workdir)
    assert out.returncode == 1, out.stderr
    assert "ValueError: boom" in out.stderr
    assert len(read_jsonl(workdir / "out.jsonl")) == 199
    took = re.search(r"in (\d+)ms|in (\d+\.\d+)s", out.stderr)
    seconds = int(took.group(1)) / 1000 if took.group(1) else float(took.group(2))
    assert seconds < 10, out.stderr  # 2 waves of 0.2 s, where one at a time takes 40 s


def test_func_from_an_imported_module_with_a_main_guard(workdir):
    (workdir / "mywork.py").write_text("def double(x):\n    return {'v': 2 * x}\n")
    (workdir / "main.py").write_text(
        "import pararun\nfrom mywork import double\n\n"
        "if __name__ == '__main__':\n"
        "    for r in pararun.imap(double, range(5), cache_path='c.jsonl'):\n"
        "        print(json.dumps(r))\n".replace("import pararun", "import json, pararun")
    )
    out = run_script("main.py", workdir)
    assert out.returncode == 0, out.stderr
    got = sorted((json.loads(line) for line in out.stdout.splitlines()), key=lambda r: r["id"])
    assert got == [{"id": i, "v": 2 * i} for i in range(5)]


def test_a_script_run_with_python_m_and_no_guard(workdir):
    (workdir / "pkg").mkdir()
    (workdir / "pkg" / "__init__.py").write_text("")
    (workdir / "pkg" / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (workdir / "pkg" / "job.py").write_text(
        "import pararun\nfrom . import helper\n\n"
        "def work(x):\n    return {'v': helper.double(x)}\n\n"
        "pararun.map(work, range(20), n_workers=2, cache_path='m.jsonl')\n"
        "print('top level done')\n"
    )
    out = subprocess.run([sys.executable, "-m", "pkg.job"], cwd=workdir, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("top level done") == 1  # the workers stopped at the call
    records = sorted(read_jsonl(workdir / "m.jsonl"), key=lambda r: r["id"])
    assert records == [{"id": i, "v": 2 * i} for i in range(20)]


def test_a_run_inside_a_worker_of_an_unguarded_script(workdir):
    (workdir / "nested.py").write_text(
        "import pararun\n\n"
        "def inner(x):\n    return {'sq': x * x}\n\n"
        "def outer(x):\n"
        "    pararun.map(inner, range(10 * x, 10 * x + 3), n_workers=1, cache_path=f'in{x}.jsonl')\n"
        "    return {'done': x}\n\n"
        "pararun.map(outer, range(2), n_workers=2, cache_path='out.jsonl')\n"
    )
    out = run_script("nested.py", workdir)
    assert out.returncode == 0, out.stderr
    assert len(read_jsonl(workdir / "out.jsonl")) == 2
    assert sorted(r["sq"] for r in read_jsonl(workdir / "in1.jsonl")) == [100, 121, 144]
