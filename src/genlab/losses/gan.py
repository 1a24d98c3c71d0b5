"""GAN objectives as pure functions of discriminator outputs.

Every loss takes raw logits (no sigmoid in D) and is written with ``softplus``:
``log D = -softplus(-l)`` and ``log(1 - D) = -softplus(l)`` for ``D = sigmoid(l)``,
which stays finite where ``log(sigmoid(l))`` underflows. Each returns the scalar
that the respective player *minimises*, averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ------------------------------------------------- Goodfellow et al. 2014 (minimax game)


def d_minimax(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-[log D(x) + log(1 - D(G(z)))]: D maximises the value V(D, G)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_saturating(fake_logits: Tensor) -> Tensor:
    """log(1 - D(G(z))): G's side of the minimax game; its gradient vanishes when D wins."""
    return -F.softplus(fake_logits).mean()


def g_nonsaturating(fake_logits: Tensor) -> Tensor:
    """-log D(G(z)): the paper's practical alternative with strong early gradients."""
    return F.softplus(-fake_logits).mean()


def minimax_value(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))], in nats; -log 4 at the optimum."""
    return -d_minimax(real_logits, fake_logits)


# ------------------------------------------------------------- least squares (Mao et al.)


def d_lsgan(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """½E[(D(x) - 1)²] + ½E[D(G(z))²] on the raw outputs (a = 0, b = c = 1)."""
    return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())


def g_lsgan(fake_logits: Tensor) -> Tensor:
    return 0.5 * (fake_logits - 1).pow(2).mean()


# ----------------------------------------------------------- Wasserstein (Arjovsky et al.)


def d_wasserstein(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The critic minimises E[f(G(z))] - E[f(x)], the negated Wasserstein estimate."""
    return fake_scores.mean() - real_scores.mean()


def g_wasserstein(fake_scores: Tensor) -> Tensor:
    return -fake_scores.mean()


def wasserstein_estimate(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """E[f(x)] - E[f(G(z))]: the critic's estimate of W(p_data, p_g) (up to its Lipschitz constant)."""
    return real_scores.mean() - fake_scores.mean()


@torch.no_grad()
def clip_weights(module: nn.Module, clip: float) -> None:
    """WGAN's weight clipping to [-clip, clip], the original way to bound the Lipschitz constant."""
    for parameter in module.parameters():
        parameter.clamp_(-clip, clip)


def gradient_penalty(critic, real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP (Gulrajani et al.): E[(‖∇f(x̂)‖₂ - 1)²] on random interpolates x̂.

    ``critic`` is called on the interpolates; the penalty is differentiable w.r.t. its parameters.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, device=real.device, dtype=real.dtype, generator=generator)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[‖∇D(x)‖²] on real data; ``real`` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


# ------------------------------------------------------------------- hinge (SNGAN, SAGAN)


def d_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


def orthogonal_penalty(module: nn.Module) -> Tensor:
    """BigGAN's orthogonal regularisation (Brock et al. 2019, eq. 3): sum over weight matrices
    W of ||W W^T * (1 - I)||_F^2, pushing filters towards orthogonality without fixing their
    norms. Each conv or linear weight counts as a matrix of [out, in * k * k]; biases,
    gains and embeddings (1-D, or not of a conv/linear layer) are left alone, as in the paper."""
    total = torch.zeros(())
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.weight.flatten(1)
            if w.shape[0] > w.shape[1]:
                # A tall W (e.g. a stem Linear of 128 -> 1,568): ||W W^T||_F = ||W^T W||_F, so the
                # off-diagonal sum is ||W^T W||_F^2 minus the squared row norms squared, through the
                # small [in, in] Gram matrix instead of the [out, out] one (14x less work there).
                # W cannot have orthogonal rows (rank <= in < out), so the difference does not cancel.
                off = (w.t() @ w).square().sum() - w.square().sum(1).square().sum()
            else:
                gram = w @ w.t()
                off = (gram * (1 - torch.eye(gram.shape[0], device=gram.device))).square().sum()
            total = total.to(off) + off
    return total
