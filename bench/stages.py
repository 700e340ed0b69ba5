"""Where a server's CPU goes per request stage, from `perf script` output of a DWARF call-graph
profile (issue 17's per-stage table). Each sample is charged to the stage of the innermost
frame that names one (so a malloc or a write(2) counts for the stage that called it); samples
with no such frame are "runtime" (tokio's scheduler, epoll, wake-ups) or "other".

usage:
  perf record --call-graph dwarf,32768 -F 499 -p <coffer pid> -o coffer.perf -- sleep 4
  perf script -i coffer.perf | python3 bench/stages.py [REQUESTS CPU_SECONDS]

With REQUESTS (answered during the recording) and the server's CPU_SECONDS in that time (from
/proc; DWARF unwinding drops samples, so they give shares, not time) it also prints
microseconds of CPU per request, each stage's share of the total.
`bench/profile.sh` runs all of it against a fresh server under wrk.
"""

import re
import sys

# Innermost match wins; the first pattern of this list that matches a frame names its stage.
STAGES = [
    ("audit: write", r"coffer_audit::log::Writer::write|coffer_audit::chain"),
    ("audit: build and serialise the record", r"coffer_audit::|coffer_api::audit"),
    ("SigV4 verification", r"coffer_sigv4::"),
    ("authorization (IAM and resource policies)",
     r"coffer_iam::|coffer_core::authorize|coffer_api::principals"),
    ("decrypt (KMS: key policy, unwrap, AES-GCM)", r"coffer_kms::|coffer_core::kms"),
    ("store and cache", r"coffer_store::"),
    ("operation (GetSecretValue)", r"coffer_core::"),
    ("HTTP: write the response",
     r"hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::encode"
     r"|Dispatcher<.*>::poll_flush|poll_write_buf|Buffered<.*>::poll_flush|write_vectored"),
    ("HTTP: read and parse the request",
     r"Http1Transaction>::parse|poll_read_from_io|Buffered<.*>::parse|poll_read_buf|__libc_recv"),
    ("API: routing, JSON, response body", r"coffer_api::|axum::|serde_json::"),
    ("HTTP: connection (hyper)", r"hyper::"),
    ("runtime (tokio scheduler, epoll, wake-ups)", r"tokio::runtime|epoll_wait|mio::"),
]
COMPILED = [(name, re.compile(p)) for name, p in STAGES]


def stage_of(frames: list[str]) -> str:
    for frame in frames:  # innermost first, as perf script prints them
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name
    return "other"


def main() -> None:
    requests = float(sys.argv[1]) if len(sys.argv) > 1 else None
    cpu_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else None
    counts: dict[str, int] = {}
    total = 0
    frames: list[str] = []
    in_sample = False
    for line in sys.stdin:
        if not line.strip():
            if in_sample:
                counts[stage_of(frames)] = counts.get(stage_of(frames), 0) + 1
                total += 1
            frames, in_sample = [], False
            continue
        if line[0] not in " \t":
            in_sample = True
            continue
        frames.append(line.strip())
    if in_sample:
        counts[stage_of(frames)] = counts.get(stage_of(frames), 0) + 1
        total += 1
    print(f"{total} samples")
    print()
    timed = bool(requests and cpu_seconds)
    print("| stage | share of the server's CPU |" + (" µs per request |" if timed else ""))
    print("|---|---:|" + ("---:|" if timed else ""))
    order = [n for n, _ in STAGES] + ["other"]
    for name in order:
        n = counts.get(name, 0)
        row = f"| {name} | {100 * n / max(total, 1):.1f}% |"
        if requests and cpu_seconds:
            row += f" {cpu_seconds * n / max(total, 1) / requests * 1e6:.1f} |"
        print(row)
    if requests and cpu_seconds:
        print(f"| **total** | 100% | **{cpu_seconds / requests * 1e6:.1f}** |")


if __name__ == "__main__":
    main()
