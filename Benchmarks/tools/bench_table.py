#!/usr/bin/env python3
"""Turns the JSON lines of scripts/bench.sh into the markdown tables of BENCHMARKS.md.

Usage: bench_table.py RESULTS.jsonl
Each line is one wsbench report plus "server", "scenario" and "rep" (and, for allocation runs, "allocations").
For every scenario and metric: the median over repetitions with min–max, per server, and the ratio of ours
(server "wsgate") to each peer. Ratios are ours/peer for every metric: above 1 is better for rates, below 1 is better
for latencies, memory and allocations.
"""
import json
import statistics
import sys
from collections import defaultdict

OURS = "wsgate"
# "c-floor" is no peer but a floor measured on the machine (Benchmarks/floor/): a minimal C echo server for the
# 64 B x 1 echo and the handshake figure, a C sender and receiver for the broadcast figure.
# "wsgate-before" and "bench-gateway-before" are an earlier build of ours (scripts/bench.sh --baseline DIR), so that a
# change's before and after stand side by side with the peers in one run.
PEER_ORDER = ["wsgate-before", "bench-gateway-before", "hummingbird", "hummingbird-deflate", "websocketkit", "node-ws", "c-floor"]

SCENARIOS = [
    # (scenario, title, [(metric key, label, unit format)])
    ("echo-64-c100-f1", "1. Echo 64 B binary, 100 connections, 1 in flight",
     [("messages_per_second", "messages/s"), ("p99_micros", "p99 µs")]),
    ("echo-64-c100-f8", "1. Echo 64 B binary, 100 connections, 8 in flight",
     [("messages_per_second", "messages/s"), ("p99_micros", "p99 µs")]),
    ("echo-16k-c100", "2. Echo 16 KiB binary, 100 connections",
     [("messages_per_second", "messages/s"), ("megabytes_per_second", "MB/s"), ("p99_micros", "p99 µs")]),
    ("echo-16k-c10", "2. Echo 16 KiB binary, 10 connections",
     [("messages_per_second", "messages/s"), ("megabytes_per_second", "MB/s"), ("p99_micros", "p99 µs")]),
    ("echo-1m-c10", "2. Echo 1 MiB binary, 10 connections",
     [("messages_per_second", "messages/s"), ("megabytes_per_second", "MB/s"), ("p99_micros", "p99 µs")]),
    ("echo-1m-c100", "2. Echo 1 MiB binary, 100 connections",
     [("messages_per_second", "messages/s"), ("megabytes_per_second", "MB/s"), ("p99_micros", "p99 µs")]),
    ("deflate-4k-c100", "3. Echo 4 KiB JSON text, permessage-deflate, 100 connections",
     [("messages_per_second", "messages/s"), ("p99_micros", "p99 µs")]),
    ("connect-l10", "4. Handshake + one echo + close, 10 concurrent loops",
     [("handshakes_per_second", "handshakes/s"), ("p99_micros", "p99 µs per cycle")]),
    ("hold-10000", "5. Idle connections: 10,000",
     [("bytes_per_connection", "RSS bytes/connection"), ("rss_before_kib", "RSS before KiB"), ("rss_after_kib", "RSS after KiB")]),
    ("hold-19000", "5. Idle connections: 19,000",
     [("bytes_per_connection", "RSS bytes/connection"), ("rss_before_kib", "RSS before KiB"), ("rss_after_kib", "RSS after KiB")]),
    ("broadcast-1000", "6. Broadcast 100 B to 1,000 subscribers (bench-gateway)",
     [("last_received_millis_median", "ms until the last had it (median of messages)"),
      ("last_received_millis_max", "max ms"), ("deliveries_per_second", "deliveries/s")]),
    ("broadcast-10000", "6. Broadcast 100 B to 10,000 subscribers (bench-gateway)",
     [("last_received_millis_median", "ms until the last had it (median of messages)"),
      ("last_received_millis_max", "max ms"), ("deliveries_per_second", "deliveries/s")]),
    ("alloc-64-c100-f8", "7. Allocations per echoed message, 64 B binary, 100 connections, 8 in flight (malloc counter)",
     [("allocations_per_message", "allocations/message")]),
    ("alloc-16k-c100", "7. Allocations per echoed message, 16 KiB binary, 100 connections (malloc counter)",
     [("allocations_per_message", "allocations/message")]),
]


# The metrics a ratio is given for, in this order, when the scenario has them.
RATIO_KEYS = ["messages_per_second", "handshakes_per_second", "p99_micros", "bytes_per_connection",
              "allocations_per_message", "last_received_millis_median", "deliveries_per_second"]


def fmt(value):
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    by = defaultdict(list)
    for row in rows:
        by[(row["scenario"], row["server"])].append(row)
    out = []
    for scenario, title, metrics in SCENARIOS:
        servers = [s for s in [OURS, "bench-gateway"] + PEER_ORDER if (scenario, s) in by]
        if not servers:
            continue
        out.append(f"### {title}\n")
        out.append("| server | " + " | ".join(label + " (median, min–max)" for _, label in metrics)
                   + " | ours/peer | generator CPU % | errors |")
        out.append("|---|" + "---|" * len(metrics) + "---|---|---|")
        ours_medians = {}
        for server in servers:
            results = by[(scenario, server)]
            cells = []
            medians = {}
            for key, _ in metrics:
                values = [r[key] for r in results if r.get(key) is not None]
                if not values:
                    cells.append("—")
                    continue
                median = statistics.median(values)
                medians[key] = median
                cells.append(f"{fmt(median)} ({fmt(min(values))}–{fmt(max(values))})" if len(values) > 1 else fmt(median))
            if server in (OURS, "bench-gateway"):
                ours_medians = medians
                ratio = "—"
            else:
                parts = []
                for key in RATIO_KEYS:
                    if key in medians and key in ours_medians and medians[key]:
                        parts.append(f"{ours_medians[key] / medians[key]:.2f}×")
                ratio = " / ".join(parts) if parts else "—"
            cpu = [r["generator_cpu_percent"] for r in results if r.get("generator_cpu_percent") is not None]
            errors = sum(r.get("errors", 0) for r in results)
            out.append(f"| {server} | " + " | ".join(cells) + f" | {ratio} | "
                       + (fmt(statistics.median(cpu)) if cpu else "—") + f" | {errors} |")
        out.append("")
    out.append("Ratios are ours/peer of the medians: rate (messages/s or handshakes/s) / p99 latency, or bytes per "
               "connection, or allocations per message, or broadcast time until the last had it / deliveries per second (rates: above 1 is better; latencies, memory and allocations: "
               "below 1 is better). Generator CPU is user+system time of wsbench (for the broadcast c-floor, of its C receiver) "
               "over the measured wall time (100 % = one core).")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
