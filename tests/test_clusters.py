"""GANs conditioned on k-means clusters of the images (data.clusters=K, model.clusters=true)."""

from __future__ import annotations

import pytest
import torch

from genlab.config import TrainConfig
from genlab.data import load_dataset
from genlab.data.base import Classes, Clusters, Image, Spec, TensorDataset
from genlab.data.clusters import nearest_centres
from genlab.data.pairs import PairsConfig
from genlab.data.standard import StandardConfig
from genlab.errors import ConfigError
from genlab.models import build_modules
from genlab.models.conditional import SNGANProjectionConfig
from genlab.models.protocols import is_conditional
from genlab.training.objectives.gan import GANObjectiveConfig, build_gan_step

SHARES = (0.5, 0.3, 0.2)
SPEC: Spec = {"image": Image(1, 28, 28), "label": Classes(tuple("0123456789")), "cluster": Clusters(SHARES)}


def tiny(**overrides):
    cfg = SNGANProjectionConfig(
        **({"conditional": False, "clusters": True, "g_channels": 8, "d_channels": 8, "latent_dim": 16} | overrides)
    )
    torch.manual_seed(0)
    return build_modules(cfg, SPEC)


def test_clusters_group_mnist_digits_far_better_than_chance(mnist_root):
    cfg = StandardConfig("mnist", str(mnist_root), download=False, limit=2000, clusters=10)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    clusters, digits = train["cluster"], train["label"]
    # purity: the share of images whose cluster's commonest digit is theirs (random clusters: about 0.12)
    purity = sum(torch.bincount(digits[clusters == c], minlength=10).max() for c in range(10)) / len(digits)
    assert purity > 0.45
    shares = torch.tensor(train.spec["cluster"].shares, dtype=torch.float64)
    assert torch.allclose(shares, torch.bincount(clusters, minlength=10).double() / len(clusters))
    assert test.spec == train.spec and test["cluster"].max() < 10  # the test split goes to the training centres


def test_nearest_centres_picks_the_closest_centre():
    centres = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    images = torch.tensor([[0, 0], [255, 200], [40, 90]], dtype=torch.uint8).reshape(3, 1, 1, 2)
    assert nearest_centres(images, centres).tolist() == [0, 1, 0]


def test_a_cluster_generator_is_an_unconditional_function_of_z_drawing_clusters_in_their_shares():
    G = tiny()["G"].eval()
    assert not is_conditional(G) and G.condition_key == "cluster"
    z = G.latents(20000, torch.Generator().manual_seed(0))
    drawn = torch.bincount(G.clusters_of(z), minlength=3).double() / len(z)
    assert torch.allclose(drawn, torch.tensor(SHARES, dtype=torch.float64), atol=0.015)
    few = z[:6]
    with torch.no_grad():
        assert torch.equal(G(few), G(few, G.clusters_of(few)))  # without clusters, z picks them
    images = G.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(images, G.sample(4, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ConfigError, match="not class-conditional"):
        G.sample(1, labels=torch.tensor([0]))


def test_gan_step_conditions_both_nets_on_the_batch_clusters():
    modules = tiny()
    step = build_gan_step(GANObjectiveConfig(loss="hinge"), modules, SPEC, TrainConfig(batch_size=8))
    assert step.label_key == "cluster"
    D = modules["D"]
    x = torch.randn(2, 1, 28, 28)
    torch.nn.init.normal_(D.embed.weight)
    assert not torch.allclose(D(x, torch.tensor([0, 0])), D(x, torch.tensor([1, 2])))
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 1, 28, 28), generator=generator, dtype=torch.uint8)
    fields = {"image": images, "label": torch.arange(8) % 10, "cluster": torch.arange(8) % 3}
    batch = TensorDataset("example", SPEC, fields).batch(slice(0, 8))
    for phase in step.phases():
        assert torch.isfinite(phase.loss(batch).loss), phase.name


def test_cluster_conditioning_needs_clustered_data_and_no_classes():
    with pytest.raises(ConfigError, match=r"set data\.clusters"):
        build_modules(SNGANProjectionConfig(conditional=False, clusters=True), {"image": Image(1, 28, 28)})
    with pytest.raises(ConfigError, match=r"model\.conditional=false"):
        SNGANProjectionConfig(conditional=True, clusters=True)


def test_clusters_inside_another_data_set_are_refused_by_their_key(mnist_root):
    base = StandardConfig("mnist", str(mnist_root), download=False, limit=64, clusters=3)
    with pytest.raises(ConfigError, match=r"data\.base\.clusters=3: clusters are added to the data set a model"):
        load_dataset(PairsConfig("pairs", base=base, kind="edges"))
