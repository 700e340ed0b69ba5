"""Turns the lines bench/run.sh --client wrk collects into the JSON `coffer-loadgen report`
reads (the format of `coffer-loadgen run --format json`).

usage: wrk_report.py LINES LABEL URL CLK_TCK
Each line: connections, the fields of the script's WRK_RESULT line (requests seconds rps p50
p90 p99 max mean errors, milliseconds), wrk's user and system CPU seconds, the server's and
the whole machine's CPU clock ticks during the run.
"""

import json
import sys

path, label, url, hz = sys.argv[1:5]
hz = float(hz)
results = []
for line in open(path):
    (c, requests, seconds, rps, p50, p90, p99, mx, mean, errors, user, system, server,
     machine) = line.split()
    seconds = float(seconds)
    results.append({
        "concurrency": int(c),
        "duration_s": seconds,
        "requests": int(requests),
        "errors": int(errors),
        "reconnects": 0,
        "signatures": 1,
        "rps": float(rps),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "max_ms": float(mx),
        "mean_ms": float(mean),
        "generator_cpu_pct": 100 * (float(user) + float(system)) / seconds,
        "server_cpu_pct": 100 * int(server) / hz / seconds,
        "system_cpu_pct": 100 * int(machine) / hz / seconds,
        "first_error": None,
    })
print(json.dumps({"label": label, "endpoint": url, "generator_threads": 2, "warmup_s": 0.0,
                  "results": results}))
