"""kill -9 and Ctrl-C of the Python program mid-run."""
import os
import pty
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import read_jsonl

PROGRAM = '''\
import os, sys, time
import pararun

SIDE = "finished.txt"

def job(item):
    time.sleep(0.02)
    fd = os.open(SIDE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%d\\n" % item["id"])
    os.close(fd)
    return {"id": item["id"]}

if __name__ == "__main__":
    items = ({"id": i} for i in range(int(sys.argv[1])))
    if os.environ.get("USE_IMAP"):
        for record in pararun.imap(job, items, n_workers=2, cache_path="cache.jsonl"):
            pass
    else:
        pararun.map(job, items, n_workers=2, cache_path="cache.jsonl")
    print("DONE", flush=True)
'''


def side_ids(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(line) for line in f if line.strip()]


def processes_with(token):
    """Pids of the processes whose environment holds token (the program, pararun, its
    workers: they all inherit it)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if token.encode() in f.read():
                    with open(f"/proc/{pid}/stat") as s:
                        if s.read().split(")")[-1].split()[0] != "Z":
                            found.append(int(pid))
        except OSError:
            pass
    return found


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_kill_9_keeps_every_finished_result_and_leaves_nothing_running(workdir):
    (workdir / "prog.py").write_text(PROGRAM)
    token = "PARARUN_TEST_" + uuid.uuid4().hex
    env = dict(os.environ, PARARUN_TEST_TOKEN=token)
    proc = subprocess.Popen([sys.executable, "prog.py", "100000"], cwd=workdir, env=env,
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    assert wait_for(lambda: len(side_ids(workdir / "finished.txt")) >= 50, 20)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # pararun stops its workers and exits within a few seconds
    assert wait_for(lambda: not processes_with(token), 8), processes_with(token)
    finished = side_ids(workdir / "finished.txt")
    cached = [r["id"] for r in read_jsonl(workdir / "cache.jsonl")]
    assert len(cached) == len(set(cached))
    assert set(cached) <= set(finished)
    # lost: at most the items that were inside func when the workers were stopped
    assert len(set(finished) - set(cached)) <= 2, (len(finished), len(cached))
    # the next run skips exactly the cached items
    open(workdir / "finished.txt", "w").close()
    n = len(cached) + 40
    rerun = subprocess.run([sys.executable, "prog.py", str(n)], cwd=workdir,
                           capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert f"ran 40 (40 succeeded, 0 failed), {len(cached)} cached" in rerun.stderr
    assert sorted(side_ids(workdir / "finished.txt")) == sorted(set(range(n)) - set(cached))


@pytest.mark.parametrize("api", ["map", "imap"])
def test_ctrl_c_at_a_terminal_stops_cleanly_with_one_keyboard_interrupt(workdir, api):
    (workdir / "prog.py").write_text(PROGRAM)
    pid, fd = pty.fork()
    if pid == 0:  # the child: a program in a terminal of its own, as a user runs it
        os.chdir(workdir)
        if api == "imap":
            os.environ["USE_IMAP"] = "1"
        os.execv(sys.executable, [sys.executable, "prog.py", "100000"])
    try:
        assert wait_for(lambda: len(side_ids(workdir / "finished.txt")) >= 30, 20)
        os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT to the foreground group
        output, status = read_until_exit(fd, pid, 20)
    finally:
        os.close(fd)
    # without colour codes (Python 3.13 colours tracebacks on a terminal)
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", output.decode(errors="replace"))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT or \
        os.WEXITSTATUS(status) == 130, (status, text)
    lines = [line.strip() for line in text.splitlines()]
    assert lines.count("KeyboardInterrupt") == 1, text
    assert text.count("Traceback") == 1, text  # the program's own, none from workers
    assert "SIGINT" in text  # pararun said it stopped
    assert "DONE" not in text
    cached = [r["id"] for r in read_jsonl(workdir / "cache.jsonl")]
    assert cached and len(cached) == len(set(cached))
    finished = side_ids(workdir / "finished.txt")
    assert len(set(finished) - set(cached)) <= 2


def test_ctrl_z_pauses_pararun_and_its_workers_and_fg_resumes_them(workdir):
    (workdir / "prog.py").write_text(PROGRAM)
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(workdir)
        os.execv(sys.executable, [sys.executable, "prog.py", "300"])
    try:
        assert wait_for(lambda: len(side_ids(workdir / "finished.txt")) >= 20, 20)
        os.write(fd, b"\x1a")  # Ctrl-Z
        assert wait_for(lambda: state(pid) == "T", 5)
        stopped = len(side_ids(workdir / "finished.txt"))
        time.sleep(0.5)
        assert len(side_ids(workdir / "finished.txt")) == stopped  # workers paused too
        os.kill(pid, signal.SIGCONT)  # what fg does
        output, status = read_until_exit(fd, pid, 30)
    finally:
        os.close(fd)
    text = output.decode(errors="replace")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, text
    assert "DONE" in text and "SIGTSTP" in text
    assert len(read_jsonl(workdir / "cache.jsonl")) == 300


def read_until_exit(fd, pid, seconds):
    """What the program in the terminal `fd` prints until it exits (or `seconds` pass), and its
    wait status."""
    output = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the program has exited and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    return output, status


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
