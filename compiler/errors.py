"""The one error hierarchy.  Every user-facing failure is a :class:`LoihicError` whose message is one
line naming the file, layer or value and what was expected; the CLI prints it and exits non-zero."""

from __future__ import annotations


class LoihicError(ValueError):
    """Base class: a problem with the user's input, reported as one line without a traceback."""


class CheckpointError(LoihicError):
    """A checkpoint file is missing, unreadable, unsafe or not of the expected kind."""


class NetxFormatError(LoihicError):
    """A netx HDF5 file is corrupt or uses something loihic cannot run exactly."""


class NetxInputShapeError(NetxFormatError):
    """A conv-first netx file has no 'input' layer and no input shape was given (netx needs one too)."""


class UnsupportedLayerError(LoihicError):
    """A model contains a layer the compiler cannot express on Loihi."""


class QuantizationError(LoihicError):
    """A value does not fit Loihi's fixed-point ranges (weights, thresholds, state)."""


class InputError(LoihicError):
    """An input array or option has the wrong shape, dtype or value."""


class OutputExistsError(LoihicError):
    """An output file already exists and --force was not given."""


class LoihicWarning(UserWarning):
    """Something that may cost accuracy but does not stop the work; the CLI prints it as one
    ``loihic: warning:`` line."""
