"""The ``loihic`` command line: the parser and ``main``.  Each verb's handler is a small function in this folder
(train.py; convert.py: convert, compile; run.py: simulate, verify, evaluate; report.py: report, export-nir;
demo.py: demo, install-lava) over the library.  Bad input ends with one ``loihic: error: ...`` line and exit
code 2; an unknown option prints that verb's usage."""

from __future__ import annotations

import argparse
import sys
import warnings

from loihic.compiler.errors import LoihicError
from loihic.deploy.cli import convert, demo, report, run, train
from loihic.deploy.lava.compat import LavaCompatError
from loihic.version import __version__

DESCRIPTION = (
    "Compile trained networks to Loihi fixed point (lava-dl netx HDF5), run them on Lava's simulator or loihic's "
    "emulator, and verify the two spike for spike."
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the text already says it (options whose default is
    None say in words what happens without them); flags (off unless given) and required options show none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.required
            or any(action.default is v for v in (None, False, argparse.SUPPRESS))  # 0 is a default to show
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    """An unknown option is reported by the verb's own parser, with that verb's usage (argparse reports
    unrecognised arguments of a sub-command with the top-level usage)."""

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            verbs = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
            verbs.get(getattr(ns, "command", None), self).error(f"unrecognized arguments: {' '.join(extras)}")
        return ns


def _common(
    p: argparse.ArgumentParser,
    output: bool = True,
    json_flag: bool = True,
    seed: str | None = None,
    output_help: str = "output file",
) -> None:
    """-o/--force, --json and (where the verb uses one, ``seed`` saying what for) --seed."""
    if output:
        p.add_argument("-o", "--output", required=True, help=output_help)
        p.add_argument("--force", action="store_true", help="overwrite an existing output")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    if seed is not None:
        p.add_argument("--seed", type=int, default=0, help=f"random seed of {seed}, recorded in the output")


_DEVICE_HELP = "emulator device: cpu | cuda[:N] (default: cuda if available, else cpu)"
_INPUT_SHAPE_HELP = "C,H,W of a conv-first netx file without an 'input' layer (lava-dl's netx needs it too)"


def _lava_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, help="Lava worker processes")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="shard the Lava run over Ray: a local instance (no ADDRESS), or a cluster (ray.init address); "
        "default: no Ray",
    )


_STREAM_HELP = (
    "stream timing: each sample runs through a fresh network without resets, and Y[..., t] is what a plain netx run "
    "records at step t (pipeline delay and the biases during the fill included); without it: aligned timing, each "
    "layer's pipeline delay removed (README, 'Timing')"
)


def _emulator_options(p: argparse.ArgumentParser, overflow: bool = True) -> None:
    if overflow:
        p.add_argument(
            "--check-overflow",
            action="store_true",
            help="emulator: count per layer how often u wrapped (24 bits), v clipped and the synaptic sum wrapped",
        )
    p.add_argument(
        "--emulator-memory",
        type=float,
        default=1024,
        metavar="MB",
        help="emulator: working memory of one block of samples (default 1024 MB; results come on top)",
    )


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", default=None, help="inputs X.npy (N, *input_shape) in [0, 1], instead of --dataset (default: none)"
    )
    p.add_argument("--labels", default=None, help="integer labels Y.npy (N,) for --data (default: none)")


def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False everywhere: an unknown option is an error, never a silent abbreviation of another
    # (``--calib x.npy`` once became ``--calib-samples x.npy``).
    parser = _Parser(prog="loihic", description=DESCRIPTION, allow_abbrev=False, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"loihic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser

    def no_abbrev(name: str, **kwargs):  # noqa: ANN202 - argparse's private parser type
        return add_parser(name, allow_abbrev=False, formatter_class=_HelpFormatter, **kwargs)

    sub.add_parser = no_abbrev  # type: ignore[method-assign]

    p = sub.add_parser(
        "train", help="train weights: ann, noise (T=1 with noise), bptt (direct at T), stdb (fine-tune a converted SNN)"
    )
    p.add_argument("--method", default="ann", choices=["ann", "noise", "bptt", "stdb"], help="training method")
    p.add_argument("--model", default="mlp", help="mlp | lenet5 | vgg5 | vgg9; noise also: ap2-512fc | mnist-cnn")
    p.add_argument(
        "--dataset",
        default=None,
        help="digits | mnist | fashion-mnist | cifar10 (see make data); default digits, or the --init's",
    )
    p.add_argument("--epochs", type=int, default=15, help="training epochs")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: per data set)")
    p.add_argument("--batch-size", type=int, default=64, help="samples per optimiser step")
    p.add_argument("--hidden", type=int, default=128, help="MLP hidden width")
    p.add_argument("--bias", action="store_true", help="give synaptic layers a bias")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N training samples (default: all)")
    g = p.add_argument_group("stdb (Datta et al. Algorithm 2)")
    g.add_argument(
        "--init",
        default=None,
        help="converted SNN checkpoint to fine-tune ('loihic convert' output); no default: stdb needs it",
    )
    g.add_argument(
        "--timesteps",
        "-T",
        type=int,
        default=None,
        help="time steps per sample (no default for stdb; default for bptt 10; for noise the T of its deployment "
        "stage and of later evaluate/compile: 5, or 1 with --deploy-epochs 0)",
    )
    g.add_argument("--alpha", type=float, default=0.3, help="STDB surrogate scale (eq. 12)")
    g.add_argument("--beta", type=float, default=0.01, help="STDB surrogate decay per step since the last spike")
    g.add_argument("--reset", default="hard", choices=["hard", "soft"], help="hard = what Lava runs")
    g.add_argument("--threshold-scale", type=float, default=1.0, help="scale the balanced thresholds first")
    g.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay")
    g.add_argument(
        "--schedule", default="cosine", choices=["cosine", "step", "constant"], help="learning-rate schedule"
    )
    g.add_argument(
        "--resume", default=None, help="continue an interrupted STDB run from its checkpoint (default: start anew)"
    )
    g.add_argument(
        "--data",
        default=None,
        help="your own training inputs X.npy (N, *input_shape) in [0, 1] (default: the --dataset's)",
    )
    g.add_argument("--labels", default=None, help="integer labels Y.npy (N,) for --data (default: none)")
    g.add_argument("--device", default="cpu", help="cpu | cuda")
    g = p.add_argument_group(
        "noise (Jiang & Zhang, T=1 training with noise); bptt (their baseline: direct training at --timesteps, "
        "default 10) shares --t-max and --surrogate-a"
    )
    g.add_argument("--noise", default="gaussian", choices=["gaussian", "uniform"], help="noise distribution")
    g.add_argument("--noise-mean", type=float, default=0.5, help="noise mean")
    g.add_argument("--noise-std", type=float, default=1 / 6, help="noise standard deviation (default: 1/6)")
    g.add_argument("--no-noise-clip", action="store_true", help="do not clip Gaussian noise to mean +- 3 std")
    g.add_argument("--t-max", type=int, default=100, help="cosine warm-restart period in epochs")
    g.add_argument("--surrogate-a", type=float, default=3.0, help="eq. 4 surrogate sharpness")
    g.add_argument(
        "--deploy-epochs",
        type=int,
        default=1,
        help="noise: epochs of the deployment stage, fine-tuning at --timesteps as the deterministic LIF Loihi "
        "runs (noise mean as bias, hard reset, the compiler's input bits); 0: none (training/noise/deploy.py)",
    )
    g.add_argument("--deploy-lr", type=float, default=1e-3, help="noise: Adam learning rate of the deployment stage")
    _common(p, seed="weight initialisation, data order and noise")
    p.set_defaults(func=train.cmd_train)

    p = sub.add_parser(
        "convert",
        help="ANN (loihic checkpoint or torch.export .pt2 program) -> SNN by threshold balancing (Datta et al. "
        "Fig. 3), or a sigma-delta network (--neuron sdnn)",
    )
    p.add_argument("checkpoint", help="loihic ANN checkpoint, or a torch.export program (torch.export.save, .pt2)")
    p.add_argument(
        "--calib",
        default=None,
        help="calibration inputs X.npy, (N, *input_shape) in [0, 1] (default: the --dataset's training split)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="calibrate on a named data set's training split instead (default: the checkpoint's data set)",
    )
    p.add_argument(
        "--input-mean",
        default=None,
        help="normalisation outside the model: mean (scalar or per channel; default: none)",
    )
    p.add_argument(
        "--input-std", default=None, help="normalisation outside the model: std (scalar or per channel; default: none)"
    )
    p.add_argument(
        "--neuron",
        default="lif",
        choices=["lif", "sdnn"],
        help="lif: rate-coded CUBA LIF by threshold balancing; sdnn: sigma-delta (graded spikes: a Delta input, "
        "SigmaDelta hidden layers, a Sigma read-out), which settles after K steps for K layers",
    )
    p.add_argument(
        "--timesteps",
        "-T",
        type=int,
        default=None,
        help="time steps per sample (default: 64 for lif; K + 1 for sdnn, K synaptic layers: the read-out has "
        "settled at the last step)",
    )
    g = p.add_argument_group("--neuron lif (threshold balancing)")
    g.add_argument("--norm", default=None, help="max | p<percentile> (e.g. p99.9) | scaled:<k> (default: max)")
    g.add_argument("--reset", default=None, choices=["hard", "soft"], help="hard = what Lava runs (default: hard)")
    g.add_argument("--leak", type=float, default=None, help="lambda per step, 1.0 = no leak (default: 1.0)")
    g.add_argument("--encoding", default=None, choices=["poisson", "direct"], help="input encoding (default: poisson)")
    g = p.add_argument_group("--neuron sdnn (sigma-delta)")
    g.add_argument(
        "--sdnn-budget",
        type=float,
        default=None,
        help="accuracy budget of the automatic delta thresholds: the settled read-out on the calibration data may "
        "differ from the zero-threshold network's by at most this fraction of its largest value; the largest "
        "thresholds (a fraction of each layer's activation std) within it are chosen (default: 0.01)",
    )
    g.add_argument(
        "--thresholds",
        default=None,
        help="set the delta thresholds instead: K comma-separated values for K synaptic layers, the input Delta's "
        "(pixel units, [0, 1]) then each hidden layer's (activation units); the read-out has none "
        "(default: chosen for --sdnn-budget)",
    )
    g.add_argument(
        "--sdnn-pooling",
        default=None,
        choices=["fold", "layer"],
        help="average pooling: fold it into the next layer (wider kernels: more synaptic operations per message), "
        "or make it a depthwise-conv sigma-delta layer of its own (one more step of latency; about 3x fewer synaptic "
        "operations) (default: layer)",
    )
    p.add_argument("--calib-samples", type=int, default=512, help="training samples used for balancing / calibration")
    _common(p, seed="the calibration samples and the Poisson input")
    p.set_defaults(func=convert.cmd_convert)

    p = sub.add_parser("compile", help="SNN checkpoint or NIR graph -> Loihi fixed point -> netx HDF5")
    p.add_argument("checkpoint", help="SNN checkpoint ('loihic convert' / 'train' output) or a NIR graph (.nir)")
    p.add_argument(
        "--timesteps",
        "-T",
        type=int,
        default=None,
        help="time steps per sample: required for a NIR graph (no default); a checkpoint records its own",
    )
    p.add_argument(
        "--dt", type=float, default=None, help="NIR graphs: Euler step in seconds (default 1e-4, snnTorch's)"
    )
    p.add_argument(
        "--from",
        dest="nir_from",
        choices=("nir", "norse"),
        default="nir",
        help="NIR graphs: who wrote it; 'norse': Norse's to_nir (tau = dt * tau_true, the current as a jump; --dt is "
        "then Norse's step, default 1e-3) (default: nir, the graph's own equations)",
    )
    p.add_argument(
        "--nir-bias",
        choices=("exact", "steady"),
        default="exact",
        help="NIR graphs: a CubaLIF's synapse bias through an always-on source into its current (exact), or as its "
        "steady-state voltage bias (default: exact)",
    )
    p.add_argument(
        "--calib",
        default=None,
        metavar="X.npy",
        help="NIR graphs: calibration spike trains (N, n_in, T) in the graph's input shape; each layer's weights are "
        "then rounded with error feedback against the float graph's near-threshold error and its scale chosen by it "
        "(compiler/calib.py; default: data-free rounding to nearest)",
    )
    p.add_argument("--l4", action="store_true", help="L4-norm first-layer adjustment (Allred & Roy)")
    p.add_argument(
        "--rs",
        type=float,
        default=2.0,
        help="L4 smoothing ratio r_s (default 2.0: chosen most often by bench/allred_grid.py)",
    )
    p.add_argument(
        "--force-hard-reset",
        action="store_true",
        help="deploy a soft-reset SNN with Lava's hard reset (reports the accuracy effect)",
    )
    p.add_argument(
        "--offset",
        default=None,
        help="noise-trained SNN: fold a constant current into every bias ('auto' = beta*(1-lambda), the default "
        "for noise-trained SNNs; 0: none)",
    )
    p.add_argument(
        "--input-bits",
        default="auto",
        help="direct-encoded SNN: graded input bits, 1-8 or 'auto' (default: the width with the smallest "
        "first-layer quantisation error); fewer bits free first-layer weight bits",
    )
    p.add_argument(
        "--effect-samples",
        type=int,
        default=500,
        help="test samples for the --force-hard-reset and --target loihi2 accuracy effects",
    )
    p.add_argument(
        "--target",
        default="lava-sim",
        choices=["lava-sim", "loihi2"],
        help="loihi2: settings the hardware rejects (iDecay 4096, T not a power of two, over a chip) are errors",
    )
    _common(p, seed="the Poisson input of the accuracy-effect runs (--force-hard-reset, --target loihi2)")
    p.set_defaults(func=convert.cmd_compile)

    p = sub.add_parser("simulate", help="run a netx file on spike inputs X.npy (N, *input, T) -> Y.npy")
    p.add_argument("net", help="netx file (.net)")
    p.add_argument("--input", required=True, help="integer .npy of 0/1 spikes, (N, *input_shape, T)")
    p.add_argument("--backend", default="emulator", choices=["emulator", "lava-sim", "loihi2"], help="what runs it")
    p.add_argument(
        "--input-message-bits",
        type=int,
        default=None,
        help="graded input bits (default: 8 for direct-coded loihic files, else 0 = binary)",
    )
    p.add_argument(
        "--voltage", default=None, help="also write the last layer's final v (N, *out) here (default: not written)"
    )
    p.add_argument("--device", default=None, help="emulator device (default: cuda if available, else cpu)")
    p.add_argument("--input-shape", default=None, help=_INPUT_SHAPE_HELP + " (default: --input's)")
    p.add_argument("--stream", action="store_true", help=_STREAM_HELP)
    _emulator_options(p)
    _common(p)  # no --seed: the spikes are given
    p.set_defaults(func=run.cmd_simulate)

    p = sub.add_parser("verify", help="emulator vs Lava, spike for spike, on encoded test samples")
    p.add_argument("net", help="netx file (.net)")
    p.add_argument("--dataset", default=None, help="default: the data set recorded in the file")
    p.add_argument("--samples", type=int, default=50, help="first N test samples")
    p.add_argument("--timesteps", "-T", type=int, default=None, help="default: the file's")
    p.add_argument(
        "--backend", default="lava-sim", choices=["lava-sim", "loihi2"], help="what runs beside the emulator"
    )
    _data_options(p)
    p.add_argument("--input-shape", default=None, help=_INPUT_SHAPE_HELP + " (default: the data's)")
    _lava_workers(p)
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument("--stream", action="store_true", help=_STREAM_HELP)
    _emulator_options(p, overflow=False)  # verify always reports the overflow counts
    _common(p, output=False, seed="the Poisson encoding of the samples")
    p.set_defaults(func=run.cmd_verify)

    p = sub.add_parser("evaluate", help="accuracy of a checkpoint (torch) or a netx file (emulator, lava-sim)")
    p.add_argument("target", help="checkpoint (.pt), torch.export program (.pt2) or netx file (.net)")
    p.add_argument("--dataset", default=None, help="default: the data set recorded in the file")
    _data_options(p)

    p.add_argument(
        "--backend",
        default=None,
        choices=["torch", "emulator", "lava-sim", "loihi2"],
        help="default: torch for checkpoints, emulator for netx files",
    )
    p.add_argument(
        "--timesteps",
        "-T",
        type=int,
        default=None,
        help="default: the file's.  A sigma-delta file: every image is held for T steps, each sample from a fresh "
        "state (stream timing), and the prediction is the argmax of the Sigma read-out at step T, settled once T > "
        "the file's settle index (K synaptic layers: T >= K + 1; default: the file's T, else K + 2)",
    )
    p.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    p.add_argument(
        "--stage",
        default=None,
        choices=["2", "3", "lif", "lif+mean", "lif+noise"],
        help="noise-trained checkpoints: evaluation stage (default 3; lif after the deployment stage)",
    )
    p.add_argument("--alpha", type=float, default=4.0, help="noise stage 3 alpha (eq. 10)")
    p.add_argument("--beta", type=float, default=0.5, help="noise stage 3 beta (eq. 10)")
    p.add_argument(
        "--offset",
        type=float,
        default=None,
        help="noise stages lif+mean / lif+noise: constant current added each step (default: beta*(1-lambda), as "
        "compile --offset auto folds it)",
    )
    _lava_workers(p)
    p.add_argument("--device", default=None, help=_DEVICE_HELP)
    p.add_argument("--input-shape", default=None, help=_INPUT_SHAPE_HELP + " (default: the data's)")
    _emulator_options(p)
    _common(p, output=False, seed="the Poisson input of spiking runs")
    p.set_defaults(func=run.cmd_evaluate)

    p = sub.add_parser("demo", help="train, convert, compile and verify on scikit-learn digits")
    p.add_argument("--workdir", default="runs/demo", help="folder of the demo's files")
    p.add_argument("--timesteps", "-T", type=int, default=48, help="time steps per sample")
    p.add_argument("--epochs", type=int, default=20, help="ANN training epochs")
    p.add_argument("--lava-samples", type=int, default=100, help="test samples verified on Lava")
    p.add_argument("--force", action="store_true", help="overwrite files in --workdir")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--seed", type=int, default=0, help="random seed of training, conversion and the Poisson input")
    p.set_defaults(func=demo.cmd_demo)

    p = sub.add_parser(
        "report", help="float vs Loihi parity per layer, weight histograms, accuracy vs T, resources (JSON + PNG)"
    )
    p.add_argument("net", help="netx file (.net)")
    p.add_argument(
        "--reference", required=True, help="what the file was compiled from: the float SNN checkpoint, or the NIR graph"
    )
    p.add_argument("--dataset", default=None, help="default: the data set recorded in the file")
    p.add_argument(
        "--data", default=None, help="inputs X.npy (N, *input_shape) in [0, 1], instead of --dataset (default: none)"
    )
    p.add_argument("--labels", default=None, help="integer labels Y.npy (N,) for --data (accuracies; default: none)")
    p.add_argument("--samples", type=int, default=200, help="first N samples")
    p.add_argument("--timesteps", "-T", type=int, default=None, help="default: the file's")
    _common(
        p,
        seed="the Poisson input",
        output_help="output folder (report.json and PNG figures are written into it)",
    )
    p.set_defaults(func=report.cmd_report)

    p = sub.add_parser(
        "export-nir", help="netx file -> NIR graph (integer units; loihic compile reads it back exactly)"
    )
    p.add_argument("net", help="netx file (.net)")
    p.add_argument("--dt", type=float, default=1e-4, help="Euler step the NIR time constants assume (default 1e-4 s)")
    _common(p)  # no --seed: nothing is random
    p.set_defaults(func=report.cmd_export_nir)

    p = sub.add_parser(
        "install-lava", help="install lava-nc 0.10.0 and lava-dl 0.6.0 into this Python environment (as make setup)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the pip commands without running them")
    p.set_defaults(func=demo.cmd_install_lava)
    return parser


def _warning_line(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
    return f"loihic: warning: {message}\n"


def _quiet_warnings() -> None:
    """What a user reads: one line per warning, like the errors, and none of torch's notes about our own
    read-only arrays (memory-mapped .npy inputs, netx weights), which torch copies or never writes."""
    warnings.formatwarning = _warning_line
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)


def main(argv: list[str] | None = None) -> int:
    _quiet_warnings()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (LoihicError, LavaCompatError) as exc:
        print(f"loihic: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (permissions, a file where a folder should be, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"loihic: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loihic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
