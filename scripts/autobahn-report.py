#!/usr/bin/env python3
"""Summarise an Autobahn|TestSuite report directory as markdown.

Usage: autobahn-report.py REPORT_DIR|index.json [--title TITLE] [--expect N]

Reads index.json ({agent: {caseId: {behavior, behaviorClose, duration,
remoteCloseCode, reportfile}}}) and prints, per agent, a table of result counts
per top-level section plus totals, then every case that is not OK/INFORMATIONAL
with the result text from its per-case JSON report.

Exit status: 0 if every case is OK or INFORMATIONAL; 1 if any case is not, if no
case was run at all, or if --expect N is given and the case count differs;
2 if the report cannot be read.
"""
import argparse
import json
import os
import sys

COLUMNS = ["OK", "INFORMATIONAL", "NON-STRICT", "FAILED", "UNIMPLEMENTED"]
PASSING = {"OK", "INFORMATIONAL"}
# Severity used to pick the worse of behavior and behaviorClose.
SEVERITY = {"OK": 0, "INFORMATIONAL": 1, "NON-STRICT": 2, "UNIMPLEMENTED": 3, "FAILED": 4}
SECTIONS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "Compression (payloads)",
    "13": "Compression (parameters)",
}


def classify(value):
    """Map a wstest behavior value onto one of COLUMNS.

    behaviorClose may also be WRONG CODE, UNCLEAN or FAILED BY CLIENT; those
    (and anything unknown) count as FAILED.
    """
    return value if value in SEVERITY else "FAILED"


def worse(a, b):
    a, b = classify(a), classify(b)
    return a if SEVERITY[a] >= SEVERITY[b] else b


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else 0 for p in case_id.split("."))


def case_details(report_dir, reportfile):
    """result/resultClose from the per-case JSON (wstest writes NAME.json next to NAME.html)."""
    if not reportfile:
        return None
    base, ext = os.path.splitext(reportfile)
    path = os.path.join(report_dir, base + ".json" if ext != ".json" else reportfile)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"result": "(cannot read %s: %s)" % (path, e)}


def one_line(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def summarise(report_dir, agent, cases, out):
    """Print tables for one agent; return the list of non-passing case ids."""
    per_section = {}
    bad = []
    for case_id in sorted(cases, key=case_key):
        c = cases[case_id]
        verdict = worse(c.get("behavior"), c.get("behaviorClose"))
        section = case_id.split(".")[0]
        counts = per_section.setdefault(section, dict.fromkeys(COLUMNS, 0))
        counts[verdict] += 1
        if verdict not in PASSING:
            bad.append(case_id)

    out.write("### Agent `%s`: %d cases\n\n" % (agent, len(cases)))
    out.write("| Section | " + " | ".join(COLUMNS) + " | Total |\n")
    out.write("|---|" + "---:|" * (len(COLUMNS) + 1) + "\n")
    totals = dict.fromkeys(COLUMNS, 0)
    for section in sorted(per_section, key=lambda s: case_key(s)):
        counts = per_section[section]
        name = ("%s %s" % (section, SECTIONS.get(section, ""))).rstrip()
        out.write("| %s | %s | %d |\n" % (
            name, " | ".join(str(counts[k]) for k in COLUMNS), sum(counts.values())))
        for k in COLUMNS:
            totals[k] += counts[k]
    out.write("| **Total** | %s | **%d** |\n\n" % (
        " | ".join("**%d**" % totals[k] for k in COLUMNS), sum(totals.values())))

    if bad:
        out.write("#### Cases not OK/INFORMATIONAL (%d)\n\n" % len(bad))
        out.write("| Case | behavior | behaviorClose | result | resultClose |\n")
        out.write("|---|---|---|---|---|\n")
        for case_id in bad:
            c = cases[case_id]
            d = case_details(report_dir, c.get("reportfile")) or {}
            out.write("| %s | %s | %s | %s | %s |\n" % (
                case_id, c.get("behavior"), c.get("behaviorClose"),
                one_line(d.get("result", "")), one_line(d.get("resultClose", ""))))
        out.write("\n")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="report directory (or its index.json)")
    ap.add_argument("--title", help="heading printed above the tables")
    ap.add_argument("--expect", type=int, help="number of cases the run should contain (per agent)")
    args = ap.parse_args()

    index = args.report
    if os.path.isdir(index):
        index = os.path.join(index, "index.json")
    report_dir = os.path.dirname(os.path.abspath(index))
    try:
        with open(index, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print("autobahn-report: cannot read %s: %s" % (index, e), file=sys.stderr)
        return 2

    out = sys.stdout
    out.write("## %s\n\n" % (args.title or "Autobahn|TestSuite: " + report_dir))
    failures = []
    total = 0
    for agent in sorted(data):
        cases = data[agent]
        total += len(cases)
        bad = summarise(report_dir, agent, cases, out)
        if bad:
            failures.append("%s: %d case(s) not OK/INFORMATIONAL" % (agent, len(bad)))
        if args.expect is not None and len(cases) != args.expect:
            failures.append("%s: %d case(s) reported, %d expected" % (agent, len(cases), args.expect))
    if total == 0:
        failures.append("no test case was run")

    if failures:
        out.write("**RESULT: FAILED** (%s)\n" % "; ".join(failures))
        return 1
    out.write("**RESULT: PASSED** (%d cases)\n" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
