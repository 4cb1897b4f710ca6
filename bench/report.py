#!/usr/bin/env python3
"""Turns bench/raw/ (written by bench/run) into bench/RESULTS.md on stdout.

Every figure comes from the raw files: RESULT lines of the peers, the Java tools' own summary
lines, /usr/bin/time -v, the .meta files (broker CPU ticks, uptime before and after). One set
of tables per broker: bench/raw/kafka-<version>/ (a raw/runs/ directory of an older run, without
a broker directory, counts as Kafka 3.9.2). The hand-written analysis of the committed run,
bench/ANALYSIS.md, is appended when present."""
import json
import os
import re
import statistics
import sys

RAW = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ["godev", "godev-native", "kafka-crate", "kafka-go", "java", "rdkafka", "rskafka", "rustfs-kafka"]
LEGACY_BROKER = "3.9.2"


def backend(broker):
    """This framework's backend on a broker: `kafka` up to 3.9, `confluent` on 4.x."""
    return "confluent" if int(broker.split(".")[0]) >= 4 else "kafka"


def crate_version(name):
    """A crate's version from a `NAME crate: VERSION` line of machine.txt, or ""."""
    m = re.search(rf"^{re.escape(name)} crate: ([^\s,]+)", machine, re.M)
    return f" {m.group(1)}" if m else ""


def peer_name(peer, broker):
    return {
        "godev": f"godev-kafka (typed send / #[handler], `{backend(broker)}` backend)",
        "godev-native": "godev-kafka (typed send / #[handler], `native` backend)",
        "kafka-crate": "`kafka` crate 0.10 (raw)",
        "kafka-go": "segmentio/kafka-go",
        "java": f"Java client {broker}",
        "rdkafka": "rdkafka (librdkafka)",
        "rskafka": f"rskafka{crate_version('rskafka')} (pure Rust, no group)",
        "rustfs-kafka": f"rustfs-kafka{crate_version('rustfs-kafka')} (pure Rust, sync)",
    }[peer]


def read(path):
    with open(path) as f:
        return f.read()


def load_avg(uptime):
    m = re.search(r"load average: ([\d.]+)", uptime)
    return float(m.group(1)) if m else float("nan")


def time_fields(text):
    """Peak RSS (MiB) and user + system CPU seconds from /usr/bin/time -v."""
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    u = re.search(r"User time \(seconds\): ([\d.]+)", text)
    s = re.search(r"System time \(seconds\): ([\d.]+)", text)
    rss = int(m.group(1)) / 1024 if m else None
    cpu = float(u.group(1)) + float(s.group(1)) if u and s else None
    return rss, cpu


def result_line(text):
    """The last `RESULT {json}` line of a peer's output."""
    result = None
    for line in text.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    return result


def parse_run(base, broker):
    meta = dict(l.split("=", 1) for l in read(base + ".meta").splitlines() if "=" in l)
    out = read(base + ".out")
    time = read(base + ".time") if os.path.exists(base + ".time") else ""
    run = {
        "broker": meta.get("broker", broker),
        "mode": meta["mode"], "peer": meta["peer"], "round": meta["round"],
        "exit": int(meta["exit"]),
        "broker_cpu": int(meta["broker_cpu_ticks"]) / int(meta["clk_tck"]),
        "load_before": load_avg(meta["uptime_before"]), "load_after": load_avg(meta["uptime_after"]),
    }
    run["rss_mib"], run["cpu"] = time_fields(time)
    result = result_line(out)
    if result is None and run["peer"] == "java" and run["mode"] == "produce":
        # The summary is the last "N records sent, R records/sec" line (the tool prints one
        # every 5 s while it runs).
        found = re.findall(r"(\d+) records sent, ([\d.]+) records/sec", out)
        if found:
            n, rate = int(found[-1][0]), float(found[-1][1])
            result = {"n": n, "secs": n / rate, "value_bytes": 1024}
    if result is None and run["peer"] == "java" and run["mode"] == "consume":
        lines = [l for l in out.splitlines() if l.strip()]
        for i, l in enumerate(lines):
            if l.startswith("start.time") and i + 1 < len(lines):
                head = [h.strip() for h in l.split(",")]
                vals = [v.strip() for v in lines[i + 1].split(",")]
                row = dict(zip(head, vals))
                n = int(float(row["data.consumed.in.nMsg"]))
                result = {"n": n, "secs": float(row["fetch.time.ms"]) / 1000,
                          "secs_with_join": (float(row["fetch.time.ms"]) + float(row["rebalance.time.ms"])) / 1000}
    if result is None or run["exit"] != 0:
        run["failed"] = True
        return run
    run["failed"] = False
    if run["mode"] in ("produce", "consume"):
        run["eps"] = result["n"] / result["secs"]
        run["mbs"] = run["eps"] * result.get("value_bytes", 1024) / 1e6
        if "secs_with_join" in result:
            run["eps_join"] = result["n"] / result["secs_with_join"]
    else:
        for k in ("p50_us", "p99_us", "p999_us", "max_us", "samples", "sent"):
            run[k] = result[k]
    return run


def broker_dirs():
    """(version, directory) of every broker in RAW, oldest version first."""
    found = []
    for name in os.listdir(RAW):
        m = re.match(r"kafka-([\d.]+)$", name)
        if m and os.path.isdir(os.path.join(RAW, name)):
            found.append((m.group(1), os.path.join(RAW, name)))
    if not found and os.path.isdir(os.path.join(RAW, "runs")):
        found.append((LEGACY_BROKER, RAW))
    return sorted(found, key=lambda vd: [int(x) for x in vd[0].split(".")])


BROKERS = broker_dirs()
runs = []
for version, d in BROKERS:
    for name in sorted(os.listdir(os.path.join(d, "runs"))):
        if name.endswith(".meta"):
            runs.append(parse_run(os.path.join(d, "runs", name[: -len(".meta")]), version))
measured = [r for r in runs if r["round"] != "profiled"]


def pick(broker, mode, peer, key):
    return [r[key] for r in measured if r["broker"] == broker and r["mode"] == mode
            and r["peer"] == peer and not r["failed"] and r.get(key) is not None]


def med(values):
    return statistics.median(values) if values else None


def spread(values, fmt):
    if not values:
        return "—"
    return f"{fmt(med(values))} ({fmt(min(values))}–{fmt(max(values))})"


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "—"


f0 = lambda v: f"{v:,.0f}"
f1 = lambda v: f"{v:.1f}"
f2 = lambda v: f"{v:.2f}"
ms = lambda v: f"{v / 1000:.1f}"

machine = read(os.path.join(RAW, "machine.txt"))
rounds = sorted({r["round"] for r in measured})
n_events = None
m = re.search(r"--n (\d+)", machine)
if m:
    n_events = int(m.group(1))
versions = [v for v, _ in BROKERS]


def peers_of(broker):
    return [p for p in PEERS if any(r["peer"] == p and r["broker"] == broker for r in measured)]


def profile_share(d, peer, what):
    """A percentage line of a broker profile summary (`in down-conversion`, ...), or None."""
    path = os.path.join(d, "profile", f"broker-consume-{peer}.txt")
    if not os.path.exists(path):
        return None
    m = re.search(rf"^in {re.escape(what)}.*: ([\d.]+)%$", read(path), re.M)
    return float(m.group(1)) if m else None


def baselines(broker):
    """The peers a broker's × columns compare with: kafka-go and the Java client, or rdkafka in
    a run of neither."""
    ran = {r["peer"] for r in runs if r["broker"] == broker}
    return [p for p in ("kafka-go", "java") if p in ran] or [p for p in ("rdkafka",) if p in ran]


BASE_LABEL = {"kafka-go": "kafka-go", "java": "Java", "rdkafka": "rdkafka"}
TITLE_NAME = {"kafka-go": "kafka-go", "java": "the Java client", "rdkafka": "rdkafka",
              "kafka-crate": "the raw `kafka` crate", "rskafka": "rskafka",
              "rustfs-kafka": "rustfs-kafka"}


def listing(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


ran_peers = {r["peer"] for r in runs}
others = [TITLE_NAME[p] for p in TITLE_NAME if p in ran_peers]
if ran_peers & {"godev", "godev-native"}:
    title = "godev-kafka" + (f" vs {listing(others)}" if others else "")
else:
    title = listing(others) if others else "no peer"
root = os.path.dirname(HERE)
raw_abs = os.path.abspath(RAW)
raw_shown = os.path.relpath(raw_abs, root) if raw_abs.startswith(root + os.sep) else raw_abs

out = []
w = out.append
w(f"# Benchmarks: {title}\n")
w(f"Generated by `bench/report.py` from the raw outputs in `{raw_shown}/` of one `bench/run` "
  "(issue #8). Do not edit by hand: rerun `bench/run`.\n")
w("## Machine and command\n")
w("```\n" + machine.strip() + "\n```\n")
w(f"Every peer ran every workload {len(rounds)} times, interleaved (the (broker, peer) pairs of "
  "a workload in one list whose order rotates each round); figures are medians with the spread "
  "(min–max) in brackets. "
  + ("The brokers are single-node " + " and ".join(f"Kafka {v}" for v in versions)
     + ", started for the run on their own ports and running side by side; each table compares "
     "peers on one broker, and its × columns are ratios to the peers they name (kafka-go and the "
     "Java client, or rdkafka in a run without them) on that same broker. " if len(versions) > 1 else
     f"All peers talk to the same single-node Kafka {versions[0]} broker, started for the run "
     "on its own port. ")
  + ("This framework runs on its `kafka` backend against Kafka 3.9 and on its "
     "`confluent` backend against Kafka 4. " if "godev" in ran_peers else "")
  + ("The `godev-native` rows are this framework on its `native` backend, on every broker. "
     if "godev-native" in ran_peers else "")
  + "The machine is shared with other engineers' builds "
  "and tests: the load average before and after every run is listed at the end.\n")

# ------------------------------------------------------------------ workloads
kafka4 = any(backend(v) == "confluent" for v in versions)
w("## Workloads\n")
w(f"- **Produce**: {n_events:,} keyed 1 KiB JSON events per run (value 1,024 B ± a few bytes), "
  "acks=1, a fresh 6-partition topic per run. MB/s counts value bytes (10^6 B). CPU = user + "
  "system seconds of the client process; broker CPU = the broker's CPU seconds during the run. "
  "The Java row is `ProducerPerformance` (random bytes, linger.ms=0; unkeyed on 3.9, whose tool "
  "has no key option" + (", keyed round robin over 1,000 keys on 4.4). The confluent backend "
  "runs with acks=1 and so without idempotence (which needs acks=all)." if kafka4 else ")."))
w(f"- **Consume + dispatch**: a fresh group reads {n_events:,} events from one 6-partition topic "
  "per broker, filled once by this framework's producer (CloudEvents JSON, so its consumer "
  "dispatches them to a `#[handler]`" + ("; on Kafka 4 the confluent backend also writes the "
  "CloudEvents `ce_*` headers" if kafka4 else "") + "). events/s is timed from the first record "
  "handled to the last (group join excluded, as the Java tool's `fetch.nMsg.sec`); \"incl. "
  "join\" times from process start. " + ("On Kafka 4 this framework's consumer and the Java "
  "client join with the KIP-848 group protocol; kafka-go and librdkafka 2.0 only know the "
  "classic protocol. " if kafka4 else "") + "The Java row (`ConsumerPerformance`) does no JSON "
  "decoding.")
w("- **End-to-end latency at 5,000 events/s**: one process per peer produces at a fixed 5k "
  "events/s (paced every 0.5 ms) with the send time (wall clock, ns) inside each JSON event, "
  "and consumes the same fresh 6-partition topic in a group; the handler records now − sent. "
  "After a warm-up (≥ 5 s, and 2 s after the first record arrived) the run measures for the "
  "configured seconds. Milliseconds; × columns are p99 ratios (lower is better)."
  + ("" if ran_peers & {"rskafka", "rustfs-kafka"} else "\n"))
if "rskafka" in ran_peers:
    w("- **rskafka** (pure Rust, async on tokio) has no consumer groups and no offset storage: its "
      "consume reads every partition of the source topic from offset 0 directly, so it has no "
      "group join (\"incl. join\" is metadata and connections) and commits nothing; one "
      "`PartitionClient` (its own connection) per partition, fetches of up to 1 MiB with a 100 ms "
      "wait, the next fetch in flight while the previous one's records are dispatched. It has no "
      "partitioner and no batching of its own: the producer sends each record to partition key "
      "mod 6, one `PartitionClient` per partition sending what has queued up (at most 900 KB of "
      "values) as one uncompressed request, one request in flight per partition. It always asks for "
      "acks=all: on this single-node broker with replication factor 1 that is the same wait as "
      "acks=1. Its latency run reads the fresh topic the same way, and produces on partition "
      "clients of its own. rskafka 0.6 leaves Nagle's algorithm on (no TCP_NODELAY) and writes "
      "a request's length and body in two writes, so on an otherwise idle connection the body "
      "waits for the broker's delayed ACK (about 40 ms): at 5k events/s every produce request "
      "takes about that long.")
if "rustfs-kafka" in ran_peers:
    consume_failed = [r for r in runs if r["peer"] == "rustfs-kafka" and r["mode"] == "consume" and r["failed"]]
    w("- **rustfs-kafka** (pure Rust, synchronous; the `kafka` crate's API on kafka-protocol, "
      "Produce v9 and Fetch v12): its `BatchProducer` with its defaults (a flush, one blocking "
      "Produce request per broker, at 1 MiB or 5 ms of linger; xxHash32 key partitioner; "
      "CreateTime timestamps, without which the crate writes timestamp 0 and time retention "
      "deletes the records) and its `Consumer` with a group used for offset storage only, as "
      "the `kafka` crate (the crate's group membership is a separate low-level API), 1 MiB per "
      "partition and fetch, commits every 500 ms."
      + (" Its consume runs failed: the crate decodes every record batch of a partition's "
         "fetched data and fails the whole poll on a truncated last one (\"Protocol error: "
         "Encoding/decoding error\"), and the broker cuts the data at the fetch size, inside a "
         "batch, whenever a partition holds more than that past the fetch offset — as every "
         "partition of the source topic does." if consume_failed else ""))
if ran_peers & {"rskafka", "rustfs-kafka"}:
    w("")

# ------------------------------------------------------------------ the two backends side by side
fw = [(v, d) for v, d in BROKERS if pick(v, "produce", "godev", "eps") or pick(v, "consume", "godev", "eps")]
if len({backend(v) for v, _ in fw}) > 1:
    w("## This framework: `kafka` backend on Kafka 3.9 beside `confluent` backend on Kafka 4\n")
    w("Medians of the tables below; × columns compare with kafka-go and the Java client on the "
      "same broker. The `kafka` crate speaks only Produce v0 and Fetch v0: a Kafka 3.x broker "
      "converts every produced message set up to the v2 format and down-converts every fetched "
      "batch to v0 (\"down-conversion\", the share of the broker's profile samples spent there "
      "during one consume run is below), and Kafka 4.0 removed these versions, so that backend "
      "and the crate cannot talk to Kafka 4 at all. The confluent backend speaks the current "
      "protocol.\n")
    head = "| | " + " | ".join(f"`{backend(v)}` backend, Kafka {v}" for v, _ in fw) + " |"
    w(head)
    w("|---" * (len(fw) + 1) + "|")

    def row(label, cell):
        w(f"| {label} | " + " | ".join(cell(v, d) for v, d in fw) + " |")

    def with_ratios(v, mode, key, fmt):
        own = med(pick(v, mode, "godev", key))
        if own is None:
            return "—"
        go, java = med(pick(v, mode, "kafka-go", key)), med(pick(v, mode, "java", key))
        return f"{fmt(own)} ({ratio(own, go)} kafka-go, {ratio(own, java)} Java)"

    row("produce events/s", lambda v, d: with_ratios(v, "produce", "eps", f0))
    row("consume + dispatch events/s", lambda v, d: with_ratios(v, "consume", "eps", f0))
    row("consume incl. join events/s", lambda v, d: (lambda x: f0(x) if x is not None else "—")(
        med(pick(v, "consume", "godev", "eps_join"))))
    row("latency p50 / p99 / p99.9 ms", lambda v, d: " / ".join(
        ms(x) if x is not None else "—" for x in (med(pick(v, "latency", "godev", k)) for k in ("p50_us", "p99_us", "p999_us"))))
    row("latency p99 × kafka-go, × Java", lambda v, d: ", ".join(
        ratio(med(pick(v, "latency", "godev", "p99_us")), med(pick(v, "latency", p, "p99_us"))) for p in ("kafka-go", "java")))
    row("peak RSS MiB: produce / consume / latency", lambda v, d: " / ".join(
        f0(x) if x is not None else "—" for x in (med(pick(v, mode, "godev", "rss_mib")) for mode in ("produce", "consume", "latency"))))
    row("client CPU s: produce / consume", lambda v, d: " / ".join(
        f1(x) if x is not None else "—" for x in (med(pick(v, mode, "godev", "cpu")) for mode in ("produce", "consume"))))
    row("broker CPU s: produce / consume", lambda v, d: " / ".join(
        f1(x) if x is not None else "—" for x in (med(pick(v, mode, "godev", "broker_cpu")) for mode in ("produce", "consume"))))

    def profiled(v, d):
        share = profile_share(d, "godev", "down-conversion")
        if share is None:
            return "not profiled"
        return f"{share:.1f}% of broker samples"
    row("broker in down-conversion (profiled consume)", profiled)
    w("")

# ------------------------------------------------------------------ the native backend's targets
nat = [(v, d) for v, d in BROKERS if pick(v, "produce", "godev-native", "eps") or pick(v, "consume", "godev-native", "eps")]
if nat:
    w("## This framework's `native` backend beside rdkafka\n")
    w("Medians of the tables below. Issue #13's targets: produce and consume + dispatch at least "
      "1.0× rdkafka on each broker, p99 at 5k events/s at most rdkafka's, RSS flat in the soak.\n")
    w("| | " + " | ".join(f"Kafka {v}" for v, _ in nat) + " | target |")
    w("|---" * (len(nat) + 2) + "|")

    def nrow(label, cell, target):
        w(f"| {label} | " + " | ".join(cell(v) for v, _ in nat) + f" | {target} |")

    def versus(v, mode, key, fmt):
        own, rd = med(pick(v, mode, "godev-native", key)), med(pick(v, mode, "rdkafka", key))
        if own is None:
            return "—"
        return f"{fmt(own)} ({ratio(own, rd)} rdkafka {fmt(rd) if rd else '—'})"

    nrow("produce events/s", lambda v: versus(v, "produce", "eps", f0), "≥ 1.0× rdkafka")
    nrow("consume + dispatch events/s", lambda v: versus(v, "consume", "eps", f0), "≥ 1.0× rdkafka")
    nrow("latency p99 ms at 5k/s", lambda v: versus(v, "latency", "p99_us", lambda x: ms(x)), "≤ 1.0× rdkafka")
    nrow("peak RSS MiB: produce / consume / latency", lambda v: " / ".join(
        f0(x) if x is not None else "—" for x in (med(pick(v, mode, "godev-native", "rss_mib")) for mode in ("produce", "consume", "latency"))), "")
    nrow("client CPU s: produce / consume (rdkafka)", lambda v: " / ".join(
        f1(x) if x is not None else "—" for x in (med(pick(v, mode, "godev-native", "cpu")) for mode in ("produce", "consume")))
        + " (" + " / ".join(f1(x) if x is not None else "—" for x in (med(pick(v, mode, "rdkafka", "cpu")) for mode in ("produce", "consume"))) + ")", "")
    w("")

# ------------------------------------------------------------------ per broker
for version, d in BROKERS:
    peers = peers_of(version)
    w(f"## Kafka {version}\n")
    probe = os.path.join(d, "kafka-crate-probe.txt")
    if os.path.exists(probe):
        w("The raw `kafka` crate is not in these tables: it sends only Produce v0 and Fetch v0, "
          "which Kafka 4.0 removed, and the broker closes the connection. `bench/run` probed it "
          "once:\n")
        w("```\n" + read(probe).strip() + "\n```\n")
    for p in ("rskafka", "rustfs-kafka"):
        probe = os.path.join(d, f"{p}-probe.txt")
        if not os.path.exists(probe):
            continue
        text = read(probe)
        passed = all(re.search(rf"^{mode}: exit 0:", text, re.M) for mode in ("produce", "consume"))
        w(f"{peer_name(p, version)} was probed once on this broker (produce 10 events, consume "
          f"them) and " + ("passed, so it runs in these tables:" if passed else
                            "failed, so it is not in these tables:") + "\n")
        w("```\n" + text.strip() + "\n```\n")

    bases = baselines(version)
    cross = "".join(f" × {BASE_LABEL[b]} |" for b in bases)
    cross_rule = "---|" * len(bases)

    def ratios(value, mode, key):
        return "".join(f" {ratio(value, med(pick(version, mode, b, key)))} |" for b in bases)

    w(f"### Produce (Kafka {version})\n")
    w(f"| peer | events/s | MB/s |{cross} peak RSS MiB | client CPU s | broker CPU s | runs |")
    w(f"|---|---|---|{cross_rule}---|---|---|---|")
    for p in peers:
        g = lambda key: pick(version, "produce", p, key)
        e = g("eps")
        w(f"| {peer_name(p, version)} | {spread(e, f0)} | {spread(g('mbs'), f1)} |"
          f"{ratios(med(e), 'produce', 'eps')} "
          f"{spread(g('rss_mib'), f0)} | {spread(g('cpu'), f1)} | {spread(g('broker_cpu'), f1)} | {len(e)} |")
    w("")

    w(f"### Consume + dispatch (Kafka {version})\n")
    w(f"| peer | events/s | MB/s |{cross} incl. join events/s | peak RSS MiB | client CPU s | broker CPU s | runs |")
    w(f"|---|---|---|{cross_rule}---|---|---|---|---|")
    for p in peers:
        g = lambda key: pick(version, "consume", p, key)
        e = g("eps")
        w(f"| {peer_name(p, version)} | {spread(e, f0)} | {spread(g('mbs'), f1)} |"
          f"{ratios(med(e), 'consume', 'eps')} "
          f"{spread(g('eps_join'), f0)} | {spread(g('rss_mib'), f0)} | "
          f"{spread(g('cpu'), f1)} | {spread(g('broker_cpu'), f1)} | {len(e)} |")
    w("")

    w(f"### End-to-end latency at 5,000 events/s (Kafka {version})\n")
    pcross = "".join(f" p99 × {BASE_LABEL[b]} |" for b in bases)
    w(f"| peer | p50 ms | p99 ms | p99.9 ms | max ms |{pcross} samples/run | peak RSS MiB | client CPU s | runs |")
    w(f"|---|---|---|---|---|{cross_rule}---|---|---|---|")
    for p in peers:
        g = lambda key: pick(version, "latency", p, key)
        p99 = g("p99_us")
        w(f"| {peer_name(p, version)} | {spread(g('p50_us'), ms)} | {spread(p99, ms)} | "
          f"{spread(g('p999_us'), ms)} | {spread(g('max_us'), ms)} |"
          f"{ratios(med(p99), 'latency', 'p99_us')} "
          f"{spread(g('samples'), f0)} | {spread(g('rss_mib'), f0)} | {spread(g('cpu'), f1)} | {len(p99)} |")
    w("")

    g = lambda mode, peer, key="eps": med(pick(version, mode, peer, key))
    # The targets are this framework's: a run without it has none to check.
    if "godev" in peers:
        w(f"### Targets (issue #8), Kafka {version}\n")
        checks = [
            ("typed produce ≥ 1.5× kafka-go", g("produce", "godev"), g("produce", "kafka-go"), 1.5, True),
            ("typed produce ≥ 0.8× Java", g("produce", "godev"), g("produce", "java"), 0.8, True),
            ("consume + dispatch ≥ 1.5× kafka-go", g("consume", "godev"), g("consume", "kafka-go"), 1.5, True),
            ("p99 at 5k/s ≤ kafka-go's", g("latency", "godev", "p99_us"), g("latency", "kafka-go", "p99_us"), 1.0, False),
        ]
        w("| target | measured | met? |")
        w("|---|---|---|")
        for what, a, b, limit, higher in checks:
            if a and b:
                r = a / b
                ok = r >= limit if higher else r <= limit
                w(f"| {what} | {r:.2f}× | {'yes' if ok else '**no**'} |")
            else:
                w(f"| {what} | not measured | — |")
        w("")

    prof = os.path.join(d, "profile")
    names = sorted(os.listdir(prof)) if os.path.isdir(prof) else []
    texts = [f for f in names if f.startswith("broker-") and f.endswith(".txt")]
    clients = [f for f in names if f.startswith("client-produce-") and f.endswith(".txt")]
    if texts:
        w(f"### Profile: the Kafka {version} broker while a consumer group reads the source topic\n")
        w("JFR (`jcmd <broker pid> JFR.start settings=profile`, no JMX) on the broker during one "
          "extra consume run per Rust peer; the summary is `bench/jfr_stacks.py` over `jfr print "
          "--events jdk.ExecutionSample`. The runs themselves:\n")
        w("| peer | events/s | broker CPU s | client CPU s | broker samples in down-conversion |")
        w("|---|---|---|---|---|")
        for r in runs:
            if r["broker"] == version and r["round"] == "profiled" and not r["failed"]:
                share = profile_share(d, r["peer"], "down-conversion")
                w(f"| {peer_name(r['peer'], version)} | {f0(r['eps'])} | {f1(r['broker_cpu'])} | "
                  f"{f1(r['cpu'])} | {'—' if share is None else f'{share:.1f}%'} |")
        w("")
        for t in texts:
            w(f"#### {t[:-4]} (Kafka {version})\n")
            w("```\n" + read(os.path.join(prof, t)).strip() + "\n```\n")
    if clients:
        w(f"### Profile: where the producing client spends its CPU (Kafka {version})\n")
        w("`bench/profile-produce`: the produce workload above under `perf record` (999 Hz, "
          "self time by shared object and symbol, entries of 0.5% and more). The first lines "
          "of each profile:\n")
        for t in clients:
            lines = [l for l in read(os.path.join(prof, t)).splitlines()
                     if l.startswith("# bench/") or l.startswith("# result") or l.startswith("# Samples")
                     or (l.strip() and not l.startswith("#"))]
            w(f"#### {t[:-4]} (Kafka {version})\n")
            w("```\n" + "\n".join(lines[:28]) + "\n```\n")

    exp = os.path.join(d, "experiment")
    if os.path.isdir(exp):
        w(f"### Experiment: what limits this framework's consume (`{backend(version)}` backend, Kafka {version})\n")
        w("`bench/experiment-consume`: this framework's consumer on the same source topic, fresh "
          "group per run, two runs per setting, varying `ConsumerSettings::queue_capacity` "
          "(records queued per partition worker, default 256) and `poll_wait` (default 100 ms). "
          "\"ceiling\" is partitions × queue_capacity / poll_wait, the rate if every poll refills "
          "each worker queue once and then sleeps out its wait; it binds only while partitions "
          "pause, i.e. while a fetch (up to 1 MiB, about 1,000 of these records, per partition) "
          "brings more than the queue holds.\n")
        w("| queue_capacity | poll_wait ms | ceiling events/s | events/s (runs) | client CPU s | peak RSS MiB |")
        w("|---|---|---|---|---|---|")
        variants = {}
        for name in sorted(os.listdir(exp)):
            m = re.match(r"queue(\d+)-poll(\d+)-(\d+)\.out$", name)
            if not m:
                continue
            q, poll = int(m.group(1)), int(m.group(2))
            res = result_line(read(os.path.join(exp, name)))
            tpath = os.path.join(exp, name[:-4] + ".time")
            rss, cpu = time_fields(read(tpath) if os.path.exists(tpath) else "")
            v = variants.setdefault((q, poll), {"eps": [], "cpu": [], "rss": []})
            if res:
                v["eps"].append(res["n"] / res["secs"])
            if cpu is not None:
                v["cpu"].append(cpu)
            if rss is not None:
                v["rss"].append(rss)
        for (q, poll), v in sorted(variants.items(), key=lambda kv: (kv[0][1] != 100, kv[0][0], kv[0][1])):
            w(f"| {q} | {poll} | {f0(6 * q / (poll / 1000))} | {', '.join(f0(e) for e in v['eps']) or 'failed'} | "
              f"{', '.join(f1(c) for c in v['cpu'])} | {', '.join(f0(r) for r in v['rss'])} |")
        w("")

    soak = os.path.join(d, "soak-rss.txt")
    if os.path.exists(soak):
        rows = [l.split() for l in read(soak).splitlines()[1:] if l.strip()]
        named = os.path.join(d, "soak-backend.txt")
        soaked = read(named).strip() if os.path.exists(named) else backend(version)
        if rows:
            w(f"### Memory soak: this framework at 5k events/s (`{soaked}` backend, Kafka {version})\n")
            secs = int(rows[-1][0])
            w(f"`bench/soak`: `bench-godev latency backend={soaked} rate=5000 histogram=1` "
              f"(producer and grouped consumer in one process, latencies in a fixed-size histogram) "
              f"for {secs} s; VmRSS every 10 s, shown once a minute (and the last sample).\n")
            w("| elapsed s | RSS MiB | load 1 min |")
            w("|---|---|---|")
            shown = [r for r in rows if int(r[0]) % 60 < 10] + ([rows[-1]] if int(rows[-1][0]) % 60 >= 10 else [])
            for r in shown:
                w(f"| {r[0]} | {int(r[1]) / 1024:.1f} | {r[2]} |")
            rss = [int(r[1]) / 1024 for r in rows]
            later = [int(r[1]) / 1024 for r in rows if int(r[0]) >= 60]
            w("")
            w(f"RSS over the whole soak: min {min(rss):.1f} MiB, max {max(rss):.1f} MiB"
              + (f"; after the first minute: min {min(later):.1f}, max {max(later):.1f} MiB." if later else "."))
            so = os.path.join(d, "soak.out")
            res = result_line(read(so)) if os.path.exists(so) else None
            if res:
                w(f" Latency over the soak: p50 {ms(res['p50_us'])} ms, p99 {ms(res['p99_us'])} ms, "
                  f"p99.9 {ms(res['p999_us'])} ms, max {ms(res['max_us'])} ms over {res['samples']:,} "
                  "events (warm-up included; 100 µs histogram).")
            elif os.path.exists(so):
                w(" The soak process printed no result (see `soak.err`).")
            w("")

w("## Every run\n")
w("| broker | mode | peer | round | result | peak RSS MiB | load before → after |")
w("|---|---|---|---|---|---|---|")
for r in runs:
    if r["failed"]:
        res = f"FAILED (exit {r['exit']})"
    elif r["mode"] == "latency":
        res = f"p50 {ms(r['p50_us'])} / p99 {ms(r['p99_us'])} / p99.9 {ms(r['p999_us'])} ms"
    else:
        res = f"{f0(r['eps'])} events/s"
    rss = f0(r["rss_mib"]) if r["rss_mib"] else "—"
    w(f"| {r['broker']} | {r['mode']} | {r['peer']} | {r['round']} | {res} | {rss} | "
      f"{r['load_before']:.2f} → {r['load_after']:.2f} |")
w("")

# The hand-written analysis beside raw/ (bench/ANALYSIS.md for the default --out).
analysis = os.path.join(os.path.dirname(raw_abs), "ANALYSIS.md")
if os.path.exists(analysis):
    w(read(analysis).strip() + "\n")
print("\n".join(out))
