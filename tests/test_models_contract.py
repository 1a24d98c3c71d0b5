"""One contract over every registered model, trained by the objective of its family.

Shapes, a backward pass through every phase, a safetensors save/load round trip and
seeded determinism: what any model must offer before a user trains it.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genlab.config import TrainConfig
from genlab.data.base import TensorDataset
from genlab.registry import MODELS, OBJECTIVES
from genlab.training import checkpoint as ckpt
from genlab.training.step import Batch

# Example data per model; image models default to one 32-pixel channel.
EXAMPLE_SHAPES = {"vae_mlp": (1, 28, 28), "gan_mlp": (1, 28, 28), "mnist_classifier": (1, 28, 28), "gan_toy_mlp": (2,), "sngan_resnet32": (3, 32, 32)}


def example_data(model_name: str) -> TensorDataset:
    shape = EXAMPLE_SHAPES.get(model_name, (1, 32, 32))
    generator = torch.Generator().manual_seed(0)
    if len(shape) == 1:
        x = torch.randn((16, *shape), generator=generator)
    else:
        x = torch.randint(0, 256, (16, *shape), generator=generator, dtype=torch.uint8)
    y = torch.randint(0, 10, (16,), generator=generator)
    return TensorDataset("example", x, y, tuple(str(i) for i in range(10)), 10)


def build(model_name: str, seed: int = 0):
    entry = MODELS.get(model_name)
    model_cfg = entry.config_cls(name=model_name)
    objective = next(OBJECTIVES.get(n) for n in OBJECTIVES.names() if OBJECTIVES.get(n).config_cls.family == model_cfg.family)
    data = example_data(model_name)
    torch.manual_seed(seed)
    modules = entry.builder(model_cfg, data)
    step = objective.builder(objective.config_cls(name=objective.name), modules, data, TrainConfig(batch_size=8))
    return step, data


def model_batch(data: TensorDataset) -> Batch:
    x = data.x[:8]
    return Batch(x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x, data.y[:8])


@pytest.mark.parametrize("model_name", MODELS.names())
def test_every_phase_backpropagates_into_its_optimiser(model_name):
    step, data = build(model_name)
    for phase in step.phases():
        optimizer = step.optimizers[phase.optimizer]
        optimizer.zero_grad(set_to_none=True)
        out = phase.loss(model_batch(data))
        assert out.loss.dim() == 0 and torch.isfinite(out.loss), phase.name
        out.loss.backward()
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), f"{phase.name} produced no gradient"
        optimizer.step()


@pytest.mark.parametrize("model_name", [n for n in MODELS.names() if n != "mnist_classifier"])
def test_export_samples_have_the_data_shape_and_range(model_name):
    step, data = build(model_name)
    model = step.modules[step.export_name].eval()
    samples = model.sample(4, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (4, *data.shape)
    if data.is_image:
        assert samples.min() >= -1 and samples.max() <= 1


@pytest.mark.parametrize("model_name", MODELS.names())
def test_safetensors_round_trip_restores_every_module(model_name, tmp_path):
    step, _ = build(model_name, seed=0)
    ckpt.save_checkpoint(tmp_path, 0, step.modules, {"images_seen": 0}, keep=1)
    other, _ = build(model_name, seed=1)
    ckpt.load_modules(ckpt.list_checkpoints(tmp_path)[-1], other.modules)
    for name, module in step.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, other.modules[name].state_dict()[key]), f"{name}.{key}"


@pytest.mark.parametrize("model_name", MODELS.names())
def test_same_seed_same_weights_and_samples(model_name):
    first, _ = build(model_name, seed=3)
    second, _ = build(model_name, seed=3)
    for name, module in first.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, second.modules[name].state_dict()[key]), f"{name}.{key}"
    if model_name != "mnist_classifier":
        a = first.modules[first.export_name].eval().sample(3, generator=torch.Generator().manual_seed(5))
        b = second.modules[second.export_name].eval().sample(3, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)


def test_every_model_config_has_defaults_for_all_keys():
    for name in MODELS.names():
        cfg = MODELS.get(name).config_cls(name=name)
        assert dataclasses.is_dataclass(cfg) and cfg.family, name
