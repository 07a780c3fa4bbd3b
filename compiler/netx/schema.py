"""Every lava-dl netx HDF5 convention in one place.

Sources: lava-dl 0.6.0 ``src/lava/lib/dl/netx/{hdf5.py,utils.py}`` and lava-nc 0.10.0
``src/lava/proc/{lif,dense,conv}/models.py``; ../shared/reference/lava-netx-spec.md sections cited.
"""

from __future__ import annotations

# --- file layout (spec 1.1) --------------------------------------------------------------------------
LAYER_GROUP = "layer"  # layers are layer/0 .. layer/N-1, contiguous, numeric order
META_GROUP = "loihic"  # our provenance; netx reads only the top-level 'layer' group
META_JSON = "meta_json"  # uint8 dataset holding one UTF-8 JSON document (no variable-length strings)

# Types netx builds a block for (spec 1.2).  'input' without a 'neuron' group only sets the input
# shape (hdf5.py _create); loihic always writes one so conv-first files load without input_shape.
SUPPORTED_TYPES = ("input", "dense", "dense_rec", "conv", "flatten")
DENSE_TYPES = ("dense", "dense_rec")  # hdf5.py _create: both go through create_dense (rec=True for dense_rec)
# Types netx knows but cannot run, or runs with semantics we do not emulate: why, in words (hdf5.py _create,
# lines 566-689; each checked by building a Network with lava-dl 0.6.0).  Any other type netx skips silently.
_NOT_IMPLEMENTED = "netx (lava-dl 0.6.0) raises NotImplementedError for it, so Lava cannot run this file either"
REFUSED_TYPES = {
    "pool": _NOT_IMPLEMENTED,
    "average": _NOT_IMPLEMENTED,
    "concat": _NOT_IMPLEMENTED,
    "convT": _NOT_IMPLEMENTED,
    "unpool": _NOT_IMPLEMENTED,
    "dense_comp": (
        "netx (lava-dl 0.6.0) cannot build it (Network has no create_complex_dense), and loihic does not "
        "emulate complex (resonate-and-fire) layers"
    ),
}

# --- neurons (spec 1.4, 2.3) -------------------------------------------------------------------------
CUBA_TYPES = ("CUBA", "LOIHI")  # both map to lava.proc.lif LIF / LIFReset


def refused_neuron(ntype: str) -> str:
    """Why loihic refuses neuron type ``ntype``, in words: what netx builds for it (hdf5.py
    get_neuron_params, lines 111-203; spec 1.4), and what loihic emulates (CUBA/LOIHI LIF; SDNN where asked)."""
    only = "loihic emulates only CUBA/LOIHI LIF neurons"
    if ntype == SDNN_TYPE:
        return (
            "sigma-delta neurons (Lava runs them as Delta / SigmaDelta / Sigma, with graded messages); loihic runs "
            "them with 'simulate', 'verify', 'evaluate' (stream timing) and 'report', not with this command"
        )
    if "RF" in ntype:  # netx's own test: RF if 'PHASE' is in the name, else RF_IZ
        proc = "RF" if "PHASE" in ntype else "RF_IZ"
        adaptive = ", dropping the adaptive threshold" if ntype.startswith("ADRF") else ""
        return f"resonate-and-fire neurons (netx builds Lava's {proc} for them{adaptive}); {only}"
    return f"netx (lava-dl 0.6.0) builds no neuron for this type (Lava cannot run the file); {only}"


# --- sigma-delta neurons (spec 1.4, 2.5; lava-dl 0.6.0 netx/hdf5.py get_neuron_params lines 164-189,
# lava-nc 0.10.0 proc/sdn/process.py and proc/sdn/models.py) -----------------------------------------
SDNN_TYPE = "SDNN"  # netx/hdf5.py:164: Delta for an 'input' layer, Sigma with 'sigma_output', else SigmaDelta
SIGMA_OUTPUT_KEY = "sigma_output"  # netx/hdf5.py:178: the key's PRESENCE selects Sigma (its value is not read)
ACTIVATION_KEY = "activation"  # slayer writes it (slayer/neuron/sigma_delta.py:152); netx never reads it:
SDNN_ACTIVATION = "relu"  # SigmaDelta's default act_mode RELU (proc/sdn/process.py:126) is what netx runs
MESSAGE_BITS_KEY = "messageBits"  # netx/hdf5.py:142-143 reads it as a NetDict (utils.py:71), which breaks the
# block's ``output_message_bits > 0`` (netx/blocks/models.py:35): refused by name
SDNN_MESSAGE_BITS = 16  # netx/hdf5.py:169: the default; the next Dense/Conv takes graded input (num_message_bits)
SPIKE_EXP = 6  # netx/hdf5.py:72 Network(spike_exp=6), passed to Delta and SigmaDelta (hdf5.py:175, 186)
STATE_EXP = 6  # netx/hdf5.py:176, 187: state_exp=6
SDNN_SCALE_BITS = SPIKE_EXP + STATE_EXP  # proc/sdn/process.py:99, 179-180: vth and bias *= 1 << 12; and
# PyDeltaModelFixed shifts its input a << 12 (proc/sdn/models.py:225-227)
SDNN_STATE_BITS = 32  # sigma, act, residue, vth, bias and the messages are np.int32 (proc/sdn/models.py:265-273)
# vThMant << 12 must fit the int32 vth Var (proc/sdn/process.py:179, 185): vThMant in [0, 2^19 - 1]
SDNN_VTH_MANT_MAX = (1 << (SDNN_STATE_BITS - 1 - SDNN_SCALE_BITS)) - 1
# A SigmaDelta's bias: netx's blocks hand it over as int32 and Lava shifts it << 12 (process.py:180); loihic's
# reader takes Lava's int16 bias_mant range for every layer (read.py), so the compiler writes int16
SDNN_BIAS_MAX = (1 << 15) - 1

WEIGHT_SHIFT = 6  # LIF: u += a << 6            (lif/models.py act_shift)
VTH_SHIFT = 6  # LIF: spike iff v > vth << 6  (lif/models.py vth_shift)
BIAS_EXP = 6  # netx passes bias_exp=6: v += bias_mant << 6 each step (hdf5.py get_neuron_params)
DECAY_BITS = 12  # decays are 12-bit fractions, rs0(x, 12)  (lif/models.py decay_shift)
DECAY_UNITY = 1 << DECAY_BITS  # 4096 (lif/models.py decay_unity); netx passes du = iDecay - 1, the model adds
# ds_offset = 1
UV_BITS = 24  # u wraps once at +-2^23, v clips to +-(2^23 - 1)  (lif/models.py uv_bitwidth, subthr_dynamics)
UV_LIMIT = 1 << (UV_BITS - 1)  # 2^23
VTH_MANT_MAX = (1 << 17) - 1  # 17-bit unsigned threshold mantissa (PyLifModelBitAcc docstring)
# A threshold that can never be crossed: (1 << 17) << 6 = 2^23 > the largest v, 2^23 - 1.
# (netx's own default for a dense layer without neuron is 1 << 18 - 1 = 131072, the same value.)
VTH_MANT_NEVER = 1 << 17
BIAS_MANT_MIN, BIAS_MANT_MAX = -4096, 4095  # signed 13-bit bias mantissa (PyLifModelBitAcc docstring)

# --- synapses (spec 1.7, 2.1, 2.2) -------------------------------------------------------------------
WEIGHT_MIN, WEIGHT_MAX = -256, 254  # even integers in this range pass netx + Lava losslessly
CONV_ACC_BITS = 24  # Conv output wraps to 24 bits (proc/conv/models.py signed_wrap)
CHANNEL_BITS = 32  # Dense a_buff and LIF state travel as int32 (wrap)
# Lava's conv sums in float64 and casts with astype(np.int32) before its 24-bit wrap (proc/conv/utils.py conv):
# a sum outside int32 becomes INT_MIN there (x86-64's out-of-range conversion).
CONV_CAST_BITS = 32
# Synapse keys netx runs with processes loihic does not emulate (hdf5.py create_dense), refused by name:
DELAY_KEY = "delay"  # dense: synaptic delays, Lava DelayDense (conv: netx ignores it); hdf5.py create_dense
# reads it as a scalar, per output (length n_out, tested first), per input (length n_in) or per synapse (out, in)
MAX_DELAY = 62  # create_dense clamps larger delays with a warning and builds DelayDense(max_delay=62); loihic refuses
WEIGHT_REC_KEY = "weight_rec"  # dense_rec: the recurrent weights (out, out); netx stacks [weight, weight_rec] for
# ONE optimize_weight_bits (one weight exponent), and RecurrentDense wires s_out back into a second synapse
# (lava-dl netx/blocks/process.py RecurrentDense): a spike of step t reaches the layer at step t + 1
REC_DELAY_REFUSED = (
    "a recurrent layer with delays is not supported: netx's RecurrentDense gives the recurrent synapse the "
    "feed-forward delay matrix (shape (out, in)) and no weight exponent "
    "(netx/blocks/process.py), which loihic does not emulate"
)
COMPLEX_WEIGHT_KEYS = ("weight/real", "weight/imag")  # Lava ComplexDense, for resonate-and-fire neurons

# --- layout ------------------------------------------------------------------------------------------
# Shapes and weights are stored in torch / slayer order: dense weight (out, in) = nn.Linear.weight;
# conv weight (out, in/groups, kH, kW) = nn.Conv2d.weight (cross-correlation); shapes (C, H, W);
# stride/padding/dilation as (H, W).  netx reverses them to Lava's (x, y, f) = (W, H, C) itself
# (hdf5.py create_conv, lines 505-506), and its flatten gives torch's C,H,W order (spec 1.2).
# Lava data for a conv-first network is (W, H, C, T): x_chwt.transpose(2, 1, 0, 3) (spec 3).


def lava_order(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) -> Lava's (x, y, f) = (W, H, C): netx reverses every stored 'shape' (``shape[::-1]``,
    hdf5.py create_input / create_conv), and ``Network(input_shape=...)`` takes this order (hdf5.py _create)."""
    return tuple(int(s) for s in reversed(shape))
