"""Class-conditional models: conditional batch norm, the projection discriminator, self-attention,
BigGAN's hierarchical latent, the cGAN and sngan_projection training steps, and labelled sampling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.config import TrainConfig
from genlab.data.base import Classes, Image, Spec, TensorDataset
from genlab.errors import ConfigError
from genlab.models import build_modules
from genlab.models.conditional import ConditionalBatchNorm2d, SNGANProjectionConfig
from genlab.models.gan_mlp import GANMLPConfig
from genlab.models.layers import SelfAttention
from genlab.training.objectives.gan import GANObjectiveConfig, build_gan_step

SPEC: Spec = {"image": Image(1, 28, 28), "label": Classes(tuple("0123456789"))}


def tiny_projection(**overrides) -> dict[str, nn.Module]:
    sizes = {"g_channels": 16, "d_channels": 16, "latent_dim": 24, "embedding_dim": 8}
    cfg = SNGANProjectionConfig(**(sizes | overrides))
    torch.manual_seed(0)
    return build_modules(cfg, SPEC)


def tiny_cgan() -> dict[str, nn.Module]:
    cfg = GANMLPConfig(conditional=True, latent_dim=8, g_hidden=32, g_label_hidden=16, d_units=16, d_label_units=8)
    torch.manual_seed(0)
    return build_modules(cfg, SPEC)


def randomise_conditional_norms(G: nn.Module) -> None:
    """CBN maps start at zero (every class alike); give them values as training would."""
    for m in G.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            nn.init.normal_(m.gain.weight, 0.0, 0.5)
            nn.init.normal_(m.bias.weight, 0.0, 0.5)


def test_conditional_batch_norm_starts_as_batch_norm_and_depends_on_the_label():
    cbn = ConditionalBatchNorm2d(4, num_classes=3)
    x = torch.randn(6, 4, 5, 5)
    same = torch.zeros(6, dtype=torch.int64)
    # two computations (batch norm without affine, then * 1 + 0, vs nn.BatchNorm2d's affine kernel): outputs near 0
    # come from cancelling O(1) terms, so allow their float32 rounding (1e-5 ~ 80 ulps at 1), not the default 1e-8
    assert torch.allclose(cbn(x, same), nn.BatchNorm2d(4)(x), atol=1e-5)  # gain 1, bias 0 at init
    randomise_conditional_norms(nn.Sequential(cbn))
    assert not torch.allclose(cbn(x, same), cbn(x, same + 1))


def test_generator_output_depends_on_the_label_at_the_same_z():
    G = tiny_projection()["G"]
    randomise_conditional_norms(G)
    G.eval()  # batch statistics would mix the examples
    z = G.latents(1).repeat(2, 1)
    out = G(z, torch.tensor([3, 7]))
    assert not torch.allclose(out[0], out[1])


def test_projection_term_changes_the_logit_by_embedding_difference_dot_features():
    D = tiny_projection()["D"].eval()  # eval: no power iteration, so weights stay put between calls
    x = torch.randn(1, 1, 28, 28)
    a, b = D(x, torch.tensor([2])), D(x, torch.tensor([5]))
    h = D.blocks(x).relu().sum(dim=(2, 3))
    expected = ((D.embed.weight[2] - D.embed.weight[5]) * h).sum()
    assert not torch.allclose(a, b)
    assert torch.allclose(a - b, expected, atol=1e-4)
    assert tiny_projection(conditional=False)["D"].embed is None


@pytest.mark.parametrize("sn", [False, True])
def test_self_attention_is_the_identity_at_gamma_zero_and_trains_gamma(sn):
    attention = SelfAttention(16, sn=sn)
    x = torch.randn(2, 16, 7, 7)
    y = attention(x)
    assert torch.equal(y, x)
    y.square().sum().backward()
    assert attention.gamma.grad is not None and attention.gamma.grad.abs() > 0


def test_attention_sits_at_the_configured_side_and_other_sides_are_refused():
    G, D = tiny_projection(attention_resolution=14).values()
    assert isinstance(G.attention, SelfAttention) and G.attention_stage == 1  # after the 7 -> 14 block
    assert sum(isinstance(m, SelfAttention) for m in D.blocks) == 1
    with pytest.raises(ConfigError, match="attention_resolution=28"):
        tiny_projection(attention_resolution=28)


def test_hierarchical_latent_feeds_one_chunk_of_z_to_the_stem_and_each_block():
    G = tiny_projection(shared_embedding=True, hierarchical_latent=True)["G"]
    chunk = 24 // 3  # stem + two blocks at 28 px
    assert G.stem.in_features == chunk
    norms = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert norms and all(m.gain.in_features == chunk + 8 for m in norms)  # [chunk, shared embedding]
    randomise_conditional_norms(G)
    G.eval()
    z, labels = G.latents(1), torch.tensor([4])
    base = G(z, labels)
    for k in range(3):  # changing any one chunk changes the image
        moved = z.clone()
        moved[:, k * chunk:(k + 1) * chunk] += 1.0
        assert not torch.allclose(G(moved, labels), base), f"chunk {k}"
    with pytest.raises(ConfigError, match="multiple of 3"):
        tiny_projection(shared_embedding=True, hierarchical_latent=True, latent_dim=25)
    with pytest.raises(ConfigError, match="shared_embedding"):
        SNGANProjectionConfig(hierarchical_latent=True)


def test_cgan_networks_read_the_label():
    G, D = tiny_cgan().values()
    G.eval(), D.eval()
    z = G.latents(1).repeat(2, 1)
    labels = torch.tensor([0, 9])
    images = G(z, labels)
    assert not torch.allclose(images[0], images[1])
    x = images[:1].repeat(2, 1, 1, 1)
    logits = D(x, labels)
    assert logits.shape == (2,) and not torch.allclose(logits[0], logits[1])


def test_conditional_models_need_labelled_data():
    unlabelled: Spec = {"image": Image(1, 28, 28)}
    for cfg in (GANMLPConfig(conditional=True), SNGANProjectionConfig()):
        with pytest.raises(ConfigError, match="conditional=true needs class labels"):
            build_modules(cfg, unlabelled)
    unconditional = SNGANProjectionConfig(conditional=False, g_channels=8, d_channels=8)
    assert build_modules(unconditional, unlabelled)["G"].num_classes == 0


def labelled_data(n: int = 16) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=generator, dtype=torch.uint8)
    return TensorDataset("example", SPEC, {"image": images, "label": torch.arange(n) % 10})


@pytest.mark.parametrize("make, loss", [(tiny_projection, "hinge"), (tiny_cgan, "nonsaturating")])
def test_gan_steps_on_a_conditional_model_update_both_nets(make, loss):
    modules = make()
    step = build_gan_step(GANObjectiveConfig(loss=loss), modules, SPEC, TrainConfig(batch_size=8))
    assert step.label_key == "label"
    before = {name: [p.detach().clone() for p in modules[name].parameters()] for name in ("G", "D")}
    data = labelled_data()
    for i in range(2):
        for phase in step.phases():
            optimizer = step.optimizers[phase.optimizer]
            optimizer.zero_grad(set_to_none=True)
            out = phase.loss(data.batch(slice(8 * i, 8 * (i + 1))))
            assert torch.isfinite(out.loss), phase.name
            out.loss.backward()
            optimizer.step()
            if phase.after_step is not None:
                phase.after_step()
    for name, old in before.items():
        assert any(not torch.equal(a, b) for a, b in zip(old, modules[name].parameters())), f"{name} did not change"
    grids = step.snapshots(data.batch(slice(0, 8)), seed=0)
    assert grids["classes"].images.shape[0] == 10 * 8  # a row per class


def test_sampling_with_labels_gives_those_classes_and_refuses_unknown_ones():
    G = tiny_projection()["G"].eval()
    labels = torch.tensor([0, 1, 9])
    images = G.sample(3, generator=torch.Generator().manual_seed(1), labels=labels, truncation=1.0)
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    same = G.decode(G.latents(3, torch.Generator().manual_seed(1), truncation=1.0), labels)
    assert torch.equal(images, same)
    with pytest.raises(ConfigError, match="0..9"):
        G.sample(1, labels=torch.tensor([10]))
    with pytest.raises(ConfigError, match="not class-conditional"):
        tiny_projection(conditional=False)["G"].sample(1, labels=torch.tensor([0]))
