"""Which library runs fp32 ``nn.Linear`` products on the CPU: the BLAS PyTorch links (MKL), or oneDNN.

PyTorch sends fp32 ``nn.Linear`` to its BLAS and takes oneDNN only for bf16 and convolutions.
The BLAS in the standard wheels is Intel's MKL, which runs its AVX2 code on AMD CPUs: on a
2-core AMD EPYC with AVX-512, the 784-400-20 VAE's 128 x 784 x 400 product ran at 201 GFLOP/s
in MKL against 412 in oneDNN (benchmarks/matmul_cpu.py), and a Linear of that shape took 0.9-1.6 ms
forward and backward against 0.5-0.9 ms (docs/benchmarks.md). On Intel CPUs the two are close. So the choice is
measured on the machine
(``train.cpu_linear=auto``: :func:`measure`), never assumed from the vendor.

PyTorch has no switch for this (its oneDNN fp32 matmul serves only the reduced-precision modes),
so :class:`OneDNNLinear` routes the forward and both backward products through
``torch.ops.mkldnn._linear_pointwise`` (the oneDNN linear that TorchInductor's CPU backend
calls), which takes the backward's transposed views as they are. The backward is written with the same differentiable
function, so double backward (R1, gradient penalties) works. Anything but fp32 CPU tensors outside
autocast (bf16 autocast already runs on oneDNN) takes ``nn.Linear``'s own path.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError

Backend = Literal["blas", "onednn"]
MARGIN = 0.8  # oneDNN is chosen only when it takes at most this fraction of the BLAS's time: a flip needs a clear gap
PROBE_SHAPE = (128, 784, 400)  # batch x in x out: the MNIST VAE's first layer, a typical small training product


def available() -> bool:
    """Whether this PyTorch has oneDNN's linear (the standard x86 and Arm wheels do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _product(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x [N, in] @ weight [out, in]^T + bias [out] -> [N, out], by oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _product(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        # linear() itself, so that the graph is recorded when the caller asks for double backward.
        grad_x = linear(grad, weight.t()) if ctx.needs_input_grad[0] else None
        grad_weight = linear(grad.t(), x.t()) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` on oneDNN for fp32 CPU tensors outside autocast; ``F.linear`` itself otherwise.

    x: [..., in], weight: [out, in], bias: [out] or None -> [..., out].
    """
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or torch.is_autocast_enabled("cpu")
    ):
        return F.linear(x, weight, bias)
    flat = x.reshape(-1, x.shape[-1])
    return _OneDNNLinearFunction.apply(flat, weight, bias).reshape(*x.shape[:-1], weight.shape[0])


class OneDNNLinear(nn.Linear):
    """An ``nn.Linear`` whose fp32 CPU products run on oneDNN: same parameters, state dict and results
    (to float rounding)."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def use_onednn(module: nn.Module) -> nn.Module:
    """Make every plain ``nn.Linear`` in ``module`` an :class:`OneDNNLinear`, in place; returns ``module``.

    Only the class changes: the parameter tensors (and so the optimisers' references and any
    parametrisation such as spectral norm) stay the same objects.
    """
    for child in module.modules():
        if type(child) is nn.Linear:
            child.__class__ = OneDNNLinear
    return module


@functools.cache
def measure(threads: int) -> dict[Backend, float]:
    """Median seconds of a forward and backward of a :data:`PROBE_SHAPE` Linear in each backend,
    at ``threads`` CPU threads (cached per process, so every run in it chooses alike)."""
    n, d_in, d_out = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=generator)
    weight = torch.randn(d_out, d_in, generator=generator).requires_grad_()
    bias = torch.zeros(d_out, requires_grad=True)
    grad = torch.randn(n, d_out, generator=generator)
    functions: dict[Backend, Callable[[Tensor, Tensor, Tensor], Tensor]] = {"blas": F.linear, "onednn": linear}

    def block(function, reps: int = 20) -> float:
        start = time.perf_counter()
        for _ in range(reps):
            function(x, weight, bias).backward(grad)
        return (time.perf_counter() - start) / reps

    times: dict[Backend, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        block(function, 5)  # warm-up: oneDNN builds its kernel on first use
    for _ in range(5):  # alternating, so that a change of load hits both
        for name, function in functions.items():
            times[name].append(block(function))
    return {name: statistics.median(t) for name, t in times.items()}


def choose(seconds: dict[Backend, float]) -> Backend:
    """oneDNN when it took at most ``MARGIN`` of the BLAS's time, else the BLAS."""
    return "onednn" if seconds["onednn"] <= MARGIN * seconds["blas"] else "blas"


def setup(
    requested: str,
    device: torch.device,
    modules: Iterable[nn.Module],
    agree: Callable[[Backend], Backend] = lambda backend: backend,
) -> tuple[Backend, str]:
    """Resolve ``train.cpu_linear=requested`` for ``modules`` on ``device`` and apply it to them.

    Returns the backend and a log line ("" when there is nothing to say). Modules without a
    plain ``nn.Linear`` (convolutional nets) keep the BLAS unmeasured: there is nothing to move.
    ``agree`` makes every process of a distributed run take the same backend (process 0's).
    """
    modules = list(modules)
    if not any(type(m) is nn.Linear for module in modules for m in module.modules()):
        return "blas", ""
    backend, note = resolve(requested, device)
    backend = agree(backend)
    if backend == "onednn":
        for module in modules:
            use_onednn(module)
    return backend, note


def resolve(requested: str, device: torch.device) -> tuple[Backend, str]:
    """The backend for ``train.cpu_linear=requested`` on ``device``, and a log line saying why."""
    if device.type != "cpu":
        return "blas", ""
    if requested == "blas":
        return "blas", ""
    if not available():
        if requested == "onednn":
            raise ConfigError(
                f"train.cpu_linear=onednn needs PyTorch's oneDNN, which torch {torch.__version__} lacks "
                "here; set train.cpu_linear=auto or blas (a run that trained on oneDNN resumes only where it exists)"
            )
        return "blas", "train.cpu_linear=auto: this PyTorch has no oneDNN linear; fp32 Linear layers run on its BLAS"
    if requested == "onednn":
        return "onednn", ""
    seconds = measure(torch.get_num_threads())
    chosen = choose(seconds)
    return chosen, (
        f"train.cpu_linear=auto: an fp32 {'x'.join(map(str, PROBE_SHAPE))} Linear, forward and backward, "
        f"took {seconds['blas'] * 1e3:.3f} ms on the BLAS and {seconds['onednn'] * 1e3:.3f} ms on oneDNN; "
        f"fp32 Linear layers run on {'oneDNN' if chosen == 'onednn' else 'the BLAS'}"
    )
