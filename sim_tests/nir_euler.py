"""An independent float reference for NIR graphs: NIR's continuous-time equations stepped with Euler at ``dt``,
straight from the graph's nodes and edges (numpy, float64), without loihic's IR or its front end.

Per step t, every node computes its output from the sum of its inputs (NIR: a node's input is the sum over its
incoming edges).  An edge that closes a cycle (a recurrent Affine back onto its neuron) carries the value its
source had at step t - 1: in discrete time a recurrent spike takes one step, as snnTorch's RLeaky / RSynaptic
compute it.  Nodes (``a = dt / tau``):

- ``Input``: the input spikes of step t;  ``Output``: its input;
- ``Affine``: ``W x + b``;  ``Linear``: ``W x``;  ``Scale``: ``s x``;
- ``Delay``: its input of step ``t - delay / dt`` (0 before the first step);
- ``LIF``: ``v += a (v_leak - v + r x)``;  ``CubaLIF``: ``I += a_s (w_in x - I)``, ``v += a_m (v_leak - v + r I)``;
  ``IF``: ``v += r x``; spiking ``z = v > v_threshold``, then ``v = v_reset`` where z;
- ``LI`` / ``CubaLI`` / ``I``: the same without spikes; their output is v.

A recurrent edge's value before the first step is its (stateless) source applied to silence, e.g. the
recurrent Affine's bias.  Nested subgraphs are spliced in (their Input and Output become identity nodes).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _a(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def _splice(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    nodes, edges = {}, []
    for k, n in graph.nodes.items():
        if type(n).__name__ == "NIRGraph":
            sub_nodes, sub_edges = _splice(n, f"{prefix}{k}.")
            ins = [m for m, x in sub_nodes.items() if type(x).__name__ == "Input"]
            outs = [m for m, x in sub_nodes.items() if type(x).__name__ == "Output"]
            for m in ins + outs:
                sub_nodes[m] = "identity"
            nodes.update(sub_nodes)
            edges += sub_edges
            nodes[f"{prefix}{k}"] = ("alias", ins[0], outs[0])
        else:
            nodes[f"{prefix}{k}"] = n
    for a, b in graph.edges:
        edges.append((f"{prefix}{a}", f"{prefix}{b}"))
    # an edge naming a subgraph: into its Input, out of its Output
    fixed = []
    for a, b in edges:
        if isinstance(nodes.get(a), tuple):
            a = nodes[a][2]
        if isinstance(nodes.get(b), tuple):
            b = nodes[b][1]
        fixed.append((a, b))
    return {k: v for k, v in nodes.items() if not isinstance(v, tuple)}, fixed


class NIREuler:
    """``NIREuler(graph, dt).run(x)``: ``x`` (B, n_in, T) input spikes -> the Output node's values (B, n_out, T)
    and, in ``self.records``, every neuron node's spikes (B, n, T)."""

    def __init__(self, graph: Any, dt: float) -> None:
        self.dt = dt
        self.nodes, self.edges = _splice(graph)
        self.inp = next(k for k, n in self.nodes.items() if type(n).__name__ == "Input" and "." not in k)
        self.out = next(k for k, n in self.nodes.items() if type(n).__name__ == "Output" and "." not in k)
        self.order, self.back = self._order()

    def _order(self) -> tuple[list[str], set[tuple[str, str]]]:
        """A topological order from the Input; edges found closing a cycle (DFS back edges) are delayed."""
        succ: dict[str, list[str]] = {k: [] for k in self.nodes}
        for a, b in self.edges:
            succ[a].append(b)
        state: dict[str, int] = {}
        post: list[str] = []
        back: set[tuple[str, str]] = set()

        def visit(k: str) -> None:
            state[k] = 1
            for m in succ[k]:
                if state.get(m) == 1:
                    back.add((k, m))
                elif m not in state:
                    visit(m)
            state[k] = 2
            post.append(k)

        visit(self.inp)
        return post[::-1], back

    def run(self, x: np.ndarray) -> np.ndarray:
        x = _a(x)
        batch, steps = x.shape[0], x.shape[-1]
        out_now: dict[str, np.ndarray] = {}
        out_prev: dict[str, np.ndarray] = {}
        state: dict[str, dict[str, np.ndarray]] = {}
        hist: dict[str, list[np.ndarray]] = {}
        self.records: dict[str, list[np.ndarray]] = {}
        result = []
        for t in range(steps):
            out_now = {}
            for k in self.order:
                node = self.nodes[k]
                ins = [
                    (self._prev(a, out_prev, batch) if (a, b) in self.back else out_now[a])
                    for a, b in self.edges
                    if b == k
                ]
                if k == self.inp:
                    out_now[k] = x[..., t]
                    continue
                s = sum(ins) if ins else 0.0
                out_now[k] = self._node(k, node, s, state, hist, t, batch)
            out_prev = out_now
            result.append(out_now[self.out])
        self.records = {k: np.stack(v, -1) for k, v in self.records.items()}
        return np.stack(result, -1)

    def _prev(self, a: str, out_prev: dict[str, np.ndarray], batch: int) -> np.ndarray:
        """A delayed (recurrent) edge's value: its source's output of the previous step; before the first step
        the source (an Affine, a Linear or a Scale) applied to silence, so that an Affine's bias is there from
        step 0 on (snnTorch: ``recurrent(spk)`` with ``spk = 0`` at the first step)."""
        if a in out_prev:
            return out_prev[a]
        node = self.nodes[a]
        n_in = _a(node.weight).shape[1] if hasattr(node, "weight") else _a(node.scale).size
        return self._node(a, node, np.zeros((batch, n_in)), {}, {}, 0, batch)

    def _node(self, k: str, node: Any, s: Any, state: dict, hist: dict, t: int, batch: int) -> np.ndarray:
        kind = "identity" if isinstance(node, str) else type(node).__name__
        dt = self.dt
        if kind in ("identity", "Output", "Input"):
            return s
        if kind == "Affine":
            return s @ _a(node.weight).T + _a(node.bias)
        if kind == "Linear":
            return s @ _a(node.weight).T
        if kind == "Scale":
            return s * _a(node.scale)
        if kind == "Delay":
            d = np.rint(_a(node.delay) / dt).astype(int)
            h = hist.setdefault(k, [])
            h.append(np.broadcast_to(s, (batch, d.size)).copy())
            idx = t - d
            return np.stack([h[i][:, j] if i >= 0 else np.zeros(batch) for j, i in enumerate(idx)], -1)
        st = state.setdefault(k, {})
        n = np.shape(s)[-1] if np.ndim(s) else _a(node.v_threshold if hasattr(node, "v_threshold") else node.r).size
        v = st.get("v", np.zeros((batch, n)))
        if kind in ("LIF", "LI"):
            v = v + dt / _a(node.tau) * (_a(node.v_leak) - v + _a(node.r) * s)
        elif kind in ("CubaLIF", "CubaLI"):
            cur = st.get("i", np.zeros((batch, n)))
            cur = cur + dt / _a(node.tau_syn) * (_a(node.w_in) * s - cur)
            st["i"] = cur
            v = v + dt / _a(node.tau_mem) * (_a(node.v_leak) - v + _a(node.r) * cur)
        elif kind in ("IF", "I"):
            v = v + _a(node.r) * s
        else:
            raise ValueError(f"node '{k}': {kind} is not simulated here")
        if kind in ("LIF", "CubaLIF", "IF"):
            z = v > _a(node.v_threshold)
            v = np.where(z, _a(node.v_reset), v)
            st["v"] = v
            self.records.setdefault(k, []).append(z)
            return z.astype(np.float64)
        st["v"] = v
        return v
