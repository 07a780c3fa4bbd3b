"""Noise-based single-step SNN training (Jiang & Zhang, sections 2.1-2.3 and 3), its T=N stages, and what
the deployed network runs.  ``../shared/reference/method-notes.md`` ("Noise-based training") settles the
ambiguities; equation numbers below are the paper's.

Neuron (eqs. 1-3): ``H(t) = lambda V(t-1) + sum_i w_i S_i(t)``, ``S(t) = H(t) > V_th``, ``V(t) = H(t)(1 - S(t))``
(hard reset to V_reset = 0), lambda = :data:`LEAK` = 0.5, V_th = 1 in every synaptic layer, the output
layer included (it spikes; the prediction is the argmax of its spike counts, ties to the lowest index).
This is exactly Lava's LIF with vDecay = round(4096 (1 - lambda)) = 2048 and iDecay = 4096: the checkpoint
says ``leak = 0.5, reset = "hard", output = "spiking"`` and ``compiler/load/checkpoint.py`` maps it 1:1.

Input: the analogue image is fed as the input current at every step ("the input is fed N times", sec. 2.3),
our ``direct`` encoding (``compiler/encoding.py``, graded 8-bit ``round(255 x) / 255``).  Training sees the
same 8-bit values, so the trained and the deployed first layer receive identical inputs.

Stage 1 (:func:`train_noise`, eqs. 5-6): T = 1, ``H = N_noise + sum_i w_i S_i``, ``S = H > 1``; N_noise is
drawn fresh for every iteration, independently per layer, sample and neuron (:class:`NoiseConfig`):

- ``gaussian`` (default): mean 0.5, std 1/6, clipped to ``[mean - 3 std, mean + 3 std]`` = [0, 1] (the
  method notes' reading of "N_noise in the range [0, 1]"); clipping is an option;
- ``uniform``: uniform on the same range ``[mean - 3 std, mean + 3 std]``, so ``std`` sets the range of
  both types (the paper's sec. 3.4 compares the two at the same range).

Backward: the surrogate derivative of eq. 4, ``dS/dH = a / (2 (1 + (pi a (H - V_th) / 2)^2))``, a = 3.  Loss:
MSE between the output spikes and one-hot targets; Adam, lr 1e-4, cosine annealing with warm restarts
every ``t_max`` = 100 epochs (sec. 3, stepped once per epoch as its Fig. 3 describes).

Evaluation at T = N (:func:`noise_outputs`, :func:`evaluate_noise`), ``stage``:

- ``"2"`` (stage 2): the T = 1 network run N times, ``H(t) = N_noise(t) + I(t)`` with fresh noise each step
  and no state; the output is averaged over steps (we sum spike counts: same argmax).
- ``"3"`` (stage 3, eqs. 7-10): ``H(t) = N(lambda V(t-1)) + N'(t) + I(t)``, ``V(t) = H(t)(1 - S(t))``, where
  per layer, sample and step ``A = lambda V(t-1)`` (eq. 8), ``A_hat = (A - mean A) / std A`` over the
  layer's neurons of that sample (eq. 9; population std; A_hat = 0 where std A = 0, e.g. at t = 0), and
  ``N(lambda V(t-1)) = A_hat / (alpha max|A_hat|) + beta`` (eq. 10; = beta where max|A_hat| = 0), which lies
  in [beta - 1/alpha, beta + 1/alpha].  The residual noise is ``N' = k (N_noise - mean)`` with
  ``k = max(0, 1 - 2 / (alpha R))``, R = 6 std the width of N_noise's range: zero-mean, of range
  [-(R/2 - 1/alpha), R/2 - 1/alpha], so ``N + N'`` keeps N_noise's range when beta = mean (the method
  notes' "N' chosen so the sum keeps N_noise's mean and range").  alpha = 2 (R = 1) removes N'
  (sec. 3.3); alpha -> inf gives k = 1 and N = beta, i.e. stage 2.
- ``"lif"``: the plain LIF network of eqs. 1-3 without any noise: what the compiled network runs on Lava.
  Equal, spike for spike, to :func:`loihic.training.snn.evaluate_snn` on the same checkpoint.
- ``"lif+mean"``: eqs. 1-3 plus a constant current ``c`` in every layer, every step (``offset``; default
  :func:`steady_offset` ``= beta (1 - lambda) = 0.25``, see below).  Deployable: :func:`with_offset` folds
  c into the layers' bias.
- ``"lif+noise"``: eqs. 1-3 plus ``c + N'(t)``: the plain LIF with stage 3's residual noise injected.

What the deployed network runs, and why
---------------------------------------
Lava's LIF is deterministic and has no layer-wide operation, so two parts of stage 3 cannot run on it as
such: the normalisation of eqs. 9-10 (mean, std and max over a whole layer, every step) and the random
residual N'.  What it runs exactly is the LIF of eqs. 1-3, the neuron stage 3 claims to approximate ("to
keep the formal consistency with Equation (1)"), optionally with a constant bias current.  So:

0. Wide first layers fed 8-bit graded pixels (Fashion-MNIST ap2-512fc: 784 inputs after the pooling fold)
   leave the 24-bit current too little room for weight resolution; compile them with ``--input-bits 4``
   (compiler/passes/input_bits.py): measured 49.2% -> 87.9% compiled at T = 10, float 88.2%.
1. ``loihic compile noise.pt`` deploys mode ``"lif"`` as is (thresholds 1, vDecay 2048, iDecay 4096, spiking
   output read by spike counts).  The emulator and Lava run the float model of ``training.snn.evaluate_snn``
   up to 8-bit weight quantization, and stay spike-identical to each other.
2. Plain LIF loses the noise's mean: training always added ~0.5 to H, the deployed neuron at t = 0 adds
   nothing (at T = 1 nothing fires: 10% on digits).  The deterministic part of stage 3's noise terms is a
   constant current: :func:`with_offset` folds ``c`` into the bias, which Loihi runs exactly.  ``c = beta``
   matches stage 3 at t = 0 (best at T = 1) but accumulates to ``c / (1 - lambda) = 2 beta`` = the threshold
   for a silent neuron; ``c = beta (1 - lambda)`` matches stage 3's mean beta at the steady state (best at
   T >= 5).  A per-step offset (beta at t = 0, then beta (1 - lambda)) would match both but needs a
   time-varying current: not a bias (it would take an extra input channel).
3. The residual noise N' is NOT injected.  Measured (``bench/noise_digits.py``, digits, ap2-512fc seeds 0
   and 1 and mlp, c = 0.25 and 0.5, 3 noise draws): "lif+noise" minus "lif+mean" at the same c is -8.7
   to +0.3 points at T = 5 and 10, and -0.4 to +2.2 points at T = 1 (where c = 0.5 gives the best deployed
   result: +1.7, +0.3, -0.4).  The noise buys nothing on the deterministic LIF, while delivering it would
   cost: pre-drawn currents as extra graded input channels for every
   first-layer neuron (input bandwidth roughly doubled for ap2-512fc) and, for every deeper layer, relay
   neurons carrying the noise bits through the layers before it (weights > threshold, bit-weighted synapses,
   a binary approximation of a graded current; impossible to route through average pooling into a conv
   layer), plus an input format that ``loihic evaluate``/``verify`` do not have.  It would keep emulator ==
   Lava (same integer inputs), but for no accuracy gain; the gap between stage 3 and the deployed network
   is the accumulated-potential normalisation, not the noise.

4. The deterministic network of 2. never saw training, and on a short noise training it is several points below
   stage 3 (Fashion-MNIST AP2-512FC, 2 epochs, seed 1: 74.7% vs stage 3 78.1% at T = 5).  The deployment
   stage (``deploy.py``, ``loihic train --method noise --deploy-epochs K``, default 1) fine-tunes exactly that
   network (noise mean as a trained bias, hard reset, thresholds 1, the compiler's input width) at T = N with a
   per-step surrogate gradient; ``loihic compile`` deploys the result as trained.  Measured in
   ``bench/noise_deploy.py`` (README, "Noise-trained networks on Loihi at the method's accuracy").

Modules: ``options.py`` (constants, :class:`NoiseConfig`, option checks, the Table 1 architectures),
``train.py`` (stage 1 and the BPTT baseline), ``evaluate.py`` (stages 2 and 3, the deployed LIF,
:func:`with_offset`), ``deploy.py`` (the deployment stage).  This package re-exports the names callers use.
"""

from loihic.training.noise.deploy import deploy_stage  # noqa: F401
from loihic.training.noise.evaluate import (  # noqa: F401
    NoiseSNN,
    _normalised_potential,
    chunk_generator,
    evaluate_noise,
    noise_outputs,
    steady_offset,
    with_offset,
)
from loihic.training.noise.options import (  # noqa: F401
    DATASET_LR,
    DEFAULT_LR,
    ENCODING,
    LEAK,
    MODELS,
    NOISE_MODELS,
    NOISE_TYPES,
    RANGE_STDS,
    STAGES,
    THRESHOLD,
    NoiseConfig,
    check_offset,
    check_stage,
    check_stage3,
    check_timesteps,
    noise_network,
    residual_gain,
)
from loihic.training.noise.train import (  # noqa: F401
    _forward_bptt,
    snn_checkpoint,
    surrogate_spike,
    train_bptt,
    train_noise,
)
