"""`harness diagnose` and `harness profile` (the lead wires ``register`` into harness/cli.py).

    harness diagnose --model M [--shape ..] --engine ncnn --backend vulkan --precision fp16
                     [--threads N] [--reference cpu,fp32,1 | --reference onnxruntime]
                     [--out DIR] [--fix/--no-fix]
    harness profile --model M --engine mnn [--backend ..] [--precision ..] [--threads N]
                    [--top 10] [--iterations 10]

diagnose exits 0 when nothing diverges, 1 when something does (like diff), 2 on bad input.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..errors import InputError


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


def render_profile(p, top: int) -> str:
    out = [f"profile {p.model} {p.engine} {p.engine_version} {p.config.label()} (ran as "
           f"{p.ran_as[0]}/{p.ran_as[1]}), median of {p.iterations} runs, timing: {p.timing}"]
    if p.note:
        out.append(f"note: {p.note}")
    total = p.total_ms
    hdr = ("#", "layer", "type", "ms", "%", "MFLOPs")
    rows = []
    for lay in p.top(top):
        ms = lay.get("ms") or 0.0
        rows.append((str(lay["index"]), lay["name"], lay["type"], f"{ms:.3f}",
                     f"{100 * ms / total:.1f}" if total else "-", _fmt(lay.get("mflops"))))
    w = [max(len(x[i]) for x in [hdr] + rows) for i in range(len(hdr))]
    for x in [hdr] + rows:
        out.append("  " + "  ".join(v.ljust(w[i]) for i, v in enumerate(x)))
    out.append(f"  {len(p.layers)} layers, {total:.3f} ms in all")
    return "\n".join(out)


def _threads(text) -> int:
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise InputError("--threads", f"got {text!r}", "a positive integer") from None
    if n < 1:
        raise InputError("--threads", f"got {text!r}", "a positive integer")
    return n


def _executor(args):
    """None for this machine; an SshExecutor for --on (an inventory host or user@host[:port])."""
    from ..adhoc import resolve_hosts
    hosts = resolve_hosts(args)
    if hosts is None:
        return None
    if len(hosts) != 1:
        raise InputError("--on", f"{args.on!r} selects {len(hosts)} hosts", "exactly one host")
    from ..executors.ssh import SshExecutor, default_owner
    return SshExecutor(hosts[0], default_owner(f"{args.command}-{os.getpid()}"),
                       trust_new_host_key=bool(args.trust_new_host_key))


def cmd_diagnose(args) -> int:
    from .run import Config, diagnose, parse_reference
    cfg = Config(args.backend, args.precision, _threads(args.threads))
    ref = parse_reference(args.reference)
    log = None if args.quiet else (lambda m: print(f"  .. {m}", file=sys.stderr, flush=True))
    ex = _executor(args)
    try:
        d = diagnose(args.model, args.engine, cfg, ref, shape=args.shape, out_dir=args.out,
                     fix=args.fix, timeout_s=args.timeout, onnx=args.onnx, executor=ex, log=log)
    finally:
        if ex is not None:
            ex.close()
    text = render_diagnosis(d)
    print(text)
    if args.out:
        from .html import write_html
        print(f"report: {write_html(d, text, Path(args.out))}")
    return 1 if d.diverged else 0


def cmd_profile(args) -> int:
    from .run import Config, profile
    if args.top < 1:
        raise InputError("--top", f"got {args.top}", "at least 1")
    cfg = Config(args.backend, args.precision, _threads(args.threads))
    ex = _executor(args)
    try:
        p = profile(args.model, args.engine, cfg, shape=args.shape, iterations=args.iterations,
                    timeout_s=args.timeout, executor=ex)
    finally:
        if ex is not None:
            ex.close()
    print(render_profile(p, args.top))
    return 0


def register(subparsers) -> None:
    from ..adhoc import add_target_flags
    d = subparsers.add_parser(
        "diagnose", help="find the first layer whose output goes wrong, and a verified fix",
        description="Run a model under a suspect configuration and a reference, compare every "
                    "intermediate output in topological order and name the first divergent "
                    "layer; for ncnn, search a verified per-layer feature mask (param key 31).")
    d.add_argument("--model", required=True,
                   help="an .onnx/.mnn/.param file or a built-in model name")
    d.add_argument("--shape", help="input shape(s): 1x3x224x224 or NAME:1x3x224x224,...")
    d.add_argument("--engine", required=True, help="ncnn or mnn")
    d.add_argument("--backend", default="cpu", help="suspect backend (default cpu)")
    d.add_argument("--precision", default="fp32", help="suspect precision (default fp32)")
    d.add_argument("--threads", default="1", help="suspect thread count (default 1)")
    d.add_argument("--reference", default=None,
                   help="BACKEND,PRECISION[,THREADS] of the same engine (default cpu,fp32,1) "
                        "or onnxruntime (every ONNX intermediate)")
    d.add_argument("--onnx", default=None,
                   help="the ONNX source of an .mnn/.param model (for --reference onnxruntime)")
    d.add_argument("--out", default=None, help="dataset directory: rows go to "
                   "DIR/_diagnoses/date=YYYY-MM-DD/part-ID.parquet (the leading _ keeps "
                   "them out of the measurement dataset)")
    d.add_argument("--fix", dest="fix", action=argparse.BooleanOptionalAction, default=True,
                   help="search a verified fix (ncnn: feature masks; MNN: precision=high)")
    d.add_argument("--timeout", type=float, default=300.0, help="per device run (s)")
    d.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_target_flags(d, devices=False)
    d.set_defaults(func=cmd_diagnose)

    p = subparsers.add_parser(
        "profile", help="the layers that take the most time, for one configuration",
        description="Per-layer times: MNN through its before/after op callbacks; ncnn's Python "
                    "binding has no per-layer timing, so approximate extract deltas are shown.")
    p.add_argument("--model", required=True,
                   help="an .onnx/.mnn/.param file or a built-in model name")
    p.add_argument("--shape", help="input shape(s): 1x3x224x224 or NAME:1x3x224x224,...")
    p.add_argument("--engine", required=True, help="ncnn or mnn")
    p.add_argument("--backend", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", default="1")
    p.add_argument("--top", type=int, default=10, help="how many layers to list (default 10)")
    p.add_argument("--iterations", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--timeout", type=float, default=300.0)
    add_target_flags(p, devices=False)
    p.set_defaults(func=cmd_profile)
