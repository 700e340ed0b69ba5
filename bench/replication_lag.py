"""Reads and reports what bench/replication-lag.sh measures (Python standard library only).

    replication_lag.py scrape URL [--pids PID ...] > snapshot.json
        the primary's replication metrics (lag histogram, queue depth, deliveries by outcome,
        per destination), the CPU time of the given processes and of the machine, the load
        average, the time.
    replication_lag.py wait URL --dests a,b [--applied N] [--timeout S]
        waits until the queues to those destinations are empty (and, with --applied, until
        each has N applied deliveries), with the delivery counters still for half a second.
    replication_lag.py watch URL [--every 0.5] > depths.jsonl
        samples the queue depth per destination until killed (one JSON line per sample).
    replication_lag.py report --before A --loaded B --after C --load LOADGEN.json ...
        prints markdown table rows: lag p50/p99 per destination (C - A: every delivery of
        the run, also those that finished after the load), write rate and errors (the load
        generator's JSON), CPU of each process and of the rest of the machine (B - A: the
        load's window).
"""

import argparse
import json
import math
import os
import re
import sys
import time
import urllib.request

LINE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
USER_HZ = os.sysconf("SC_CLK_TCK")


def metrics(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    lag, depth, deliveries = {}, {}, {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"] or ""))
        dest = labels.get("destination")
        value = float(m["value"])
        if m["name"] == "coffer_replication_lag_seconds_bucket":
            le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
            lag.setdefault(dest, []).append((le, int(value)))
        elif m["name"] == "coffer_replication_queue_depth":
            depth[dest] = int(value)
        elif m["name"] == "coffer_replication_deliveries_total":
            deliveries.setdefault(dest, {})[labels["outcome"]] = int(value)
    return {
        "lag": {d: sorted(b) for d, b in lag.items()},
        "depth": depth,
        "deliveries": deliveries,
    }


def ticks(pid):
    """utime + stime of a process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def machine_busy():
    """user + nice + system + steal of all CPUs, in clock ticks."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[0] + v[1] + v[2] + v[7]


def scrape(args):
    snap = metrics(args.url)
    snap["time"] = time.time()
    snap["cpu"] = {str(p): ticks(p) for p in args.pids}
    snap["machine"] = machine_busy()
    with open("/proc/loadavg") as f:
        snap["loadavg"] = [float(x) for x in f.read().split()[:3]]
    json.dump(snap, sys.stdout)


def wait(args):
    dests = args.dests.split(",")
    deadline = time.time() + args.timeout
    last, still_since = None, None
    while time.time() < deadline:
        m = metrics(args.url)
        empty = all(m["depth"].get(d, 0) == 0 for d in dests)
        applied = all(m["deliveries"].get(d, {}).get("applied", 0) >= args.applied for d in dests)
        counters = json.dumps(m["deliveries"], sort_keys=True)
        if empty and applied and counters == last:
            if time.time() - still_since >= 0.5:
                return 0
        else:
            still_since = time.time()
        last = counters
        time.sleep(0.1)
    print(f"replication_lag.py: queues to {args.dests} not drained within {args.timeout} s: "
          f"{metrics(args.url)['depth']}", file=sys.stderr)
    return 1


def watch(args):
    start = time.time()
    while True:
        try:
            depth = metrics(args.url)["depth"]
        except OSError:
            depth = None
        print(json.dumps({"t": round(time.time() - start, 2), "depth": depth}), flush=True)
        time.sleep(args.every)


def max_depths(path):
    top = {}
    if path and os.path.exists(path):
        for line in open(path):
            try:
                depth = json.loads(line)["depth"] or {}
            except ValueError:
                continue
            for d, n in depth.items():
                top[d] = max(top.get(d, 0), n)
    return top


def quantile(before, after, q):
    """Linear interpolation inside the bucket of the q-quantile of after - before."""
    prev = dict((le, n) for le, n in before)
    cum = [(le, n - prev.get(le, 0)) for le, n in after]
    total = cum[-1][1] if cum else 0
    if total == 0:
        return math.nan, 0
    target = q * total
    lo_le, lo_n = 0.0, 0
    for le, n in cum:
        if n >= target:
            if le == math.inf:
                return lo_le, total
            frac = (target - lo_n) / max(n - lo_n, 1)
            return lo_le + (le - lo_le) * frac, total
        lo_le, lo_n = le, n
    return cum[-1][0], total


def slowest(before, after):
    """The upper bound of the highest bucket that gained a delivery (the max, to a bucket)."""
    prev = dict((le, n) for le, n in before)
    top, seen = math.nan, 0
    for le, n in after:
        n -= prev.get(le, 0)
        if n > seen:
            top, seen = le, n
    return top


def ms(v):
    return "-" if math.isnan(v) else ("> 60000" if math.isinf(v) else f"{v * 1000:.1f}")


def report(args):
    load = lambda p: json.load(open(p))  # noqa: E731
    a, b, c = load(args.before), load(args.loaded), load(args.after)
    level = load(args.load)["results"][0]
    secs = b["time"] - a["time"]
    pct = lambda t: 100.0 * t / USER_HZ / secs  # noqa: E731
    names = dict(zip(args.pids.split(","), args.names.split(",")))
    cpu = {names[p]: pct(b["cpu"][p] - a["cpu"][p]) for p in a["cpu"]}
    mine = sum(cpu.values()) + (level.get("generator_cpu_pct") or 0.0)
    other = max(0.0, pct(b["machine"] - a["machine"]) - mine)
    cpu_cell = " / ".join(f"{cpu[n]:.0f}" if n in cpu else "-" for n in args.names.split(","))
    cpu_cell += f" / {level.get('generator_cpu_pct') or 0:.0f}"
    writes = (f"{level['rps']:.0f} ({level['errors']} errors, {level.get('missed', 0)} missed)")
    client = f"{level['p50_ms']:.1f} / {level['p99_ms']:.1f}"
    loadavg = f"{a['loadavg'][0]:.1f} → {c['loadavg'][0]:.1f}"
    deepest = max_depths(args.depths)
    for dest in sorted(c["lag"]):
        if args.dests and dest not in args.dests.split(","):
            continue
        before = a["lag"].get(dest, [])
        p50, n = quantile(before, c["lag"][dest], 0.50)
        p99, _ = quantile(before, c["lag"][dest], 0.99)
        top = slowest(before, c["lag"][dest])
        print(f"| {args.label} | {loadavg} | {other:.0f} | {writes} | {client} | {dest} | {n} "
              f"| {ms(p50)} | {ms(p99)} | {ms(top)} | {deepest.get(dest, '-')} | {cpu_cell} |")
    if level.get("first_error"):
        print(f"first error of the load: {level['first_error'][:300]}", file=sys.stderr)


HEADER = (
    "| run | load average before → after | other CPU % | writes/s reached | PutSecretValue p50 / p99 ms "
    "| destination | deliveries | p50 lag ms | p99 lag ms | slowest ≤ ms | max queue | CPU % {names} / loadgen |\n"
    "|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---|"
)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scrape")
    s.add_argument("url")
    s.add_argument("--pids", nargs="*", type=int, default=[])
    w = sub.add_parser("wait")
    w.add_argument("url")
    w.add_argument("--dests", required=True)
    w.add_argument("--applied", type=int, default=0)
    w.add_argument("--timeout", type=float, default=120.0)
    r = sub.add_parser("report")
    for name in ("before", "loaded", "after", "load", "label", "pids", "names"):
        r.add_argument(f"--{name}", required=True)
    r.add_argument("--dests", help="only these destinations (default: all)")
    r.add_argument("--depths", help="the output of watch during the load")
    wa = sub.add_parser("watch")
    wa.add_argument("url")
    wa.add_argument("--every", type=float, default=0.5)
    h = sub.add_parser("header")
    h.add_argument("--names", required=True)
    args = ap.parse_args()
    if args.cmd == "scrape":
        scrape(args)
    elif args.cmd == "wait":
        sys.exit(wait(args))
    elif args.cmd == "watch":
        watch(args)
    elif args.cmd == "report":
        report(args)
    else:
        print(HEADER.format(names=" / ".join(args.names.split(","))))


if __name__ == "__main__":
    main()
