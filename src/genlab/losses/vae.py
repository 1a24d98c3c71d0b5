"""VAE objective terms as pure functions. Every term is per example: shape ``[N]``, in nats.

Kingma & Welling (2014): ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), with the KL in
closed form for a diagonal Gaussian q (:func:`genlab.gaussians.kl_divergence`). beta-VAE
(Higgins et al. 2017) weights the KL by beta.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.gaussians import LOG_2PI


def bernoulli_log_likelihood(logits: Tensor, target: Tensor) -> Tensor:
    """log p(x|z) for pixel probabilities sigmoid(logits) and grey-level targets in [0, 1].

    logits, target: [N, ...] -> [N]. Grey levels are used as soft targets (the convention of
    the widely used PyTorch VAE example), so this is minus the summed binary cross-entropy.
    """
    return -_BinaryCrossEntropySum.apply(logits.flatten(1), target.flatten(1))


def _softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), stably: max(x, 0) + log(1 + e^-|x|).

    Written out because PyTorch's CPU softplus, log_sigmoid and log1p are not vectorised: on
    a [128, 784] batch they took 0.46-0.54 ms against 0.11 ms for this form (AVX-512 EPYC, 2
    threads). log(1 + u) instead of log1p(u) errs by at most 6e-8 per pixel where u < 1e-7.
    """
    return x.clamp(min=0) + torch.log(1.0 + torch.exp(-x.abs()))


class _BinaryCrossEntropySum(torch.autograd.Function):
    """Summed BCE with logits per row, [N, P] -> [N], with the closed-form gradient sigmoid(l) - t.

    Autograd through ``_softplus`` would keep and traverse six intermediates; this keeps the
    inputs: forward and backward of the MNIST VAE's loss 0.63 -> 0.23 ms at 2 threads.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(logits, target)
        return (_softplus(logits) - target * logits).sum(dim=1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        logits, target = ctx.saved_tensors
        grad = grad[:, None]
        grad_logits = (torch.sigmoid(logits) - target) * grad if ctx.needs_input_grad[0] else None
        grad_target = -logits * grad if ctx.needs_input_grad[1] else None
        return grad_logits, grad_target


def gaussian_log_likelihood(mean: Tensor, log_sigma: Tensor, target: Tensor) -> Tensor:
    """log N(target; mean, sigma^2 I) summed over pixels. mean, target: [N, ...] -> [N]."""
    log_sigma = log_sigma.expand_as(mean)
    per_pixel = -0.5 * (((target - mean) / log_sigma.exp()).pow(2) + LOG_2PI) - log_sigma
    return per_pixel.flatten(1).sum(dim=1)


def elbo(log_px_given_z: Tensor, kl: Tensor, beta: float = 1.0) -> Tensor:
    """The (beta-weighted) evidence lower bound per example: log p(x|z) - beta * KL. [N]."""
    return log_px_given_z - beta * kl


def decoder_log_likelihood(likelihood: str, params: Tensor, x: Tensor, log_sigma: Tensor | None = None) -> Tensor:
    """log p(x|z) for a decoder output ``params`` and images ``x`` in [-1, 1]. [N, ...] -> [N].

    "bernoulli": params are logits of pixel intensities rescaled to [0, 1].
    "gaussian": params are means in the [-1, 1] scale with a learned global ``log_sigma``.
    """
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(params, (x + 1.0) * 0.5)
    if likelihood == "gaussian":
        if log_sigma is None:
            raise ValueError("the gaussian likelihood needs log_sigma")
        return gaussian_log_likelihood(params, log_sigma, x)
    raise ValueError(f"unknown likelihood {likelihood!r}; use 'bernoulli' or 'gaussian'")
