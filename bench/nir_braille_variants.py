"""Diagnosis and quantizer variants for the NIR Braille graph (used by bench/nir_braille.py, which records them).

Every row runs loihic's float IR (``ir_float``: compiler/ir.py's equations in float64) with one layer's or every
layer's weights, biases and thresholds replaced by integers / scale (or by perturbed floats), against the graph's
own Euler equations (sim_tests/nir_euler.py).  The compiled file's Lava-exact integer dynamics add nothing to
the weights' error on this graph (bench/nir_braille.py: float dynamics with the compiled weights agree as often
as the emulator), so these rows isolate what each rounding choice costs.

- ``diagnosis``: which layer's rounding matters (one layer quantized, the other float; feed-forward or
  recurrent weights alone), how sensitive the float graph itself is (its weights perturbed by Gaussian noise of
  a given SQNR, float against float, several seeds), the threshold (1% off) and the 12-bit decays;
- ``variants``: the default (largest scale, round to nearest), plain rounding at larger scales (clipping the
  largest recurrent weights), data-free error feedback (each row's summed error into its v bias), error feedback
  weighted by input statistics alone (GPTQ with the raw input covariance), loihic's calibrated rounding
  (compiler/calib.py) at the default scale and with its scale search, its near-threshold width, and one hidden
  neuron split into three copies (exact in float; the outlier recurrent weight shared out).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from loihic.compiler import calib, ir, quant
from loihic.compiler.config import CompileConfig
from loihic.compiler.netx import schema
from loihic.compiler.pipeline import compile_network
from sim_tests.unit.test_nir_recurrent import ir_float, with_always_on

Metric = Callable[[np.ndarray, np.ndarray], dict]


def counts(net: ir.Network, x: np.ndarray) -> np.ndarray:
    return ir_float(net, with_always_on(net, x))[-1].sum(-1)


def replaced(net: ir.Network, changes: dict[int, dict]) -> ir.Network:
    layers, syn = list(net.layers), [i for i, lay in enumerate(net.layers) if isinstance(lay, ir.SYNAPTIC)]
    for k, ch in changes.items():
        layers[syn[k]] = dataclasses.replace(layers[syn[k]], **ch)
    return net.replace(layers=tuple(layers))


def as_float(lay: ir.Dense, w: np.ndarray, rec: np.ndarray | None, b: np.ndarray | None, s: float, vth: int) -> dict:
    """The replacements that make ``lay`` compute with integers ``w, rec, b`` at scale ``s`` and threshold vth."""
    ch = {"weight": w / s, "neuron": dataclasses.replace(lay.neuron, threshold=vth / s)}
    if rec is not None:
        ch["weight_rec"] = rec / s
    ch["bias"] = None if b is None else b / s
    return ch


def compiled_float(
    net: ir.Network, compiled: ir.Network, which: tuple[int, ...] | None = None, parts=None
) -> ir.Network:
    """``net`` with the compiled integers of layers ``which`` (all by default); ``parts`` limits it to some of
    "weight", "weight_rec" (the rest stays float)."""
    changes = {}
    for k, (lay, ql) in enumerate(zip(net.synaptic(), compiled.synaptic(), strict=True)):
        if which is not None and k not in which:
            continue
        q = ql.quant
        ch = as_float(lay, q.weight, q.weight_rec, q.bias, q.scale, q.v_th_mant)
        if parts is not None:
            ch = {p: ch[p] for p in parts if p in ch}
        changes[k] = ch
    return replaced(net, changes)


def plain(net: ir.Network, factors: tuple[float, ...]) -> ir.Network:
    """Round to nearest at ``factor`` times each layer's default scale (vThMant = round(scale), threshold 1),
    clipping to [-256, 254]; the bias column's residue into v as compiler/passes/quantize.py does."""
    base = compile_network(net)
    changes = {}
    for k, (lay, ql) in enumerate(zip(net.synaptic(), base.synaptic(), strict=True)):
        vth = max(1, round(ql.quant.scale * factors[k] * lay.neuron.threshold))
        s = vth / lay.neuron.threshold
        w = quant.quantize_weights(lay.weight, s)
        rec = None if lay.weight_rec is None else quant.quantize_weights(lay.weight_rec, s)
        b = np.zeros(w.shape[0]) if lay.bias is None else np.rint(s * lay.bias)
        col = net.meta.get("bias_columns", {}).get(lay.name)
        if col:
            b = b + np.rint((s * lay.weight[:, col["column"]] - w[:, col["column"]]) / col["a_s"])
        changes[k] = as_float(lay, w, rec, b, s, vth)
    return replaced(net, changes)


def feedback(net: ir.Network, hessian: Callable[[int, ir.Dense], np.ndarray]) -> ir.Network:
    """Error-feedback rounding (quant.gptq_round) of every row at the default scale against ``hessian(k, lay)``
    (one (n_in + 1)^2 matrix per layer, shared by its rows, or one per row; the last index the v bias)."""
    base = compile_network(net)
    changes = {}
    for k, (lay, ql) in enumerate(zip(net.synaptic(), base.synaptic(), strict=True)):
        s = round(ql.quant.scale * lay.neuron.threshold) / lay.neuron.threshold
        w = lay.weight if lay.weight_rec is None else np.hstack([lay.weight, lay.weight_rec])
        b = np.zeros(w.shape[0]) if lay.bias is None else lay.bias
        real = np.hstack([w, b[:, None]])
        steps = np.r_[np.full(w.shape[1], 2.0), 1.0]
        lo = np.r_[np.full(w.shape[1], schema.WEIGHT_MIN), schema.BIAS_MANT_MIN]
        hi = np.r_[np.full(w.shape[1], schema.WEIGHT_MAX), schema.BIAS_MANT_MAX]
        h = hessian(k, lay)
        fs = [quant.gptq_factor(h[i] if h.ndim == 3 else h) for i in range(len(real))]
        q = np.stack([quant.gptq_round(s * r, f, steps, lo, hi) for r, f in zip(real, fs, strict=True)])
        nff = lay.weight.shape[1]
        rec = None if lay.weight_rec is None else q[:, nff:-1]
        changes[k] = as_float(lay, q[:, :nff], rec, q[:, -1], s, round(s * lay.neuron.threshold))
    return replaced(net, changes)


def split_neuron(net: ir.Network, k: int, j: int, copies: int) -> ir.Network:
    """Neuron ``j`` of synaptic layer ``k`` (recurrent, followed by a dense layer) as ``copies`` identical neurons
    (the copies appended at the end): same input rows, its outgoing weights (recurrent and next layer) divided
    among them.  Exact in float: the copies spike together."""
    a, b = net.synaptic()[k], net.synaptic()[k + 1]

    def share(w: np.ndarray) -> np.ndarray:
        col = w[:, j : j + 1] / copies
        return np.hstack([w[:, :j], col, w[:, j + 1 :]] + [col] * (copies - 1))

    rows = lambda w: np.vstack([w] + [w[j : j + 1]] * (copies - 1))  # noqa: E731
    rec = rows(share(a.weight_rec))
    bias = None if a.bias is None else np.append(a.bias, [a.bias[j]] * (copies - 1))
    return replaced(
        net, {k: {"weight": rows(a.weight), "weight_rec": rec, "bias": bias}, k + 1: {"weight": share(b.weight)}}
    )


def noisy(net: ir.Network, db: float, seed: int) -> ir.Network:
    """Every weight matrix plus Gaussian noise at ``db`` SQNR (its rms / the noise's); bias columns kept."""
    rng = np.random.default_rng(seed)
    changes = {}
    for k, lay in enumerate(net.synaptic()):
        ch = {}
        for name in ("weight", "weight_rec"):
            w = getattr(lay, name)
            if w is None:
                continue
            noise = rng.normal(0.0, np.sqrt(np.mean(w**2) / 10 ** (db / 10)), w.shape)
            col = net.meta.get("bias_columns", {}).get(lay.name)
            if name == "weight" and col:
                noise[:, col["column"]] = 0.0
            ch[name] = w + noise
        changes[k] = ch
    return replaced(net, changes)


def diagnosis(net: ir.Network, x: np.ndarray, ref: np.ndarray, metric: Metric, seeds: int = 5) -> dict:
    base = compile_network(net)
    rows: dict = {
        "both layers quantized (the default compile)": metric(ref, counts(compiled_float(net, base), x)),
        "only nir_fc1 quantized": metric(ref, counts(compiled_float(net, base, (0,)), x)),
        "only nir_fc2 quantized": metric(ref, counts(compiled_float(net, base, (1,)), x)),
        "only nir_fc1 feed-forward weights quantized": metric(
            ref, counts(compiled_float(net, base, (0,), ("weight",)), x)
        ),
        "only nir_fc1 recurrent weights quantized": metric(
            ref, counts(compiled_float(net, base, (0,), ("weight_rec",)), x)
        ),
    }
    lay = net.synaptic()[0]
    for f in (0.99, 1.01):
        th = {0: {"neuron": dataclasses.replace(lay.neuron, threshold=f * lay.neuron.threshold)}}
        rows[f"float, nir_fc1 threshold x{f}"] = metric(ref, counts(replaced(net, th), x))
    dec = {
        k: {
            "neuron": dataclasses.replace(
                la.neuron,
                current_decay=quant.decay_int(la.neuron.current_decay) / schema.DECAY_UNITY,
                voltage_decay=quant.decay_int(la.neuron.voltage_decay) / schema.DECAY_UNITY,
            )
        }
        for k, la in enumerate(net.synaptic())
    }
    rows["float, decays rounded to 12 bits"] = metric(ref, counts(replaced(net, dec), x))
    noise = {}
    for db in (30, 35, 40, 45, 50):
        runs = [metric(ref, counts(noisy(net, db, s), x)) for s in range(seeds)]
        noise[f"{db} dB"] = {
            "seeds": seeds,
            "class_agreement_mean": float(np.mean([r["class_agreement"] for r in runs])),
            "class_agreement_min": float(np.min([r["class_agreement"] for r in runs])),
            "class_agreement_max": float(np.max([r["class_agreement"] for r in runs])),
            "count_correlation_mean": float(np.mean([r["count_correlation"] for r in runs])),
        }
    return {"rows": rows, "float_weights_perturbed_at_sqnr": noise}


def variants(  # noqa: PLR0913
    net: ir.Network, x: np.ndarray, ref: np.ndarray, xc: np.ndarray, metric: Metric, others: dict[int, np.ndarray]
) -> dict:
    """Each quantizer variant's integers in float dynamics (module docstring); ``xc`` the calibration spikes,
    ``others`` more calibration sets by seed."""
    rows: dict = {}
    for f in (1.0, 1.25, 1.5, 2.0, 2.5, 3.0):
        rows[f"round to nearest, scale x{f} (x1: the default)"] = metric(ref, counts(plain(net, (f, f)), x))

    def ones(k: int, lay: ir.Dense) -> np.ndarray:  # every input alike: the row's summed error -> 0
        return np.ones((lay.weight.shape[1] + (0 if lay.weight_rec is None else lay.weight_rec.shape[1]) + 1,) * 2)

    rows["data-free error feedback (each row's summed error into its v bias), default scale"] = metric(
        ref, counts(feedback(net, ones), x)
    )
    traces = calib.float_traces(net, calib.calibration_input(net, xc))

    def raw(k: int, lay: ir.Dense) -> np.ndarray:
        xs = traces[k]["x"]
        xs = np.concatenate([xs, np.ones_like(xs[:, :1])], 1).transpose(1, 0, 2).reshape(xs.shape[1] + 1, -1)
        return xs @ xs.T / xs.shape[1]

    rows["error feedback, raw input covariance (GPTQ), default scale"] = metric(ref, counts(feedback(net, raw), x))
    rows["calibrated cost (compiler/calib.py, sigma 0.5) at the default scale"] = metric(
        ref, counts(feedback(net, lambda k, lay: calib.row_hessians(lay, traces[k], 0.5)), x)
    )
    for sigma in (0.2, 0.5, 1.0):
        c = compile_network(net, CompileConfig(calib=xc, calib_sigma=sigma))
        vth = [c.meta["calibration"][lay.name]["v_th_mant"] for lay in c.synaptic()]
        rows[f"calibrated (loihic --calib), sigma {sigma}: vThMant {vth}"] = metric(
            ref, counts(compiled_float(net, c), x)
        )
    for (
        seed,
        xo,
    ) in others.items():  # other calibration sets of the same size and rate: how much the choice depends on them
        c = compile_network(net, CompileConfig(calib=xo))
        vth = [c.meta["calibration"][lay.name]["v_th_mant"] for lay in c.synaptic()]
        rows[f"calibrated, calibration seed {seed}: vThMant {vth}"] = metric(ref, counts(compiled_float(net, c), x))
    split = split_neuron(net, 0, int(np.abs(net.synaptic()[0].weight_rec).max(0).argmax()), 3)
    rows["float, hidden neuron with the largest recurrent weight split in 3 (exact check)"] = metric(
        ref, counts(split, x)
    )
    rows["split in 3, round to nearest at the default scale of the split graph"] = metric(
        ref, counts(plain(split, (1.0, 1.0)), x)
    )
    c = compile_network(split, CompileConfig(calib=xc))
    rows["split in 3, calibrated"] = metric(ref, counts(compiled_float(split, c), x))
    return rows
