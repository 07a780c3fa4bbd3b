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
