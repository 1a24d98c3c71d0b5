"""One contract over every registered model and each of its example variants, trained by
the objective of its family.

Shapes, a backward pass through every phase into exactly the modules it trains, the
export round trip (``genlab.load`` builds only the exported model), safetensors round
trips and seeded determinism: what any model must offer before a user trains it. Each
model supplies its own example spec and variants (``genlab.models.examples``), so a new
model is covered without editing this file.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genlab.config import TrainConfig
from genlab.data.base import Classes, Clusters, Image, LabelMap, Points, TensorDataset, Tokens, field_shape
from genlab.models import build_modules, examples
from genlab.models.protocols import Encoder, LatentSampler, TextConditional, Translator, is_conditional
from genlab.registry import MODELS, OBJECTIVES
from genlab.runs import checkpoint as ckpt
from genlab.training.batches import MEMORY_FORMATS, in_layout
from genlab.training.step import Step

CASES = [pytest.param(name, i, id=f"{name}-{i}") for name in MODELS.names() for i in range(len(examples(name)))]


def example_data(spec, n: int = 16) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    fields = {}
    for key, field in spec.items():
        shape = (n, *field_shape(field))
        if isinstance(field, Image):
            fields[key] = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        elif isinstance(field, Classes):
            fields[key] = torch.randint(0, field.num_classes, shape, generator=generator)
        elif isinstance(field, Clusters):
            fields[key] = torch.randint(0, field.num_clusters, shape, generator=generator)
        elif isinstance(field, LabelMap):
            fields[key] = torch.randint(0, field.num_classes, shape, generator=generator, dtype=torch.uint8)
        elif isinstance(field, Tokens):  # words, then padding (0) at the end, as captions are
            words = torch.randint(1, len(field.vocabulary), shape, generator=generator)
            fields[key] = words * (torch.arange(field.length) < torch.randint(1, field.length + 1, (n, 1), generator=generator))
        else:
            fields[key] = torch.randn(shape, generator=generator)
    return TensorDataset("example", spec, fields)


def build(name: str, variant: int, seed: int = 0, dropout: bool = True) -> tuple[Step, TensorDataset]:
    """The example's modules in their objective's Step (``dropout=False``: every ``*dropout`` config field at 0)."""
    cfg, spec = examples(name)[variant]
    if not dropout:
        cfg = dataclasses.replace(cfg, **{f.name: 0.0 for f in dataclasses.fields(cfg) if f.name.endswith("dropout")})
    objective = next(OBJECTIVES.get(n) for n in OBJECTIVES.names() if OBJECTIVES.get(n).config_cls.family == cfg.family)
    torch.manual_seed(seed)
    modules = build_modules(cfg, spec)
    step = objective.builder(objective.config_cls(name=objective.name), modules, spec, TrainConfig(batch_size=8))
    return step, example_data(spec)


@pytest.mark.parametrize("name, variant", CASES)
def test_every_phase_backpropagates_into_exactly_the_modules_it_trains(name, variant, run_phase):
    step, data = build(name, variant)
    for phase in step.phases():
        out, reached = run_phase(step, phase, data.batch(slice(0, 8)))
        assert out.loss.dim() == 0 and torch.isfinite(out.loss), phase.name
        for module_name, got in reached.items():
            assert got == (module_name in phase.trains), f"{phase.name} phase: gradients of {module_name}"
        step.optimizers[phase.optimizer].step()


@pytest.mark.parametrize("name, variant", CASES)
def test_every_phase_gives_the_same_loss_and_gradients_in_channels_last(name, variant, run_phase):
    """train.memory_format=channels_last changes layouts only: a model that reshapes a conv weight
    or activation with .view fails here, and any other difference is float rounding. Dropout is
    off: its masks are drawn in memory order, so they differ between layouts."""
    results = {}
    for layout in MEMORY_FORMATS:
        step, data = build(name, variant, dropout=False)
        for module in step.modules.values():
            module.to(memory_format=MEMORY_FORMATS[layout])
        batch = in_layout(data.batch(slice(0, 8)), MEMORY_FORMATS[layout])
        results[layout] = []
        for phase in step.phases():
            torch.manual_seed(7)
            out, _ = run_phase(step, phase, batch)
            grads = torch.cat([p.grad.flatten() for m in step.modules.values() for p in m.parameters() if p.grad is not None])
            results[layout].append((phase.name, out.loss.detach(), grads))
    for (phase, loss_a, grads_a), (_, loss_b, grads_b) in zip(*results.values()):
        torch.testing.assert_close(loss_b, loss_a, rtol=1e-4, atol=1e-5, msg=lambda m: f"{phase} loss: {m}")
        # over the phase's whole gradient: through batch norm on 8 examples rounding moves single elements more.
        # NCHW and NHWC run different kernels, whose rounding differs per CPU: up to 4e-4 of the norm measured with
        # AVX2 kernels (1.6e-3 with SSE4 ones), while a layout bug moves the gradient by about its norm.
        assert (grads_b - grads_a).norm() <= 1e-2 * grads_a.norm(), f"{phase} gradients: {(grads_b - grads_a).norm()}"


@pytest.mark.parametrize("name, variant", CASES)
def test_every_phase_runs_under_bf16_autocast(name, variant, run_phase):
    """train.precision=bf16 (or auto's pick) wraps each phase's loss in bf16 autocast, as the loop
    does: no model may mix an autocast output into its fp32 state (StyleGAN's w average did)."""
    step, data = build(name, variant)
    for phase in step.phases():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = run_phase(step, phase, data.batch(slice(0, 8)))
        assert torch.isfinite(out.loss), phase.name
        step.optimizers[phase.optimizer].step()
    for module in step.modules.values():
        for key, value in module.state_dict().items():
            assert value.dtype != torch.bfloat16, f"{key} became bf16"


@pytest.mark.parametrize("name, variant", CASES)
def test_export_builds_alone_and_samples_have_the_data_shape_and_range(name, variant, tmp_path):
    step, data = build(name, variant)
    cfg, spec = examples(name)[variant]
    exported = step.modules[step.export.module]
    alone = build_modules(cfg, spec)[step.export.role]
    alone.load_state_dict(exported.state_dict(), strict=True)  # the export needs no other module
    if isinstance(alone, Translator):
        source = torch.rand(4, *alone.source_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
        translated = alone.translate(source, generator=torch.Generator().manual_seed(1))
        assert translated.shape == (4, *alone.target_shape)
        assert translated.min() >= -1 and translated.max() <= 1 and alone.training  # translate restores the mode
        assert torch.equal(translated, alone.translate(source, generator=torch.Generator().manual_seed(1)))
    if not isinstance(alone, LatentSampler):
        return
    alone.eval()
    labels = torch.arange(4) % alone.num_classes if is_conditional(alone) else None
    samples = alone.sample(4, generator=torch.Generator().manual_seed(1), labels=labels)
    assert samples.shape == (4, *field_shape(spec[next(k for k, f in spec.items() if isinstance(f, (Image, Points)))]))
    if isinstance(spec.get("image"), Image):
        assert samples.min() >= -1 and samples.max() <= 1
    if isinstance(alone, Encoder):
        mu, logvar = alone.encode(data.batch(slice(0, 4))["image"], labels)
        assert mu.shape == logvar.shape == (4, alone.latent_dim)
    if isinstance(alone, TextConditional):  # what of a caption reaches it: one embedding per caption
        tokens = alone.tokens(["a big red square in the upper left , upright", "a small blue heart in the lower right"])
        embedded = alone.embed_text(tokens)
        assert embedded.shape[0] == 2 and embedded.ndim == 2 and not torch.equal(embedded[0], embedded[1])


@pytest.mark.parametrize("name, variant", CASES)
def test_safetensors_round_trip_restores_every_module(name, variant, tmp_path):
    step, _ = build(name, variant, seed=0)
    ckpt.save_checkpoint(tmp_path, 0, step.modules, {"images_seen": 0}, keep=1)
    other, _ = build(name, variant, seed=1)
    ckpt.load_modules(ckpt.list_checkpoints(tmp_path)[-1], other.modules)
    for module_name, module in step.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, other.modules[module_name].state_dict()[key]), f"{module_name}.{key}"


@pytest.mark.parametrize("name, variant", CASES)
def test_same_seed_same_weights_and_samples(name, variant):
    first, _ = build(name, variant, seed=3)
    second, _ = build(name, variant, seed=3)
    for module_name, module in first.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, second.modules[module_name].state_dict()[key]), f"{module_name}.{key}"
    a, b = (s.modules[s.export.module].eval() for s in (first, second))
    if isinstance(a, LatentSampler):
        assert torch.equal(a.sample(3, generator=torch.Generator().manual_seed(5)),
                           b.sample(3, generator=torch.Generator().manual_seed(5)))


def test_every_model_config_has_defaults_for_all_keys():
    for name in MODELS.names():
        cfg = MODELS.get(name).config_cls(name=name)
        assert dataclasses.is_dataclass(cfg) and cfg.family, name
