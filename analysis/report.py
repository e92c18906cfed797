"""``report.md``: a run's verdict and evidence, readable on GitHub or in a terminal.

The report is written from ``summary.json`` (and the charts already drawn),
never from live simulation state, so it can be regenerated offline from a
run folder. It leads with the verdict and *what broke, where*, because that
is the one thing a reader needs first; the evidence (invariants,
expectations, per-tenant KPIs, charts, fingerprints, timings) follows, and
it ends with the commands to reproduce and re-verify the run.

Every key of the summary is treated as optional: a partial or older summary
still produces a report that says what is missing instead of crashing.
Money is shown in AUD exactly from integer cents, never via float.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from turingcore.money import cents_text

#: The five invariants, in the order DESIGN.md lists them.
INVARIANTS: tuple[str, ...] = (
    "balance_derivability",
    "event_integrity",
    "tenant_isolation",
    "idempotency",
    "audit_completeness",
)

_CHART_TITLES = {
    "deposits": "Member deposits per tenant",
    "members": "Members per tenant",
    "postings": "Postings per day per tenant",
    "rejections": "Rejections by rule",
}

# Keys shown first (in this order) when rendering a counterexample dict.
_CX_KEYS = ("tenant", "seq", "account", "entity", "command", "expected", "actual")


def aud_text(cents: int) -> str:
    """Integer cents as AUD with thousands separators, exactly: 123456789 -> 1,234,567.89.

    Built on ``cents_text`` so the sign and the two places follow the same
    rule as everywhere else; only the grouping of the whole part is added.
    """
    text = cents_text(int(cents))
    sign = "-" if text.startswith("-") else ""
    whole, _, part = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}.{part}"


def _count(value: object) -> str:
    """A count with thousands separators, or an em dash when unknown."""
    if isinstance(value, bool) or value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return _cell(value)


def _cell(value: object) -> str:
    """Any value made safe for one Markdown table cell."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text


def _mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (for optional sections)."""
    return value if isinstance(value, Mapping) else {}


def _verdict_word(passed: object) -> str:
    if passed is True:
        return "PASS"
    if passed is False:
        return "FAIL"
    return "UNKNOWN"


def _mark(passed: object) -> str:
    """Pass/fail for a table cell, with the word so it survives plain text."""
    if passed is True:
        return "✅ pass"
    if passed is False:
        return "❌ FAIL"
    return "— not run"


def counterexample_text(cx: object) -> str:
    """A counterexample dict as one compact line: ``tenant=cu-small seq=17 ...: message``.

    Known keys come first in a fixed order so lines line up when scanned;
    the free-text message goes last because it is the longest.
    """
    if cx is None:
        return "—"
    if not isinstance(cx, Mapping):
        return _cell(cx)
    parts: list[str] = []
    keys = [k for k in _CX_KEYS if k in cx]
    keys += sorted(k for k in cx if k not in _CX_KEYS and k != "message")
    for key in keys:
        value = cx[key]
        if isinstance(value, Mapping | list | tuple):
            value = _compact(value)
        parts.append(f"{key}={value}")
    text = " ".join(parts)
    if cx.get("message"):
        text = f"{text}: {cx['message']}" if text else str(cx["message"])
    return _cell(text)


def _compact(value: object) -> str:
    """Nested values in a counterexample, short and on one line."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    return str(value)


def _expectations(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The expectation records, failed first, otherwise in the run's order."""
    items = summary.get("expectations")
    if not isinstance(items, list):
        return []
    records = [e for e in items if isinstance(e, Mapping)]
    return sorted(records, key=lambda e: e.get("passed") is not False)


def _failures(summary: Mapping[str, Any]) -> list[str]:
    """One short line per thing that broke: failed invariants, then expectations."""
    lines: list[str] = []
    invariants = _mapping(summary.get("invariants"))
    for name in _invariant_names(invariants):
        result = _mapping(invariants.get(name))
        if result.get("passed") is False:
            cxs = _mapping(result.get("counterexamples"))
            count = cxs.get("count")
            where = counterexample_text(cxs.get("first"))
            n = f"{count:,} counterexample(s)" if isinstance(count, int) else "failed"
            lines.append(f"invariant `{name}` failed — {n}; first: {where}")
    for exp in _expectations(summary):
        if exp.get("passed") is False:
            tenant = f" [{exp.get('tenant')}]" if exp.get("tenant") else ""
            lines.append(
                f"expectation “{_cell(exp.get('name'))}”{tenant} failed — "
                f"expected {_cell(exp.get('expected'))}, actual {_cell(exp.get('actual'))}"
            )
    return lines


def _invariant_names(invariants: Mapping[str, Any]) -> list[str]:
    """The five canonical names, then any extra checks the run reported."""
    return list(INVARIANTS) + sorted(k for k in invariants if k not in INVARIANTS)


def _verdict(summary: Mapping[str, Any]) -> bool | None:
    """The run's verdict: the summary's own flag, or derived if it has none."""
    passed = summary.get("passed")
    if isinstance(passed, bool):
        return passed
    invariants = _mapping(summary.get("invariants"))
    if not invariants:
        return None
    results = [_mapping(v).get("passed") for v in invariants.values()]
    results += [e.get("passed") for e in _expectations(summary)]
    return all(r is True for r in results)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` has one of ``l``/``r`` per column (default left)."""
    spec = align.ljust(len(header), "l")
    rule = ["---:" if a == "r" else "---" for a in spec]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _section_title(summary: Mapping[str, Any]) -> list[str]:
    scenario = _mapping(summary.get("scenario"))
    name = scenario.get("name", "unnamed scenario")
    seed = summary.get("seed")
    verdict = _verdict(summary)
    failures = _failures(summary)
    seed_text = f" (seed {seed})" if seed is not None else ""
    lines = [f"# {_verdict_word(verdict)} — run report: {name}{seed_text}", ""]
    if verdict is True and not failures:
        lines.append("**Verdict: PASS.** All invariants held and every expectation was met.")
    elif verdict is True:
        lines.append("**Verdict: PASS** per the summary, but these checks report failures:")
    elif verdict is False:
        lines.append("**Verdict: FAIL.** What broke, and where:")
    else:
        lines.append("**Verdict: UNKNOWN.** The summary carries no verdict and no invariants.")
    if failures:
        lines.append("")
        lines += [f"- {line}" for line in failures]
    elif verdict is False:
        lines += ["", "- the summary records a failure but names no failed check"]
    lines.append("")
    facts = []
    for key, label in (
        ("source", "scenario file"),
        ("start", "start"),
        ("days", "days"),
        ("scale", "scale"),
    ):
        if key in scenario:
            facts.append(f"{label} `{scenario[key]}`")
    if scenario.get("hash"):
        facts.append(f"scenario hash `{str(scenario['hash'])[:16]}`")
    if facts:
        lines += ["Scenario: " + ", ".join(facts) + ".", ""]
    return lines


def _section_invariants(summary: Mapping[str, Any]) -> list[str]:
    invariants = _mapping(summary.get("invariants"))
    lines = ["## Invariants", ""]
    rows = []
    details: list[str] = []
    for name in _invariant_names(invariants):
        result = _mapping(invariants.get(name))
        cxs = _mapping(result.get("counterexamples"))
        passed = result.get("passed") if result else None
        first = counterexample_text(cxs.get("first")) if passed is False else ""
        rows.append(
            [
                f"`{name}`",
                _mark(passed),
                _count(result.get("examined")),
                _count(cxs.get("count")) if result else "—",
                first,
            ]
        )
        if passed is False:
            for which in ("first", "worst", "last"):
                if cxs.get(which) is not None:
                    details.append(f"- `{name}` {which}: {counterexample_text(cxs[which])}")
    lines += _table(
        ["invariant", "result", "examined", "counterexamples", "first counterexample"],
        rows,
        "llrrl",
    )
    if details:
        lines += ["", "Counterexamples of the failed invariants (first, worst, last):", ""]
        lines += details
    if not invariants:
        lines += ["", "_The summary has no invariant results._"]
    return lines + [""]


def _section_expectations(summary: Mapping[str, Any]) -> list[str]:
    records = _expectations(summary)
    lines = ["## Expectations (expected vs actual)", ""]
    if not records:
        return lines + ["_No expectations were checked in this run._", ""]
    failed = sum(1 for e in records if e.get("passed") is False)
    lines.append(f"{len(records) - failed} of {len(records)} met; failed ones first.")
    lines.append("")
    rows = [
        [
            _mark(e.get("passed")),
            _cell(e.get("name")),
            _cell(e.get("tenant")),
            _cell(e.get("expected")),
            _cell(e.get("actual")),
            _cell(e.get("detail") or ""),
        ]
        for e in records
    ]
    lines += _table(["result", "expectation", "tenant", "expected", "actual", "detail"], rows)
    return lines + [""]


def _rejection_total(value: object) -> int | None:
    """Rejections as the summary gives them: a {rule: count} dict or a plain count."""
    if isinstance(value, Mapping):
        return sum(int(v) for v in value.values() if isinstance(v, int))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _section_tenants(summary: Mapping[str, Any]) -> list[str]:
    tenants = _mapping(summary.get("tenants"))
    lines = ["## Tenants", ""]
    if not tenants:
        return lines + ["_The summary has no per-tenant KPIs._", ""]
    keys = ("members", "accounts", "entries", "postings", "events", "commands")
    totals: dict[str, int] = dict.fromkeys((*keys, "deposits_cents", "rejections"), 0)
    rows = []
    by_rule: list[list[str]] = []
    for tenant_id, raw in sorted(tenants.items()):
        t = _mapping(raw)
        deposits = t.get("deposits_cents")
        rejections = _rejection_total(t.get("rejections"))
        for key in keys:
            if isinstance(t.get(key), int):
                totals[key] += t[key]
        if isinstance(deposits, int):
            totals["deposits_cents"] += deposits
        if rejections is not None:
            totals["rejections"] += rejections
        rows.append(
            [
                f"`{tenant_id}`",
                _count(t.get("members")),
                _count(t.get("accounts")),
                aud_text(deposits) if isinstance(deposits, int) else "—",
                _count(t.get("entries")),
                _count(t.get("postings")),
                _count(t.get("events")),
                _count(t.get("commands")),
                _count(rejections),
                _count(t.get("head_seq")),
            ]
        )
        for rule, count in sorted(_mapping(t.get("rejections")).items()):
            by_rule.append([f"`{tenant_id}`", f"`{rule}`", _count(count)])
    if len(rows) > 1:
        rows.append(
            ["**all**"]
            + [f"**{_count(totals[k])}**" for k in ("members", "accounts")]
            + [f"**{aud_text(totals['deposits_cents'])}**"]
            + [f"**{_count(totals[k])}**" for k in ("entries", "postings", "events", "commands")]
            + [f"**{_count(totals['rejections'])}**", ""]
        )
    header = [
        "tenant",
        "members",
        "accounts",
        "deposits (AUD)",
        "entries",
        "postings",
        "events",
        "commands",
        "rejections",
        "head seq",
    ]
    lines += _table(header, rows, "lrrrrrrrrr")
    if by_rule:
        lines += ["", "Rejections by rule:", ""]
        lines += _table(["tenant", "rule", "count"], by_rule, "llr")
    return lines + [""]


def _ratio_text(value: object) -> str:
    """A 0-1 ratio as a percentage with one decimal, or an em dash when undefined."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value * 100:.1f}%"
    return "—"


def _aud_cell(value: object) -> str:
    """Integer cents as AUD, or an em dash when missing."""
    return aud_text(value) if isinstance(value, int) and not isinstance(value, bool) else "—"


def _duration(seconds: object) -> str:
    """Seconds in the largest sensible unit: 45 s, 12.5 min, 3.2 h, 2.1 d."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _add(*values: object) -> int | None:
    """The sum of integer counts, or None if any is missing."""
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return sum(ints) if len(ints) == len(values) else None


def _confusion_rows(matrix: Mapping[str, Any]) -> list[list[str]]:
    """The per-payment confusion matrix as table rows, with row and column totals."""
    tp, fn, fp, tn = (matrix.get(key) for key in ("tp", "fn", "fp", "tn"))
    return [
        ["**fraudulent**", _count(tp), _count(fn), _count(_add(tp, fn))],
        ["**legitimate**", _count(fp), _count(tn), _count(_add(fp, tn))],
        ["**total**", _count(_add(tp, fp)), _count(_add(fn, tn)), _count(_add(tp, fn, fp, tn))],
    ]


def _fraud_kind_rows(kinds: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for kind, raw in kinds.items():
        k = _mapping(raw)
        rows.append(
            [
                f"`{kind}`",
                _count(k.get("started")),
                _count(k.get("detected")),
                _ratio_text(k.get("recall")),
                _duration(k.get("median_detect_s")),
                _aud_cell(k.get("lost_cents")),
                _aud_cell(k.get("prevented_cents")),
            ]
        )
    return rows


def _fraud_tenant_rows(tenants: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for tenant_id, raw in sorted(tenants.items()):
        t = _mapping(raw)
        matrix = _mapping(t.get("confusion"))
        campaigns = _mapping(t.get("campaigns"))
        rows.append(
            [
                f"`{tenant_id}`",
                " / ".join(_count(matrix.get(k)) for k in ("tp", "fn", "fp", "tn")),
                _ratio_text(t.get("precision")),
                _ratio_text(t.get("recall")),
                f"{_count(campaigns.get('detected'))} of {_count(campaigns.get('started'))}",
                _aud_cell(t.get("fraud_losses_cents")),
                _count(t.get("alerts")),
                _count(t.get("reports")),
            ]
        )
    return rows


def _section_fraud(summary: Mapping[str, Any]) -> list[str]:
    """The fraud monitor against the twin's ground truth, when the run scored it.

    Reads ``summary["fraud"]`` (the shape of ``fraud_summary.json`` that
    ``models.fraud`` writes): an ``all`` block and per-``tenants`` blocks
    with the per-payment ``confusion`` matrix (tp, fn, fp, tn), precision,
    recall, campaigns by kind, time to detect, and the money lost, detected
    and prevented. A run without the block gets no section.
    """
    fraud = _mapping(summary.get("fraud"))
    if not fraud:
        return []
    everything = _mapping(fraud.get("all"))
    campaigns = _mapping(everything.get("campaigns"))
    delay = _mapping(everything.get("time_to_detect_s"))
    lines = [
        "## Fraud monitor",
        "",
        "The platform's rules (velocity, new payee plus large amount, structuring) scored "
        "against the twin's ground truth, which the platform never sees. A payment is "
        "*alerted* when a FraudAlertRaised event names it.",
        "",
        "Confusion matrix per payment (all tenants):",
        "",
    ]
    header = ["payments", "alerted", "not alerted", "total"]
    lines += _table(header, _confusion_rows(_mapping(everything.get("confusion"))), "lrrr")
    lines += [
        "",
        f"Precision {_ratio_text(everything.get('precision'))}, recall "
        f"{_ratio_text(everything.get('recall'))} (per payment); campaigns detected "
        f"{_count(campaigns.get('detected'))} of {_count(campaigns.get('started'))} "
        f"({_ratio_text(campaigns.get('recall'))}); median time to detect "
        f"{_duration(delay.get('median'))}.",
        "",
    ]
    money = [
        ["lost (left the credit union)", "fraud_losses_cents"],
        ["detected (alerted fraudulent payments)", "detected_cents"],
        ["prevented (stopped campaigns' planned payments)", "prevented_cents"],
        ["refused by the platform (insufficient funds)", "refused_cents"],
    ]
    rows = [[label, _aud_cell(everything.get(key))] for label, key in money]
    lines += _table(["fraud money", "AUD"], rows, "lr")
    rules = _mapping(everything.get("alerts_by_rule"))
    if rules:
        false_alerts = _mapping(everything.get("false_alerts_by_rule"))
        rows = [
            [rule, _count(count), _count(false_alerts.get(rule, 0) if false_alerts else None)]
            for rule, count in sorted(rules.items())
        ]
        lines += ["", "Alerts by rule:", ""]
        lines += _table(["rule", "alerts", "on legitimate payments"], rows, "lrr")
    kinds = _mapping(campaigns.get("by_kind"))
    if kinds:
        header = ["campaign", "started", "detected", "recall", "median time to detect"]
        header += ["lost (AUD)", "prevented (AUD)"]
        lines += ["", "Campaigns by kind:", ""]
        lines += _table(header, _fraud_kind_rows(kinds), "lrrrrrr")
    tenants = _mapping(fraud.get("tenants"))
    if tenants:
        header = ["tenant", "tp / fn / fp / tn", "precision", "recall", "campaigns detected"]
        header += ["lost (AUD)", "alerts", "AUSTRAC reports"]
        lines += ["", "Per tenant:", ""]
        lines += _table(header, _fraud_tenant_rows(tenants), "lrrrrrrr")
    return lines + [""]


def _section_charts(charts: Sequence[Path], out_path: Path) -> list[str]:
    if not charts:
        return []
    lines = ["## Charts", ""]
    base = out_path.parent.resolve()
    for chart in charts:
        chart = Path(chart)
        target = chart.resolve() if chart.is_absolute() else (Path.cwd() / chart).resolve()
        link = Path(os.path.relpath(target, base)).as_posix()
        title = _CHART_TITLES.get(chart.stem, chart.stem.replace("_", " ").capitalize())
        lines += [f"![{title}]({link})", ""]
    return lines


def _section_fingerprints(summary: Mapping[str, Any]) -> list[str]:
    fingerprint = _mapping(summary.get("fingerprint"))
    lines = ["## Fingerprints (chain head per tenant)", ""]
    if not fingerprint:
        return lines + ["_The summary has no fingerprint._", ""]
    lines.append(
        "The same scenario and seed must give the same heads; `twin verify` recomputes them "
        "from the event log."
    )
    lines.append("")
    rows = [[f"`{t}`", f"`{_cell(h)}`"] for t, h in sorted(fingerprint.items())]
    return lines + _table(["tenant", "chain head (SHA-256)"], rows) + [""]


def _rate(value: object, unit: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.0f} {unit}"
    return "—"


def _seconds(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.3f} s" if value < 10 else f"{value:,.1f} s"
    return "—"


def _section_timings(summary: Mapping[str, Any]) -> list[str]:
    timings = _mapping(summary.get("timings"))
    lines = ["## Timings", ""]
    if not timings:
        return lines + ["_The summary has no timings._", ""]
    warp = timings.get("warp")
    warp_text = (
        "max (as fast as possible)"
        if warp == "max"
        else (f"{warp}× real time (simulated s per wall s)" if warp is not None else "—")
    )
    rows = [
        ["wall time", _seconds(timings.get("wall_s"))],
        ["simulated days", _count(timings.get("simulated_days"))],
        ["member-days", _rate(timings.get("member_days_per_s"), "per s")],
        ["postings", _rate(timings.get("postings_per_s"), "per s")],
        ["events", _rate(timings.get("events_per_s"), "per s")],
        ["warp", _cell(warp_text)],
    ]
    lag = _mapping(timings.get("lag"))
    samples = lag.get("samples")
    if not lag or not samples:
        rows.append(["lag behind real time", "not measured (no real-time warp)"])
    else:
        rows.append(
            [
                "lag behind real time",
                f"{_count(samples)} samples; mean {_seconds(lag.get('mean_lag_s'))}, "
                f"p95 {_seconds(lag.get('p95_lag_s'))}, max {_seconds(lag.get('max_lag_s'))}",
            ]
        )
    return lines + _table(["measure", "value"], rows) + [""]


def _section_reproduce(summary: Mapping[str, Any], out_path: Path) -> list[str]:
    run = _mapping(summary.get("run"))
    scenario = _mapping(summary.get("scenario"))
    out = run.get("out") or out_path.parent.as_posix()
    command = run.get("command")
    if not command:
        source = scenario.get("source", "<scenario.yaml>")
        seed = summary.get("seed", "<seed>")
        command = f"twin run {source} --seed {seed}"
    return [
        "## Reproduce and re-verify",
        "",
        "Run it again (same scenario and seed give the same fingerprints):",
        "",
        "```sh",
        str(command),
        "```",
        "",
        "Re-check this run folder offline (all five invariants from the event log):",
        "",
        "```sh",
        f"twin verify {out}",
        "```",
        "",
    ]


def render_report(
    summary: Mapping[str, Any], charts: Sequence[Path] = (), out_path: Path = Path("report.md")
) -> str:
    """The report's Markdown text; ``out_path`` only anchors the relative chart links."""
    out_path = Path(out_path)
    lines: list[str] = []
    lines += _section_title(summary)
    lines += _section_invariants(summary)
    lines += _section_expectations(summary)
    lines += _section_tenants(summary)
    lines += _section_fraud(summary)
    lines += _section_charts(charts, out_path)
    lines += _section_fingerprints(summary)
    lines += _section_timings(summary)
    lines += _section_reproduce(summary, out_path)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(summary: Mapping[str, Any], charts: Sequence[Path], out_path: Path) -> Path:
    """Write ``report.md`` for a run and return its path.

    Args:
        summary: the dict the run wrote to ``summary.json``; any key may be missing.
        charts: chart PNGs to embed, linked relative to the report's folder so
            the run folder can be moved or published as a whole.
        out_path: where to write the report (usually ``<run>/report.md``).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(summary, charts, out_path)
    out_path.write_text(text, encoding="utf-8", newline="\n")
    return out_path
