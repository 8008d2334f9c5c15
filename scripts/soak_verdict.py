#!/usr/bin/env python3
"""The verdict of scripts/soak.sh (stdlib only), used by scripts/soak_clients.py: reads a report directory
(samples.jsonl and the load results), prints the table, writes samples.csv and summary.json, prints the one-line
summary and exits 1 on an error or growth. Also the JSON helpers both share.
"""
import csv
import json
import os


def write_json(path, obj):
    if path == "-":
        print(json.dumps(obj, sort_keys=True), flush=True)
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def load_json(path):
    try:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None


def cmd_verdict(args):
    d = args.dir
    samples = [json.loads(line) for line in open(os.path.join(d, "samples.jsonl")) if line.strip()]
    columns = ["t", "phase", "rss_mib", "fds", "threads", "connections", "lag_ms", "healthz_ms", "slow_consumers"]
    with open(os.path.join(d, "samples.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for s in samples:
            writer.writerow([s.get(c, "") for c in columns])
    widths = [7, 9, 8, 6, 8, 12, 8, 11, 15]
    print("".join(c.rjust(w) for c, w in zip(columns, widths)))
    for s in samples:
        print("".join(("-" if s.get(c) is None else str(s.get(c))).rjust(w) for c, w in zip(columns, widths)))

    problems = []
    errors = 0
    loads = {}
    for name in sorted(os.listdir(d)):
        if name.startswith("load-") and name.endswith(".json"):
            role = name[5:-5]
            result = load_json(os.path.join(d, name))
            loads[role] = result
            if result is None:
                problems.append(f"{role}: no result (the load generator failed or did not finish)")
                errors += 1
                continue
            n = int(result.get("errors", 0))
            if n:
                errors += n
                detail = result.get("err") or result.get("first_errors")
                problems.append(f"{role}: {n} errors {json.dumps(detail)}")
    for role in args.expect:
        if role not in loads:
            problems.append(f"{role}: no result file")
            errors += 1

    before = [s for s in samples if s["phase"] == "before"]
    load = [s for s in samples if s["phase"] == "load"]
    after = [s for s in samples if s["phase"] == "after"]
    for s in samples:
        if not s.get("alive", False):
            problems.append(f"daemon not running at t={s['t']} s ({s['phase']})")
            errors += 1
            break
        if s.get("healthz_error"):
            problems.append(f"/healthz failed at t={s['t']} s: {s['healthz_error']}")
            errors += 1
    if args.daemon_problem:
        problems.insert(0, f"daemon: {args.daemon_problem}")
        errors += 1
    if not before or not after or "rss_mib" not in before[0] or "rss_mib" not in after[-1]:
        problems.append("missing the samples before or after the load")
        errors += 1

    summary = {"minutes": args.minutes, "errors": errors, "samples": len(samples)}
    ok = errors == 0
    if before and after and "rss_mib" in before[0] and "rss_mib" in after[-1]:
        start, end = before[0], after[-1]
        warm = [s for s in load if s["t"] >= start["t"] + args.warmup and "rss_mib" in s]
        if args.warmup > 0 and warm:
            base, base_name = warm[0], f"first sample after the {args.warmup:g} s warm-up (t={warm[0]['t']} s)"
        else:
            base, base_name = start, "the sample before the load"
        rss_limit = base["rss_mib"] * (1 + args.rss_tolerance) + args.rss_slack_mib
        fd_limit = start["fds"] + args.fd_slack
        rss_max = max(s.get("rss_mib", 0) for s in samples)
        lags = [s.get("lag_ms") for s in load if s.get("lag_ms") is not None]
        hz = [s.get("healthz_ms") for s in load if s.get("healthz_ms") is not None]
        summary.update(rss_start=start["rss_mib"], rss_baseline=base["rss_mib"], rss_max=rss_max,
                       rss_end=end["rss_mib"], rss_limit=round(rss_limit, 1), baseline=base_name,
                       fds_start=start["fds"], fds_max=max(s.get("fds", 0) for s in samples), fds_end=end["fds"],
                       fds_limit=fd_limit, threads_start=start["threads"], threads_end=end["threads"],
                       connections_end=end.get("connections"),
                       lag_max_ms=max(lags) if lags else None, healthz_max_ms=max(hz) if hz else None,
                       slow_consumers_closed=end.get("slow_consumers", 0) - start.get("slow_consumers", 0))
        if end["rss_mib"] > rss_limit:
            problems.append(f"RSS grew: {end['rss_mib']} MiB after the load > {rss_limit:.1f} MiB "
                            f"({base['rss_mib']} MiB at {base_name} x (1 + {args.rss_tolerance}) + "
                            f"{args.rss_slack_mib} MiB)")
        if end["fds"] > fd_limit:
            problems.append(f"descriptors grew: {end['fds']} after the load > {fd_limit} "
                            f"({start['fds']} before + {args.fd_slack})")
        if end.get("connections") != args.expect_connections:
            problems.append(f"registry: {end.get('connections')} connections after the load, "
                            f"expected {args.expect_connections}")
        if end["threads"] > start["threads"] + args.thread_slack:
            problems.append(f"threads grew: {end['threads']} after the load > {start['threads']} + {args.thread_slack}")
        if args.require_slow and summary["slow_consumers_closed"] <= 0:
            problems.append("slow consumers: the daemon closed none (wsgate_slow_consumers_total did not move)")
    churn = loads.get("churn") or {}
    bcast = loads.get("broadcast") or {}
    summary.update(churned=churn.get("handshakes_ok", 0), churn_per_s=churn.get("hs_per_s"),
                   broadcasts=bcast.get("ok", 0), broadcast_failures=bcast.get("failures", {}),
                   slow=loads.get("slow"), problems=problems)
    ok = not problems
    summary["result"] = "PASS" if ok else "FAIL"
    write_json(os.path.join(d, "summary.json"), summary)
    for p in problems:
        print(f"soak: FAIL: {p}")
    lag = (f"lag max {summary['lag_max_ms']} ms" if summary.get("lag_max_ms") is not None
           else f"healthz latency max {summary.get('healthz_max_ms')} ms (no lag gauge)")
    print(f"soak: {args.minutes:g} minutes, {summary['churned']} connections churned ({summary['churn_per_s']}/s), "
          f"{summary['broadcasts']} broadcasts, "
          f"{summary['slow_consumers_closed'] if 'rss_start' in summary else '?'} slow consumers closed, "
          f"{errors} errors, RSS start/max/end {summary.get('rss_start')}/{summary.get('rss_max')}/"
          f"{summary.get('rss_end')} MiB (limit {summary.get('rss_limit')}), fds start/end "
          f"{summary.get('fds_start')}/{summary.get('fds_end')}, {lag}, {summary['result']}")
    return 0 if ok else 1
