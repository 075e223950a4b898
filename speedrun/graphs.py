"""CUDA graphs for the training step: its forward and backward passes captured once per head mode, then replayed.

A step of `fast_1gpu` launches about a thousand kernels, and the GPU waits between them: 2.6-3.2 ms of a 68-80 ms
step on an H200 went to no kernel at all (experiments parts 25 and 33). A replayed graph launches the same kernels
from one call. What changes from step to step lives in device memory that the graph reads: the tokens (copied into
static buffers before each replay), the attention window (a static 0-d tensor), the multi-token weights and the
sampled head's offset (written in place by `GPT.set_step`). The sampled head's row count changes the graph itself,
so each row count a run uses (sampled, then the full softmax) gets a graph of its own. The graphs share one memory
pool: they never run at once, and nothing they allocate outlives a step but the gradients, which the optimisers read
right after their graph's replay.

The optimisers stay outside the graphs: their learning rates and momentum are Python numbers that change every
step, and with several ranks the gradient average is a collective. They read the gradients the replay wrote. When
the step was captured every `.grad` was None, so the backward pass assigned new ones and the captured kernels write
each gradient whole: a replay rewrites them where the capture put them, and nothing needs zeroing between steps.

Tests run the bookkeeping on CPU with `EagerGraph`, which re-runs the captured function instead of replaying
kernels; the GPU tests compare replayed steps with eager ones (tests/gpu/test_graphs_gpu.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class EagerGraph:
    """A CUDA graph's stand-in off the GPU: `capture` runs the function once and keeps its outputs; `replay` runs it
    again and copies the new outputs into the kept ones, as a replayed graph writes where its capture allocated."""

    def __init__(self, fn, params: list[Tensor]):
        self.fn, self.params = fn, params

    def capture(self) -> Tensor:
        self.loss = self.fn()
        self.grads = [p.grad for p in self.params]
        return self.loss

    def replay(self) -> None:
        for p in self.params:
            p.grad = None
        loss = self.fn()
        self.loss.copy_(loss)
        for kept, p in zip(self.grads, self.params):
            if kept is not None:
                kept.copy_(p.grad)


@dataclass
class Captured:
    graph: object  # torch.cuda.CUDAGraph or EagerGraph
    loss: Tensor  # 0-d, the step's loss (mean over micro-batches), rewritten by each replay
    grads: list[Tensor | None]  # one per parameter, rewritten by each replay
    peak_bytes: int = 0  # allocated memory at its peak during the capture: a replay's peak (replays allocate nothing)


class GraphedSteps:
    """The forward and backward passes of training steps as graphs, one per sampled-head row count. `model` is what
    the trainer runs (compiled or not); its uncompiled module holds the parameters and `head_rows`."""

    def __init__(self, model, device: torch.device):
        self.model = model
        self.base = getattr(model, "_orig_mod", model)
        self.params = [p for p in self.base.parameters() if p.requires_grad]
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.captured: dict[int, Captured] = {}
        self.batches: list[tuple[Tensor, Tensor]] = []  # the static micro-batches every graph reads
        self.window: Tensor | int | None = None
        self.pool = None

    def _forward_backward(self) -> Tensor:
        total = None
        for inputs, targets in self.batches:
            loss = self.model(inputs, targets, self.window) / len(self.batches)
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        return total

    def _load(self, batches, window) -> None:
        """Copy a step's micro-batches and window into the static inputs (made from the first step seen)."""
        if not self.batches:
            self.batches = [(i.clone(), t.clone()) for i, t in batches]
        if len(batches) != len(self.batches):
            raise ValueError(f"CUDA graphs were captured for {len(self.batches)} micro-batches a step, not "
                             f"{len(batches)}")
        for (si, st), (i, t) in zip(self.batches, batches):
            si.copy_(i)
            st.copy_(t)
        if isinstance(window, Tensor):
            if self.window is None or not isinstance(self.window, Tensor):
                self.window = window.clone()
            elif window is not self.window:
                self.window.copy_(window)
        elif self.cuda:
            raise TypeError("a captured step reads its window from a device tensor (GPT.window gives one)")
        else:
            self.window = window

    def capture(self, batches, window) -> Captured:
        """Capture the step as the model is now set (`GPT.set_step` chose the head's rows) on these inputs. One eager
        forward and backward first, on the capture stream: it compiles or warms that mode and leaves the parameters
        as they were (no optimiser runs); the capture itself runs nothing."""
        self._load(batches, window)
        for p in self.params:
            p.grad = None
        if self.cuda:
            with torch.cuda.stream(self.stream):
                self._forward_backward()
                for p in self.params:
                    p.grad = None
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                    loss = self._forward_backward()
            torch.cuda.current_stream().wait_stream(self.stream)
            peak = torch.cuda.max_memory_allocated()
            if self.pool is None:
                self.pool = graph.pool()
        else:
            graph = EagerGraph(self._forward_backward, self.params)
            loss, peak = graph.capture(), 0
        captured = Captured(graph, loss, [p.grad for p in self.params], peak)
        self.captured[self.base.head_rows] = captured
        for p in self.params:
            p.grad = None
        return captured

    @property
    def peak_bytes(self) -> int:
        """The largest allocated memory of any captured step (0 off the GPU). The capture of a step first seen in
        the loop resets the device's peak statistics: capture in the warm-up (`warmup_and_restore` does)."""
        return max((c.peak_bytes for c in self.captured.values()), default=0)

    def __call__(self, batches, window) -> Tensor:
        """The step's forward and backward passes: its mean loss (a new tensor) and every parameter's `.grad`."""
        captured = self.captured.get(self.base.head_rows)
        if captured is None:
            captured = self.capture(batches, window)
        self._load(batches, window)
        captured.graph.replay()
        for p, g in zip(self.params, captured.grads):
            p.grad = g
        return captured.loss.clone()
