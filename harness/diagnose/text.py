"""Plain-text reports of a diagnosis (`render_diagnosis`), a per-layer profile
(`render_profile`) and two profiles compared (`render_profile_comparison`), as `harness
diagnose` and `harness profile` print them."""

from __future__ import annotations

import math


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return f"{x:.{digits}g}"
    return str(x)


def _stats(s: dict) -> str:
    if not s or all(s.get(k) is None for k in ("min", "max", "nan", "inf")):
        return "-"
    return (f"min {_fmt(s.get('min'))} max {_fmt(s.get('max'))} mean {_fmt(s.get('mean'))} "
            f"std {_fmt(s.get('std'))} nan {s.get('nan') or 0} inf {s.get('inf') or 0}")


def render_diagnosis(d) -> str:
    """A Diagnosis as text: the culprit layer with its inputs and outputs against the
    reference, the fix search, precision=high and the side-by-side measurements."""
    a = d.analysis
    tol = a.tolerance
    out = [f"diagnosis {d.diagnosis_id} on {d.host}: {d.model} {d.engine} {d.engine_version} "
           f"{d.suspect.label()} (ran as {d.ran_as[0]}/{d.ran_as[1]}) vs {d.reference}",
           f"compared {a.compared} tensors ({a.unmatched} without a reference counterpart); "
           f"tolerance {d.ran_as[1]}: rel err <= {tol.rel_err}, cosine >= {tol.cosine}"]
    for n in d.notes:
        out.append(f"note: {n}")
    c = a.culprit
    if c is None:
        out.append("no divergence" if d.final.get("ok") else
                   f"no single layer diverges; final outputs: {d.final.get('status')} "
                   f"({d.final.get('detail')})")
    else:
        out.append(f"first divergent layer: #{c.index} {c.name} ({c.type})"
                   + (f"  params: {c.params}" if c.params else ""))
        for name, s, r in a.input_checks(c):
            out.append(f"  input  {name}: {_stats(s)}")
            if r and any(v is not None for v in r.values()):
                out.append(f"    reference: {_stats(r)}")
        for t in c.outputs:
            out.append(f"  output {t.tensor} (shape {'x'.join(map(str, t.shape))}, reference "
                       f"{t.ref_tensor}, match {t.match}): {_stats(t.stats)}")
            out.append(f"    reference: {_stats(t.ref_stats)}")
            out.append(f"    max abs err {_fmt(t.max_abs_err)}, rel err {_fmt(t.rel_err)}, "
                       f"cosine {_fmt(t.cosine, 6)}: {t.reason}")
        if a.inheritors:
            out.append("inherited by: " + ", ".join(f"{x.name} ({x.type})" for x in a.inheritors))
        else:
            out.append("inherited by: no later layer")
        if a.other_divergent:
            out.append("also divergent, not downstream of it: " +
                       ", ".join(f"{x.name} ({x.type})" for x in a.other_divergent))
        fin = d.final
        out.append(f"final outputs: {fin.get('status')}"
                   + (f" ({fin.get('detail')})" if fin.get("detail") else ""))
    if d.fix is not None:
        out.append("feature masks (param key 31), each verified on the whole model:")
        for at in d.fix.attempts:
            out.append("  " + at.line())
        if d.fix.chosen is not None:
            for line in d.fix.chosen.patched_lines.values():
                out.append(f"patched line: {line}")
            out.append(f"patched param: {d.patched_param} (weights unchanged)")
        if d.fix.note:
            out.append(d.fix.note)
    if d.high_precision is not None:
        hp = d.high_precision
        out.append(f"precision=high ({hp.get('ran_as')}): "
                   + ("fixes the outputs" if hp.get("fixes") else
                      f"does not fix the outputs ({hp.get('status')}: {hp.get('detail')})")
                   + (f"; {hp['note']}" if hp.get("note") else ""))
    if d.side_by_side:
        out.append(f"side by side, {d.suspect.label()} through the measurement path:")
        hdr = ("param", "status", "median ms", "p90 ms", "nan", "inf", "rel err", "cosine",
               "verdict")
        rows = [(r["param"], r["status"], _fmt(r["median_ms"]), _fmt(r["p90_ms"]),
                 _fmt(r["out_nan"]), _fmt(r["out_inf"]), _fmt(r["out_rel_err"]),
                 _fmt(r["out_cosine"], 6), r["verdict"]) for r in d.side_by_side]
        w = [max(len(str(x[i])) for x in [hdr] + rows) for i in range(len(hdr))]
        for x in [hdr] + rows:
            out.append("  " + "  ".join(str(v).ljust(w[i]) for i, v in enumerate(x)))
        src = d.side_by_side[0].get("reference")
        if src:
            out.append(f"  (errors against the {src} outputs)")
    for f in d.files:
        out.append(f"rows: {f}")
    return "\n".join(out)


def _table(hdr: tuple, rows: list[tuple]) -> list[str]:
    w = [max(len(x[i]) for x in [hdr] + rows) for i in range(len(hdr))]
    return ["  " + "  ".join(v.ljust(w[i]) for i, v in enumerate(x)).rstrip()
            for x in [hdr] + rows]


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _mflops(x) -> str:
    return "-" if x is None else _fmt(x / 1e6)


def render_profile(p, top: int) -> str:
    """A Profile as text: the `top` slowest layers (ms, share of the total, MFLOPs from the
    static analysis, achieved GFLOP/s), then every layer type, then where it is stored."""
    from .profiles import by_type, gflops
    out = [f"profile {p.model} {p.engine} {p.engine_version} {p.config.label()} (ran as "
           f"{p.ran_as[0]}/{p.ran_as[1]}), median of {p.iterations} runs, timing: {p.timing}"]
    if p.note:
        out.append(f"note: {p.note}")
    if p.flops_source:
        out.append(f"FLOPs: {p.flops_source}")
    total = p.total_ms
    rows = []
    for lay in p.top(top):
        ms = lay.get("ms") or 0.0
        rows.append((str(lay["index"]), str(lay["name"]), str(lay["type"]), f"{ms:.3f}",
                     f"{100 * ms / total:.1f}" if total else "-", _mflops(lay.get("flops")),
                     _fmt(gflops(lay.get("flops"), ms), 3)))
    out += _table(("#", "layer", "type", "ms", "%", "MFLOPs", "GFLOP/s"), rows)
    out.append(f"  {len(p.layers)} layers, {total:.3f} ms in all")
    out.append("per layer type:")
    out += _table(("type", "count", "ms", "%", "MFLOPs", "GFLOP/s"), [
        (g["type"], str(g["count"]), f"{g['ms']:.3f}", _pct(g["time_share"]),
         _mflops(g["flops"]), _fmt(g["gflops_per_s"], 3)) for g in by_type(p.layers)])
    if p.file is not None:
        out.append(f"profile {p.profile_id}: {p.file}")
    return "\n".join(out)


def render_profile_comparison(c: dict) -> str:
    """compare_profiles() as text: per layer type, base (a) against head (b)."""
    def who(s):
        return (f"{s['profile_id']}: {s['model']} {s['engine']} {s['engine_version']} "
                f"{s['backend']}/{s['precision']}/{s['threads']}t on {s['host']}")
    out = [f"a: {who(c['a'])}", f"b: {who(c['b'])}"]
    out += [f"note: {n}" for n in c["notes"]]
    rows = [(r["layer_type"], _fmt(r["count_a"]), _fmt(r["count_b"]), _fmt(r["ms_a"], 4),
             _fmt(r["ms_b"], 4), _fmt(r["ratio"], 3), _pct(r["share_a"]), _pct(r["share_b"]),
             _fmt(r["gflops_per_s_a"], 3), _fmt(r["gflops_per_s_b"], 3)) for r in c["types"]]
    tot = c["total"]
    rows.append(("(all)", _fmt(tot["count_a"]), _fmt(tot["count_b"]), _fmt(tot["ms_a"], 4),
                 _fmt(tot["ms_b"], 4), _fmt(tot["ratio"], 3), "100.0", "100.0", "", ""))
    out += _table(("type", "n a", "n b", "ms a", "ms b", "b/a", "% a", "% b", "GFLOP/s a",
                   "GFLOP/s b"), rows)
    return "\n".join(out)
