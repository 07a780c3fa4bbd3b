"""snnTorch RSynaptic on digits read row by row (sim_tests/snntorch_rsynaptic.py), trained with a fixed seed,
exported with snnTorch's real ``export_to_nir``, compiled by loihic and run on the same input spikes: snnTorch's
own accuracy, the compiled network's (emulator), their prediction agreement, the graph's own Euler equations
(sim_tests/nir_euler.py), and Lava against the emulator on a few samples.  Two resets: NIR's (v zeroed right
after the spike: ``reset_now``) and snnTorch 1.0's default delayed reset (``delayed``), which NIR cannot express.

    .venv/bin/python bench/nir_snntorch_rsynaptic.py [--epochs 15] [--seed 0] [--lava-samples 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nir
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loihic  # noqa: E402
from loihic.compiler.driver import compile_source, nir_source  # noqa: E402
from loihic.training.data import load_dataset  # noqa: E402
from sim_tests import snntorch_rsynaptic as rs  # noqa: E402
from sim_tests.nir_euler import NIREuler  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--init-gain", type=float, default=2.0)
    ap.add_argument("--lava-samples", type=int, default=5)
    ap.add_argument("-o", "--output", default=str(ROOT / "bench" / "results" / "nir_snntorch_rsynaptic.json"))
    args = ap.parse_args()
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    spikes = rs.row_spikes(xte)
    result: dict = {"args": vars(args), "steps": rs.STEPS, "test_samples": len(xte), "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, delayed in (("reset_now", False), ("delayed", True)):
            t0 = time.perf_counter()
            net = rs.train(xtr, ytr, args.epochs, args.seed, args.hidden, delayed, args.lr, args.init_gain)
            train_s = time.perf_counter() - t0
            ref = rs.predict(net, xte).argmax(1)
            path = Path(tmp) / f"{name}.nir"
            rs.export(net, path)
            res = compile_source(nir_source(path, rs.STEPS, None), Path(tmp) / f"{name}.net")
            t0 = time.perf_counter()
            emu = loihic.simulate(res.path, spikes)
            emu_s = (time.perf_counter() - t0) / len(spikes)
            pred = emu.output_spikes.sum(-1).argmax(1)
            euler = NIREuler(nir.read(path), 1e-4).run(spikes).sum(-1).argmax(1)
            k = args.lava_samples
            t0 = time.perf_counter()
            lava = loihic.simulate(res.path, spikes[:k], backend="lava-sim") if k else None
            lava_s = (time.perf_counter() - t0) / max(k, 1)
            v = {
                "train_seconds": train_s,
                "snntorch_accuracy": float((ref == yte).mean()),
                "loihic_accuracy": float((pred == yte).mean()),
                "agreement_with_snntorch": float((pred == ref).mean()),
                "nir_euler_accuracy": float((euler == yte).mean()),
                "agreement_with_nir_euler": float((pred == euler).mean()),
                "snntorch_vs_nir_euler_agreement": float((ref == euler).mean()),
                "emulator_seconds_per_sample": emu_s,
                "lava_samples": k,
                "lava_identical": None
                if lava is None
                else bool(np.array_equal(lava.output_spikes, emu.output_spikes[:k])),
                "lava_seconds_per_sample": lava_s if k else None,
                "notes": list(res.notes),
            }
            result["variants"][name] = v
            print(name, json.dumps({a: b for a, b in v.items() if a != "notes"}), flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
