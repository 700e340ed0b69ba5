"""Replication lag under a steady write load across processes.

Starts nothing itself: bench/replication-lag.sh starts a three-process cluster
(scripts/three-regions.sh) and calls this with its profiles. This script creates N secrets in
us-west-2 replicated to us-east-1 and eu-west-1, waits until they are InSync, writes
PutSecretValue at a fixed rate spread over the secrets, waits until the outbox is empty, and
reads the primary's own lag histogram (`coffer_replication_lag_seconds`: seconds from commit on
the primary to apply on the replica) before and after to report p50/p99 per destination.
"""

import argparse
import re
import threading
import time
import urllib.request
import uuid

import boto3
from botocore.config import Config


def histogram(metrics_url):
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    buckets = {}
    for line in text.splitlines():
        m = re.match(r'coffer_replication_lag_seconds_bucket\{le="([^"]+)",source="([^"]+)",destination="([^"]+)"\} (\d+)', line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets.setdefault(m.group(3), []).append((le, int(m.group(4))))
    return {d: sorted(b) for d, b in buckets.items()}


def depth(metrics_url):
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(int(v) for v in re.findall(r'coffer_replication_queue_depth\{[^}]*\} (\d+)', text))


def quantile(before, after, q):
    """Linear interpolation inside the cumulative-bucket delta."""
    prev = dict(before)
    cum = [(le, n - prev.get(le, 0)) for le, n in after]
    total = cum[-1][1]
    if total == 0:
        return float("nan"), 0
    target = q * total
    lo_le, lo_n = 0.0, 0
    for le, n in cum:
        if n >= target:
            if le == float("inf"):
                return lo_le, total
            frac = (target - lo_n) / max(n - lo_n, 1)
            return lo_le + (le - lo_le) * frac, total
        lo_le, lo_n = le, n
    return cum[-1][0], total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--primary", default="http://127.0.0.1:7781")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--secrets", type=int, default=200)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()

    cfg = Config(retries={"max_attempts": 1}, max_pool_connections=args.threads + 2)
    west = boto3.client("secretsmanager", region_name="us-west-2", endpoint_url=args.primary, config=cfg)
    run = uuid.uuid4().hex[:8]
    names = [f"lag-{run}-{i}" for i in range(args.secrets)]
    for n in names:
        west.create_secret(Name=n, SecretString="v0",
                           AddReplicaRegions=[{"Region": "us-east-1"}, {"Region": "eu-west-1"}])
    deadline = time.time() + 120
    while time.time() < deadline:
        pending = [n for n in names[:: max(1, len(names) // 20)]
                   if any(s["Status"] != "InSync" for s in west.describe_secret(SecretId=n)["ReplicationStatus"])]
        if not pending and depth(args.primary + "/metrics") == 0:
            break
        time.sleep(0.2)
    before = histogram(args.primary + "/metrics")

    total = int(args.rate * args.seconds)
    start = time.time() + 0.2
    done = [0]
    errors = [0]
    lock = threading.Lock()
    next_index = [0]

    def worker():
        client = boto3.client("secretsmanager", region_name="us-west-2", endpoint_url=args.primary, config=cfg)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= total:
                return
            due = start + i / args.rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            try:
                client.put_secret_value(SecretId=names[i % len(names)], SecretString=f"v{i}")
                with lock:
                    done[0] += 1
            except Exception:  # noqa: BLE001 - counted and reported
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    drain_start = time.time()
    while depth(args.primary + "/metrics") > 0 and time.time() - drain_start < 120:
        time.sleep(0.05)
    after = histogram(args.primary + "/metrics")

    print(f"writes: {done[0]} acknowledged, {errors[0]} errors, {done[0] / elapsed:.1f} writes/s "
          f"over {elapsed:.1f} s ({args.secrets} secrets, each replicated to 2 Regions)")
    print()
    print("| destination | deliveries | p50 lag ms | p99 lag ms |")
    print("|---|---:|---:|---:|")
    for dest in sorted(after):
        p50, n = quantile(before.get(dest, []), after[dest], 0.50)
        p99, _ = quantile(before.get(dest, []), after[dest], 0.99)
        print(f"| {dest} | {n} | {p50 * 1000:.1f} | {p99 * 1000:.1f} |")


if __name__ == "__main__":
    main()
