"""Plots the end-to-end benchmark: throughput per configuration beside its limits, and
freshness p50/p99 beside the commit interval.

Usage: plot.py [target/meshd-bench/end_to_end.json] [docs/end_to_end.png]
Needs matplotlib (pip install matplotlib); the bench itself does not.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "target/meshd-bench/end_to_end.json"
    out = sys.argv[2] if len(sys.argv) > 2 else "docs/end_to_end.png"
    results = json.load(open(source))["results"]
    labels = [f"{r.get('data', 'easy')}\n{r['format']}\n{r.get('store', 'local')}" for r in results]
    x = range(len(results))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))

    width = 0.2
    series = [
        ("meshd per core, end to end", [r["meshd"]["mb_per_s_per_core"] for r in results]),
        ("pipeline on one core (no I/O)", [r["pipeline_mb_per_s"] for r in results]),
        ("consume limit per core, a message per poll",
         [r["consume_limit_mb_per_s_per_core"] for r in results]),
        ("consume limit per core, batches",
         [r.get("batch_consume_limit_mb_per_s_per_core", 0) for r in results]),
    ]
    for i, (name, values) in enumerate(series):
        left.bar([p + (i - 1.5) * width for p in x], values, width, label=name)
    left.axhline(100, color="grey", linestyle="--", linewidth=1, label="goal, Avro: 100 MB/s per core")
    left.axhline(200, color="black", linestyle=":", linewidth=1, label="goal, JSON: 200 MB/s per core")
    left.set_xticks(list(x), labels)
    left.set_ylabel("MB/s of input per CPU-core")
    left.set_yscale("log")
    left.set_ylim(top=max(v for _, values in series for v in values) * 8)  # room for the legend
    left.set_title("Throughput per core (offset 0 to all committed)")
    left.legend(fontsize=8)

    p50 = [r["freshness"]["p50_s"] for r in results]
    p99 = [r["freshness"]["p99_s"] for r in results]
    left_x = [p - 0.15 for p in x]
    right.bar(left_x, p50, 0.3, label="p50")
    right.bar([p + 0.15 for p in x], p99, 0.3, label="p99")
    interval = results[0]["freshness"]["commit_interval_s"]
    right.axhline(interval + 1, color="grey", linestyle="--", linewidth=1,
                  label=f"goal: commit interval + 1 s = {interval + 1:g} s")
    right.set_xticks(list(x), labels)
    right.set_ylabel("seconds from produce to visible in the table")
    right.set_title("Freshness at a steady rate below capacity")
    right.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
