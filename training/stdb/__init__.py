"""Hybrid training: a converted SNN fine-tuned with spike-timing-dependent backpropagation (STDB).

Datta et al., sections III, IV and VI (Algorithm 2), after Rathi et al. (ICLR 2020, their ref. [3]).

Initialisation (sec. III, VI).  The init is a converted SNN checkpoint (``convert.py``, threshold balancing,
Fig. 3): its weights and per-layer thresholds, optionally multiplied by ``threshold_scale`` (the "scaled
conversion" / "adjusted thresholds" of Fig. 9 col. 4; Rathi's code scales by 0.7 at reduced T).  The
thresholds then stay FIXED during training (sec. VI): they are plain floats, not parameters.

Forward (Algorithm 2), per sample over T steps -- the same arithmetic as ``snn.SNNModel``, so the trained
checkpoint evaluates identically in ``evaluate_snn`` and in the compiler:

- input: the Poisson generator (sec. VI; ``encoding.encode``), fresh spikes for every mini-batch;
- hidden synaptic layer l: ``u_t = lambda u_{t-1} + W o_{l-1}^t`` (eq. 2; ``snn.integrate``), spike
  ``o_t = u_t > v_l`` (eq. 3, strict), then reset (``snn.fire``): ``soft`` subtracts the threshold (eq. 2's
  ``- v o^{t-1}`` term, the paper's choice), ``hard`` sets u to 0 (Lava's LIF; what we deploy);
- average pooling / flatten act on the spikes; dropout multiplies them by a mask drawn ONCE per
  mini-batch (per sample and unit) and kept for all T steps (sec. VI, Algorithm 2's M); identity in eval;
- output layer: integrator without leak and without firing, ``u_T = sum_t W o_{L-1}^t`` (eq. 5);
- loss: softmax cross-entropy on the accumulated ``u_T`` (eqs. 6-7; its gradient is ``p - y``, eq. 8),
  averaged over the mini-batch.  (Eq. 6 omits the minus sign; the usual cross-entropy is meant.)

Backward: BPTT through the membrane recursion of eq. 2 (eqs. 9-11) with the STDB surrogate for the
non-differentiable spike (eq. 12):

    d o_t / d u_t = alpha * exp(-beta * dt),   dt = t - t_s,

``t_s`` the time step of the neuron's most recent spike BEFORE step t (Algorithm 2 stores S[O == 1] = t
after calling STDB at step t), initialised to :data:`LAST_SPIKE_INIT` = -1000, so a neuron that has not yet
fired gets a factor ~alpha * exp(-10) ~ 0 (Rathi's code: ``spike.fill_(-1000)``, ``dt = t-1-spike``).  The
surrogate is on u itself, literally eq. 12 (Rathi's code differentiates w.r.t. ``u / v - 1``, i.e. divides
by the threshold; with Adam's per-parameter step sizes the difference is mostly a per-layer gradient scale).
The reset is not differentiated through the spike (Rathi's ``rst`` uses the detached comparison): hard
reset passes the gradient of u where the neuron did not fire and 0 where it fired; soft reset passes it
unchanged.  The readout's u_T is differentiated exactly.

Hyper-parameters.  Datta et al. give none; the defaults are those of Rathi et al.'s reference code
(``snn.py``): ``alpha = 0.3``, ``beta = 0.01``, Adam with ``amsgrad=True``, lr 1e-4, batch 64, except:
no weight decay by default (Rathi uses 5e-4; :data:`DEFAULT_WEIGHT_DECAY` says why it fails at low T);
a per-batch cosine decay of the lr to 0 (as ``ann.py``) instead of Rathi's lr / 10 at 40/65/85% of a long
run (``schedule="step"``), which in the few epochs used here (< 20, sec. VI / Fig. 9) would spend most of
a 3-5 epoch run at lr / 100; and lr 3e-3 on the tiny scikit-learn digits set (:data:`DATASET_LR`).

Reproducibility: batch order, Poisson spikes and dropout masks of epoch e / batch b come from seeds derived
from ``(seed, e, b)`` (``numpy.random.SeedSequence``), so a run resumed from an epoch checkpoint is
bit-identical to an uninterrupted one (same machine and thread count).  The returned checkpoint is an
"snn" checkpoint like the init (weights updated; ``snn.method = "stdb"``, ``snn.timesteps = T``,
``snn.reset``) with an extra top-level ``"stdb"`` dict: the settings, the per-epoch history and the
optimizer state needed to resume.

Modules: ``network.py`` (constants, the eq. 12 spike, :class:`STDBNetwork`), ``train.py`` (checks, derived
seeds, the learning-rate schedule, :func:`train_stdb`).  This package re-exports the names callers use.
"""

from loihic.training.stdb.network import (  # noqa: F401
    DATASET_LR,
    DEFAULT_ALPHA,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BETA,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    LAST_SPIKE_INIT,
    SCHEDULES,
    STEP_MILESTONES,
    STDBNetwork,
    STDBSpike,
    stdb_spike,
)
from loihic.training.stdb.train import (  # noqa: F401
    derived_seed,
    lr_at,
    train_stdb,
    train_stdb_on_dataset,
)
