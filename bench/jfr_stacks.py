#!/usr/bin/env python3
"""Summarises `jfr print --events jdk.ExecutionSample` (stdin): samples per thread pool, the
methods on top of the stack (self time) and the methods anywhere on it (inclusive), and the
share of samples in message-format down-conversion."""
import collections
import re
import sys

samples = []  # (thread, [frames top first])
thread, frames, in_stack = None, [], False
for line in sys.stdin:
    s = line.strip()
    if s.startswith("jdk.ExecutionSample"):
        thread, frames, in_stack = None, [], False
    elif s.startswith("sampledThread"):
        m = re.search(r'"([^"]*)"', s)
        thread = m.group(1) if m else "?"
    elif s.startswith("stackTrace = ["):
        in_stack = True
    elif in_stack and s == "]":
        in_stack = False
        samples.append((thread or "?", frames))
    elif in_stack and s and s != "...":
        frames.append(re.sub(r"\(.*$", "", s))

total = len(samples)
print(f"broker execution samples: {total}")
if not total:
    sys.exit(0)

def pool(name):
    return re.sub(r"[-_]?\d+$", "", name)

def table(title, counter, n=20):
    print(f"\n{title}")
    for key, c in counter.most_common(n):
        print(f"  {100 * c / total:5.1f}%  {c:6d}  {key}")

table("samples by thread pool", collections.Counter(pool(t) for t, _ in samples), 10)
table("self (top frame)", collections.Counter(f[0] for _, f in samples if f))
inclusive = collections.Counter()
for _, f in samples:
    inclusive.update(set(f))
table("inclusive (anywhere on the stack)", inclusive, 30)
down = sum(1 for _, f in samples if any("downConvert" in x or "DownConversion" in x for x in f))
fetch = sum(1 for _, f in samples if any("handleFetchRequest" in x for x in f))
produce = sum(1 for _, f in samples if any("handleProduceRequest" in x for x in f))
print(f"\nin fetch handling (KafkaApis.handleFetchRequest): {100 * fetch / total:.1f}%")
print(f"in produce handling (KafkaApis.handleProduceRequest): {100 * produce / total:.1f}%")
print(f"in down-conversion (a frame named *downConvert* / *DownConversion*): {100 * down / total:.1f}%")
