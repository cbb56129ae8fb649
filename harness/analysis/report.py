"""Human table and flat Parquet row for a ModelStats."""

from __future__ import annotations

from typing import Any

from ..store.schema import MODEL_COLUMNS
from .onnx_stats import ModelStats

FLOPS_LINE = "FLOPs convention: 1 MAC = 2 FLOPs; elementwise ops count 1 FLOP per output element"

MODELS_COLUMNS = tuple(c.name for c in MODEL_COLUMNS)  # the models table, harness.store.schema


def si(n: float) -> str:
    """1234567 -> '1.235M' (decimal units, as FLOP counts are usually quoted)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f}{unit}"
    return str(int(n))


def binary(n: float) -> str:
    """Bytes in binary units: 26214400 -> '25.00MiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{int(n)}B"


def _shape(shapes: list[tuple[int, ...]]) -> str:
    return ",".join("x".join(str(d) for d in s) or "scalar" for s in shapes)


def render_table(stats: ModelStats, max_name: int = 36) -> str:
    header = ("name", "op", "params", "MACs", "output shape", "out bytes", "live after", "workspace")
    rows = []
    for layer in stats.layers:
        name = layer.name if len(layer.name) <= max_name else "..." + layer.name[-(max_name - 3):]
        op = layer.op_type + ("*" if layer.inplace_of else "") + ("?" if not layer.known else "")
        rows.append((
            name, op, si(layer.params) if layer.params else "", si(layer.macs) if layer.macs else "",
            _shape(layer.output_shapes), binary(layer.output_bytes), binary(layer.live_bytes_after),
            binary(layer.workspace_bytes) if layer.workspace_bytes else "",
        ))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    left = {0, 1, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    by_dtype = ", ".join(f"{k} {binary(v)}" for k, v in sorted(stats.param_bytes_by_dtype.items())) or "none"
    out += [
        "",
        f"model       {stats.model_path}  sha256 {stats.model_sha256[:16]}...  input {stats.input_shape_key}"
        f"  (shapes from {stats.shape_source})",
        f"layers      {len(stats.layers)}   (* output overwrote an input in place, ? op not costed)",
        f"params      {stats.params:,} ({si(stats.params)}) = {binary(stats.param_bytes)} [{by_dtype}];"
        f" learnable {stats.learnable_params:,}",
        f"constants   {stats.initializer_count} tensors, {stats.initializer_elems:,} elements, "
        f"{binary(stats.initializer_bytes)} (all initializers and Constant nodes)",
        f"MACs        {stats.macs:,} ({si(stats.macs)})",
        f"FLOPs       {stats.flops:,} ({si(stats.flops)}); textbook dot-product FLOPs "
        f"{si(stats.textbook_flops)} + bias adds {si(stats.bias_flops)}",
        f"activations naive {binary(stats.naive_activation_bytes)}  lower bound "
        f"{binary(stats.liveness_lower_bound_bytes)}  greedy plan {binary(stats.greedy_plan_bytes)}"
        f" in {stats.plan_buffers} buffers",
        f"workspace   max im2col/col2im {binary(stats.max_workspace_bytes)}",
        f"unknown ops {', '.join(stats.unknown_ops) if stats.unknown_ops else 'none'} (counted as 0 FLOPs)",
        FLOPS_LINE + "; pooling 1 per window element; Reduce*/global pooling 1 per input element.",
    ]
    out += [f"note        {n}" for n in stats.notes]
    return "\n".join(out)


def models_table_row(stats: ModelStats) -> dict[str, Any]:
    """One flat row for the Parquet "models" table, keyed by (model_sha256, input_shape)."""
    return {
        "model_sha256": stats.model_sha256,
        "input_shape": stats.input_shape_key,
        "params": stats.params,
        "weight_bytes": stats.param_bytes,
        "macs": stats.macs,
        "flops": stats.flops,
        "activation_naive_bytes": stats.naive_activation_bytes,
        "activation_lower_bound_bytes": stats.liveness_lower_bound_bytes,
        "activation_plan_bytes": stats.greedy_plan_bytes,
        "max_workspace_bytes": stats.max_workspace_bytes,
        "n_layers": len(stats.layers),
        "unknown_ops": ",".join(stats.unknown_ops),
    }
