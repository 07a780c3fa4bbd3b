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
SUPPORTED_TYPES = ("input", "dense", "conv", "flatten")
# Types netx knows but cannot run, or runs with semantics we do not emulate.
REFUSED_TYPES = ("dense_rec", "dense_comp", "pool", "average", "convT", "unpool", "concat")

# --- neurons (spec 1.4, 2.3) -------------------------------------------------------------------------
CUBA_TYPES = ("CUBA", "LOIHI")  # both map to lava.proc.lif LIF / LIFReset
WEIGHT_SHIFT = 6  # LIF: u += a << 6            (lif/models.py act_shift)
VTH_SHIFT = 6  # LIF: spike iff v > vth << 6  (lif/models.py vth_shift)
BIAS_EXP = 6  # netx passes bias_exp=6: v += bias_mant << 6 each step (hdf5.py get_neuron_params)
DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS  # 4096; netx passes du = iDecay - 1 and the model adds ds_offset = 1
UV_BITS = 24  # u wraps once at +-2^23, v clips to +-(2^23 - 1)  (lif/models.py subthr_dynamics)
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

# --- layout ------------------------------------------------------------------------------------------
# Shapes and weights are stored in torch / slayer order: dense weight (out, in) = nn.Linear.weight;
# conv weight (out, in/groups, kH, kW) = nn.Conv2d.weight (cross-correlation); shapes (C, H, W);
# stride/padding/dilation as (H, W).  netx reverses them to Lava's (x, y, f) = (W, H, C) itself
# (hdf5.py create_conv, lines 505-506), and its flatten gives torch's C,H,W order (spec 1.2).
# Lava data for a conv-first network is (W, H, C, T): x_chwt.transpose(2, 1, 0, 3) (spec 3).
