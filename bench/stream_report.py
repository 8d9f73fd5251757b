#!/usr/bin/env python3
"""Renders the adapter-streaming table of BENCHMARKS.md from the JSON lines of
bench/run_stream_bench.sh (dsm_stream_bench).

    stream_report.py RAW.jsonl [--command "bench/run_stream_bench.sh ..."]

Aggregate GB/s = subscribers × adapter tensor bytes / time (publish until the
last subscriber holds the version; plain TCP: start until the last receiver
has every byte). Medians over the rounds; ratio = ours / plain TCP time.
Targets (issue 4): ≥ 1 GB/s aggregate, ≤ 2× the plain copy.
"""

import argparse
import json
import statistics


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--command", default="bench/run_stream_bench.sh")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.raw) if line.startswith("{")]
    machine = next(r for r in rows if r["kind"] == "machine")
    adapter = next(r for r in rows if r["kind"] == "adapter")
    checks = next((r for r in rows if r["kind"] == "stream_checks"), {})
    load_end = next((r["load_end"] for r in rows if r["kind"] == "load_end"), "?")
    runs = {impl: [r for r in rows if r["kind"] == "stream" and r["impl"] == impl] for impl in ("grpc", "tcp")}
    subs = adapter["subscribers"]
    out = []
    w = out.append
    w("Command: `%s`" % args.command)
    w("")
    w("Machine: %s, %s cores; load average at start %s, at end %s; %s." % (
        machine["cpu"], machine["cores"], machine["load_start"], load_end, machine["date"]))
    w("")
    w("Adapter: %s parameters (fp32, %s tensors, %.2f MB; %s chunks, %.2f MB on the wire per subscriber), "
      "to %d subscribers = %.1f MB per version." % (
          f"{adapter['params']:,}", adapter["tensors"], adapter["bytes"] / 1e6, adapter["chunks"],
          adapter["wire_bytes"] / 1e6, subs, subs * adapter["bytes"] / 1e6))
    w("")
    w("| | rounds | time per version, median (min–max) | aggregate GB/s, median | CPU seconds per version, median "
      "| page faults / context switches per version, median | encode (Publish) median |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    med = {}
    for impl, name in (("grpc", "ours: GrpcServer + AdapterPublisher → 8 AdapterSubscribers"),
                       ("tcp", "plain TCP copy, 1 sender thread → 8 receiver threads")):
        rs = runs[impl]
        if not rs:
            continue
        t = [r["seconds"] for r in rs]
        med[impl] = statistics.median(t)
        enc = ("%.1f ms" % (1e3 * statistics.median(r["encode_seconds"] for r in rs))) if impl == "grpc" else ""
        faults = "%s / %s" % tuple(
            f"{statistics.median(r[k] for r in rs):,.0f}" if all(k in r for r in rs) else "?"
            for k in ("page_faults", "context_switches"))
        w("| %s | %d | %.1f ms (%.1f–%.1f) | %.2f | %.3f | %s | %s |" % (
            name, len(rs), 1e3 * med[impl], 1e3 * min(t), 1e3 * max(t),
            statistics.median(r["gb_s"] for r in rs), statistics.median(r["cpu_seconds"] for r in rs), faults, enc))
    w("")
    if "grpc" in med and "tcp" in med:
        gbs = statistics.median(r["gb_s"] for r in runs["grpc"])
        ratio = med["grpc"] / med["tcp"]
        w("| target | measured | |")
        w("|---|---:|:---:|")
        w("| aggregate ≥ 1 GB/s | %.2f GB/s | %s |" % (gbs, "met" if gbs >= 1 else "MISSED"))
        w("| ≤ 2× the plain TCP copy | %.2f× | %s |" % (ratio, "met" if ratio <= 2 else "MISSED"))
        w("")
    if checks:
        w("Checked: %s tensors reassembled and CRC-32C-verified by the subscribers, %s versions rejected, "
          "%s stream connects." % (f"{checks['tensors_checked']:,}", checks["rejected_versions"],
                                   checks["connects"]))
    print("\n".join(out))


if __name__ == "__main__":
    main()
