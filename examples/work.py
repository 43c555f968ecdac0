#!/usr/bin/env python3
"""A typical pararun child: takes one JSON item as its argument, prints one JSON result.

    pararun -i examples/items.jsonl --cache out.jsonl -- python3 examples/work.py {}

Log lines may precede the result: pararun takes the last line of stdout as the result.
Anything on stderr passes through to pararun's stderr.
"""
import json
import sys
import time

item = json.loads(sys.argv[1])
text = item["text"]
time.sleep(0.05)  # stands in for real work: a model call, an HTTP request, a computation
print(f"processing {item['id']}")  # a log line: fine, only the last line is the result
print(json.dumps({
    "words": len(text.split()),
    "chars": len(text),
    "upper": text.upper(),
}))
