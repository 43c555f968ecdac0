#!/usr/bin/env python3
"""A minimal pararun --persistent worker: one JSON item per stdin line in, one JSON line out.

    pararun --persistent -j 4 -i examples/items.jsonl --cache out.jsonl -- python3 examples/worker.py

The interpreter starts once per slot instead of once per item. Keep stdout for answers only
(log to stderr), flush after each answer, and echo the item's key: pararun then checks that
every answer belongs to the item it was sent.
"""
import json
import sys

for line in sys.stdin:
    item = json.loads(line)
    text = item["text"]
    answer = {"id": item["id"], "words": len(text.split()), "chars": len(text), "upper": text.upper()}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
