import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_script(path, cwd, timeout=60, **kw):
    """Runs a Python script as a program, with the tests' environment."""
    return subprocess.run([sys.executable, path], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kw)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
