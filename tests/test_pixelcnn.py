"""PixelCNN: an exact, normalised, causal likelihood; sampling by the inverse CDF of each conditional;
binarised MNIST; the nll metric and `genlab sample` on a trained run."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from genlab.data import load_dataset
from genlab.data.standard import StandardConfig
from genlab.errors import ConfigError
from genlab.models.pixelcnn import PixelCNN, PixelCNNConfig


def tiny(shape=(1, 2, 2), levels=2, classes=0) -> PixelCNN:
    torch.manual_seed(0)
    model = PixelCNN(shape, levels, channels=8, layers=3, kernel=3, first_kernel=3, head_channels=8, num_classes=classes)
    for p in model.parameters():  # away from the zero-ish start, so the conditionals differ
        p.data.normal_(0, 0.5)
    return model.eval()


def all_images(shape, levels) -> torch.Tensor:
    """Every image of ``shape`` with ``levels`` values per sub-pixel, in [-1, 1]."""
    values = torch.tensor(list(itertools.product(range(levels), repeat=math.prod(shape))), dtype=torch.float32)
    return (values / (levels - 1) * 2 - 1).reshape(-1, *shape)


@pytest.mark.parametrize("shape, levels, classes", [((1, 2, 2), 2, 0), ((1, 2, 3), 3, 0), ((3, 1, 2), 2, 0),
                                                    ((1, 2, 2), 2, 3)])
def test_the_likelihood_sums_to_one_over_every_image(shape, levels, classes):
    """An exact, normalised p(x): the product of conditionals sums to 1 over all images (channel order too)."""
    model = tiny(shape, levels, classes)
    x = all_images(shape, levels)
    labels = torch.full((len(x),), 1) if classes else None
    with torch.no_grad():
        total = model.log_prob(x, labels).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_each_conditional_reads_only_the_sub_pixels_before_it():
    """The gradient of sub-pixel k's logits with respect to the input is zero at k and after it (raster
    order, then R, G, B): no blind spot is asked for, only no leak."""
    shape = (3, 5, 5)
    model = tiny(shape, levels=4)
    x = torch.rand(1, *shape, requires_grad=True)
    logits = model.logits(x * 2 - 1)  # [1, C, levels, H, W]
    order = [(i, j, c) for i in range(5) for j in range(5) for c in range(3)]
    for k, (i, j, c) in enumerate(order):
        (grad,) = torch.autograd.grad(logits[0, c, :, i, j].sum(), x, retain_graph=True)
        later = torch.zeros(shape, dtype=torch.bool)
        for i2, j2, c2 in order[k:]:
            later[c2, i2, j2] = True
        assert grad[0][later].abs().max() == 0, (i, j, c)
        if k > 0:  # and it does read what came before (the vertical and horizontal stacks leave no blind spot)
            assert grad[0][~later].abs().max() > 0, (i, j, c)


def test_the_sampling_window_holds_everything_a_pixel_reads():
    """Features computed on a pixel's window equal those computed on the whole image."""
    torch.manual_seed(0)
    model = PixelCNN((2, 12, 11), 4, channels=8, layers=3, kernel=3, first_kernel=5, head_channels=8, num_classes=0)
    with torch.no_grad():
        for p in model.parameters():  # weights of trained size, so that every pixel read moves the features
            p.normal_(0, 0.5)
    x = torch.rand(2, 2, 12, 11) * 2 - 1
    with torch.no_grad():
        whole = model.features(x, None)
        for i, j in [(0, 0), (5, 5), (11, 0), (11, 10), (7, 3)]:
            rows, columns = model.window(i, j, 11)
            assert rows.stop - rows.start < 12 or columns.stop - columns.start < 11 or i == 11
            part = model.features(x[:, :, rows, columns], None)[:, :, i - rows.start, j - columns.start]
            # two input sizes may take two conv algorithms: float32 rounding, ~1e-6; a window one pixel short: ~1e-1
            torch.testing.assert_close(part, whole[:, :, i, j], rtol=1e-4, atol=1e-5)


def test_sampling_takes_each_value_by_the_inverse_cdf_of_its_noise():
    """A 1-pixel model's sample is the value whose CDF interval holds Phi(z): the frequencies follow p."""
    model = tiny((1, 1, 1), levels=4)
    with torch.no_grad():
        p = model.log_prob(all_images((1, 1, 1), 4)).exp()
        z = model.latents(20_000, generator=torch.Generator().manual_seed(0))
        values = ((model.decode(z) + 1) / 2 * 3).round().long().flatten()
    assert torch.allclose(torch.bincount(values, minlength=4) / 20_000, p, atol=0.01)
    assert torch.equal(model.decode(z[:5]), model.decode(z[:5]))


def test_binarised_mnist_is_drawn_once_and_limit_keeps_the_same_pixels(mnist_root):
    full = load_dataset(StandardConfig(name="mnist", root=str(mnist_root), binarize=True, limit=200), "test")["image"]
    part = load_dataset(StandardConfig(name="mnist", root=str(mnist_root), binarize=True, limit=50), "test")["image"]
    grey = load_dataset(StandardConfig(name="mnist", root=str(mnist_root), limit=200), "test")["image"]
    assert set(full.unique().tolist()) == {0, 255} and torch.equal(full[:50], part)
    assert full.float().mean().item() == pytest.approx(grey.float().mean().item(), rel=0.05)  # white with probability value / 255
    assert torch.equal(full[grey == 0], grey[grey == 0]) and bool((full[grey == 255] == 255).all())


def test_config_refuses_an_even_kernel():
    with pytest.raises(ConfigError, match="odd"):
        PixelCNNConfig(kernel=4)


@pytest.mark.slow  # a training run of ~3 s
def test_a_trained_pixelcnn_samples_and_reports_its_exact_nll(tmp_path, mnist_root, capsys):
    import json

    import genlab
    from genlab.cli.main import main
    from genlab.config import config_from_dict

    run = genlab.train(config_from_dict({
        "name": "tiny-pixelcnn",
        "data": {"name": "mnist", "root": str(mnist_root), "limit": 1024, "binarize": True, "image_size": 12},
        "model": {"name": "pixelcnn", "levels": 2, "channels": 16, "layers": 3, "head_channels": 16},
        "objective": {"name": "likelihood", "lr": 3e-3},
        "train": {"kimg": 2, "batch_size": 64, "out_dir": str(tmp_path), "log_every_kimg": 0.5,
                  "snapshot_every_kimg": 2, "tensorboard": False, "progress_bar": False},
    }))
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["model/nll_nats"] < 0.8 * stats[0]["model/nll_nats"]
    assert stats[0]["model/bits_per_dim"] == pytest.approx(stats[0]["model/nll_nats"] / (144 * math.log(2)))
    assert main(["eval", str(run), "--n", "200"]) == 0  # a likelihood model's default metric: its exact nll
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 < record["nll_nats"] < 144 * math.log(2)  # better than a fair coin per pixel
    assert record["bits_per_dim"] == pytest.approx(record["nll_nats"] / (144 * math.log(2)))
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "-n", "4", "-o", str(out)]) == 0 and out.exists()
    capsys.readouterr()


def test_weights_saved_before_the_gated_stack_still_load():
    """Runs from before GatedStack named the stacks' parts at the top level (layers.*, features_out.*)."""
    model = tiny(classes=3)
    old_names = {k.replace("stack.layers.", "layers.").replace("stack.out.", "features_out.")
                  .replace("stack.class_emb.", "class_emb."): v for k, v in model.state_dict().items()}
    assert "layers.0.vertical.conv.weight" in old_names and "features_out.1.weight" in old_names
    fresh = PixelCNN((1, 2, 2), 2, channels=8, layers=3, kernel=3, first_kernel=3, head_channels=8, num_classes=3)
    fresh.load_state_dict(old_names, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
