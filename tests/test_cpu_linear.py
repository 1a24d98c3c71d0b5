"""train.cpu_linear: fp32 Linear layers on oneDNN compute what nn.Linear computes (double backward
included), the choice is measured, logged and kept for resume, and a resumed run continues exactly."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import genlab
from genlab.config import config_from_dict
from genlab.errors import ConfigError
from genlab.models.layers import LatentProjection
from genlab.runs import checkpoint as ckpt
from genlab.training import cpu_linear

needs_onednn = pytest.mark.skipif(not cpu_linear.available(), reason="this PyTorch has no oneDNN linear")


def tiny_mlp_vae(out_dir: Path, cpu_linear_choice: str) -> genlab.Config:
    return config_from_dict({
        "name": "tiny", "data": {"name": "sprites", "image_size": 28, "n_train": 256, "n_test": 64},
        "model": {"name": "vae_mlp", "hidden": 32, "latent_dim": 4}, "objective": {"name": "vae"},
        "train": {"kimg": 0.512, "batch_size": 32, "out_dir": str(out_dir), "cpu_linear": cpu_linear_choice,
                  "log_every_kimg": 0.256, "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0.256,
                  "progress_bar": False, "tensorboard": False},
    })


def gradients(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Parameter gradients of an R1-like penalty: |d net(x) / dx|^2, which needs double backward."""
    for p in net.parameters():
        p.grad = None
    x = x.detach().requires_grad_()
    (grad_x,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    (grad_x.pow(2).sum() + net(x).pow(2).mean()).backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad for p in net.parameters()]


@needs_onednn
def test_onednn_linear_matches_nn_linear_forward_backward_and_double_backward():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(30, 20), nn.Tanh(), nn.Linear(20, 5, bias=False), nn.Tanh(), nn.Linear(5, 1))
    fast = cpu_linear.use_onednn(copy.deepcopy(plain))
    assert all(type(m) is cpu_linear.OneDNNLinear for m in fast.modules() if isinstance(m, nn.Linear))
    x = torch.randn(16, 30)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    for got, want in zip(gradients(fast, x), gradients(plain, x)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # Batched leading dimensions, as nn.Linear takes them.
    torch.testing.assert_close(fast(x.view(4, 4, 30)), plain(x.view(4, 4, 30)), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_the_swap_keeps_parameters_state_dict_and_leaves_parametrised_layers_alone():
    net = nn.Sequential(nn.Linear(4, 4), nn.utils.parametrizations.spectral_norm(nn.Linear(4, 2)))
    params, keys = list(net.parameters()), list(net.state_dict())
    cpu_linear.use_onednn(net)
    assert list(net.parameters()) == params and list(net.state_dict()) == keys  # same tensors: optimisers keep them
    assert type(net[0]) is cpu_linear.OneDNNLinear and type(net[1]) is not cpu_linear.OneDNNLinear


@needs_onednn
def test_bf16_autocast_takes_nn_linears_own_path():
    layer = cpu_linear.use_onednn(nn.Linear(8, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(2, 8)).dtype == torch.bfloat16


def test_onednn_is_chosen_only_with_a_clear_margin():
    assert cpu_linear.choose({"blas": 1.0, "onednn": 0.5}) == "onednn"
    assert cpu_linear.choose({"blas": 1.0, "onednn": 0.9}) == "blas"  # within the noise of a shared machine


def test_asking_for_onednn_without_it_names_the_fix(monkeypatch):
    monkeypatch.setattr(cpu_linear, "available", lambda: False)
    with pytest.raises(ConfigError, match="set train.cpu_linear=auto or blas"):
        cpu_linear.resolve("onednn", torch.device("cpu"))
    assert cpu_linear.resolve("auto", torch.device("cpu"))[0] == "blas"


@needs_onednn
@pytest.mark.parametrize("measured", ["blas", "onednn"])
def test_auto_logs_its_measurement_and_a_resume_keeps_the_choice(measured, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_linear, "choose", lambda seconds: measured)
    run = genlab.train(tiny_mlp_vae(tmp_path, "auto"), stop_after_kimg=0.256)
    assert f"fp32 Linear layers run on {'oneDNN' if measured == 'onednn' else 'the BLAS'}" in (run / "log.txt").read_text()
    assert ckpt.load_training_state(ckpt.latest_checkpoint(run))["cpu_linear"] == measured

    def no_measuring(seconds):
        raise AssertionError("a resumed run must keep its recorded choice")

    monkeypatch.setattr(cpu_linear, "choose", no_measuring)
    genlab.train(resume=run)
    assert ckpt.load_training_state(ckpt.latest_checkpoint(run))["cpu_linear"] == measured


@needs_onednn
def test_a_run_on_onednn_resumes_bitwise(tmp_path):
    whole = genlab.train(tiny_mlp_vae(tmp_path / "whole", "onednn"))
    part = genlab.train(tiny_mlp_vae(tmp_path / "part", "onednn"), stop_after_kimg=0.256)
    genlab.train(resume=part)
    a = load_file(ckpt.latest_checkpoint(whole) / ckpt.MODULES_FILE)
    b = load_file(ckpt.latest_checkpoint(part) / ckpt.MODULES_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("bias", [False, True])
def test_latent_projection_is_the_transposed_convolution_it_replaces(layout, bias):
    torch.manual_seed(0)
    layer = LatentProjection(10, 6, 7, bias=bias).to(memory_format=layout)
    if bias:
        nn.init.normal_(layer.bias)
    z = torch.randn(5, 10, 1, 1, requires_grad=True)
    got, want = layer(z), torch.nn.functional.conv_transpose2d(z, layer.weight, layer.bias)
    torch.testing.assert_close(got, want)
    grad = torch.randn_like(want)
    for g, w in zip(torch.autograd.grad(got, [z, layer.weight], grad), torch.autograd.grad(want, [z, layer.weight], grad)):
        # two computations (a matmul vs the transposed convolution's backward): z's gradient sums ~300 products in
        # a different order, which rounds differently per CPU; the gradient tolerance of the oneDNN test above
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(z).dtype == torch.bfloat16  # as the convolution's output under autocast
    larger = torch.randn(2, 10, 3, 3)  # not a 1x1 map: the convolution's own path
    torch.testing.assert_close(layer(larger), torch.nn.functional.conv_transpose2d(larger, layer.weight, layer.bias))


def test_a_model_without_linear_layers_is_not_measured(tmp_path, monkeypatch):
    def no_measuring(threads):
        raise AssertionError("a convolutional model has no Linear layer to move")

    monkeypatch.setattr(cpu_linear, "measure", no_measuring)
    config = config_from_dict({
        "name": "conv", "data": {"name": "sprites", "image_size": 28, "n_train": 128, "n_test": 32},
        "model": {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8}, "objective": {"name": "gan"},
        "train": {"kimg": 0.064, "batch_size": 32, "out_dir": str(tmp_path), "log_every_kimg": 0, "snapshot_every_kimg": 0,
                  "checkpoint_every_kimg": 0, "progress_bar": False, "tensorboard": False},
    })
    run = genlab.train(config)
    assert ckpt.load_training_state(ckpt.latest_checkpoint(run))["cpu_linear"] == "blas"
    assert "train.cpu_linear" not in (run / "log.txt").read_text()
