"""The summary of `npm run fuzz` (scripts/fuzz/run), from the JSON reports of the schemathesis runs.

    summary.py [--seed N] [--node-log FILE] REPORT.json...

Prints, per run, the test cases generated, the server errors (5xx, schemathesis ST101), the
undocumented status codes (ST103) and the other check failures; then what the node logged as
unhandled errors (each is a 500). Exits 1 when there is any server error or undocumented status,
or when a run left no report; other check failures are listed but do not fail the run.
"""

import argparse
import json
import pathlib
import sys

BLOCKING = {"ServerError": "5xx", "UndefinedStatusCode": "undocumented status"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed")
    parser.add_argument("--node-log")
    parser.add_argument("reports", nargs="+")
    args = parser.parse_args()

    blocking = {label: 0 for label in BLOCKING.values()}
    problems = []
    rows = []
    lines = []
    for path in map(pathlib.Path, args.reports):
        name = path.parent.name
        if not path.exists():
            problems.append(f"{name}: no report ({path}); see {path.parent / 'output.txt'}")
            continue
        report = json.loads(path.read_text())
        counts = {label: 0 for label in BLOCKING.values()}
        other = 0
        for failure in report.get("failures", []):
            label = BLOCKING.get(failure["type"])
            where = ", ".join(failure.get("operations", []))
            line = f"[{name}] {failure['code']} {failure['title']} x{failure['count']}: {where}"
            if label:
                counts[label] += failure["count"]
                blocking[label] += failure["count"]
                lines.append(line)
            else:
                other += failure["count"]
                lines.append(f"{line} (informational)")
        for error in report.get("errors", []):
            problems.append(f"{name}: schemathesis error: {error['title']} x{error['count']}")
        cases = report.get("test_cases", {}).get("generated", 0)
        rows.append((name, cases, counts["5xx"], counts["undocumented status"], other))

    unhandled = 0
    # Why dependencies refused (503): a service that went away during the run shows up here.
    refusals = {}
    if args.node_log and pathlib.Path(args.node_log).exists():
        for raw in pathlib.Path(args.node_log).read_text(errors="replace").splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            if entry.get("msg") == "unhandled error":
                unhandled += 1
            elif entry.get("msg") == "refused":
                key = f"{entry.get('code')}: {entry.get('reason')}"
                refusals[key] = refusals.get(key, 0) + 1

    print()
    print(f"fuzz summary{f' (seed {args.seed})' if args.seed else ''}")
    print(f"  {'run':<6} {'cases':>6} {'5xx':>5} {'undocumented':>13} {'other failures':>15}")
    for name, cases, server, undocumented, other in rows:
        print(f"  {name:<6} {cases:>6} {server:>5} {undocumented:>13} {other:>15}")
    if args.node_log:
        print(f"  the node logged {unhandled} unhandled error(s) (500 internal)")
    for reason, count in sorted(refusals.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  the node answered {reason} x{count}")
    for line in lines:
        print(f"  {line}")
    for problem in problems:
        print(f"  {problem}")
    failed = sum(blocking.values()) > 0 or unhandled > 0 or problems
    verdict = "FAILED" if failed else "passed"
    print(
        f"fuzz: {verdict}: {blocking['5xx']} server error(s), "
        f"{blocking['undocumented status']} undocumented status code(s), "
        f"{unhandled} unhandled error(s) in the node log"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
