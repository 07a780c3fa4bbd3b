"""Allred & Roy L4-norm first-layer adjustment (eqs. 6-9).  Not implemented yet: see issue 3."""

from __future__ import annotations

from loihic.compiler import ir
from loihic.compiler.config import CompileConfig
from loihic.compiler.errors import LoihicError


def l4_adjust(net: ir.Network, cfg: CompileConfig) -> ir.Network:
    if cfg.l4:
        raise LoihicError("--l4 is not available yet (L4-norm adjustment is tracked in issue 3)")
    return net
