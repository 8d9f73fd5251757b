#!/usr/bin/env python3
"""Renders the adapter-streaming table of BENCHMARKS.md from the JSON lines of
bench/run_stream_bench.sh (dsm_stream_bench).

    stream_report.py RAW.jsonl [--command "bench/run_stream_bench.sh ..."]

Rows: "bulk" (ours, the default path: WatchAdapters offers, the bytes over
the learner's bulk endpoint), "grpc" (ours, the in-band path: the bytes in
WatchAdapters chunks, as with TLS), "tcp" (the plain copy).
Aggregate GB/s = subscribers × adapter tensor bytes / time (publish until the
last subscriber holds the version; plain TCP: start until the last receiver
has every byte). Medians over the rounds; ratio = ours / plain TCP time.
Targets (issue 4), for the default path: ≥ 1 GB/s aggregate, ≤ 2× the plain
copy.
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
    checks = [r for r in rows if r["kind"] == "stream_checks"]
    load_end = next((r["load_end"] for r in rows if r["kind"] == "load_end"), "?")
    names = {"bulk": "ours, default path: WatchAdapters offers + bulk endpoint → 8 AdapterSubscribers",
             "grpc": "ours, in-band path (TLS): GrpcServer + AdapterPublisher chunks → 8 AdapterSubscribers",
             "tcp": "plain TCP copy, 1 sender thread → 8 receiver threads"}
    runs = {impl: [r for r in rows if r["kind"] == "stream" and r["impl"] == impl] for impl in names}
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
    for impl, name in names.items():
        rs = runs[impl]
        if not rs:
            continue
        t = [r["seconds"] for r in rs]
        med[impl] = statistics.median(t)
        enc = ("%.1f ms" % (1e3 * statistics.median(r["encode_seconds"] for r in rs))) if impl != "tcp" else ""
        faults = "%s / %s" % tuple(
            f"{statistics.median(r[k] for r in rs):,.0f}" if all(k in r for r in rs) else "?"
            for k in ("page_faults", "context_switches"))
        w("| %s | %d | %.1f ms (%.1f–%.1f) | %.2f | %.3f | %s | %s |" % (
            name, len(rs), 1e3 * med[impl], 1e3 * min(t), 1e3 * max(t),
            statistics.median(r["gb_s"] for r in rs), statistics.median(r["cpu_seconds"] for r in rs), faults, enc))
    w("")
    if "tcp" in med and any(impl in med for impl in ("bulk", "grpc")):
        w("| target | path | measured | |")
        w("|---|---|---:|:---:|")
        for impl in ("bulk", "grpc"):
            if impl not in med:
                continue
            path = "default (bulk)" if impl == "bulk" else "in-band (TLS)"
            gbs = statistics.median(r["gb_s"] for r in runs[impl])
            ratio = med[impl] / med["tcp"]
            w("| aggregate ≥ 1 GB/s | %s | %.2f GB/s | %s |" % (path, gbs, "met" if gbs >= 1 else "MISSED"))
            w("| ≤ 2× the plain TCP copy | %s | %.2f× | %s |" % (path, ratio, "met" if ratio <= 2 else "MISSED"))
        w("")
    for c in checks:
        w("Checked (%s): %s tensors received and CRC-32C-verified by the subscribers (%s versions over the bulk "
          "endpoint, %s in chunks), %s versions rejected, %s stream connects." % (
              c.get("impl", "grpc"), f"{c['tensors_checked']:,}", c.get("bulk_versions", 0),
              c.get("in_band_versions", "?"), c["rejected_versions"], c["connects"]))
    print("\n".join(out))


if __name__ == "__main__":
    main()
