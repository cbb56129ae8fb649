"""JUnit XML for CI servers (Jenkins, GitLab, GitHub test reporters).

Layout (the Ant/Jenkins JUnit schema's required fields: testsuite `name` and `tests`,
testcase `name` and `classname`; `failure` with `message` and `type`):

- testsuite `compare DIMENSION: BASE -> HEAD`: one testcase per matched pair, named by the
  configuration columns that vary (`model=... threads=...`; those held equal are the suite's
  `properties`); a pair with a `--fail-on` verdict in any
  aspect carries one `failure` whose `type` is the verdict and whose message gives the
  numbers; other verdicts are in `system-out`. A configuration measured on one side only is a
  testcase too: a `failure` (type `missing`) when `missing` is gated, else `skipped`.
- testsuite `run RUN_ID` (sweeps): one testcase per configuration of the run; a failed one
  (`harness.status.failed`) carries a `failure` with its statuses and first error.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from ..status import failed, worst
from ..terminal import terminal_safe
from ..summary import KEYS
from .gate import Gate, configurations, failure_kind
from .render import fmt_ci, fmt_g, fmt_mib_delta, fmt_ms, fmt_p, fmt_ratio, split_key
from .result import ASPECTS, CompareResult
from .verdicts import PHASES


def _name(key: dict) -> str:
    return " ".join(f"{k}={'-' if v is None or (isinstance(v, float) and math.isnan(v)) else v}"
                    for k, v in key.items())


def describe(pair, aspect: str, base: str, head: str) -> str:
    """One line with the numbers behind a pair's verdict in one aspect, e.g.
    `latency slower: 10.00 -> 11.20 ms, ratio 1.120 [1.090, 1.150], p 1.2e-05`."""
    v = pair[aspect]
    if aspect == "latency":
        p = pair["p_slower"] if pair["ratio"] >= 1 else pair["p_faster"]
        text = (f"latency {v}: {base} {fmt_ms(pair['median_base'])} ms -> {head} "
                f"{fmt_ms(pair['median_head'])} ms, ratio {fmt_ratio(pair['ratio'])} "
                f"{fmt_ci(pair['ci_low'], pair['ci_high'])}, p {fmt_p(p)}")
        note = pair.get("latency_note")
    elif aspect == "memory":
        phases = [f"{ph} {fmt_mib_delta(pair[f'rss_{ph}_delta_kb'])} MiB ({pair[f'rss_{ph}']})"
                  for ph in PHASES]
        text, note = f"memory {v}: peak RSS change " + ", ".join(phases), None
    else:
        text = (f"correctness {v}: worst rel. error {base} {fmt_g(pair['rel_err_base'])}, {head} "
                f"{fmt_g(pair['rel_err_head'])}; cosine {fmt_g(pair['cosine_head'])}; NaN/Inf "
                f"{fmt_g(pair['nan_inf_head'])}")
        note = pair.get("correctness_note")
    return f"{text} ({note})" if isinstance(note, str) and note else text


def _suite(parent: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=name)


def _close(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))


def to_junit(gate: Gate, result: CompareResult | None = None,
             run_rows: list[dict] | None = None, run_id: str | None = None) -> str:
    """The JUnit XML document (UTF-8 text) for a compare (`result`) and/or a sweep's run
    (`run_rows`), failing exactly what `gate` fails."""
    root = ET.Element("testsuites", name="harness")
    if result is not None:
        suite = _suite(root, f"compare {result.dimension}: {result.base} -> {result.head}")
        cls = f"harness.compare.{result.dimension}"
        const, vary = split_key(result)
        if const:  # held equal over every pair: said once, so case names stay readable
            props = ET.SubElement(suite, "properties")
            for k, v in const.items():
                ET.SubElement(props, "property", name=str(k), value=str(v))
        named = vary or list(result.key)
        for _, pair in result.pairs.iterrows():
            case = ET.SubElement(suite, "testcase", name=_name({k: pair[k] for k in named}),
                                 classname=cls, time="0")
            lines = [describe(pair, a, result.base, result.head) for a in ASPECTS]
            gated = [a for a in ASPECTS if pair[a] in gate.fail_on]
            if gated:
                verdict = worst(pair[a] for a in gated)
                fail = ET.SubElement(case, "failure", type=verdict,
                                     message="; ".join(lines[ASPECTS.index(a)] for a in gated))
                fail.text = "\n".join(lines)
            else:
                ET.SubElement(case, "system-out").text = "\n".join(lines)
        for _, m in result.missing.iterrows():
            key = {k: m[k] for k in named if k in result.missing.columns}
            case = ET.SubElement(suite, "testcase", name=_name(key), classname=cls, time="0")
            msg = (f"measured on one side only: base {result.base}: {m['base']}, "
                   f"head {result.head}: {m['head']}")
            if "missing" in gate.fail_on:
                ET.SubElement(case, "failure", type="missing", message=msg)
            else:
                ET.SubElement(case, "skipped", message=msg)
        _close(suite)
    if run_rows is not None:
        suite = _suite(root, f"run {run_id or ''}".strip())
        for key, rows in configurations(run_rows).items():
            name = _name(dict(zip(KEYS, key)))
            case = ET.SubElement(suite, "testcase", name=name, classname="harness.run",
                                 time=f"{sum(_dur(r) for r in rows):.3f}")
            bad = [r for r in rows if failed(r)]
            statuses = ", ".join(sorted({str(r.get("status")) for r in rows}))
            if bad:
                kind = failure_kind(rows)
                err = next((str(r["error"]) for r in bad if r.get("error")), "")
                fail = ET.SubElement(case, "failure", type=kind,
                                     message=f"{len(bad)} of {len(rows)} processes failed "
                                             f"({statuses})" + (f": {err[:300]}" if err else ""))
                fail.text = "\n".join(f"process {r.get('process')}: {r.get('status')} "
                                      f"{r.get('verdict') or ''} {r.get('error') or ''}".rstrip()
                                      for r in bad)
            else:
                ET.SubElement(case, "system-out").text = f"{len(rows)} processes: {statuses}"
        _close(suite)
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root.findall("testsuite"))))
    # XML 1.0 forbids most control characters; error texts and model names may carry them.
    for el in root.iter():
        el.text = terminal_safe(el.text) if el.text else el.text
        for k, v in el.attrib.items():
            el.set(k, terminal_safe(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _dur(row: dict) -> float:
    try:
        d = float(row.get("ended_at")) - float(row.get("started_at"))
    except (TypeError, ValueError):
        return 0.0
    return d if math.isfinite(d) and d > 0 else 0.0
