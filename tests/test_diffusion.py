"""Diffusion and flow matching (genlab.models.diffusion): the schedules, every sampler and both
inversions checked against the exact prediction for Gaussian data (where the ideal network is known in
closed form, so a sampler that is right must return the data's distribution), guidance, the step's
label dropout, and the CLI's sampling flags. The shared contract, export and resume tests reach both
models through the registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

import genlab
from genlab.cli.main import main
from genlab.config import config_from_dict
from genlab.data.base import Image
from genlab.data.captions import MAX_WORDS, VOCABULARY
from genlab.errors import ConfigError
from genlab.models import build_modules
from genlab.models.diffusion import DDPM, Diffusion, FlowMatching, TextFlowMatching, alphas_bar, trailing_steps
from genlab.models.protocols import TextConditional
from genlab.models.unet import ClassCondition, TextCondition
from genlab.training.objectives.diffusion import DiffusionObjectiveConfig, DiffusionStep

MEAN, SD = 0.1, 0.3  # every pixel of the data ~ N(MEAN, SD^2), independently: inside [-1, 1] but for 0.2%
SHAPE = (1, 4, 4)


class GaussianDDPMNet(nn.Module):
    """The exact E[eps | x_t] for data N(MEAN, SD^2): what a perfectly trained DDPM net predicts."""

    num_classes, condition = 0, None

    def __init__(self, abar: Tensor, timesteps: int) -> None:
        super().__init__()
        self.abar, self.timesteps = abar, timesteps
        self.dummy = nn.Parameter(torch.zeros(()))  # a device for the latents

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        a = self.abar[(t * self.timesteps).round().long() - 1].view(-1, 1, 1, 1).float()
        return (1 - a).sqrt() * (x - a.sqrt() * MEAN) / (a * SD**2 + 1 - a)


class GaussianFlowNet(nn.Module):
    """The exact E[eps - x0 | x_t] on the straight path x_t = (1 - t) x0 + t eps, for data N(MEAN, SD^2)."""

    num_classes, condition = 0, None

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        t = t.view(-1, 1, 1, 1)
        variance = (1 - t) ** 2 * SD**2 + t**2
        return -MEAN + (t - (1 - t) * SD**2) / variance * (x - (1 - t) * MEAN)


def ddpm(sampler: str, steps: int, schedule: str = "linear", timesteps: int = 1000) -> DDPM:
    net = GaussianDDPMNet(alphas_bar(schedule, timesteps).float(), timesteps)
    return DDPM(net, SHAPE, schedule, timesteps, steps, sampler, 1.0)  # type: ignore[arg-type]


def flow(sampler: str, steps: int) -> FlowMatching:
    return FlowMatching(GaussianFlowNet(), SHAPE, "uniform", steps, sampler, 1.0)  # type: ignore[arg-type]


def test_the_schedules_are_the_papers():
    linear = alphas_bar("linear", 1000)
    assert linear[0].item() == pytest.approx(1 - 1e-4) and linear[-1].item() == pytest.approx(4.04e-5, rel=0.02)
    cosine = alphas_bar("cosine", 1000)
    assert (cosine.diff() < 0).all() and cosine[-1] < 1e-6 and cosine[0].item() == pytest.approx(1, abs=1e-4)
    assert trailing_steps(1000, 4) == [999, 749, 499, 249]  # always starts from the last step
    assert trailing_steps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ConfigError, match="at most 10"):
        trailing_steps(10, 11)


@pytest.mark.parametrize(
    "make, n",
    [
        pytest.param(lambda: ddpm("ddim", 1000), 2000, id="ddim"),
        pytest.param(lambda: ddpm("ddim", 1000, "cosine"), 2000, id="ddim-cosine"),
        # each latent draws its own noise at each step: fewer latents keep that loop short
        pytest.param(lambda: ddpm("ancestral", 1000), 500, id="ancestral"),
        pytest.param(lambda: flow("euler", 200), 2000, id="euler"),
        pytest.param(lambda: flow("heun", 10), 2000, id="heun"),
    ],
)
def test_every_sampler_with_the_exact_prediction_returns_the_data_distribution(make, n):
    model = make()
    x = model.sample(n, generator=torch.Generator().manual_seed(0))  # 16 pixels each
    assert x.mean().item() == pytest.approx(MEAN, abs=0.01)
    assert x.std().item() == pytest.approx(SD, abs=0.01)


def sd_error(model: Diffusion) -> float:
    return abs(model.sample(2000, generator=torch.Generator().manual_seed(0)).std().item() - SD)


def test_first_order_samplers_converge_with_steps_and_heun_is_second_order():
    """Measured: DDIM's sd 0.185, 0.273, 0.298 at 10, 50, 1000 steps; Euler's 0.247, 0.289 at 10, 50;
    Heun's 0.303 at 10 steps (20 evaluations)."""
    assert sd_error(ddpm("ddim", 10)) > sd_error(ddpm("ddim", 50)) > sd_error(ddpm("ddim", 1000))
    assert sd_error(flow("euler", 10)) > sd_error(flow("euler", 50)) > sd_error(flow("heun", 10))


def test_the_control_a_wrong_prediction_gives_the_wrong_distribution():
    """What the test above would see if the sampler's arithmetic were off: zero noise predicted
    (a net that learnt nothing) collapses DDIM's samples far from N(MEAN, SD^2)."""
    model = ddpm("ddim", 50)
    model.net.forward = lambda x, t, labels=None: torch.zeros_like(x)  # type: ignore[method-assign]
    x = model.sample(2000, generator=torch.Generator().manual_seed(0))
    assert abs(x.std().item() - SD) > 0.1 or abs(x.mean().item() - MEAN) > 0.1


@pytest.mark.parametrize(
    "make, error", [(lambda: ddpm("ddim", 1000), 0.02), (lambda: flow("heun", 20), 0.005)], ids=["ddim", "heun"]
)
def test_inversion_then_decoding_gives_the_image_back(make, error):
    """Measured, max error: DDIM 0.067, 0.027, 0.007 at 100, 250, 1000 steps; Heun 0.007, 0.0009 at 10, 20."""
    model = make()
    x = (MEAN + SD * torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    z, logvar = model.encode(x)
    assert z.shape == logvar.shape == (64, math.prod(SHAPE)) and (logvar < -20).all()
    assert z.std().item() == pytest.approx(1.0, abs=0.15)  # the data's noise looks like noise
    assert (model.decode(z) - x).abs().max() < error


def test_ancestral_samples_are_a_function_of_their_noise_and_leave_the_global_rng_alone():
    """The ancestral sampler's fresh noise comes from each latent's own generator: a latent decodes to
    the same image alone, in a batch and through sample(), and the global RNG is not drawn from."""
    model = ddpm("ancestral", 20)
    z = model.latents(4, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    batch = model.decode(z)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(model.decode(z[2:3]), batch[2:3])
    assert torch.equal(model.sample(4, generator=torch.Generator().manual_seed(3)), batch)
    assert not torch.equal(batch[0], batch[1])


class LabelNet(nn.Module):
    """Predicts the label (or num_classes for "no class") everywhere, to read what guidance mixes."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.condition = ClassCondition(self.num_classes, 1)  # for its "no class"
        self.dummy = nn.Parameter(torch.zeros(()))
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        assert labels is not None
        self.seen.append(labels)
        return labels.float().view(-1, 1, 1, 1).expand_as(x)


def test_guidance_mixes_conditional_and_unconditional_predictions_as_ho_and_salimans():
    model = FlowMatching(LabelNet(), SHAPE, "uniform", 4, "euler", 1.0)  # type: ignore[arg-type]
    x, labels = torch.zeros(2, *SHAPE), torch.tensor([0, 2])
    assert torch.equal(model.predict(x, 0.5, labels)[:, 0, 0, 0], torch.tensor([0.0, 2.0]))  # s = 1: conditional
    with model.sampling(guidance=3.0):
        assert model.evaluations == 8  # both predictions at each of 4 Euler steps
        guided = model.predict(x, 0.5, labels)[:, 0, 0, 0]  # uncond 3 + 3 (label - 3)
    assert torch.equal(guided, torch.tensor([-6.0, 0.0])) and model.guidance == 1.0  # restored after the block


def test_sampling_settings_refuse_what_the_model_cannot_do():
    model = ddpm("ddim", 10, timesteps=100)
    with pytest.raises(ConfigError, match="at most 100"):
        model.set_sampling(steps=101)
    with pytest.raises(ConfigError, match="ddim or ancestral"):
        model.set_sampling(sampler="heun")
    with pytest.raises(ConfigError, match="class- or text-conditional"):
        model.set_sampling(guidance=2.0)
    with pytest.raises(ConfigError, match="integer >= 1"):
        model.set_sampling(steps=0)
    with pytest.raises(ConfigError, match="model.conditional=true"):
        config_from_dict(
            {
                "name": "x",
                "data": {"name": "sprites"},
                "model": {"name": "flow_matching", "guidance": 2.0},
                "objective": {"name": "diffusion"},
            }
        )


def test_the_step_drops_labels_to_no_class_at_its_rate():
    net = LabelNet()
    model = FlowMatching(net, SHAPE, "uniform", 2, "euler", 1.0)  # type: ignore[arg-type]
    step = DiffusionStep(DiffusionObjectiveConfig(uncond_prob=0.25, ema_decay=0.0), model, "image")
    torch.manual_seed(0)
    step.loss({"image": torch.zeros(4000, *SHAPE), "label": torch.zeros(4000, dtype=torch.int64)})
    dropped = (net.seen[-1] == LabelNet.num_classes).float().mean().item()
    assert dropped == pytest.approx(0.25, abs=0.03)


class WordCountNet(nn.Module):
    """Predicts the caption's number of words everywhere (0 for the empty caption, "no caption")."""

    num_classes = 0

    def __init__(self) -> None:
        super().__init__()
        self.condition = TextCondition(len(VOCABULARY), 4, 1)  # for its empty caption
        self.stem = nn.Conv2d(1, 1, 1)  # a device for the captions
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor, t: Tensor, tokens: Tensor | None = None) -> Tensor:
        assert tokens is not None
        self.seen.append(tokens)
        return (tokens != 0).sum(dim=1).float().view(-1, 1, 1, 1).expand_as(x)


def text_flow(net: nn.Module) -> TextFlowMatching:
    return TextFlowMatching(net, SHAPE, "uniform", 4, "euler", 1.0, max_words=MAX_WORDS, pretrained_text="")


def test_a_text_model_guides_with_the_empty_caption_and_checks_its_captions():
    model = text_flow(WordCountNet())
    assert isinstance(model, TextConditional) and not isinstance(
        FlowMatching(WordCountNet(), SHAPE, "uniform", 4, "euler", 1.0), TextConditional
    )
    tokens = model.tokens(["a big red square in the upper left , upright", "a small blue heart in the lower right"])
    x = torch.zeros(2, *SHAPE)
    assert torch.equal(model.predict(x, 0.5, tokens)[:, 0, 0, 0], torch.tensor([10.0, 8.0]))
    with model.sampling(guidance=3.0):
        assert torch.equal(model.predict(x, 0.5, tokens)[:, 0, 0, 0], torch.tensor([30.0, 24.0]))  # 0 + 3 (n - 0)
    drawn = model.condition(5, None, torch.Generator().manual_seed(0))  # random captions when none are given
    assert drawn.shape == (5, MAX_WORDS) and bool((drawn[:, 0] > 0).all())
    with pytest.raises(ConfigError, match=r"word indices \[2, "):
        model.sample(2, labels=torch.tensor([0, 1]))


def test_the_step_drops_captions_to_the_empty_caption_at_its_rate():
    net = WordCountNet()
    step = DiffusionStep(DiffusionObjectiveConfig(uncond_prob=0.25, ema_decay=0.0), text_flow(net), "image")
    torch.manual_seed(0)
    captions = torch.ones(4000, MAX_WORDS, dtype=torch.int64)
    step.loss({"image": torch.zeros(4000, *SHAPE), "caption": captions})
    assert (net.seen[-1] == 0).all(dim=1).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert bool(((net.seen[-1] == 0).all(dim=1) | (net.seen[-1] == 1).all(dim=1)).all())  # rows kept whole


def test_text_settings_name_what_is_wrong():
    def config(model: dict, data: dict | None = None):
        return config_from_dict(
            {
                "name": "x",
                "data": data or {"name": "sprites"},
                "model": {"name": "flow_matching", **model},
                "objective": {"name": "diffusion"},
            }
        )

    with pytest.raises(ConfigError, match="exclusive"):
        config({"conditional": True, "text": True})
    with pytest.raises(ConfigError, match="set model.text=true"):
        config({"text_encoder": "runs/x"})
    with pytest.raises(ConfigError, match="data name captioned"):
        build_modules(config({"text": True}).model, {"image": Image(1, 28, 28)})


@pytest.mark.slow  # a training run of ~9 s
def test_flow_matching_learns_and_samples_through_the_cli(tmp_path, capsys):
    """A tiny flow on sprites: its loss falls, and `genlab sample --steps` draws from the run."""
    config = config_from_dict(
        {
            "name": "tiny-flow",
            "data": {"name": "sprites", "image_size": 28, "n_train": 1024, "n_test": 64},
            "model": {
                "name": "flow_matching",
                "channels": 8,
                "channel_mult": [1, 2],
                "blocks_per_level": 1,
                "steps": 2,
            },
            "objective": {"name": "diffusion", "lr": 2e-3},
            "train": {
                "kimg": 2,
                "batch_size": 32,
                "out_dir": str(tmp_path),
                "log_every_kimg": 0.5,
                "snapshot_every_kimg": 2,
                "tensorboard": False,
                "progress_bar": False,
            },
        }
    )
    run = genlab.train(config)
    losses = [
        float(line.split('"model/mse": ')[1].split(",")[0]) for line in (run / "stats.jsonl").read_text().splitlines()
    ]
    assert losses[-1] < 0.8 * losses[0]
    assert (run / "samples" / "denoising-latest.png").exists()
    model = genlab.load(run)
    assert isinstance(model, Diffusion) and model.steps == 2
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "-n", "4", "--steps", "3", "--sampler", "heun", "-o", str(out)]) == 0
    assert out.exists()
    assert main(["sample", str(run), "-n", "4", "--guidance", "2", "-o", str(out)]) == 2
    assert "class- or text-conditional" in capsys.readouterr().err


@pytest.mark.slow  # two training runs of ~3 s
def test_a_text_flow_samples_captions_and_is_scored_in_the_sprites_feature_space(tmp_path, capsys, monkeypatch):
    """`genlab sample --text --guidance` on a caption-conditioned flow, and `genlab eval --features sprites`
    with an attribute classifier, which offers no Inception Score."""
    import json

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    data = {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 256, "n_test": 64}}
    train = {"kimg": 0.256, "batch_size": 32, "out_dir": str(tmp_path), "snapshot_every_kimg": 0,
             "tensorboard": False, "progress_bar": False}
    judge = genlab.train(config_from_dict({
        "name": "judge", "data": data, "objective": {"name": "classifier"}, "train": train,
        "model": {"name": "mnist_classifier", "channels": 8, "feature_dim": 16,
                  "targets": ["shape", "size", "colour", "vertical", "horizontal", "rotation"]},
    }))
    run = genlab.train(config_from_dict({
        "name": "text-flow", "data": data, "objective": {"name": "diffusion"}, "train": train,
        "model": {"name": "flow_matching", "text": True, "text_dim": 8, "channels": 8, "channel_mult": [1, 2],
                  "blocks_per_level": 1, "steps": 2, "guidance": 2.0},
    }))
    out = tmp_path / "red.png"
    caption = "a big red square in the upper left , upright"
    assert main(["sample", str(run), "-n", "4", "--text", caption, "--guidance", "3", "-o", str(out)]) == 0
    assert out.exists() and caption in capsys.readouterr().out
    assert main(["sample", str(run), "-n", "4", "--text", "a purple square", "-o", str(out)]) == 2
    assert "unknown words ['purple']" in capsys.readouterr().err
    model = genlab.load(run)
    assert model.embed_text(model.tokens([caption, "a small blue heart in the lower right"])).shape == (2, 8)
    assert main(["eval", str(run), "--features", "sprites", "--classifier", str(judge), "--metrics", "fid,pr",
                 "--n", "64"]) == 0
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["fid"] > 0 and 0 <= record["precision"] <= 1
    card = json.loads(next((run / "eval").glob("sprites-n64-seed0*/card.json")).read_text())
    assert card["feature_extractor"]["name"] == "genlab-sprites"
    assert main(["eval", str(run), "--features", "sprites", "--classifier", str(judge), "--metrics", "is"]) == 2
    assert "one per attribute" in capsys.readouterr().err
    # Without --classifier, the zoo's judge of these sprites (plain backgrounds) scores them: one feature space for
    # everyone, and one that reads their shapes (the textured-sprites judge reads them at chance).
    assert main(["eval", str(run), "--features", "sprites", "--metrics", "fid", "--n", "64"]) == 0
    card = json.loads(next((run / "eval").glob("sprites-n64-seed0*/card.json")).read_text())
    assert card["feature_extractor"]["classifier_run"] == "zoo:sprites-attributes-plain"


def test_coordinate_channels_reach_the_unet():
    """model.coordinates adds x and y as input channels: the net's output depends on them."""
    from genlab.models.unet import UNet

    torch.manual_seed(0)
    net = UNet((1, 8, 8), 8, (1, 2), 1, (), 0, 0.0, coordinates=True)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
        x, t = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 0.7])
        seen = net(x, t)
        net.coordinates.zero_()
        assert net.stem.in_channels == 3 and not torch.allclose(net(x, t), seen)


def test_cross_attention_reads_each_word_and_ignores_padding():
    """model.cross_attention: with the pooled caption path cut, one changed word still changes the prediction
    (and does not without cross-attention); more padding changes nothing; the empty caption is defined."""
    from genlab.data.captions import tokenize
    from genlab.models.unet import UNet

    def net(cross: bool) -> UNet:
        torch.manual_seed(0)
        unet = UNet((3, 8, 8), 8, (1, 2), 1, (4,), 0, 0.0, vocabulary_size=len(VOCABULARY), text_dim=8,
                    cross_attention=cross)
        with torch.no_grad():
            for p in unet.parameters():
                p.normal_(0, 0.3)
            unet.condition.project.weight.zero_()  # the sentence embedding no longer reaches the net
            unet.condition.project.bias.zero_()
        return unet.eval()

    upright, rotated = tokenize(["a big red square in the upper left , upright",
                                 "a big red square in the upper left , rotated"], MAX_WORDS)
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([0.4])
    with torch.no_grad():
        for cross in (True, False):
            unet = net(cross)
            changed = not torch.allclose(unet(x, t, upright[None]), unet(x, t, rotated[None]), atol=1e-6)
            assert changed == cross
        unet = net(True)
        padded = torch.cat([upright, torch.zeros(5, dtype=torch.int64)])
        torch.testing.assert_close(unet(x, t, padded[None]), unet(x, t, upright[None]), rtol=1e-4, atol=1e-5)
        empty = unet(x, t, torch.zeros(1, MAX_WORDS, dtype=torch.int64))
        assert torch.isfinite(empty).all() and not torch.allclose(empty, unet(x, t, upright[None]), atol=1e-6)


def test_cross_attention_needs_captions():
    from genlab.models.diffusion import FlowMatchingConfig

    with pytest.raises(ConfigError, match="model.text=true"):
        FlowMatchingConfig(cross_attention=True)
