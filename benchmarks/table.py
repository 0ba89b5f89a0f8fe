"""The benchmark report as text: the machine, a summary, then one small table per workload.

python benchmarks/table.py REPORT.json     renders a saved `run.py --json` report again
"""

from __future__ import annotations

from typing import Any


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("events/s",) and abs(value) >= 1e6:
        return f"{value / 1e6:.2f} M"
    if unit in ("events/s",) and abs(value) >= 1e3:
        return f"{value / 1e3:.1f} k"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}x"


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    s = report["settings"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, "
        f"trio {m['trio']}, h11 {m['h11']}, curl {m['curl']}",
        "load average (1, 5, 15 min): at start {:.2f} {:.2f} {:.2f}, at end {:.2f} {:.2f} {:.2f}"
        "".format(*m["load_average_start"], *m["load_average_end"]),
        f"throughput: median of {s['repeats']} interleaved runs after a warm-up run"
        + (f" that sizes each path's runs to ~{s['seconds']:g} s" if s["seconds"] else "")
        + " (curl -N, byte counts checked)",
    ]
    for name, reason in report["skipped"].items():
        lines.append(f"skipped {name}: {reason}")
    lines += ["", *summary(report["results"])]
    for key, result in report["results"].items():
        unit, paths = result["unit"], result["paths"]
        lines += ["", f"{result['title']} ({unit})"]
        if key == "latency":
            lines.append(f"  {'path':<16} {'p50':>9} {'p99':>9} {'+p50':>9} {'+p99':>9}")
            for name, r in paths.items():
                lines.append(
                    f"  {name:<16} {r['p50']:>9.0f} {r['p99']:>9.0f}"
                    f" {r.get('added_p50', 0):>+9.0f} {r.get('added_p99', 0):>+9.0f}"
                )
            continue
        extra = {"ping_pong": "added", "memory": "streams", "startup": ""}.get(key, "count")
        lines.append(
            f"  {'path':<16} {'median':>10} {'vs direct':>10} {'vs toxiproxy':>13} {extra:>14}"
        )
        for name, r in paths.items():
            tail = r.get(extra) if extra else None
            shown = "" if tail is None else (f"{tail:+.1f}" if extra == "added" else f"{tail:,}")
            lines.append(
                f"  {name:<16} {number(r['median'], unit):>10} {ratio(r.get('vs_direct')):>10}"
                f" {ratio(r.get('vs_toxiproxy')):>13} {shown:>14}"
            )
    return "\n".join(lines)


SHORT = {"sseproxy-tcp": "tcp", "sseproxy-http": "http", "sseproxy-framed": "framed"}


def summary(results: dict[str, Any]) -> list[str]:
    """One row per workload, one column per path (the medians; latency: added p50 / p99)."""
    names = list(
        dict.fromkeys(name for result in results.values() for name in result.get("paths", {}))
    )
    names = [name for name in names if not name.startswith(("sseproxy --help", "import", "python"))]
    rows = [("workload", *(SHORT.get(name, name) for name in names))]
    for key, label in (
        ("small", "100 B events, 1 chunk each"),
        ("big", "64 KiB events, 1 chunk each"),
        ("packed", "100 B events in 64 KiB chunks"),
        ("latency", "added latency p50/p99 (us)"),
        ("bulk", "bulk, one connection"),
        ("ping_pong", "1-byte ping-pong added (us)"),
        ("memory", "RSS per idle stream"),
    ):
        result = results.get(key)
        if result is None:
            continue
        cells = []
        for name in names:
            r = result["paths"].get(name)
            if r is None:
                cells.append("-")
            elif key == "latency":
                cells.append(f"{r.get('added_p50', 0):+.0f}/{r.get('added_p99', 0):+.0f}")
            elif key == "ping_pong":
                cells.append(f"{r.get('added', 0):+.1f}")
            else:
                cells.append(number(r["median"], result["unit"]))
        unit = "" if key in ("latency", "ping_pong") else f" ({result['unit']})"
        rows.append((label + unit, *cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


if __name__ == "__main__":
    import json
    import sys

    with open(sys.argv[1], encoding="utf-8") as file:
        print(render(json.load(file)))
