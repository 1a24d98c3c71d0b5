"""Glow: an exact bijection whose log-determinant is the Jacobian's, a dequantised likelihood that is a
density, and the protocols (inverse as decode, forward as encode) through the registry's contract."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.errors import ConfigError
from genlab.models.glow import Glow, squeeze, unsqueeze


def trained_looking(shape=(1, 4, 4), levels=2, steps=2, hidden=8) -> Glow:
    """A Glow whose couplings and actnorms are away from their identity start."""
    torch.manual_seed(0)
    model = Glow(shape, levels, steps, hidden)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.double().eval()


def test_squeeze_is_a_permutation_and_unsqueeze_its_inverse():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).reshape(2, 3, 4, 6)
    y = squeeze(x)
    assert y.shape == (2, 12, 2, 3) and torch.equal(unsqueeze(y), x)
    assert torch.equal(y[0, :4, 0, 0], x[0, 0, :2, :2].flatten())  # one 2x2 block of channel 0


def test_the_flow_inverts_exactly_and_its_log_determinant_is_the_jacobians():
    model = trained_looking()
    y = torch.rand(1, 1, 4, 4, dtype=torch.float64) - 0.5
    z, logdet = model.flow(y)
    torch.testing.assert_close(model.inverse(z), y, rtol=1e-9, atol=1e-9)
    jacobian = torch.autograd.functional.jacobian(lambda v: model.flow(v.reshape(1, 1, 4, 4))[0][0], y.flatten())
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jacobian)[1].item(), rel=1e-6)


def test_the_dequantised_density_integrates_to_one_over_a_box():
    """On 2x2 images (one level), a Monte Carlo estimate over a cube that holds nearly all of the mass:
    its volume times the mean of p(y) over it is 1."""
    model = trained_looking(shape=(1, 2, 2), levels=1, steps=2, hidden=4)
    generator = torch.Generator().manual_seed(0)
    side = 12.0
    y = (torch.rand(400_000, 1, 2, 2, generator=generator, dtype=torch.float64) - 0.5) * side
    with torch.no_grad():
        z, logdet = model.flow(y)
        log_p = -0.5 * (z**2 + math.log(2 * math.pi)).sum(dim=1) + logdet
    assert (log_p.exp().mean() * side**4).item() == pytest.approx(1.0, abs=0.05)


def test_decode_inverts_encode_on_8_bit_images_and_log_prob_is_fixed_per_image():
    model = trained_looking(shape=(1, 4, 4)).float()
    x = torch.randint(0, 256, (3, 1, 4, 4)).float() / 127.5 - 1
    z, logvar = model.encode(x)
    assert torch.equal(model.decode(z), x) and bool((logvar == -30).all())
    assert torch.equal(model.log_prob(x), model.log_prob(x)) and torch.equal(model.log_prob(x[1:2]), model.log_prob(x)[1:2])
    with pytest.raises(ConfigError, match="divisible by 8"):
        Glow((1, 12, 12), levels=3, steps=1, hidden=4)
