"""The load test's report: a table on the terminal, and the same figures as JSON
and as an HTML page with latency and throughput over time (inline SVG)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stories.loadtest.drive import Phase, Sample

# The seeds' targets, checked by the report (never by a timed test).
P95_TARGET_MS = 500.0
PEAK_RATE_TARGET = 0.95  # of what the floor achieves with the same users
SATURATION_TARGET = 0.5
COLD_SLICES = 2  # the first 10 s, in 5 s slices


@dataclass
class Verdict:
    what: str
    met: bool
    detail: str


def _errors(sample: Sample) -> str:
    parts = [f"{code}x{n}" for code, n in sample.refused.items()]
    parts += [f"{kind}x{n}" for kind, n in sorted(sample.socket_errors.items())]
    return " ".join(parts) or "none"


def _row(name: str, sample: Sample) -> str:
    return (
        f"{name:<24} {sample.rate:>9,.0f} {sample.percentile_ms(50):>8.1f} "
        f"{sample.percentile_ms(95):>8.1f} {sample.percentile_ms(99):>8.1f}  {_errors(sample)}"
    )


HEADER = f"{'endpoint':<24} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  errors"


def _table(title: str, samples: dict[str, Sample]) -> list[str]:
    lines = [title, HEADER, "-" * len(HEADER)]
    lines += [_row(name, sample) for name, sample in samples.items()]
    return lines


def _total(samples: dict[str, Sample], names: list[str]) -> float:
    return sum(samples[n].rate for n in names if n in samples)


def _bad(sample: Sample) -> int:
    return sample.server_errors + sum(sample.socket_errors.values())


def peak_verdicts(platform: Phase, floor: Phase, groups: list[str]) -> list[Verdict]:
    verdicts = []
    floor_rate = _total(floor.merged(COLD_SLICES), groups)
    for label, merged in (
        ("cold", platform.merged(0, COLD_SLICES)),
        ("steady", platform.merged(COLD_SLICES)),
    ):
        rate = _total(merged, groups)
        verdicts.append(
            Verdict(
                f"peak {label}: keeps up with the offered rate",
                rate >= PEAK_RATE_TARGET * floor_rate,
                f"{rate:,.0f} vs floor {floor_rate:,.0f} req/s = {rate / floor_rate:.2f}x "
                f"(target {PEAK_RATE_TARGET})",
            )
        )
        worst = max(merged.items(), key=lambda item: item[1].percentile_ms(95))
        verdicts.append(
            Verdict(
                f"peak {label}: every endpoint p95 < {P95_TARGET_MS:.0f} ms",
                all(s.percentile_ms(95) < P95_TARGET_MS for s in merged.values()),
                f"worst {worst[0]} {worst[1].percentile_ms(95):.1f} ms",
            )
        )
        errors = {n: _errors(s) for n, s in merged.items() if _bad(s) or s.refused}
        verdicts.append(
            Verdict(
                f"peak {label}: zero errors", not errors, json.dumps(errors) if errors else "none"
            )
        )
    return verdicts


def saturation_verdicts(platform: Phase, floor: Phase, groups: list[str]) -> list[Verdict]:
    ours, bare = platform.merged(), floor.merged()
    total, floor_total = _total(ours, groups), _total(bare, groups)
    links, floor_links = ours["links"].rate, bare["links"].rate
    server = {n: _errors(s) for n, s in ours.items() if s.server_errors}
    socket = {
        n: dict(s.socket_errors)
        for n, s in ours.items()
        if sum(v for k, v in s.socket_errors.items() if k != "timeout")
    }
    timeouts = sum(s.socket_errors.get("timeout", 0) for s in ours.values())
    floor_timeouts = sum(s.socket_errors.get("timeout", 0) for s in bare.values())
    return [
        Verdict(
            "saturation: platform total >= 0.5x floor",
            total >= SATURATION_TARGET * floor_total,
            f"{total:,.0f} vs {floor_total:,.0f} req/s = {total / floor_total:.2f}x",
        ),
        Verdict(
            "saturation: links >= 0.5x floor's link stream",
            links >= SATURATION_TARGET * floor_links,
            f"{links:,.0f} vs {floor_links:,.0f} req/s = {links / floor_links:.2f}x",
        ),
        Verdict("saturation: no 5xx", not server, json.dumps(server) if server else "none"),
        Verdict(
            "saturation: no socket errors", not socket, json.dumps(socket) if socket else "none"
        ),
        Verdict(
            "saturation: timeouts no more than the floor's",
            timeouts <= floor_timeouts,
            f"{timeouts} vs floor {floor_timeouts}",
        ),
    ]


def recovery_verdicts(recovery: Phase) -> list[Verdict]:
    """The 10 s after the overload ends, at the peak's pace: back within target."""
    merged = recovery.merged()
    worst = max(merged.items(), key=lambda item: item[1].percentile_ms(95))
    errors = {n: _errors(s) for n, s in merged.items() if _bad(s) or s.refused}
    return [
        Verdict(
            f"recovery (10 s after the overload): every endpoint p95 < {P95_TARGET_MS:.0f} ms",
            all(s.percentile_ms(95) < P95_TARGET_MS for s in merged.values()),
            f"worst {worst[0]} {worst[1].percentile_ms(95):.1f} ms",
        ),
        Verdict("recovery: zero errors", not errors, json.dumps(errors) if errors else "none"),
    ]


def text_report(
    phases: dict[str, Phase], verdicts: list[Verdict], groups: list[str], settings: dict[str, str]
) -> str:
    lines = []
    if "peak" in phases:
        peak, floor = phases["peak"], phases["peak floor"]
        lines += _table(
            "PEAK, cold (first 10 s after start, empty caches)", peak.merged(0, COLD_SLICES)
        )
        lines += ["", *_table("PEAK, steady", peak.merged(COLD_SLICES))]
        floor_title = "PEAK floor (four bare FastAPI apps, same users)"
        lines += ["", *_table(floor_title, floor.merged(COLD_SLICES))]
        ours, bare = (
            _total(peak.merged(COLD_SLICES), groups),
            _total(floor.merged(COLD_SLICES), groups),
        )
        lines.append(
            f"{'total (wrk users)':<24} {ours:>9,.0f} vs floor {bare:,.0f} = {ours / bare:.2f}x"
        )
        lines.append("")
    if "saturation" in phases:
        sat, floor = phases["saturation"], phases["saturation floor"]
        lines += _table("SATURATION (same connections, no think time)", sat.merged())
        lines += ["", *_table("SATURATION floor", floor.merged())]
        ours, bare = _total(sat.merged(), groups), _total(floor.merged(), groups)
        lines.append(
            f"{'total (wrk users)':<24} {ours:>9,.0f} vs floor {bare:,.0f} = {ours / bare:.2f}x"
        )
        lines.append("")
        lines += _table("RECOVERY (the peak's users, straight after)", phases["recovery"].merged())
        lines.append("")
    lines.append("where the CPU went (cores used on average, 2 in all):")
    for name, phase in phases.items():
        shares = ", ".join(f"{k} {v:.2f}" for k, v in phase.cores.items() if v >= 0.01)
        lines.append(f"  {name}: {shares}")
    lines.append("")
    changed = ", ".join(f"{k}={v}" for k, v in settings.items())
    lines.append(f"limits and sizing this run sets: {changed}")
    lines.append("")
    for verdict in verdicts:
        lines.append(f"{'MEETS ' if verdict.met else 'MISSES'} {verdict.what}: {verdict.detail}")
    return "\n".join(lines)


def _sample_json(sample: Sample) -> dict[str, Any]:
    return {
        "requests": sample.requests,
        "req_per_s": round(sample.rate, 1),
        "p50_ms": sample.percentile_ms(50),
        "p95_ms": sample.percentile_ms(95),
        "p99_ms": sample.percentile_ms(99),
        "statuses": dict(sample.statuses),
        "socket_errors": dict(sample.socket_errors),
    }


def json_report(phases: dict[str, Phase], verdicts: list[Verdict], meta: dict[str, Any]) -> str:
    out: dict[str, Any] = {"meta": meta, "verdicts": [vars(v) for v in verdicts], "phases": {}}
    for name, phase in phases.items():
        cold = COLD_SLICES if name.startswith("peak") else 0
        out["phases"][name] = {
            "cores": phase.cores,
            "cold": {n: _sample_json(s) for n, s in phase.merged(0, cold).items()} if cold else {},
            "steady": {n: _sample_json(s) for n, s in phase.merged(cold).items()},
            "slices": [
                {"t": round(t, 1), **{n: _sample_json(s) for n, s in samples.items()}}
                for t, samples in phase.slices
            ],
        }
    return json.dumps(out, indent=2)


COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]  # fmt: skip


def svg_chart(title: str, series: dict[str, list[tuple[float, float]]], unit: str) -> str:
    """A line chart, one line per series (x: seconds into the phase)."""
    width, height, pad = 760, 300, 50
    points = [p for line in series.values() for p in line]
    if not points:
        return ""
    x_max = max(x for x, _ in points) or 1
    y_max = max(y for _, y in points) * 1.1 or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{pad}" y="16" font-size="14">{html.escape(title)}</text>',
        f'<line x1="{pad}" y1="{height}" x2="{width - 10}" y2="{height}" stroke="#999"/>',
        f'<line x1="{pad}" y1="30" x2="{pad}" y2="{height}" stroke="#999"/>',
        f'<text x="4" y="40" font-size="11">{y_max:,.0f} {unit}</text>',
        f'<text x="{width - 60}" y="{height + 14}" font-size="11">{x_max:.0f} s</text>',
    ]
    for i, (name, line) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(
            f"{pad + x / x_max * (width - pad - 10):.1f},{height - y / y_max * (height - 30):.1f}"
            for x, y in line
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        parts.append(
            f'<text x="{pad + 10 + (i % 4) * 170}" y="{height + 28 + (i // 4) * 12}" '
            f'font-size="11" fill="{color}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def html_report(text: str, phases: dict[str, Phase]) -> str:
    charts = []
    for name, phase in phases.items():
        names = sorted({n for _, samples in phase.slices for n in samples})
        p95 = {n: [(t, s[n].percentile_ms(95)) for t, s in phase.slices if n in s] for n in names}
        rate = {n: [(t, s[n].rate) for t, s in phase.slices if n in s] for n in names}
        charts.append(svg_chart(f"{name}: p95 latency per 5 s slice", p95, "ms"))
        charts.append(svg_chart(f"{name}: throughput per 5 s slice", rate, "req/s"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>stories loadtest</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}"
        "</style></head><body><h1>1001 Stories: load test</h1>"
        f"<pre>{html.escape(text)}</pre>{''.join(charts)}</body></html>"
    )


def write_reports(
    directory: Path,
    text: str,
    phases: dict[str, Phase],
    verdicts: list[Verdict],
    meta: dict[str, Any],
) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "loadtest.json"
    html_path = directory / "loadtest.html"
    json_path.write_text(json_report(phases, verdicts, meta))
    html_path.write_text(html_report(text, phases))
    return json_path, html_path
