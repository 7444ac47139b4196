#!/usr/bin/env python3
"""The pictures of a compare.sh run: one self-contained HTML file.

    python3 scripts/report.py RESULTS_DIR > report.html

RESULTS_DIR is what scripts/compare.sh leaves (/tmp/logcast-compare.XXXXXX):
streams.tsv, floor.tsv, http.tsv, commands.txt, machine.txt and one
logcast-load JSON per stream run (<label>-<streams>.json, with its
`latency_cdf_ms`). Every file is optional; what is missing is left out.

The page is inline SVG and CSS only: no script, no font, no image, no request
to anywhere, so it can be mailed, attached to an issue or opened offline. For
each stream count it draws
  - the latency distribution (CDF) of every implementation compared,
  - user-space memory per stream (daemon RSS held / streams),
  - CPU per delivered event beside the kernel's write floor (write-floor, with
    a reading client and with none),
and a table of the same figures, so the comparison is seen at a glance.

Python's standard library only (compare.sh already needs python3 for its
tables): a formatting job over files the script wrote needs no build step.
"""

import html
import json
import math
import os
import sys

PALETTE = ["#1f5fbf", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0b7285", "#5c940d", "#862e9c"]
FLOOR_COLORS = {"reader": "#495057", "none": "#adb5bd"}


def num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def esc(s):
    return html.escape(str(s), quote=True)


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def nice_step(span, ticks=5):
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt(v):
    if v is None:
        return "–"
    if float(v).is_integer():
        return f"{int(v):,}"
    if v >= 10000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


class Chart:
    """An SVG drawing area with margins, a y axis and an x axis."""

    def __init__(self, width=560, height=300, left=64, right=16, top=28, bottom=48):
        self.w, self.h = width, height
        self.l, self.r, self.t, self.b = left, right, top, bottom
        self.parts = []

    @property
    def pw(self):
        return self.w - self.l - self.r

    @property
    def ph(self):
        return self.h - self.t - self.b

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, anchor="start", size=12, color="#212529", weight="normal", extra=""):
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{color}" font-weight="{weight}" {extra}>{esc(s)}</text>'
        )

    def title(self, s):
        self.text(self.l, 16, s, size=13, weight="bold")

    def y_axis(self, vmax, label, step=None):
        step = step or nice_step(vmax)
        v = 0.0
        while v <= vmax + 1e-9:
            y = self.t + self.ph - v / vmax * self.ph
            self.add(f'<line x1="{self.l}" x2="{self.l + self.pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>')
            self.text(self.l - 6, y + 4, fmt(v) if step >= 1 or v == 0 else f"{v:g}", anchor="end", size=11, color="#495057")
            v += step
        self.text(14, self.t + self.ph / 2, label, anchor="middle", size=11, color="#495057",
                  extra=f'transform="rotate(-90 14 {self.t + self.ph / 2:.1f})"')
        self.add(f'<line x1="{self.l}" x2="{self.l}" y1="{self.t}" y2="{self.t + self.ph}" stroke="#868e96"/>')

    def x_axis_linear(self, vmax, label):
        step = nice_step(vmax, 6)
        v = 0.0
        while v <= vmax + 1e-9:
            x = self.l + v / vmax * self.pw
            self.add(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.t}" y2="{self.t + self.ph}" stroke="#f1f3f5"/>')
            self.text(x, self.t + self.ph + 16, fmt(v), anchor="middle", size=11, color="#495057")
            v += step
        self.text(self.l + self.pw / 2, self.h - 8, label, anchor="middle", size=11, color="#495057")
        self.add(f'<line x1="{self.l}" x2="{self.l + self.pw}" y1="{self.t + self.ph}" y2="{self.t + self.ph}" stroke="#868e96"/>')

    def svg(self, desc):
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
            f'viewBox="0 0 {self.w} {self.h}" role="img" aria-label="{esc(desc)}" '
            f'font-family="system-ui, sans-serif"><title>{esc(desc)}</title>'
            + "".join(self.parts)
            + "</svg>"
        )


def cdf_chart(n, series, colors):
    """series: [(label, [(percentile, ms), ...])]"""
    c = Chart(width=560, height=320, right=150)
    c.title(f"Latency from write to receipt, {n} streams: CDF")
    # x range: the largest p99.9 (the max is one straggler; it is in the table)
    top = 0.0
    for _, pts in series:
        for p, v in pts:
            if p <= 99.9:
                top = max(top, v)
    xmax = nice_step(top * 1.05, 6) * math.ceil(top * 1.05 / nice_step(top * 1.05, 6)) if top > 0 else 1.0
    c.y_axis(1.0, "fraction of deliveries", step=0.25)
    c.x_axis_linear(xmax, "ms (axis to the largest p99.9)")
    for i, (label, pts) in enumerate(series):
        color = colors[label]
        d = []
        for p, v in sorted(pts):
            x = c.l + min(v, xmax) / xmax * c.pw
            y = c.t + c.ph - p / 100.0 * c.ph
            d.append(f"{'M' if not d else 'L'}{x:.1f},{y:.1f}")
        c.add(f'<path d="{" ".join(d)}" fill="none" stroke="{color}" stroke-width="2.2"/>')
        ly = c.t + 14 + i * 20
        lx = c.l + c.pw + 14
        c.add(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="3"/>')
        p99 = dict(pts).get(99.0)
        c.text(lx + 24, ly, f"{label}" + (f"  p99 {fmt(p99)}" if p99 is not None else ""), size=11)
    # the p50 and p99 guides
    for p in (50, 99):
        y = c.t + c.ph - p / 100 * c.ph
        c.add(f'<line x1="{c.l}" x2="{c.l + c.pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ced4da" stroke-dasharray="4 3"/>')
        c.text(c.l + c.pw - 2, y - 3, f"p{p}", anchor="end", size=10, color="#868e96")
    return c.svg(f"latency CDF for {n} streams")


def bar_chart(title, unit, bars, colors, floors=()):
    """bars: [(label, value)]; floors: [(name, value, color)] drawn as dashed lines."""
    bars = [(l, v) for l, v in bars if v is not None]
    c = Chart(width=330 + (100 if floors else 0), height=320, left=70, right=16 + (100 if floors else 0))
    c.title(title)
    vmax = max([v for _, v in bars] + [v for _, v, _ in floors if v] + [1e-9])
    step = nice_step(vmax * 1.1)
    top = step * math.ceil(vmax * 1.1 / step)
    c.y_axis(top, unit, step=step)
    slot = c.pw / max(len(bars), 1)
    bw = min(56, slot * 0.6)
    for i, (label, v) in enumerate(bars):
        x = c.l + slot * i + (slot - bw) / 2
        hgt = v / top * c.ph
        y = c.t + c.ph - hgt
        c.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{hgt:.1f}" fill="{colors[label]}" rx="2"/>')
        c.text(x + bw / 2, y - 4, fmt(v), anchor="middle", size=11, weight="bold")
        c.text(x + bw / 2, c.t + c.ph + 16, label, anchor="middle", size=11)
    c.add(f'<line x1="{c.l}" x2="{c.l + c.pw}" y1="{c.t + c.ph}" y2="{c.t + c.ph}" stroke="#868e96"/>')
    for name, v, color in floors:
        if not v:
            continue
        y = c.t + c.ph - v / top * c.ph
        c.add(f'<line x1="{c.l}" x2="{c.l + c.pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" stroke-width="2" stroke-dasharray="6 4"/>')
        c.text(c.l + c.pw + 6, y + 4, f"{name} {fmt(v)}", size=10, color=color)
    return c.svg(title)


def load(res):
    streams = read_tsv(os.path.join(res, "streams.tsv"))
    floors = {r[0]: (num(r[1]), num(r[2])) for r in read_tsv(os.path.join(res, "floor.tsv")) if len(r) >= 3}
    http_rows = read_tsv(os.path.join(res, "http.tsv"))
    sizes, labels, by = [], [], {}
    for r in streams:
        r = (r + [""] * 11)[:11]
        label, n = r[0], r[1]
        if n not in sizes:
            sizes.append(n)
        if label not in labels:
            labels.append(label)
        doc = read_json(os.path.join(res, f"{label}-{n}.json")) or {}
        by[(label, n)] = {
            "connected": num(r[2]), "rss": num(r[3]), "idle": num(r[4]), "p50": num(r[5]),
            "p99": num(r[6]), "missing": num(r[7]), "us_event": num(r[8]), "cmd": r[10],
            "cdf": [(float(p), float(v)) for p, v in doc.get("latency_cdf_ms") or []],
            "streams": doc.get("streams", num(n)),
        }
    return sizes, labels, by, floors, http_rows


def page(res):
    sizes, labels, by, floors, http_rows = load(res)
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    machine = ""
    mpath = os.path.join(res, "machine.txt")
    if os.path.exists(mpath):
        with open(mpath, encoding="utf-8") as f:
            machine = f.read().strip()
    out = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>logcast compared: streams, memory, CPU</title><style>",
        "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1320px;padding:0 16px;color:#212529;background:#fff}",
        "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}",
        ".row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.card{border:1px solid #e9ecef;border-radius:6px;padding:6px}",
        "table{border-collapse:collapse;margin:8px 0}th,td{padding:4px 10px;border-bottom:1px solid #e9ecef;text-align:right}",
        "th:first-child,td:first-child{text-align:left}thead th{background:#f8f9fa}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}",
        ".muted{color:#6c757d}pre{background:#f8f9fa;padding:8px;overflow:auto;font-size:12px}.bad{color:#c92a2a;font-weight:bold}",
        "</style></head><body>",
        "<h1>logcast compared: latency, memory and CPU per stream</h1>",
        f"<p class=\"muted\">{esc(machine) if machine else 'scripts/compare.sh'} · results: {esc(res)}</p>",
    ]
    if not sizes:
        out.append("<p>No stream runs in these results.</p>")
    for n in sizes:
        here = [l for l in labels if (l, n) in by]
        floor_none, floor_reader = floors.get(n, (None, None))
        out.append(f"<h2>{esc(n)} streams of one log</h2>")
        out.append("<table><thead><tr><th>implementation</th><th>connected</th><th>missed marks</th>"
                   "<th>p50 ms</th><th>p99 ms</th><th>user memory B/stream</th><th>idle CPU %</th>"
                   "<th>CPU µs/event</th><th>× floor (reading client)</th><th>command</th></tr></thead><tbody>")
        for l in here:
            d = by[(l, n)]
            ratio = f"{d['us_event'] / floor_reader:.2f}×" if d["us_event"] and floor_reader else "–"
            conn = d["connected"]
            short = conn is not None and num(n) is not None and conn < num(n)
            missed = d["missing"]
            out.append(
                f"<tr><td><span class=\"sw\" style=\"background:{colors[l]}\"></span>{esc(l)}</td>"
                f"<td{' class=bad' if short else ''}>{fmt(conn)}</td>"
                f"<td{' class=bad' if missed else ''}>{fmt(missed) if missed is not None else '–'}</td>"
                f"<td>{fmt(d['p50'])}</td><td>{fmt(d['p99'])}</td><td>{fmt(d['rss'])}</td><td>{fmt(d['idle'])}</td>"
                f"<td>{fmt(d['us_event'])}</td><td>{ratio}</td><td class=\"muted\">[{esc(d['cmd'])}]</td></tr>"
            )
        out.append("</tbody></table><div class=\"row\">")
        series = [(l, by[(l, n)]["cdf"]) for l in here if by[(l, n)]["cdf"]]
        if series:
            out.append(f"<div class=\"card\">{cdf_chart(n, series, colors)}</div>")
        out.append("<div class=\"card\">" + bar_chart(
            f"User memory per stream, {n} streams", "bytes per stream",
            [(l, by[(l, n)]["rss"]) for l in here], colors) + "</div>")
        out.append("<div class=\"card\">" + bar_chart(
            f"CPU per delivered event, {n} streams", "µs per event",
            [(l, by[(l, n)]["us_event"]) for l in here], colors,
            floors=[("floor, reader", floor_reader, FLOOR_COLORS["reader"]),
                    ("floor, no reader", floor_none, FLOOR_COLORS["none"])]) + "</div>")
        out.append("</div>")
    if floors:
        out.append("<p class=\"muted\">Kernel floor: <code>write-floor</code>, one ~100-byte <code>write()</code> to each of "
                   "N established loopback sockets, measured right after logcast's run; dashed lines. "
                   "Memory: the server's resident set while the streams are held, minus before, per stream.</p>")
    if http_rows:
        out.append("<h2>HTTP requests per second</h2><table><thead><tr><th>endpoint</th><th>tool</th><th>pipelined</th>")
        servers = []
        for r in http_rows:
            if r[0] not in servers:
                servers.append(r[0])
        out.append("".join(f"<th>{esc(s)}</th>" for s in servers) + "</tr></thead><tbody>")
        keys, data = [], {}
        for r in http_rows:
            r = (r + [""] * 9)[:9]
            k = (r[1], r[2], r[3])
            if k not in keys:
                keys.append(k)
            data[(r[0], k)] = (num(r[4]), num(r[6]))
        for k in keys:
            cells = []
            for s in servers:
                rps, p99 = data.get((s, k), (None, None))
                cells.append(f"<td>{fmt(rps)}" + (f" <span class=muted>({fmt(p99)} ms)</span>" if p99 is not None else "") + "</td>")
            out.append(f"<tr><td>GET {esc(k[0])}</td><td>{esc(k[1])}</td><td>{esc(k[2])}</td>{''.join(cells)}</tr>")
        out.append("</tbody></table>")
    cpath = os.path.join(res, "commands.txt")
    if os.path.exists(cpath):
        with open(cpath, encoding="utf-8") as f:
            out.append(f"<h2>Commands</h2><pre>{esc(f.read())}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 else 2
    if not os.path.isdir(argv[1]):
        print(f"report.py: no such results directory: {argv[1]}", file=sys.stderr)
        return 1
    sys.stdout.write(page(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
