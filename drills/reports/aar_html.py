"""aar.html: the after-action report as one self-contained page to hand out the next morning.

Built from the pieces of every drills report (drills.reports.html_page: the page shell with its
print rules, the coloured header, sections, tables); no script, no network. Every piece of text
from the scenario, the controllers and the evaluators goes through `esc`; the page as a whole
through `visible`. Ratings are coloured: P green, S amber, M red, U white on red.
"""

from __future__ import annotations

from drills.reports import aar as doc
from drills.reports.aar import Aar
from drills.reports.aar_rating import RATINGS, RULE
from drills.reports.html_page import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Cell,
    Row,
    bullets,
    esc,
    page,
    paragraph,
    section,
    table,
    verdict_header,
)

RATING_CSS = """
td.rP,span.rP{background:var(--pass-bg);color:var(--pass);font-weight:700}
td.rS,span.rS{background:var(--inc-bg);color:var(--inc);font-weight:700}
td.rM,span.rM{background:var(--fail-bg);color:var(--fail);font-weight:700}
td.rU,span.rU{background:var(--fail);color:#fff;font-weight:700}
span.rating{padding:.05em .45em;border-radius:4px}
dl.facts-table{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.4em 0}
dl.facts-table dt{font-weight:600} dl.facts-table dd{margin:0;white-space:pre-wrap}
.target{border:1px solid #d0d7de;border-radius:6px;padding:.3em .9em .6em;margin:.8em 0;break-inside:avoid}
.target h4{margin:.4em 0}
table.plan td:nth-child(5){min-width:20em} table.plan td:nth-child(n+6){min-width:6em}
"""
_HEADER_CLASS = {"P": PASS, "S": PASS, "M": FAIL, "U": FAIL}


def _rating_cell(rating: str | None) -> Cell:
    return Cell(rating or "-", f"mark r{rating}" if rating in RATINGS else "mark")  # "-": none


def _badge(rating: str | None) -> str:
    if rating is None:
        return '<span class="rating">none suggested</span>'
    return f'<span class="rating r{esc(rating)}">{esc(rating)}</span> {esc(RATINGS.get(rating, ""))}'


def _header(aar: Aar) -> str:
    finals = [r.final for r in aar.targets]
    counts = " · ".join(f"{finals.count(g)} {g}" for g in "PSMU" if finals.count(g))
    rated = [g for g in finals if g is not None]
    cls = INCONCLUSIVE if not rated else (FAIL if any(_HEADER_CLASS[g] == FAIL for g in rated) else PASS)
    ex = aar.exercise
    facts = f"{ex.scenario} · run {ex.run_id} · started {ex.started_at or '-'}"
    reasons = [f"{a.target}: rated {a.rating}" if a.rating else f"{a.target or a.objective}: {a.issue}" for a in doc.areas(aar)]
    return verdict_header(f"After-action report: {ex.title}", cls, counts or "NO RATINGS", facts, reasons)


def _overview(aar: Aar) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in doc.overview(aar))
    ex = aar.exercise
    parts = [f'<dl class="facts-table">{items}</dl>', "<h3>Participants</h3>"]
    parts.append(table(["role", "organisation", "participants"], doc.participant_rows(ex), "participants") if ex.participants else paragraph("None listed."))
    parts.append("<h3>Objectives and capability targets</h3>")
    if not ex.objectives:
        parts.append(paragraph("None stated."))
    for o in ex.objectives:
        targets = [f"{t.id} {t.title} (measured by: {', '.join(t.expect) or 'none'})" for t in o.targets]
        parts.append(f"<p><strong>{esc(o.id)}</strong> {esc(o.title)}</p>" + bullets(targets))
    return section("overview", "Exercise overview", *parts, keep=True)


def _ratings(aar: Aar) -> str:
    if not aar.targets:
        return section("ratings", "Ratings", paragraph("No capability target to rate."), keep=True)
    rows = [Row([row[0], row[1], _rating_cell(row[2]), _rating_cell(row[3]), row[4], row[5]]) for row in doc.rating_rows(aar)]
    source = paragraph(f"Final ratings from {aar.ratings_file}." if aar.ratings_file else
                       "No ratings.yaml yet: the final ratings are the suggested ones (edit ratings.yaml, run drill aar again).", "note")  # fmt: skip
    return section("ratings", "Ratings", table(doc.RATING_COLUMNS, rows, "ratings"), source, paragraph(RULE, "facts"), keep=True)


def _msel(aar: Aar) -> str:
    ex = aar.exercise
    parts = []
    if ex.injects:
        rows = [Row(doc.msel_row(ex, i), doc.INJECT_STATUS_CLASS.get(i.status, "")) for i in ex.injects]
        parts.append(table(doc.MSEL_COLUMNS, rows, "msel"))
    else:
        parts.append(paragraph("No injects."))
    parts.append("<h3>Holds</h3>")
    parts.append(table(doc.HOLD_COLUMNS, doc.hold_rows(ex), "holds") if ex.holds else paragraph("The timeline was never held."))
    if ex.stop is not None:
        parts.append("<h3>Stop word</h3>")
        parts.append(paragraph(f"{doc.stop_text(ex)}. Every fault in force was reverted at once and the drill ended.", "note stop"))
    if ex.log:
        parts.append("<h3>Controller log</h3>")
        parts.append(table(doc.LOG_COLUMNS, [Row(r, "" if r[4] == "yes" else INCONCLUSIVE) for r in doc.log_rows(ex)], "log"))
    return section("msel", "The MSEL as played", *parts)


def _target(report: doc.TargetReport) -> str:
    parts = [
        f'<div class="target" id="target-{esc(report.target.id)}"><h4>{esc(report.target.id)} {esc(report.target.title)}</h4>',
        f"<p>Suggested: {_badge(report.suggestion.rating)} · Final: {_badge(report.final)}</p>",
    ]
    if report.override is not None:
        parts.append(paragraph(f"Rated by {report.override.by or 'the evaluators'}: {report.override.reason or 'no reason given'}", "note"))
    parts.append(bullets(list(report.suggestion.reasons), "reasons"))
    if report.suggestion.figures:
        rows = [Row([_rating_cell(r[0]), *r[1:4], Cell(r[4], "num"), r[5], Cell(r[6], "num"), r[7]]) for r in doc.figure_rows(report)]
        parts.append(table(doc.FIGURE_COLUMNS, rows, "figures"))
    if report.observations:
        parts.append("<h5>Evaluators' observations</h5>" + bullets([doc.observation_line(o) for o in report.observations], "observations"))
    return "".join(parts) + "</div>"


def _analysis(aar: Aar) -> str:
    parts = []
    for o in aar.exercise.objectives:
        parts.append(f"<h3>{esc(o.id)} {esc(o.title)}</h3>")
        if aar.objective_observations.get(o.id):
            parts.append(bullets([doc.observation_line(x) for x in aar.objective_observations[o.id]], "observations"))
        parts += [_target(r) for r in aar.targets if r.objective.id == o.id]
    if aar.general_observations:
        parts.append("<h3>Other observations</h3>")
        parts.append(bullets([f"{x.objective or 'general'}: {doc.observation_line(x)}" for x in aar.general_observations], "observations"))
    return section("analysis", "Analysis of capability targets", *(parts or [paragraph("No objectives were stated.")]))


def _findings(aar: Aar) -> str:
    found = doc.areas(aar)
    good = doc.strengths(aar)
    plan_rows = [Row([a.objective, a.target, _rating_cell(a.rating or None), a.issue, a.evidence] + [""] * 6) for a in found]
    return section(
        "findings", "Strengths, areas for improvement and the improvement plan",
        "<h3>Strengths</h3>", bullets(good, "strengths") if good else paragraph("None recorded."),
        "<h3>Areas for improvement</h3>",
        bullets([f"{a.target} ({a.rating or 'observation'}): {a.evidence}" for a in found], "areas") if found else paragraph("None recorded."),
        "<h3>Improvement plan</h3>",
        paragraph("To be completed by the planners: improvement-plan.csv holds the same rows."),
        table(doc.PLAN_COLUMNS, plan_rows, "plan") if plan_rows else paragraph("No area for improvement."),
    )  # fmt: skip


def render_aar_html(aar: Aar) -> str:
    """aar.html of an after-action report."""
    body = [_header(aar), _overview(aar), _ratings(aar), _msel(aar), _analysis(aar), _findings(aar)]
    return page(f"After-action report: {aar.exercise.title}", body, RATING_CSS)
