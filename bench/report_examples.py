"""``loihic report`` on the demo network and on a LeNet-5/MNIST network; results in bench/results/report_*/.

    python bench/report_examples.py

Runs ``loihic demo`` (digits MLP, T=48) and trains LeNet-5 on MNIST (3 epochs, converted at T=32; needs
``make data``), then ``loihic report`` on each (500 test samples), with the commands it runs printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def cli(*args: str) -> None:
    print("loihic", " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "loihic", *args], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--workdir", default="runs/report_examples")
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--samples", type=int, default=500)
    args = ap.parse_args()
    work, results = Path(args.workdir), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    cli("demo", "--workdir", str(work / "demo"), "--force")
    cli("train", "--model", "lenet5", "--dataset", "mnist", "--epochs", "3", "-o", str(work / "lenet5.pt"), "--force")
    cli("convert", str(work / "lenet5.pt"), "-T", "32", "-o", str(work / "lenet5_snn.pt"), "--force")
    cli("compile", str(work / "lenet5_snn.pt"), "-o", str(work / "lenet5.net"), "--force")
    for name, net, ref in (
        ("report_demo", work / "demo" / "model.net", work / "demo" / "snn.pt"),
        ("report_lenet5_mnist", work / "lenet5.net", work / "lenet5_snn.pt"),
    ):
        out = work / name
        cli("report", str(net), "--reference", str(ref), "--samples", str(args.samples), "-o", str(out), "--force")
        dest = results / name
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("report.json", "parity.png", "weights.png", "accuracy_vs_T.png"):
            shutil.copyfile(out / f, dest / f)
        print(f"wrote {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
