"""VQ-VAE (van den Oord et al., NeurIPS 2017, "Neural discrete representation learning"): an encoder to a
grid of codebook vectors, a decoder back to the image, and a PixelCNN prior over the grid's indices,
trained as the two stages of one run.

- Quantisation: each encoder output z_e goes to its nearest codebook vector e_k. The decoder reads e_k
  and its gradient passes to z_e unchanged (the straight-through estimator); the commitment loss
  ||z_e - sg(e_k)||^2 keeps z_e near its code.
- The codebook follows its assignments by exponential moving averages (the paper's appendix: decay
  0.99, Laplace-smoothed counts) instead of a codebook loss. A code used less than ``restart_below``
  times per batch on average moves to a random encoder output of the batch (Dhariwal et al. 2020,
  Jukebox's random restarts), so no code stays dead; at the first training step every code starts on
  one, so the codebook starts from data. Under DDP the counts and sums are summed over processes and the restarts
  come from process 0, so every copy keeps the same codebook.
- The decoder gives each sub-pixel a categorical over ``levels`` values (2 for binarised images, 256
  for 8-bit ones), so log p(x | z) is a discrete likelihood in nats, like PixelCNN's.
- Two stages: for the first ``autoencoder_kimg`` the encoder, codebook and decoder train; then the
  prior, a gated PixelCNN over the frozen codes of each batch (class-conditional if asked). The model
  is ``Staged``: the loop sets its stage from the images seen and the stage is a buffer, so one run
  folder holds both and resumes in either.
- Its posterior is a point, so the ELBO is log p(x | z(x)) + log p(z(x)), with no sampling
  (``LikelihoodBound``); against the uniform prior of the first stage, the paper's, the second term is
  -(grid positions) log K.
- A ``LatentSampler`` as PixelCNN is one: the latent is the prior's sampling noise, one normal per grid
  position, each index the inverse CDF of its conditional at Phi(z); a sample is the decoder's mean
  image. ``encode`` inverts it (the noise that draws an image's codes), so the studio's uploads and
  the latent tools work, but nearby noise draws unrelated codes once one flips. ``codes`` gives an
  image's index grid: the latent code the model learns.

- ``two_level``: VQ-VAE-2 (Razavi et al. 2019). A top encoder halves the bottom grid once more and
  quantises with its own codebook; the bottom level quantises the encoder's features together with
  the top codes decoded to its grid, and the decoder reads both levels. The top prior is a gated
  PixelCNN, the bottom prior one conditioned at every position on the top codes (the conditional
  PixelCNN's location-dependent conditioning); sampling draws the top grid, then the bottom.

Differences from the papers: no self-attention in the priors (VQ-VAE-2's); smaller networks, set in the
config, for a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import NON_NEGATIVE, POSITIVE, PROBABILITY, ModelConfig, Range, at_least
from genlab.data.base import Classes, Image, Spec, image_field, num_classes_for
from genlab.discrete import categorical_log_prob, inverse_cdf
from genlab.errors import ConfigError
from genlab.models.pixelcnn import GatedStack
from genlab.models.protocols import NoiseSampler
from genlab.registry import register_model

EPSILON = 1e-5  # Laplace smoothing of the codes' counts
POINT_LOGVAR = -30.0  # an exact inverse's "posterior" is a point


def _sum_over_processes(x: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


class Residual(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), the paper's residual block: [N, C, H, W] -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def vectors(z: Tensor) -> Tensor:
    """Encoder outputs [N, D, h, w] -> their vectors [N*h*w, D], detached, in float32."""
    return z.detach().float().permute(0, 2, 3, 1).reshape(-1, z.shape[1])


class Quantiser(nn.Module):
    """Encoder outputs [N, D, h, w] -> their nearest of ``codes`` vectors, with EMA updates in training mode."""

    codebook: Tensor
    counts: Tensor
    sums: Tensor

    def __init__(self, codes: int, dim: int, decay: float, restart_below: float) -> None:
        super().__init__()
        self.decay, self.restart_below = decay, restart_below
        self.register_buffer("codebook", torch.zeros(codes, dim))
        self.register_buffer("counts", torch.zeros(codes))  # moving average of each code's assignments per batch
        self.register_buffer("sums", torch.zeros(codes, dim))  # ... and of the sum of the vectors assigned to it

    def indices(self, z: Tensor) -> Tensor:
        """[N, D, h, w] -> the nearest code's index [N, h, w], distances in float32 (bf16 would tie them)."""
        flat = vectors(z)
        with torch.autocast(z.device.type, enabled=False):
            distances = (flat**2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + (self.codebook**2).sum(1)
        return distances.argmin(dim=1).view(z.shape[0], *z.shape[2:])

    def lookup(self, indices: Tensor) -> Tensor:
        """Indices [N, h, w] -> code vectors [N, D, h, w]."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(the codes with straight-through gradients [N, D, h, w], the indices [N, h, w], the commitment
        ||z - sg(e)||^2 per image [N])."""
        if self.training and not bool(self.counts.any()):  # the first step: the codebook starts on encoder outputs
            self.restart(vectors(z), torch.ones_like(self.counts, dtype=torch.bool))
        indices = self.indices(z)
        e = self.lookup(
            indices
        )  # before the update, as the paper's (Sonnet's) EMA quantiser: the codes z was matched to
        commitment = (z.float() - e).pow(2).flatten(1).sum(dim=1)
        if self.training:
            self.update(vectors(z), indices)
        e = e.to(z.dtype)
        return z + (e - z).detach(), indices, commitment

    @torch.no_grad()
    def update(self, flat: Tensor, indices: Tensor) -> None:
        """The EMA step of the counts, sums and codebook from the batch's vectors [M, D] and their indices, then
        the restart of dead codes."""
        one_hot = F.one_hot(indices.flatten(), self.codebook.shape[0]).float()
        counts = _sum_over_processes(one_hot.sum(dim=0))
        sums = _sum_over_processes(one_hot.T @ flat)
        self.counts.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.sums.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.counts.sum()
        smoothed = (self.counts + EPSILON) / (total + len(self.counts) * EPSILON) * total
        self.codebook.copy_(self.sums / smoothed[:, None])
        dead = self.counts < self.restart_below
        if dead.any():
            self.restart(flat, dead)

    @torch.no_grad()
    def restart(self, flat: Tensor, which: Tensor) -> None:
        """Codes ``which`` [K] (bool) move to vectors of the batch's encoder outputs [M, D] drawn at random,
        with the counts of a code used once per batch. With ``restart_below`` 1 (Jukebox's), a restarted code
        that the next batch does not use falls below it again and moves again: unused codes keep tracking
        current encoder outputs."""
        chosen = flat[torch.randint(len(flat), (int(which.sum()),), device=flat.device)]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(chosen, src=0)
        self.codebook[which] = chosen
        self.counts[which] = 1.0
        self.sums[which] = chosen


class IndexPrior(nn.Module):
    """A gated PixelCNN over code indices: [N, h, w] (int64, labels [N], and for a VQ-VAE-2 bottom prior the
    top level's indices as context) -> log p [N] in nats."""

    def __init__(
        self, codes: int, channels: int, layers: int, first_kernel: int, num_classes: int, context_codes: int = 0
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(codes, channels)
        self.context = nn.Embedding(context_codes, channels) if context_codes else None
        self.stack = GatedStack(
            channels, channels, layers, 3, first_kernel, channels, num_classes, channels if context_codes else 0
        )
        self.head = nn.Conv2d(channels, codes, 1)

    def logits(self, indices: Tensor, labels: Tensor | None, context: Tensor | None = None) -> Tensor:
        """[N, K, h, w]: each position's distribution given the positions before it in raster order (and all of
        the context, embedded and stretched to this grid)."""
        cond_map = None
        if self.context is not None and context is not None:
            cond_map = F.interpolate(self.context(context).permute(0, 3, 1, 2), size=indices.shape[1:], mode="nearest")
        return self.head(self.stack(self.embed(indices).permute(0, 3, 1, 2), labels, cond_map))

    def forward(self, indices: Tensor, labels: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        log_p = self.logits(indices, labels, context).float().log_softmax(dim=1)
        return log_p.gather(1, indices[:, None]).flatten(1).sum(dim=1)

    @torch.no_grad()
    def sample(self, u: Tensor, labels: Tensor | None, context: Tensor | None = None) -> Tensor:
        """Uniform noise [N, h, w] -> indices [N, h, w], position by position (the grid is small: a whole
        pass each), each the inverse CDF of its conditional at u."""
        indices = torch.zeros(u.shape, dtype=torch.long, device=u.device)
        for i in range(u.shape[1]):
            for j in range(u.shape[2]):
                indices[:, i, j] = inverse_cdf(self.logits(indices, labels, context)[:, :, i, j], u[:, i, j])
        return indices

    @torch.no_grad()
    def invert(self, indices: Tensor, labels: Tensor | None, context: Tensor | None = None) -> Tensor:
        """Indices [N, h, w] -> the uniform noise [N, h, w] that :meth:`sample` draws them from: the middle of each
        index's CDF interval, all positions in one pass (the true indices are the context)."""
        probs = self.logits(indices, labels, context).float().softmax(dim=1)  # [N, K, h, w]
        upper = probs.cumsum(dim=1).gather(1, indices[:, None])
        return (upper - probs.gather(1, indices[:, None]) / 2).clamp(1e-6, 1 - 1e-6)[:, 0]


class Codes(NamedTuple):
    """An image's code grids: the bottom level's [N, h, w] and, for VQ-VAE-2, the top level's [N, h/2, w/2]."""

    bottom: Tensor
    top: Tensor | None


class VQTerms(NamedTuple):
    """What a training pass gives, by stage: the autoencoder's terms, or the prior's (the other two None)."""

    log_px: Tensor | None  # log p(x | z(x)) [N], nats
    commitment: Tensor | None  # ||z_e - sg(e)||^2 [N], both levels'
    log_prior: Tensor | None  # log p(z(x)) [N] under the prior (both levels'), nats
    codes: Codes
    positions: int  # code positions per image, both levels


def _residuals(channels: int, blocks: int) -> list[nn.Module]:
    return [Residual(channels) for _ in range(blocks)]


class VQVAE(NoiseSampler):
    """Images [N, C, H, W] in [-1, 1] <-> code grids; a prior over the grids; see the module doc."""

    has_latent_code = True
    stage: Tensor

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        levels: int,
        codes: int,
        code_dim: int,
        channels: int,
        downsample: int,
        res_blocks: int,
        prior_channels: int,
        prior_layers: int,
        num_classes: int,
        autoencoder_images: int,
        decay: float,
        restart_below: float,
        two_level: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        factor = 2 ** (downsample + int(two_level))
        if h % factor or w % factor:
            raise ConfigError(
                f"vqvae with downsample={downsample}{' and a top level' if two_level else ''} needs sides divisible "
                f"by {factor}; the images are {h}x{w}" + (": lower model.downsample (MNIST: 1)" if two_level else "")
            )
        self.image_shape, self.levels, self.num_codes, self.num_classes = tuple(image_shape), levels, codes, num_classes
        self.two_level = two_level
        self.grid = (h // 2**downsample, w // 2**downsample)
        self.top_grid = (self.grid[0] // 2, self.grid[1] // 2) if two_level else (0, 0)
        self.latent_dim = math.prod(self.grid) + math.prod(self.top_grid)
        self.autoencoder_images = autoencoder_images
        down: list[nn.Module] = []
        for i in range(downsample):
            down += [nn.Conv2d(c if i == 0 else channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(
            *down, nn.Conv2d(channels, channels, 3, padding=1), *_residuals(channels, res_blocks), nn.ReLU()
        )
        self.to_code = nn.Conv2d(channels * (2 if two_level else 1), code_dim, 1)
        self.quantiser = Quantiser(codes, code_dim, decay, restart_below)
        first_kernel = max(3, min(7, 2 * min(self.grid) - 1))  # 7 as PixelCNN's, less on a small grid
        if two_level:  # VQ-VAE-2: a top level at half the bottom grid, which the bottom's codes and prior read
            self.top_encoder = nn.Sequential(
                nn.Conv2d(channels, channels, 4, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1),
                *_residuals(channels, res_blocks),
                nn.ReLU(),
                nn.Conv2d(channels, code_dim, 1),
            )
            self.top_quantiser = Quantiser(codes, code_dim, decay, restart_below)
            self.top_decoder = nn.Sequential(
                nn.Conv2d(code_dim, channels, 3, padding=1),
                *_residuals(channels, res_blocks),
                nn.ReLU(),
                nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
            )
            self.top_upsample = nn.ConvTranspose2d(code_dim, code_dim, 4, stride=2, padding=1)
            top_kernel = max(3, min(7, 2 * min(self.top_grid) - 1))
            self.top_prior = IndexPrior(codes, prior_channels, prior_layers, top_kernel, num_classes)
        up: list[nn.Module] = []
        for _ in range(downsample):
            up += [nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        # The logits come from a 1x1 convolution after the last upsampling: a 4x4 transposed convolution
        # straight to C x 256 logits cost 16 times as much, most of a colour model's step.
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim * (2 if two_level else 1), channels, 3, padding=1),
            *_residuals(channels, res_blocks),
            nn.ReLU(),
            *up,
            nn.Conv2d(channels, c * levels, 1),
        )
        self.prior = IndexPrior(
            codes, prior_channels, prior_layers, first_kernel, num_classes, codes if two_level else 0
        )
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))  # 0: the autoencoder trains, 1: the prior

    # ----------------------------------------------------------------------------- training

    def set_progress(self, images_seen: int) -> None:
        self.stage.fill_(int(images_seen >= self.autoencoder_images))

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """What the first stage trains (the codebooks move by their moving averages, not by gradients)."""
        parts = [self.encoder, self.to_code, self.decoder]
        if self.two_level:
            parts += [self.top_encoder, self.top_decoder, self.top_upsample]
        return [p for part in parts for p in part.parameters()]

    def prior_parameters(self) -> list[nn.Parameter]:
        return list(self.prior.parameters()) + (list(self.top_prior.parameters()) if self.two_level else [])

    def quantise(self, x: Tensor) -> tuple[Tensor, Codes, Tensor]:
        """Images -> (the decoder's input with straight-through gradients, the codes, the commitment [N]); the
        codebooks move when they are in training mode."""
        features = self.encoder(x)
        if not self.two_level:
            e, indices, commitment = self.quantiser(self.to_code(features))
            return e, Codes(indices, None), commitment
        e_top, top, top_commitment = self.top_quantiser(self.top_encoder(features))
        e, bottom, commitment = self.quantiser(self.to_code(torch.cat([features, self.top_decoder(e_top)], dim=1)))
        return torch.cat([e, self.top_upsample(e_top)], dim=1), Codes(bottom, top), commitment + top_commitment

    @torch.no_grad()
    def codes(self, x: Tensor) -> Codes:
        """Images [N, C, H, W] -> their code grids, without moving the codebooks."""
        quantisers = [q for q in (self.quantiser, getattr(self, "top_quantiser", None)) if q is not None]
        modes = [q.training for q in quantisers]
        for q in quantisers:
            q.eval()
        try:
            return self.quantise(x)[1]
        finally:
            for q, mode in zip(quantisers, modes, strict=True):
                q.train(mode)

    def decoder_input(self, codes: Codes) -> Tensor:
        e = self.quantiser.lookup(codes.bottom)
        if codes.top is None:
            return e
        return torch.cat([e, self.top_upsample(self.top_quantiser.lookup(codes.top))], dim=1)

    def decoder_logits(self, e: Tensor) -> Tensor:
        """The decoder's input [N, D (x2), h, w] -> logits [N, C, levels, H, W] of every sub-pixel."""
        out = self.decoder(e)
        return out.view(out.shape[0], self.image_shape[0], self.levels, *out.shape[2:])

    def log_prior(self, codes: Codes, labels: Tensor | None) -> Tensor:
        """log p(codes) [N]: the bottom prior's (given the top codes) and the top prior's."""
        self.check_labels(labels)
        log_p = self.prior(codes.bottom, labels, codes.top)
        return log_p if codes.top is None else log_p + self.top_prior(codes.top, labels)

    def check_labels(self, labels: Tensor | None) -> None:
        """A class-conditional prior read without its labels would give numbers it was never trained for."""
        if self.num_classes and labels is None:
            raise ConfigError("this VQ-VAE's prior is class-conditional: pass the images' class labels")

    def forward(self, x: Tensor, labels: Tensor | None = None) -> VQTerms:
        """Stage 0: the autoencoder's terms (the codebooks move in training mode). Stage 1: the priors'
        log-likelihood of the codes, which the frozen encoder gives without gradients."""
        if int(self.stage) == 0:
            e, codes, commitment = self.quantise(x)
            log_px = categorical_log_prob(self.decoder_logits(e), x)
            return VQTerms(log_px, commitment, None, codes, self.latent_dim)
        codes = self.codes(x)
        return VQTerms(None, None, self.log_prior(codes, labels), codes, self.latent_dim)

    # ----------------------------------------------------------------------------- likelihood

    def mean_image(self, codes: Codes) -> Tensor:
        """Code grids -> the mean of p(x | z), [N, C, H, W] in [-1, 1]."""
        probs = self.decoder_logits(self.decoder_input(codes)).float().softmax(dim=2)
        values = torch.linspace(-1, 1, self.levels, device=probs.device).view(1, 1, -1, 1, 1)
        return (probs * values).sum(dim=2)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.mean_image(self.codes(x))

    @torch.no_grad()
    def log_prob_bound(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(x | z(x)) + log p(z(x)) [N] in nats: under the learned prior once it has trained (the second
        stage), else under the uniform prior of the first (see the module doc)."""
        codes = self.codes(x)
        log_px = categorical_log_prob(self.decoder_logits(self.decoder_input(codes)), x)
        if int(self.stage) == 0:
            self.check_labels(labels)
            return log_px - self.latent_dim * math.log(self.num_codes)
        return log_px + self.log_prior(codes, labels)

    # ----------------------------------------------------------------------------- sampling and its inverse

    def split_noise(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Latents [N, latent_dim] -> uniform noise for the bottom grid [N, h, w] and the top grid (or None)."""
        u = torch.special.ndtr(z.float())
        bottom = math.prod(self.grid)
        top = u[:, bottom:].view(-1, *self.top_grid) if self.two_level else None
        return u[:, :bottom].view(-1, *self.grid), top

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The priors' sampling noise [N, latent_dim] -> mean images [N, C, H, W] of the codes it draws (the top
        grid first, for VQ-VAE-2)."""
        labels = self.condition(z.shape[0], labels, None)
        u_bottom, u_top = self.split_noise(z)
        top = None if u_top is None else self.top_prior.sample(u_top, labels)
        return self.mean_image(Codes(self.prior.sample(u_bottom, labels, top), top))

    @torch.no_grad()
    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images -> (the sampling noise [N, latent_dim] that draws their codes, a point's log-variance): at each
        position the middle of its code's CDF interval under the prior. ``decode`` of it gives the
        reconstruction, so uploads and the latent tools work; nearby noise is not a nearby image (see the
        module doc)."""
        self.check_labels(labels)
        codes = self.codes(x)
        u = [self.prior.invert(codes.bottom, labels, codes.top).flatten(1)]
        if codes.top is not None:
            u.append(self.top_prior.invert(codes.top, labels).flatten(1))
        z = torch.special.ndtri(torch.cat(u, dim=1))
        return z, torch.full_like(z, POINT_LOGVAR)


GREY_EXAMPLE: Spec = {"image": Image(1, 12, 12), "label": Classes(tuple("0123456789"))}


@dataclass
class VQVAEConfig(ModelConfig):
    name: str = "vqvae"
    family: ClassVar[str] = "vqvae"
    levels: int = 256  # values per sub-pixel of the decoder's categorical: 2 for binarised data, 256 for 8-bit
    codes: int = 128  # codebook size K (the paper: 512)
    code_dim: int = 32  # of each code vector (the paper: 64)
    channels: int = 64  # of the encoder and decoder (the paper: 256)
    downsample: int = 2  # halvings of the side: 28x28 -> 7x7 codes
    res_blocks: int = 2
    prior_channels: int = 64
    prior_layers: int = 6
    conditional: bool = False  # the prior on the data's class labels
    two_level: bool = False  # VQ-VAE-2: a top code grid at half the bottom's, with its own prior
    autoencoder_kimg: float = 50.0  # the first stage; the prior trains for the rest of train.kimg
    decay: float = 0.99  # of the codebook's moving averages
    restart_below: float = 1.0  # a code used fewer times per batch on average moves to an encoder output (Jukebox: 1)
    bounds: ClassVar[dict[str, Range]] = {
        "levels": Range(2, 256, note="2 for binarised images, 256 for 8-bit ones"),
        "codes": at_least(2),
        "code_dim": at_least(1),
        "channels": at_least(1),
        "downsample": at_least(1),
        "res_blocks": NON_NEGATIVE,
        "prior_channels": at_least(1),
        "prior_layers": at_least(1),
        "autoencoder_kimg": POSITIVE,
        "decay": PROBABILITY,
        "restart_below": NON_NEGATIVE,
    }
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"levels": 4, "codes": 8, "code_dim": 4, "channels": 8, "res_blocks": 1, "prior_channels": 8},
        {"levels": 2, "codes": 8, "code_dim": 4, "channels": 8, "prior_channels": 8, "conditional": True},
        {
            "levels": 2,
            "codes": 8,
            "code_dim": 4,
            "channels": 8,
            "prior_channels": 8,
            "downsample": 1,
            "two_level": True,
        },
    )
    example_spec: ClassVar[Spec] = GREY_EXAMPLE  # small: the prior samples position by position


@register_model("vqvae", VQVAEConfig)
def build_vqvae(cfg: VQVAEConfig, spec: Spec) -> dict:
    shape = image_field(spec, "vqvae").shape
    k = num_classes_for(spec, "vqvae", cfg.conditional)
    return {
        "model": lambda: VQVAE(
            shape,
            cfg.levels,
            cfg.codes,
            cfg.code_dim,
            cfg.channels,
            cfg.downsample,
            cfg.res_blocks,
            cfg.prior_channels,
            cfg.prior_layers,
            k,
            round(cfg.autoencoder_kimg * 1000),
            cfg.decay,
            cfg.restart_below,
            cfg.two_level,
        )
    }
