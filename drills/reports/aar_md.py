"""aar.md: the after-action report in Markdown, readable in any Git forge or chat. Every piece
of text goes through `md_text` (drills.reports.markdown): a scenario's or an observation's text
cannot add a column, a link, emphasis or HTML, and its control characters show as escapes."""

from __future__ import annotations

from drills.reports import aar as doc
from drills.reports.aar import Aar
from drills.reports.aar_rating import RATINGS, RULE
from drills.reports.markdown import md_text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_text(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _rating(rating: str | None) -> str:
    return f"{rating} ({RATINGS[rating]})" if rating else "none suggested"


def render_aar_markdown(aar: Aar) -> str:
    """aar.md of an after-action report."""
    ex = aar.exercise
    lines = [f"# After-action report: {md_text(ex.title)}", ""]
    lines += [f"- **{md_text(k)}:** {md_text(v)}" for k, v in doc.overview(aar)]
    lines += ["", "## Participants", ""]
    lines += _table(["role", "organisation", "participants"], doc.participant_rows(ex)) if ex.participants else ["None listed.", ""]
    lines += ["## Objectives and capability targets", ""]
    for o in ex.objectives:
        lines.append(f"- **{md_text(o.id)}** {md_text(o.title)}")
        lines += [f"  - {md_text(t.id)} {md_text(t.title)} (measured by: {md_text(', '.join(t.expect) or 'none')})" for t in o.targets]
    if not ex.objectives:
        lines.append("None stated.")
    lines += ["", "## Ratings", "", md_text(RULE), ""]
    lines += _table(doc.RATING_COLUMNS, doc.rating_rows(aar)) if aar.targets else ["No capability target to rate.", ""]
    if aar.ratings_file:
        lines += [f"Final ratings from {md_text(aar.ratings_file)}.", ""]
    lines += ["## The MSEL as played", ""]
    lines += _table(doc.MSEL_COLUMNS, [doc.msel_row(ex, i) for i in ex.injects]) if ex.injects else ["No injects.", ""]
    lines += ["### Holds", ""]
    lines += _table(doc.HOLD_COLUMNS, doc.hold_rows(ex)) if ex.holds else ["The timeline was never held.", ""]
    if ex.stop is not None:
        lines += ["### Stop word", "", f"At {md_text(doc.stop_text(ex))}. Every fault in force was reverted at once and the drill ended.", ""]
    if ex.log:
        lines += ["### Controller log", "", *_table(doc.LOG_COLUMNS, doc.log_rows(ex))]
    lines += ["## Analysis of capability targets", ""]
    for o in ex.objectives:
        lines += [f"### {md_text(o.id)} {md_text(o.title)}", ""]
        lines += [f"- Observation: {md_text(doc.observation_line(obs))}" for obs in aar.objective_observations.get(o.id, ())]
        for r in (r for r in aar.targets if r.objective.id == o.id):
            lines += [f"#### {md_text(r.target.id)} {md_text(r.target.title)}", ""]
            lines.append(f"**Suggested: {md_text(_rating(r.suggestion.rating))}** · **Final: {md_text(_rating(r.final))}**")
            if r.override is not None:
                lines.append(f"(rated by {md_text(r.override.by or 'the evaluators')}: {md_text(r.override.reason or 'no reason given')})")
            lines += ["", *[f"- {md_text(reason)}" for reason in r.suggestion.reasons], ""]
            if r.suggestion.figures:
                lines += _table(doc.FIGURE_COLUMNS, doc.figure_rows(r))
            lines += [f"- Observation: {md_text(doc.observation_line(obs))}" for obs in r.observations]
            lines += [""] if r.observations else []
    if aar.general_observations:
        lines += ["## Other observations", ""]
        lines += [f"- {md_text(obs.objective or 'general')}: {md_text(doc.observation_line(obs))}" for obs in aar.general_observations]
        lines.append("")
    lines += ["## Strengths", ""]
    lines += [f"- {md_text(s)}" for s in doc.strengths(aar)] or ["None recorded."]
    lines += ["", "## Areas for improvement", ""]
    found = doc.areas(aar)
    lines += [f"- **{md_text(a.target)}** ({md_text(a.rating or 'observation')}): {md_text(a.evidence)}" for a in found] or ["None recorded."]
    lines += ["", "## Improvement plan", "", "To be completed by the planners (improvement-plan.csv holds the same rows).", ""]
    lines += _table(doc.PLAN_COLUMNS, [[a.objective, a.target, a.rating, a.issue, a.evidence] + [""] * 6 for a in found])
    return "\n".join(lines)
