"""The benchmark report as text: the machine, then one small table per workload."""

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
        f"throughput: median of {s['repeats']} interleaved runs after a warm-up run that sizes "
        f"each path's runs to ~{s['seconds']:g} s (curl -N, byte counts checked)",
    ]
    for name, reason in report["skipped"].items():
        lines.append(f"skipped {name}: {reason}")
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
        extra = "added" if key == "ping_pong" else "count"
        lines.append(
            f"  {'path':<16} {'median':>10} {'vs direct':>10} {'vs toxiproxy':>13} {extra:>14}"
        )
        for name, r in paths.items():
            tail = r.get(extra)
            shown = "" if tail is None else (f"{tail:+.1f}" if extra == "added" else f"{tail:,}")
            lines.append(
                f"  {name:<16} {number(r['median'], unit):>10} {ratio(r.get('vs_direct')):>10}"
                f" {ratio(r.get('vs_toxiproxy')):>13} {shown:>14}"
            )
    return "\n".join(lines)
