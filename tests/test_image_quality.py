"""Image measures of genlab.metrics.image_quality on images whose values are known by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.metrics import image_quality as Q


def constant(value: int, channels: int = 3, size: int = 8, n: int = 2) -> torch.Tensor:
    return torch.full((n, channels, size, size), value, dtype=torch.uint8)


def checkerboard(size: int, block: int) -> torch.Tensor:
    """uint8 [1, 1, size, size]: 255 where (i // block + j // block) is odd, else 0."""
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((i // block + j // block) % 2) * 255).to(torch.uint8)[None, None]


def test_l1_error_in_unit_intensities():
    assert Q.l1_error(constant(0), constant(255)) == 1.0
    assert Q.l1_error(constant(0), constant(51)) == pytest.approx(0.2)
    assert Q.l1_error(constant(7), constant(7)) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        Q.l1_error(constant(0, channels=1), constant(0))


def test_a_constant_image_has_no_sharpness():
    assert Q.sharpness(constant(128)) == 0.0


def test_checkerboards_gradient_magnitude_by_hand():
    # One-pixel checks: every forward difference is +-1 in both directions, so |grad| = sqrt(2) everywhere.
    assert Q.sharpness(checkerboard(6, 1)) == pytest.approx(math.sqrt(2))
    # Two-pixel checks on 4x4: of the 3x3 pixels with both neighbours, (1, 1) steps in x and y (sqrt 2),
    # (0, 1), (2, 1), (1, 0), (1, 2) in one direction (1 each), the other four not at all.
    assert Q.sharpness(checkerboard(4, 2)) == pytest.approx((4 + math.sqrt(2)) / 9)
    magnitude = Q.gradient_magnitude(checkerboard(4, 2))[0, 0]
    assert magnitude[1, 1] == pytest.approx(math.sqrt(2)) and magnitude[0, 0] == 0 and magnitude[0, 1] == 1


def test_blurring_lowers_the_sharpness_ratio():
    sharp = checkerboard(16, 4).expand(1, 3, -1, -1).contiguous()
    blurred = F.avg_pool2d(sharp.float(), 3, stride=1, padding=1, count_include_pad=False).round().to(torch.uint8)
    assert Q.sharpness_ratio(sharp, sharp) == 1.0
    assert 0 < Q.sharpness_ratio(blurred, sharp) < 1
    with pytest.raises(ValueError, match="constant"):
        Q.sharpness_ratio(sharp, constant(3, size=16, n=1))


def test_grey_images_have_no_colourfulness():
    assert Q.colourfulness(constant(200)) == 0.0  # a constant grey image
    grey = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert Q.colourfulness(grey) == 0.0  # one channel
    assert Q.colourfulness(grey.expand(-1, 3, -1, -1)) == 0.0  # R = G = B, textured


def test_colourfulness_of_known_colours():
    red = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    red[:, 0] = 255
    # rg = 255, yb = 127.5 everywhere: no spread, only the mean term.
    assert Q.colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))
    half = red.clone()
    half[:, :, :, 2:] = torch.tensor([0, 255, 0], dtype=torch.uint8).view(1, 3, 1, 1)  # right half green
    # rg = +-255 (mean 0, sd 255), yb = 127.5 (mean 127.5, sd 0).
    assert Q.colourfulness(half) == pytest.approx(255 + 0.3 * 127.5)
    per_image = Q.colourfulness_per_image(torch.cat([red, half, constant(9, n=1, size=4)]))
    assert per_image.tolist() == pytest.approx([0.3 * math.hypot(255, 127.5), 293.25, 0.0])


def test_diversity_is_the_mean_pairwise_distance():
    same = constant(90).expand(3, -1, -1, -1, -1)  # K = 3 identical outputs of N = 2 inputs
    assert Q.diversity(same) == 0.0
    assert Q.diversity(torch.stack([constant(0), constant(255)])) == 1.0
    # Pairs (0, 0), (0, 255), (0, 255): distances 0, 1, 1.
    assert Q.diversity(torch.stack([constant(0), constant(0), constant(255)])) == pytest.approx(2 / 3)
    features = torch.tensor([[[0.0, 2.0]], [[1.0, 0.0]]])  # K = 2, N = 1, D = 2: |0-1| and |2-0|
    assert Q.pairwise_distance(features) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="K >= 2"):
        Q.pairwise_distance(features[:1])
