"""Social GAN (Gupta et al., CVPR 2018): trajectory prediction with a generator that draws one of many
possible futures of a scene, and a discriminator that tells real paths from generated ones.

- Generator: an LSTM encoder reads each person's observed displacements (each embedded by a linear
  layer); a pooling module gives each person a summary of the others (their positions relative to
  theirs at the last observed step, embedded, with the others' encoder states, through an MLP, then a
  max over the others: the paper's pooling module, applied once as in its default); an MLP maps
  the person's state and the pooled one, concatenated with noise z (``noise_dim``, per person), to the
  decoder's initial state; an LSTM decoder then emits one displacement per predicted step.
  ``noise_dim: 0`` with no adversarial loss is the paper's plain "LSTM" baseline.
- Discriminator: an LSTM encoder over a whole path's displacements (observed and predicted), then an
  MLP to one score per person (the paper's "local" D).

Everything is translation invariant: displacements in, displacements out, positions only relative to
each other. Paths are [N, agents, steps, 2] in metres; displacements are divided by ``scale`` (about
one step's length) before the networks see them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from genlab.config import POSITIVE, ModelConfig, Range, at_least
from genlab.data.base import Spec, Trajectories, trajectory_field
from genlab.errors import ConfigError
from genlab.registry import register_model


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLUs between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def displacements(paths: Tensor) -> Tensor:
    """[..., T, 2] -> [..., T - 1, 2]: the step from each position to the next."""
    return paths[..., 1:, :] - paths[..., :-1, :]


class PathEncoder(nn.Module):
    """Displacements [B, T, 2] -> the LSTM's final hidden state [B, hidden]."""

    def __init__(self, embed: int, hidden: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.embed = nn.Linear(2, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)

    def forward(self, steps: Tensor) -> Tensor:
        _, (h, _) = self.lstm(self.embed(steps / self.scale))
        return h[-1]


class Pooling(nn.Module):
    """The paper's pooling module: for each person, max over the others of an MLP of (their relative
    position embedded, their encoder state). Positions [N, A, 2], states [N, A, H] -> [N, A, pool]."""

    def __init__(self, embed: int, hidden: int, pool: int, scale: float) -> None:
        super().__init__()
        self.scale, self.pool = scale, pool
        self.embed = nn.Linear(2, embed)
        self.mlp = mlp([embed + hidden, 2 * pool, pool])

    def forward(self, positions: Tensor, states: Tensor) -> Tensor:
        n, a, _ = positions.shape
        if a == 1:
            return states.new_zeros(n, 1, self.pool)
        relative = positions[:, None, :, :] - positions[:, :, None, :]  # [N, i, j, 2]: j as person i sees them
        others = states[:, None, :, :].expand(n, a, a, states.shape[-1])
        features = self.mlp(torch.cat([self.embed(relative / (self.scale * 4)), others], dim=-1))  # [N, i, j, pool]
        self_mask = torch.eye(a, dtype=torch.bool, device=positions.device)[None, :, :, None]
        return features.masked_fill(self_mask, float("-inf")).amax(dim=2)


class TrajectoryGenerator(nn.Module):
    """Observed paths [N, A, observed, 2] (and noise [N, A, noise_dim]) -> predicted paths [N, A, predicted, 2]."""

    def __init__(
        self,
        observed: int,
        predicted: int,
        embed: int,
        hidden: int,
        pool: int,
        noise_dim: int,
        scale: float,
        social: bool,
    ) -> None:
        super().__init__()
        self.observed_steps, self.predicted_steps, self.noise_dim, self.scale = observed, predicted, noise_dim, scale
        self.encoder = PathEncoder(embed, hidden, scale)
        self.pooling = Pooling(embed, hidden, pool, scale) if social else None
        self.context = mlp([hidden + (pool if social else 0), 2 * hidden, hidden - noise_dim])
        self.step_embed = nn.Linear(2, embed)
        self.decoder = nn.LSTMCell(embed, hidden)
        self.out = nn.Linear(hidden, 2)

    def noise(self, n: int, agents: int, generator: torch.Generator | None = None) -> Tensor:
        """z [n, agents, noise_dim] ~ N(0, I): on the CPU from ``generator`` and moved, or the device's RNG."""
        device = self.out.weight.device
        if generator is not None:
            return torch.randn(n, agents, self.noise_dim, generator=generator).to(device)
        return torch.randn(n, agents, self.noise_dim, device=device)

    def forward(self, observed: Tensor, z: Tensor | None = None) -> Tensor:
        n, a = observed.shape[:2]
        steps = displacements(observed)  # [N, A, observed - 1, 2]
        state = self.encoder(steps.reshape(n * a, *steps.shape[2:])).view(n, a, -1)
        if self.pooling is not None:
            state = torch.cat([state, self.pooling(observed[:, :, -1], state)], dim=-1)
        h = self.context(state)
        if self.noise_dim:
            h = torch.cat([h, self.noise(n, a) if z is None else z.to(h)], dim=-1)
        h = h.reshape(n * a, -1)
        c = torch.zeros_like(h)
        step = steps[:, :, -1].reshape(n * a, 2)
        position = observed[:, :, -1].reshape(n * a, 2)
        future = []
        for _ in range(self.predicted_steps):
            h, c = self.decoder(self.step_embed(step / self.scale), (h, c))
            step = self.out(h) * self.scale
            position = position + step
            future.append(position)
        return torch.stack(future, dim=1).view(n, a, self.predicted_steps, 2)

    @torch.no_grad()
    def predict(self, observed: Tensor, samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``samples`` futures of each scene: [samples, N, A, predicted, 2] (identical when ``noise_dim`` is 0)."""
        n, a = observed.shape[:2]
        return torch.stack([self(observed, self.noise(n, a, generator)) for _ in range(samples)])


class TrajectoryDiscriminator(nn.Module):
    """Whole paths [N, A, steps, 2] -> a realness score per person [N, A] (logits)."""

    def __init__(self, embed: int, hidden: int, scale: float) -> None:
        super().__init__()
        self.encoder = PathEncoder(embed, hidden, scale)
        self.score = mlp([hidden, hidden, 1])

    def forward(self, paths: Tensor) -> Tensor:
        n, a = paths.shape[:2]
        steps = displacements(paths)
        return self.score(self.encoder(steps.reshape(n * a, *steps.shape[2:]))).view(n, a)


EXAMPLE_SPEC: Spec = {"paths": Trajectories(agents=3, steps=6, observed=3)}


@dataclass
class SocialGANConfig(ModelConfig):
    name: str = "social_gan"
    family: ClassVar[str] = "trajectory"
    embed: int = 16  # of each displacement and relative position (the paper: 64)
    hidden: int = 32  # of the LSTMs (the paper: 32 for G's encoder, 64 for D's)
    pool: int = 32  # the pooled summary's size (the paper: 8 after its bottleneck of 1024)
    noise_dim: int = 8  # per person (the paper: 8); 0 with objective.adversarial_weight 0 is the plain LSTM
    social: bool = True  # the pooling module; false predicts each person alone
    d_hidden: int = 48
    scale: float = 0.5  # metres: displacements are divided by it (about one 0.4-s step of walking)
    bounds: ClassVar[dict[str, Range]] = {
        "embed": at_least(1),
        "hidden": at_least(2),
        "pool": at_least(1),
        "noise_dim": Range(0),
        "d_hidden": at_least(1),
        "scale": POSITIVE,
    }
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"embed": 4, "hidden": 8, "pool": 4, "noise_dim": 2, "d_hidden": 8},
        {"embed": 4, "hidden": 8, "pool": 4, "noise_dim": 0, "social": False, "d_hidden": 8},
    )
    example_spec: ClassVar[Spec] = EXAMPLE_SPEC

    def __post_init__(self) -> None:
        if self.noise_dim >= self.hidden:
            raise ConfigError(
                f"model.noise_dim ({self.noise_dim}) must be below model.hidden ({self.hidden}): the noise fills "
                "part of the decoder's initial state"
            )


@register_model("social_gan", SocialGANConfig)
def build_social_gan(cfg: SocialGANConfig, spec: Spec) -> dict:
    _, field = trajectory_field(spec, "social_gan")
    return {
        "G": lambda: TrajectoryGenerator(
            field.observed, field.predicted, cfg.embed, cfg.hidden, cfg.pool, cfg.noise_dim, cfg.scale, cfg.social
        ),
        "D": lambda: TrajectoryDiscriminator(cfg.embed, cfg.d_hidden, cfg.scale),
    }
