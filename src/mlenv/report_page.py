"""The labelling experiment's report as one HTML page: tables and small SVG charts drawn here, so
the page needs no script, stylesheet or font from anywhere (it opens offline, and in MLflow's
artifact viewer)."""

from __future__ import annotations

import html
from typing import Any

WIDTH, BAR_HEIGHT, GAP, LABEL_WIDTH = 520, 22, 10, 190
COLOURS = {"assisted": "#2f6fbf", "control": "#8a8a8a"}


def _bars(title: str, rows: list[tuple[str, str, float | None]], *, maximum: float, unit: str) -> str:
    """Horizontal bars, one per (label, group, value); a missing value is said, not drawn as zero."""
    height = len(rows) * (BAR_HEIGHT + GAP) + 30
    scale = (WIDTH - LABEL_WIDTH - 70) / (maximum or 1)
    parts = [f'<svg role="img" aria-label="{html.escape(title)}" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']  # fmt: skip
    for index, (label, group, value) in enumerate(rows):
        y = 28 + index * (BAR_HEIGHT + GAP)
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{html.escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{LABEL_WIDTH}" y="{y + 16}" font-size="12" fill="#555">not measured</text>')
            continue
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{max(value * scale, 1):.1f}" height="{BAR_HEIGHT}" '
                     f'fill="{COLOURS.get(group, "#444")}"/>')  # fmt: skip
        parts.append(f'<text x="{LABEL_WIDTH + value * scale + 6:.1f}" y="{y + 16}" font-size="12">'
                     f"{value:.3g}{unit}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _interval(title: str, difference: float, low: float, high: float) -> str:
    """The difference (assisted - control) on a symmetric axis around 0 wide enough for its 95 %
    interval, drawn as a whisker: red when the whole interval is below 0, green above, grey across."""
    left, right, y = 40, WIDTH - 40, 50
    span = round(max(0.1, abs(low), abs(high), abs(difference)) * 1.25, 2)

    def x(value: float) -> float:
        return left + (max(-span, min(span, value)) + span) / (2 * span) * (right - left)

    colour = "#b3261e" if high < 0 else "#1e7b34" if low > 0 else "#555"
    return (
        f'<svg role="img" aria-label="{html.escape(title)}" width="{WIDTH}" height="90" viewBox="0 0 {WIDTH} 90" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="16" font-size="14" font-weight="bold">'
        f"{html.escape(title)}</text>"
        f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#999"/>'
        f'<line x1="{x(0)}" y1="{y - 12}" x2="{x(0)}" y2="{y + 12}" stroke="#333" stroke-dasharray="3,2"/>'
        f'<line x1="{x(low):.1f}" y1="{y}" x2="{x(high):.1f}" y2="{y}" stroke="{colour}" stroke-width="4"/>'
        f'<line x1="{x(low):.1f}" y1="{y - 7}" x2="{x(low):.1f}" y2="{y + 7}" stroke="{colour}" stroke-width="2"/>'
        f'<line x1="{x(high):.1f}" y1="{y - 7}" x2="{x(high):.1f}" y2="{y + 7}" stroke="{colour}" stroke-width="2"/>'
        f'<circle cx="{x(difference):.1f}" cy="{y}" r="6" fill="{colour}"/>'
        f'<text x="{left - 10}" y="{y + 30}" font-size="11">{-span:+.2f}</text>'
        f'<text x="{x(0) - 4}" y="{y + 30}" font-size="11">0</text>'
        f'<text x="{right - 20}" y="{y + 30}" font-size="11">{span:+.2f}</text></svg>'
    )


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


ROWS = [
    ("Tasks", "tasks"),
    ("Annotations", "annotations"),
    ("Time per annotation, median (s)", "lead_time_median_s"),
    ("Time per annotation, mean (s)", "lead_time_mean_s"),
    ("Agreement with the model's suggestion", "agreement_with_suggestion"),
    ("… over annotations with a suggestion", "with_suggestion"),
    ("Agreement with the gold labels", "agreement_with_gold"),
    ("… over annotations with a gold label", "with_gold"),
]


def page(report: dict[str, Any]) -> str:
    groups, effect, project = report["groups"], report["effect"], report["project"]
    title = f"Labelling experiment — {project['title']} (Label Studio project {project['id']})"
    table = "".join(
        f"<tr><th scope='row'>{html.escape(name)}</th>"
        + "".join(f"<td>{_cell(groups[group][key])}</td>" for group in ("assisted", "control"))
        + "</tr>"
        for name, key in ROWS
    )
    agreement = _bars(
        "Agreement (share of annotations)",
        [(f"{group}: with the suggestion", group, groups[group]["agreement_with_suggestion"]) for group in groups]
        + [(f"{group}: with gold", group, groups[group]["agreement_with_gold"]) for group in groups],
        maximum=1.0,
        unit="",
    )
    times = {group: groups[group]["lead_time_median_s"] for group in groups}
    longest = max([seconds for seconds in times.values() if seconds is not None], default=1.0)
    lead = _bars("Time per annotation, median (s)", [(group, group, times[group]) for group in groups],
                 maximum=longest, unit=" s")  # fmt: skip
    if "accuracy" in effect:
        scores = _bars(
            f"Held-out accuracy ({effect['held_out']} items, reference: {effect['reference']})",
            [(f"trained on {group} labels", group, effect["accuracy"][group]) for group in ("assisted", "control")],
            maximum=1.0,
            unit="",
        )
        low, high = effect["accuracy"]["ci95"]
        whisker = _interval("Accuracy difference, assisted minus control (95 % interval)",
                            effect["accuracy"]["difference"], low, high)  # fmt: skip
        effect_text = (
            f"<p>Trained on {effect['train_per_group']} labels per group; accuracy difference "
            f"{effect['accuracy']['difference']:+.3f} (95 % interval {low:+.3f} to {high:+.3f}); macro F1 difference "
            f"{effect['f1_macro']['difference']:+.3f} (95 % interval {effect['f1_macro']['ci95'][0]:+.3f} to "
            f"{effect['f1_macro']['ci95'][1]:+.3f}).</p>{scores}{whisker}"
        )
    else:
        effect_text = ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:720px;margin:1.5rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}th,td{{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left}}
td{{text-align:right}}svg{{max-width:100%;height:auto;display:block;margin:1rem 0}}.verdict{{font-size:1.2rem}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Control group: {report["control_percent"]} % of the tasks, never shown a suggestion. Model versions that
suggested: {html.escape(", ".join(report["model_versions"]) or "none")}. Made {html.escape(report["generated_at"])}.</p>
<p class="verdict"><strong>Effect on the model:</strong> {html.escape(effect["verdict"])}</p>
<table><thead><tr><th></th><th scope="col">assisted</th><th scope="col">control</th></tr></thead>
<tbody>{table}</tbody></table>
{agreement}{lead}
<h2>Effect on the model</h2>
{effect_text}
</body></html>
"""
