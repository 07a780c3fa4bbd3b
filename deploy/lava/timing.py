"""Lava's pipeline timing, named once (spec 2.7).

Steps are 1-based in Lava.  A source column j is sent at step j + 1; source -> LIF ``a_in`` takes 0
steps, every Dense/Conv -> LIF takes 1 (the synapse's ``a_buff``), LIF -> synapse takes 0.  So the
neuron layer at *delay* d (the number of synaptic layers up to and including it) integrates sample
column j at Lava step ``j + 1 + d``, and a sink on it stores that column at index ``j + d``.

Per-sample resets: netx's ``LIFReset`` zeroes u and v at the start of steps with
``step % interval == (user_offset + 1 + idx) % interval`` for the idx-th block it creates.  With
``interval = T`` and ``user_offset = 1`` (no input neuron; block idx has delay idx + 1) or
``user_offset = 0`` (an input neuron is block 0 with delay 0), every layer is reset right before it
integrates the first column of each sample: Lava then equals the aligned emulator exactly.

Two timings, for a network with K = 2 synaptic layers, one sample of T = 4 columns x0..x3 (``.`` = nothing yet,
``b`` = the layer integrates only its bias; the sink's index is the step minus 1)::

    Lava step           1    2    3    4    5    6
    source sends        x0   x1   x2   x3   .    .
    layer 1 integrates  b    x0   x1   x2   x3   .      (Dense -> LIF: one step, the synapse's a_buff)
    layer 2 integrates  b    b    x0   x1   x2   x3
    aligned record      -    -    x0   x1   x2   x3     loihic's default: resets just before each layer's
                                                        first column, the K leading steps cut off
    stream record       [0]  [1]  [2]  [3]              ``--stream``: a plain netx run, steps 1..T as the
                        b    b    x0   x1                 sink records them (bias during the fill included);
                                                        append K zero columns to see the tail

Aligned: all samples run in one network (``reset_interval=T``); output ``[..., t]`` is what the last layer
makes of column t.  Stream: every sample runs through a fresh network without resets (``reset_interval=None``),
exactly as lava-dl's own tests and tutorials run netx; output ``[..., t]`` is the sink's record at step t + 1.
"""

from __future__ import annotations


def reset_offset(has_input_neuron: bool) -> int:
    """``reset_offset`` to pass to ``netx.hdf5.Network`` together with ``reset_interval=T``."""
    return 0 if has_input_neuron else 1


def output_delay(num_synaptic_layers: int) -> int:
    """K: sink index of the last layer's output for input column 0 (= its number of synapses)."""
    return num_synaptic_layers


def total_steps(num_samples: int, timesteps: int, delay: int) -> int:
    """Lava steps needed to push ``num_samples`` samples through a pipeline of depth ``delay``."""
    return num_samples * timesteps + delay
