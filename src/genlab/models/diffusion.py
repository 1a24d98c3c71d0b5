"""Diffusion (DDPM, Ho et al. 2020; DDIM, Song et al. 2021) and flow matching (rectified flow,
Lipman et al. 2023; Liu et al. 2023) around one U-Net (:mod:`genlab.models.unet`).

Both turn noise into an image by integrating a learned field over a time t from 1 (noise) to 0
(data); they differ in the path and in what the net predicts:

- ``ddpm``: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps over T steps of a linear (Ho et al.) or
  cosine (Nichol & Dhariwal 2021) schedule; the net predicts eps. Samplers: ``ancestral`` (DDPM's,
  with the posterior variance beta~) and ``ddim`` (eta = 0, deterministic), each over any number of
  steps spaced "trailing" (Lin et al. 2024), so that the first step always starts from t = T.
- ``flow_matching``: x_t = (1 - t) x_0 + t eps, the straight path; the net predicts the velocity
  eps - x_0. Samplers: ``euler`` and ``heun`` (Karras et al. 2022's second-order step; 2 network
  evaluations per step) on a uniform grid of t.

The net may read class labels or captions (``TextDDPM``, ``TextFlowMatching``: the
``TextConditional`` protocol). Classifier-free guidance (Ho & Salimans 2022) mixes the conditional
and unconditional predictions as uncond + s (cond - uncond): s = 1 is the conditional model, 0 the
unconditional one, s > 1 guided (their w is s - 1). A model is a ``LatentSampler`` through its
initial noise (``latent_dim`` is C*H*W), so the latent tools work on it, and an ``Encoder`` through
deterministic inversion (DDIM or the ODE run from t = 0 to 1), whose "posterior" is a point: its
log-variance is ``POINT_LOGVAR``.
``decode`` is a function of the latent for every sampler: ``ancestral``'s fresh noise at each step
comes from a generator seeded by that latent's bytes, so the same noise gives the same image in any
batch and on any call, and sampling never touches the global RNG.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from genlab.config import FRACTION, ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, TensorDataset, Tokens, image_field, num_classes_for
from genlab.data.captions import MAX_WORDS, VOCABULARY, random_captions, tokenize
from genlab.errors import ConfigError
from genlab.models.protocols import NoiseSampler
from genlab.models.text_embedding import pretrained_text_encoder
from genlab.models.unet import TextCondition, UNet
from genlab.registry import register_model

POINT_LOGVAR = -30.0  # the log-variance of an exact inversion's "posterior" (a point): exp(-15) ~ 3e-7 sd
SNAPSHOTS = 8  # states of the denoising strip


class Diffusion(NoiseSampler):
    """What both families share: the net, the latents, guidance, the sampling settings and the protocols.

    Subclasses define the path: :meth:`noised` (training pairs), :meth:`integrate` (noise -> data) and
    :meth:`invert` (data -> noise), and the samplers they accept.
    """

    samplers: ClassVar[tuple[str, ...]]

    def __init__(self, net: UNet, image_shape: tuple[int, int, int], steps: int, sampler: str, guidance: float) -> None:
        super().__init__()
        self.net = net
        self.image_shape = tuple(image_shape)
        self.latent_dim = math.prod(image_shape)
        self.num_classes = net.num_classes
        self.conditioned = net.condition is not None
        self.steps, self.sampler, self.guidance = 1, self.samplers[0], 1.0
        self.set_sampling(steps, sampler, guidance)

    def forward(self, x_t: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """The net's prediction at noise level t: [N, C, H, W] (t: [N] in [0, 1])."""
        return self.net(x_t, t, labels)

    # ----------------------------------------------------------------------------- sampling settings

    def set_sampling(self, steps: int | None = None, sampler: str | None = None, guidance: float | None = None) -> None:
        """Change how samples are drawn (not how the model was trained); ``None`` keeps a setting."""
        if steps is not None and not (isinstance(steps, int) and steps >= 1):
            raise ConfigError(f"steps is the number of sampling steps, an integer >= 1; got {steps!r}")
        if sampler is not None and sampler not in self.samplers:
            raise ConfigError(f"{type(self).__name__} samples with {' or '.join(self.samplers)}; got {sampler!r}")
        if guidance is not None:
            if not math.isfinite(guidance) or guidance < 0:
                raise ConfigError(f"guidance is a scale >= 0 (1 = plain conditional); got {guidance}")
            if guidance != 1 and not self.conditioned:
                raise ConfigError("guidance needs a class- or text-conditional model; this one draws without either")
        self.steps = self.steps if steps is None else steps
        self.sampler = self.sampler if sampler is None else sampler
        self.guidance = self.guidance if guidance is None else float(guidance)

    @contextmanager
    def sampling(
        self, steps: int | None = None, sampler: str | None = None, guidance: float | None = None
    ) -> Iterator[None]:
        """The block runs with these settings; the previous ones are restored after it."""
        before = self.steps, self.sampler, self.guidance
        self.set_sampling(steps, sampler, guidance)
        try:
            yield
        finally:
            self.steps, self.sampler, self.guidance = before

    @property
    def evaluations(self) -> int:
        """Network evaluations per sample at the current settings (guidance doubles each)."""
        per_step = 2 if self.sampler == "heun" else 1
        return self.steps * per_step * (2 if self.guided else 1)

    @property
    def guided(self) -> bool:
        return self.conditioned and self.guidance != 1

    def predict(self, x: Tensor, t: float | Tensor, labels: Tensor | None) -> Tensor:
        """The prediction at time t for every x, guided when the settings say so (one batched call)."""
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).expand(x.shape[0])
        if not self.guided or labels is None:
            return self.net(x, t, labels)
        assert self.net.condition is not None  # self.guided says so
        both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, self.net.condition.dropped(labels)]))
        cond, uncond = both.chunk(2)
        return uncond + self.guidance * (cond - uncond)

    # ----------------------------------------------------------------------------- protocols

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Noise [N, C*H*W] -> images [N, C, H, W] in [-1, 1] with the current sampling settings."""
        labels = self.condition(z.shape[0], labels, None)
        x = self.integrate(z.reshape(-1, *self.image_shape), labels)
        return x.clamp(-1, 1)

    @torch.no_grad()
    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images -> (the noise that decodes to them with the current step count, a point's log-variance)."""
        labels = self.condition(x.shape[0], labels, None)
        with self.sampling(guidance=1.0 if self.conditioned else None):
            z = self.invert(x, labels).flatten(1)
        return z, torch.full_like(z, POINT_LOGVAR)

    @torch.no_grad()
    def trajectory(self, z: Tensor, labels: Tensor | None = None, states: int = SNAPSHOTS) -> list[Tensor]:
        """``states`` images along the path from the noise z to its sample, for the denoising strip:
        the running x_t, the noise first and the sample last (a deterministic sampler's path)."""
        labels = self.condition(z.shape[0], labels, None)
        seen: list[Tensor] = []
        self.integrate(z.reshape(-1, *self.image_shape), labels, seen.append)
        keep = torch.linspace(0, len(seen) - 1, min(states, len(seen))).round().long().tolist()
        return [seen[i].clamp(-1, 1) for i in keep]

    # ----------------------------------------------------------------------------- the path

    def noised(self, x0: Tensor, noise: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Training pairs: (x_t, the net's target) for data x0, noise and times t [N]."""
        raise NotImplementedError

    def draw_times(self, n: int, device: torch.device) -> Tensor:
        """Training times [n] in [0, 1], from the global RNG (which the loop seeds and checkpoints)."""
        raise NotImplementedError

    def integrate(self, x: Tensor, labels: Tensor | None, see: Callable[[Tensor], None] | None = None) -> Tensor:
        """Noise -> data with the current settings; ``see`` is shown every x_t on the way."""
        raise NotImplementedError

    def invert(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """Data -> the noise that the deterministic sampler maps back to it (approximately)."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- DDPM


def alphas_bar(schedule: str, timesteps: int) -> Tensor:
    """abar_t for t = 1..T as float64 [T]: ``linear`` betas from 1e-4 to 0.02 scaled to T steps
    (Ho et al.'s at T = 1000), or the ``cosine`` schedule of Nichol & Dhariwal (betas clipped at 0.999)."""
    if schedule == "linear":
        scale = 1000 / timesteps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
        return torch.cumprod(1 - betas, 0)
    s = 0.008
    f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)


def trailing_steps(timesteps: int, steps: int) -> list[int]:
    """``steps`` step indices in 0..T-1, the last T-1, evenly spaced ("trailing", Lin et al. 2024), highest first."""
    if steps > timesteps:
        raise ConfigError(f"a DDPM of {timesteps} steps samples with at most {timesteps}; got steps={steps}")
    return [round((k + 1) * timesteps / steps) - 1 for k in reversed(range(steps))]


class DDPM(Diffusion):
    """Noise prediction over T discrete steps; step i (0-based) is at time t = (i + 1) / T."""

    samplers = ("ddim", "ancestral")
    abar: Tensor  # [T], abar of step index i

    def __init__(
        self, net: UNet, image_shape, schedule: str, timesteps: int, steps: int, sampler: str, guidance: float
    ):
        self.timesteps = timesteps
        super().__init__(net, image_shape, steps, sampler, guidance)
        self.register_buffer("abar", alphas_bar(schedule, timesteps).float(), persistent=False)

    def set_sampling(self, steps: int | None = None, sampler: str | None = None, guidance: float | None = None) -> None:
        if steps is not None:
            trailing_steps(self.timesteps, steps)  # checks the count
        super().set_sampling(steps, sampler, guidance)

    def draw_times(self, n: int, device: torch.device) -> Tensor:
        return (torch.randint(self.timesteps, (n,), device=device) + 1) / self.timesteps

    def _abar(self, t: Tensor) -> Tensor:
        index = (t * self.timesteps).round().long().clamp(1, self.timesteps) - 1
        return self.abar[index].view(-1, 1, 1, 1)

    def noised(self, x0: Tensor, noise: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        a = self._abar(t)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise, noise

    def integrate(self, x, labels, see=None):
        indices = trailing_steps(self.timesteps, self.steps)
        generators = latent_generators(x) if self.sampler == "ancestral" else []
        for k, i in enumerate(indices):
            if see:
                see(x)
            a_t = self.abar[i]
            a_prev = self.abar[indices[k + 1]] if k + 1 < len(indices) else torch.ones((), device=x.device)
            eps = self.predict(x, (i + 1) / self.timesteps, labels)
            x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)  # DDPM's clip_denoised
            if self.sampler == "ddim":
                eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # the noise the clipped x0 implies
                x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
                continue
            beta = 1 - a_t / a_prev  # of the respaced chain
            mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a_t)
            if k + 1 < len(indices):
                variance = beta * (1 - a_prev) / (1 - a_t)  # the posterior's, beta~ (Ho et al.'s "fixedsmall")
                noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in generators]).to(x)
                mean = mean + variance.sqrt() * noise
            x = mean
        if see:
            see(x)
        return x

    def invert(self, x, labels):
        indices = trailing_steps(self.timesteps, self.steps)[::-1]  # lowest first
        a_prev = torch.ones((), device=x.device)
        for i in indices:
            a_t = self.abar[i]
            eps = self.predict(x, (i + 1) / self.timesteps, labels)  # at the next level: DDIM inversion's approximation
            x0 = (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
            x = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
            a_prev = a_t
        return x


def latent_generators(z: Tensor) -> list[torch.Generator]:
    """One CPU generator per latent of ``z`` [N, ...], seeded by the CRC-32 of its float32 bytes."""
    rows = z.detach().float().cpu().flatten(1).numpy()
    return [torch.Generator().manual_seed(zlib.crc32(row.tobytes())) for row in rows]


# ----------------------------------------------------------------------------- flow matching


class FlowMatching(Diffusion):
    """Velocity prediction on the straight path x_t = (1 - t) x_0 + t eps (rectified flow)."""

    samplers = ("euler", "heun")

    def __init__(self, net: UNet, image_shape, time_sampling: str, steps: int, sampler: str, guidance: float):
        self.time_sampling = time_sampling
        super().__init__(net, image_shape, steps, sampler, guidance)

    def draw_times(self, n: int, device: torch.device) -> Tensor:
        if self.time_sampling == "logit_normal":  # Esser et al. 2024: more weight on the middle of the path
            return torch.randn(n, device=device).sigmoid()
        return torch.rand(n, device=device)

    def noised(self, x0: Tensor, noise: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        t = t.view(-1, 1, 1, 1)
        return (1 - t) * x0 + t * noise, noise - x0

    def _ode(self, x: Tensor, grid: Tensor, labels: Tensor | None, see=None) -> Tensor:
        for t, t_next in itertools.pairwise(grid):
            if see:
                see(x)
            h = t_next - t
            v = self.predict(x, t, labels)
            if self.sampler == "euler":
                x = x + h * v
            else:
                x_next = x + h * v
                x = x + h / 2 * (v + self.predict(x_next, t_next, labels))
        if see:
            see(x)
        return x

    def integrate(self, x, labels, see=None):
        return self._ode(x, torch.linspace(1, 0, self.steps + 1), labels, see)

    def invert(self, x, labels):
        return self._ode(x, torch.linspace(0, 1, self.steps + 1), labels)


# ----------------------------------------------------------------------------- text conditioning


class TextConditioned:
    """Makes a :class:`Diffusion` whose net reads captions (``UNet(vocabulary_size=...)``) a
    ``TextConditional`` model: ``decode(z, tokens)`` with word indices [N, L], random captions when
    none are given, the empty caption as the unconditional model that guidance mixes in."""

    condition_key: ClassVar[str] = "caption"  # the batch field the diffusion objective conditions on
    net: UNet

    def __init__(self, *args, max_words: int, pretrained_text: str, **kwargs) -> None:
        """``max_words``: the caption length; ``pretrained_text``: a text_embedding run whose text encoder
        is loaded, frozen, when a run starts (empty: the encoder learns with the U-Net)."""
        self.max_words, self.pretrained_text = max_words, pretrained_text
        super().__init__(*args, **kwargs)
        if pretrained_text:
            self.text_condition().text.requires_grad_(False)  # no optimiser moves it; the loop toggles trainable ones

    def text_condition(self) -> TextCondition:
        condition = self.net.condition
        assert isinstance(condition, TextCondition), "a text model's net reads captions"
        return condition

    def embed_text(self, tokens: Tensor) -> Tensor:
        """The sentence embeddings [N, text_dim] that the U-Net reads, through a linear map, beside the time's."""
        return self.text_condition().text(tokens)

    def tokens(self, texts: list[str]) -> Tensor:
        """Texts in genlab's sprite-caption vocabulary -> word indices [N, L] on the model's device."""
        return tokenize(texts, self.max_words).to(self.net.stem.weight.device)

    def condition(self, n: int, labels: Tensor | None, generator: torch.Generator | None) -> Tensor:
        if labels is None:
            return self.tokens(random_captions(n, generator))
        labels = torch.as_tensor(labels)
        if labels.dtype != torch.int64 or tuple(labels.shape) != (n, self.max_words):
            raise ConfigError(
                f"a text-conditional model takes captions as word indices [{n}, {self.max_words}] "
                f"(model.tokens(texts) makes them); got {labels.dtype} {tuple(labels.shape)}"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(VOCABULARY)):
            raise ConfigError(f"word indices must be in 0..{len(VOCABULARY) - 1}")
        return labels.to(self.net.stem.weight.device)

    def init_from_data(self, data: TensorDataset) -> None:
        """Before a new run trains (not on resume or load, which read the run's own weights)."""
        if self.pretrained_text:
            text = self.text_condition().text
            text.load_state_dict(pretrained_text_encoder(self.pretrained_text, VOCABULARY, text.gru.hidden_size))


class TextDDPM(TextConditioned, DDPM):
    """A DDPM conditioned on captions."""


class TextFlowMatching(TextConditioned, FlowMatching):
    """A flow-matching model conditioned on captions."""


# ----------------------------------------------------------------------------- configs and registration

TEXT_EXAMPLE_SPEC: Spec = {"image": Image(3, 32, 32), "caption": Tokens(VOCABULARY, MAX_WORDS)}


@dataclass
class DiffusionConfig(ModelConfig):
    """The U-Net and the sampling defaults (``genlab sample --steps/--sampler/--guidance`` change them)."""

    family: ClassVar[str] = "diffusion"
    channels: int = 32  # the first level's width
    channel_mult: tuple[int, ...] = (1, 2, 2)  # widths per level; each level after the first halves the side
    blocks_per_level: int = 2
    attention_resolutions: tuple[int, ...] = (7, 8)  # sides with self-attention after each block
    dropout: float = 0.1
    conditional: bool = False  # on the data's class labels, with a "no class" row for guidance
    text: bool = False  # on the data's captions (data name captioned), the empty caption for guidance
    text_dim: int = 64  # the caption encoder's width (word embeddings and GRU)
    # A text_embedding run whose text encoder a text model reads, frozen (as text_gan's model.text_encoder);
    # empty: the encoder is learned with the U-Net. Read when a run starts only: the export holds the weights.
    text_encoder: str = ""
    coordinates: bool = False  # x and y as two more input channels (CoordConv): lets a condition say where
    # A text model also reads its caption word by word: cross-attention to the words' states after each
    # self-attention (LDM, Imagen), beside the pooled embedding added to the time's
    cross_attention: bool = False
    steps: int = 32  # sampling steps
    guidance: float = 1.0  # classifier-free guidance scale; 1 is the plain conditional model
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"channels": 8, "channel_mult": (1, 2), "blocks_per_level": 1, "steps": 3},
        {
            "channels": 8,
            "channel_mult": (1, 2),
            "blocks_per_level": 1,
            "steps": 2,
            "conditional": True,
            "guidance": 2.0,
        },
        {
            "channels": 8,
            "channel_mult": (1, 2),
            "blocks_per_level": 1,
            "steps": 2,
            "text": True,
            "text_dim": 8,
            "coordinates": True,
            "cross_attention": True,
            "attention_resolutions": (16,),
        },
    )
    example_spec: ClassVar[Callable[[DiffusionConfig], Spec | None]] = staticmethod(
        lambda cfg: TEXT_EXAMPLE_SPEC if cfg.text else None
    )

    def __post_init__(self) -> None:
        if self.conditional and self.text:
            raise ConfigError("model.conditional and model.text are exclusive: condition on classes or on captions")
        if self.guidance != 1 and not (self.conditional or self.text):
            raise ConfigError(
                "model.guidance needs model.conditional=true or model.text=true "
                "(guidance mixes conditional and unconditional predictions)"
            )
        if self.text_encoder and not self.text:
            raise ConfigError("model.text_encoder is the caption encoder of a text model: set model.text=true")
        if self.cross_attention and not self.text:
            raise ConfigError("model.cross_attention reads a caption's words: set model.text=true")

    def net(self, spec: Spec, model: str) -> tuple[tuple[int, int, int], Callable[[], UNet]]:
        shape = image_field(spec, model).shape
        if shape[-1] != shape[-2]:
            raise ConfigError(f"{model} needs square images; the data's are {shape[-2]}x{shape[-1]}")
        if shape[-1] >> (len(self.channel_mult) - 1) < 2:
            raise ConfigError(
                f"model.channel_mult has {len(self.channel_mult)} levels, too many for {shape[-1]}-pixel images "
                "(each halves the side); drop one"
            )
        k = num_classes_for(spec, model, self.conditional)
        words = 0
        if self.text:
            caption = spec.get("caption")
            if not isinstance(caption, Tokens) or caption.vocabulary != VOCABULARY:
                raise ConfigError(
                    "model.text=true needs genlab's sprite captions: use data name captioned, or set it to false"
                )
            words = len(caption.vocabulary)
        return shape, lambda: UNet(
            shape,
            self.channels,
            self.channel_mult,
            self.blocks_per_level,
            self.attention_resolutions,
            k,
            self.dropout,
            words,
            self.text_dim,
            self.coordinates,
            self.cross_attention,
        )

    def text_settings(self, spec: Spec) -> dict:
        """What a text model's class takes beside the net: the caption length and the pre-trained encoder."""
        caption = spec["caption"]
        assert isinstance(caption, Tokens)  # checked by :meth:`net`
        return {"max_words": caption.length, "pretrained_text": self.text_encoder}


UNET_BOUNDS: dict[str, Range] = {
    "channels": at_least(8),
    "channel_mult": at_least(1),
    "blocks_per_level": at_least(1),
    "attention_resolutions": at_least(1),
    "dropout": FRACTION,
    "steps": at_least(1),
    "guidance": at_least(0),
    "text_dim": at_least(1),
}


@dataclass
class DDPMConfig(DiffusionConfig):
    name: str = "ddpm"
    schedule: Literal["linear", "cosine"] = "linear"
    timesteps: int = 1000
    sampler: Literal["ddim", "ancestral"] = "ddim"
    bounds: ClassVar[dict[str, Range]] = {**UNET_BOUNDS, "timesteps": at_least(2)}

    def __post_init__(self) -> None:
        DiffusionConfig.__post_init__(self)
        if self.steps > self.timesteps:
            raise ConfigError(f"model.steps={self.steps} is more than model.timesteps={self.timesteps}")


@dataclass
class FlowMatchingConfig(DiffusionConfig):
    name: str = "flow_matching"
    sampler: Literal["euler", "heun"] = "euler"
    time_sampling: Literal["uniform", "logit_normal"] = "uniform"  # training times t
    bounds: ClassVar[dict[str, Range]] = UNET_BOUNDS


@register_model("ddpm", DDPMConfig)
def build_ddpm(cfg: DDPMConfig, spec: Spec) -> dict:
    shape, net = cfg.net(spec, "ddpm")
    kind, text = (TextDDPM, cfg.text_settings(spec)) if cfg.text else (DDPM, {})
    return {
        "model": lambda: kind(net(), shape, cfg.schedule, cfg.timesteps, cfg.steps, cfg.sampler, cfg.guidance, **text)
    }


@register_model("flow_matching", FlowMatchingConfig)
def build_flow_matching(cfg: FlowMatchingConfig, spec: Spec) -> dict:
    shape, net = cfg.net(spec, "flow_matching")
    kind, text = (TextFlowMatching, cfg.text_settings(spec)) if cfg.text else (FlowMatching, {})
    return {"model": lambda: kind(net(), shape, cfg.time_sampling, cfg.steps, cfg.sampler, cfg.guidance, **text)}
