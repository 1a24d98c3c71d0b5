"""Metrics against independent references: numpy/scipy formulas, closed forms, brute force.

None of these needs the Inception weights or the network.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats
import torch

from genlab.data.stacked import stack_digits, stacked_modes
from genlab.images import to_uint8
from genlab.metrics import fid as fid_mod
from genlab.metrics.coverage import mode_coverage, mode_histogram
from genlab.metrics.fid import fid, fid_from_statistics, fid_statistics
from genlab.metrics.inception_score import inception_score
from genlab.metrics.kid import kid
from genlab.metrics.nearest_neighbours import distance_report, nearest
from genlab.metrics.parzen import parzen_log_likelihoods, parzen_window, select_sigma
from genlab.metrics.precision_recall import precision_recall


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """``n`` draws from one fixed correlated Gaussian in ``d`` dimensions, moved by ``shift``."""
    mixing = torch.randn(d, d, generator=torch.Generator().manual_seed(d)) / math.sqrt(d)
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return (x @ mixing + shift).float()


# ----------------------------------------------------------------------------- FID


def test_fid_of_a_set_with_itself_is_zero():
    f = _features(2000, 64, seed=0)
    assert abs(fid(f, f)["fid"]) < 1e-6


def test_fid_equals_scipy_sqrtm_formula():
    a, b = _features(1500, 32, seed=1), _features(1200, 32, seed=2, shift=0.3)
    x, y = a.double().numpy(), b.double().numpy()
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    assert fid(a, b)["fid"] == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_fid_of_two_gaussians_matches_closed_form():
    # Exact statistics: diagonal covariances commute, so the trace term is
    # sum (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    var1, var2 = rng.uniform(0.5, 2.0, 16), rng.uniform(0.5, 2.0, 16)
    closed = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum())
    stats1 = {"mu": mu1, "sigma": np.diag(var1)}
    stats2 = {"mu": mu2, "sigma": np.diag(var2)}
    assert fid_from_statistics(stats1, stats2)["fid"] == pytest.approx(closed, rel=1e-10)
    # From samples, general (non-commuting) covariances: converges to the closed form
    # ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + np.eye(4), b @ b.T + np.eye(4)
    r1 = scipy.linalg.sqrtm(s1).real
    closed = float(((mu1[:4] - mu2[:4]) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(r1 @ s2 @ r1).real))
    x = torch.from_numpy(rng.multivariate_normal(mu1[:4], s1, size=200_000))
    y = torch.from_numpy(rng.multivariate_normal(mu2[:4], s2, size=200_000))
    assert fid(x, y)["fid"] == pytest.approx(closed, rel=0.02)


def test_fid_statistics_are_float64_whatever_the_input():
    stats = fid_statistics(_features(100, 8, seed=3))
    assert stats["mu"].dtype == np.float64 and stats["sigma"].shape == (8, 8)


def test_fid_small_sample_warning():
    assert fid_mod.fid_small_sample_warning(50_000, 10_000, 2048) is None
    assert "biased" in fid_mod.fid_small_sample_warning(5_000, 10_000, 128)
    assert "singular" in fid_mod.fid_small_sample_warning(100, 10_000, 2048)


# ----------------------------------------------------------------------------- KID


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3), ((y @ y.T / d + 1) ** 3), ((x @ y.T / d + 1) ** 3)
    m = len(x)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def test_kid_equals_numpy_unbiased_mmd():
    a, b = _features(300, 16, seed=4), _features(300, 16, seed=5, shift=0.5)
    expected = _mmd2_unbiased(a.double().numpy(), b.double().numpy())
    # One subset of the full size is a permutation of each set; MMD^2 ignores order.
    result = kid(a, b, subsets=1, subset_size=300)
    assert result["kid_mean"] == pytest.approx(expected, rel=1e-9)
    assert result["kid_std"] == 0.0


def test_kid_is_near_zero_for_one_distribution_and_clips_subset_size():
    a, b = _features(400, 16, seed=6), _features(400, 16, seed=7)
    same = kid(a, b, subsets=5, subset_size=1000)  # 1000 > 400: clipped, still runs
    far = kid(a, b + 1.0, subsets=5, subset_size=1000)
    assert abs(same["kid_mean"]) < 0.02 < far["kid_mean"]


# ----------------------------------------------------------------------------- IS, PR


def test_inception_score_bounds():
    confident = torch.eye(10).repeat(100, 1) * 50.0  # every class equally, certain
    uniform = torch.zeros(1000, 10)
    # One split: the class marginal is exactly uniform, so IS reaches its maximum K.
    assert inception_score(confident, splits=1)["is_mean"] == pytest.approx(10.0, rel=1e-6)
    assert 9.0 < inception_score(confident)["is_mean"] < 10.0
    assert inception_score(uniform)["is_mean"] == pytest.approx(1.0, rel=1e-9)


def test_precision_recall_of_identical_and_disjoint_sets():
    a = _features(500, 8, seed=8)
    assert precision_recall(a, a)["precision"] == 1.0
    disjoint = precision_recall(a + 100.0, a)
    assert disjoint["precision"] == 0.0 and disjoint["recall"] == 0.0


def test_precision_recall_does_not_depend_on_batch_size():
    a, b = _features(700, 8, seed=9), _features(600, 8, seed=10, shift=0.4)
    assert precision_recall(a, b, batch_size=10_000) == precision_recall(a, b, batch_size=97)


# ----------------------------------------------------------------------------- Parzen


def test_parzen_equals_brute_force_scipy():
    rng = np.random.default_rng(1)
    samples, test = rng.uniform(size=(60, 5)), rng.uniform(size=(25, 5))
    sigma = 0.2
    log_pdf = np.stack(
        [scipy.stats.multivariate_normal(mean=m, cov=sigma**2).logpdf(test) for m in samples]
    )  # [N, M]
    expected = scipy.special.logsumexp(log_pdf, axis=0) - np.log(len(samples))
    ours = parzen_log_likelihoods(torch.from_numpy(samples), torch.from_numpy(test), [sigma])[0]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


def test_parzen_does_not_depend_on_batch_size_and_picks_the_best_sigma():
    gen = torch.Generator().manual_seed(2)
    samples, valid, test = (torch.rand(n, 20, generator=gen) for n in (300, 90, 110))
    sigmas = [0.05, 0.1, 0.2, 0.4, 0.8]
    full = parzen_log_likelihoods(samples, valid, sigmas, batch_size=1000)
    torch.testing.assert_close(parzen_log_likelihoods(samples, valid, sigmas, batch_size=7), full, rtol=1e-12, atol=1e-9)
    sigma, means = select_sigma(samples, valid, sigmas)
    assert sigma == sigmas[int(full.mean(1).argmax())] and means.shape == (5,)
    result = parzen_window(samples, valid, test, sigmas)
    ll = parzen_log_likelihoods(samples, test, [sigma])[0].numpy()
    assert result == pytest.approx(
        {"parzen_ll": ll.mean(), "parzen_ll_se": ll.std() / math.sqrt(len(ll)), "parzen_sigma": sigma}
    )


# ----------------------------------------------------------------------------- nearest neighbours


def test_nearest_matches_scipy_cdist_and_batch_size():
    import scipy.spatial

    gen = torch.Generator().manual_seed(3)
    q, r = torch.rand(40, 12, generator=gen), torch.rand(300, 12, generator=gen)
    d, i = nearest(q, r, k=3, batch_size=7)
    full = scipy.spatial.distance.cdist(q.double().numpy(), r.double().numpy())
    np.testing.assert_array_equal(i.numpy(), np.argsort(full, axis=1)[:, :3])
    np.testing.assert_allclose(d.numpy(), np.sort(full, axis=1)[:, :3], rtol=1e-9)
    assert torch.equal(nearest(q, r, k=3, batch_size=1000)[1], i)


def test_distance_report_flags_copies():
    baseline = torch.linspace(1.0, 2.0, 100)
    copies = distance_report(torch.zeros(10), baseline, prefix="nn_pixel_")
    assert copies["nn_pixel_near_copy_fraction"] == 1.0 and copies["nn_pixel_median_ratio"] == 0.0
    fresh = distance_report(baseline, baseline, prefix="")
    assert fresh["near_copy_fraction"] < 0.02 and fresh["median_ratio"] == 1.0


# ----------------------------------------------------------------------------- mode coverage


def test_class_coverage_on_hand_made_predictions():
    uniform = mode_coverage(mode_histogram(torch.arange(10).repeat(30), 10))
    assert uniform == {"modes_covered": 10, "num_modes": 10, "kl_to_uniform": pytest.approx(0.0, abs=1e-12)}
    # Half the samples are 0s, the rest split over 1..4: 5 classes covered.
    preds = torch.tensor([0] * 8 + [1, 2, 3, 4] * 2)
    hist = mode_histogram(preds, 10)
    assert hist.tolist() == [8, 2, 2, 2, 2, 0, 0, 0, 0, 0]
    p = np.array([0.5, 0.125, 0.125, 0.125, 0.125])
    result = mode_coverage(hist)
    assert result["modes_covered"] == 5
    assert result["kl_to_uniform"] == pytest.approx(float((p * np.log(p * 10)).sum()), rel=1e-12)
    assert mode_coverage(torch.zeros(10).index_fill_(0, torch.tensor([3]), 7))["kl_to_uniform"] == pytest.approx(math.log(10))
    assert mode_coverage(hist, min_count=3)["modes_covered"] == 1


def test_stacked_mnist_modes():
    assert stacked_modes(torch.tensor([[1, 2, 3], [9, 9, 9], [0, 0, 7]])).tolist() == [123, 999, 7]
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    x, modes = stack_digits(images, torch.arange(10), n=5000, seed=0)
    assert x.shape == (5000, 3, 2, 2)
    # The pixel values are the digits, so the modes can be read back from the channels.
    assert torch.equal(stacked_modes(x[:, :, 0, 0]), modes)
    assert mode_coverage(mode_histogram(modes, 1000))["modes_covered"] > 990


def test_the_modes_metric_reads_stacked_modes_as_the_data_set_labels_them():
    from genlab.config import DataConfig
    from genlab.data.stacked import NUM_MODES, StackedMNISTConfig
    from genlab.metrics.coverage import channel_modes

    digits = torch.randint(10, (50, 3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(channel_modes(digits, 10), stacked_modes(digits))
    assert StackedMNISTConfig.num_modes == NUM_MODES == 10**3 and DataConfig.num_modes is None


def test_stacked_mnist_dataset_stacks_real_digits(mnist_root):
    from genlab.data import load_dataset
    from genlab.data.stacked import StackedMNISTConfig

    data = load_dataset(StackedMNISTConfig("stacked_mnist", root=str(mnist_root), n_train=2000), "train")
    assert data["image"].shape == (2000, 3, 28, 28) and data.spec["label"].num_classes == 1000
    assert data["label"].min() >= 0 and data["label"].max() < 1000 and data["label"].unique().numel() > 800


# ----------------------------------------------------------------------------- the metric registry and its needs


class _Sampler(torch.nn.Module):
    """A LatentSampler of 8x8 grey images (no encoder): what evaluation sees of a GAN."""

    latent_dim = 3

    def __init__(self):
        super().__init__()
        self.to_image = torch.nn.Linear(3, 64)

    def latents(self, n, generator=None, truncation=None):
        return torch.randn(n, 3, generator=generator)

    def decode(self, z, labels=None):
        return torch.tanh(self.to_image(z)).view(-1, 1, 8, 8)

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None, truncation=None):
        return self.decode(self.latents(n, generator))


class _WithEncoder(_Sampler):
    def encode(self, x, labels=None):
        return x.flatten(1)[:, :3], x.flatten(1)[:, :3]


class _WithLikelihood(_WithEncoder):
    """A VAE as evaluation sees it: an encoder and a decoder density."""

    likelihood = "bernoulli"

    def decode_params(self, z, labels=None):
        return self.to_image(z).view(-1, 1, 8, 8)

    def log_prior(self, z):
        return -0.5 * z.square().sum(1)


_CONFIG = types.SimpleNamespace(data=types.SimpleNamespace(name="mnist"))  # all evaluate() reads before metrics run


def test_metric_names_and_unknown_names():
    from genlab.errors import ConfigError
    from genlab.metrics.registry import metric_names
    from genlab.metrics.settings import EvalSettings

    assert metric_names()[:8] == ["fid", "kid", "is", "pr", "parzen", "nll", "nn", "modes"]
    with pytest.raises(ConfigError, match="unknown metric 'fdi' \\(did you mean 'fid'\\?\\); choose from fid, kid"):
        EvalSettings(metrics=("fdi",))


def test_default_metrics_and_features_follow_capabilities():
    from genlab.metrics.settings import default_features, default_metrics

    assert default_metrics(_WithLikelihood()) == ("nll",)
    assert default_metrics(_WithEncoder()) == ("fid", "kid", "is", "pr")  # an inversion (diffusion) has no ELBO
    assert default_metrics(_Sampler()) == ("fid", "kid", "is", "pr")
    assert default_features("mnist") == "mnist" and default_features("cifar10") == "inception"
    assert default_features("color_sprites") == "sprites"  # the zoo ships the attribute classifier


def test_unmet_needs_fail_before_anything_is_computed(tmp_path, monkeypatch):
    from genlab.errors import ConfigError
    from genlab.metrics.evaluate import evaluate
    from genlab.metrics.settings import EvalSettings

    # No classifier in this cache: had fid's feature network been loaded first, that would fail instead.
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    with pytest.raises(ConfigError, match="metric 'nll' needs a model with a likelihood.*_Sampler"):
        evaluate(_Sampler(), _CONFIG, EvalSettings(metrics=("fid", "nll")), out)
    with pytest.raises(ConfigError, match="metric 'parzen' needs a model that generates samples.*Linear"):
        evaluate(torch.nn.Linear(2, 2), _CONFIG, EvalSettings(metrics=("parzen",)), out)
    assert not out.exists()


def test_a_new_metric_needs_only_its_decorator(tmp_path, monkeypatch):
    from genlab.metrics import registry
    from genlab.metrics.evaluate import evaluate
    from genlab.metrics.settings import EvalSettings

    registry.metric_names()  # the built-in metrics register first, into the table the test copies
    # What the test registers goes with the copy.
    monkeypatch.setattr(registry.METRICS, "_entries", dict(registry.METRICS._entries))

    @registry.register_metric("mean_pixel", needs=("samples",))
    def _mean_pixel(ctx):
        return {"mean_pixel": ctx.samples.double().mean().item()}

    model = _Sampler()
    results, card = evaluate(model, _CONFIG, EvalSettings(metrics=("mean_pixel",), n=10, seed=3), tmp_path)
    expected = to_uint8(model.sample(10, torch.Generator().manual_seed(3))).double().mean().item()
    assert results == card["results"] == {"mean_pixel": expected}
    assert (tmp_path / "card.md").is_file() and card["feature_extractor"] is None
    assert "mean_pixel" in registry.metric_names()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_metric("mean_pixel")(_mean_pixel)
    with pytest.raises(ValueError, match="unknown needs \\['gpu'\\]"):
        registry.register_metric("other", needs=("gpu",))


# ----------------------------------------------------------------------------- feature extractors


def test_missing_inception_weights_message(tmp_path, monkeypatch):
    from genlab.errors import DataError
    from genlab.metrics.inception import find_inception_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DataError) as err:
        find_inception_weights(download=False)
    message = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message and "--inception-weights" in message
    with pytest.raises(DataError, match="does not exist.*pt_inception-2015-12-05"):
        find_inception_weights(tmp_path / "nope.pth")


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, mnist_root):
    """A briefly trained classifier and VAE on 512 MNIST digits (mechanics, not quality)."""
    from genlab.api import train
    from genlab.config import config_from_dict

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    common = {"data": {"name": "mnist", "root": str(mnist_root), "limit": 512},
              "train": {"kimg": 0.512, "batch_size": 128, "out_dir": str(out), "progress_bar": False, "tensorboard": False}}
    classifier = train(config_from_dict({"name": "clf", "model": {"name": "mnist_classifier"}, "objective": {"name": "classifier"}, **common}))
    vae = train(config_from_dict({"name": "vae", "model": {"name": "vae_mlp", "hidden": 64, "latent_dim": 4}, "objective": {"name": "vae"}, **common}))
    return classifier, vae


class _Images(torch.utils.data.Dataset):
    """uint8 [3, H, W] items, the form torch-fidelity reads datasets in."""

    def __init__(self, x):
        self.x = x.expand(-1, 3, -1, -1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_mnist_extractor_is_a_torch_fidelity_feature_extractor(tiny_runs, mnist_root):
    import torch_fidelity

    from genlab.data import load_dataset
    from genlab.data.standard import StandardConfig
    from genlab.metrics.classifier_features import mnist_extractor
    from genlab.metrics.features import extract_features

    classifier_run, _ = tiny_runs
    train = load_dataset(StandardConfig(name="mnist", root=str(mnist_root), limit=600), "train")["image"]
    a, b = train[:300], train[300:600]
    ext = mnist_extractor(classifier_run)
    ours_a, ours_b = extract_features(ext, a, batch_size=64), extract_features(ext, b, batch_size=300)
    theirs = torch_fidelity.calculate_metrics(
        input1=_Images(a), input2=_Images(b), feature_extractor="genlab-mnist",
        feature_extractor_weights_path=str(classifier_run), fid=True, kid=True, kid_subset_size=300, kid_subsets=1,
        cuda=False, cache=False, verbose=False, save_cpu_ram=True, batch_size=100,
    )
    # two computations (torch-fidelity's batches of 100 and float32 means vs genlab's features and float64 statistics):
    # FID (~0.03 here) is a small difference of large terms, so float32 rounding of the features, which varies per
    # CPU, moves it by ~1e-6 relative; 1e-4 leaves room, and 1/N vs 1/(N-1) covariances would move it by ~3e-3
    assert theirs["frechet_inception_distance"] == pytest.approx(fid(ours_a["features"], ours_b["features"])["fid"], rel=1e-4)
    # torch-fidelity sums the kernels in the features' float32; MMD^2 is a small difference of
    # large sums, so its value differs from genlab's float64 one by float32 rounding of those sums:
    # a few 1e-7 of the mean kernel value, however small MMD^2 itself is.
    features = ours_a["features"].double()
    kernel_scale = ((features @ features.T / features.shape[1] + 1) ** 3).mean().item()
    assert theirs["kernel_inception_distance_mean"] == pytest.approx(
        kid(ours_a["features"], ours_b["features"], subsets=1, subset_size=300)["kid_mean"], rel=1e-2,
        abs=1e-6 * kernel_scale)
    # Per-image features: the batch size changes nothing beyond float rounding.
    torch.testing.assert_close(extract_features(ext, a, batch_size=7)["features"], ours_a["features"], rtol=1e-5, atol=1e-5)


def test_eval_cli_writes_every_metric_and_a_card(tiny_runs, tmp_path, monkeypatch, capsys):
    import json

    from genlab.cli.main import main

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))  # reference features cached here
    classifier_run, vae_run = tiny_runs
    args = ["eval", str(vae_run), "--metrics", "fid,kid,is,pr,parzen,nll,nn,modes", "--n", "200", "--k", "5",
            "--classifier", str(classifier_run)]
    assert main(args) == 0
    record = json.loads((vae_run / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("fid", "kid_mean", "is_mean", "precision", "recall", "parzen_ll", "parzen_ll_se", "parzen_sigma",
                "elbo_nats", "iw_nll_nats", "nn_pixel_median_ratio", "nn_feature_median_ratio", "modes_covered", "kl_to_uniform"):
        assert isinstance(record[key], (int, float)), key
    out_dir = vae_run / "eval" / "mnist-n200-seed0"
    card = json.loads((out_dir / "card.json").read_text())
    assert card["feature_extractor"]["weights_sha256"] and card["feature_extractor"]["resize"].startswith("none")
    assert card["n_generated"] == 200 and card["reference_split"] == "train" and card["versions"]["torch-fidelity"]
    assert any("biased" in w for w in card["warnings"]) and any("variance" in w for w in card["warnings"])
    assert (out_dir / "card.md").is_file() and (out_dir / "nn_pixel.png").is_file() and (out_dir / "nn_features.png").is_file()
    assert len(list((tmp_path / "cache" / "reference").glob("*.safetensors"))) == 2  # train and test features
    # A second eval reuses the cached reference features and gives the same numbers.
    assert main(args) == 0
    again = json.loads((vae_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert again["fid"] == record["fid"] and again["parzen_ll"] == record["parzen_ll"]
    capsys.readouterr()
    # Inception requested without weights: a message for people, exit status 2.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert main(["eval", str(vae_run), "--metrics", "fid", "--n", "50", "--features", "inception",
                 "--inception-weights", str(tmp_path / "missing.pth")]) == 2
    assert "pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().err


def test_eval_scores_the_checkpoint_asked_for_and_names_it(tmp_path, monkeypatch, capsys, mnist_root):
    import json

    from genlab.api import train
    from genlab.cli.main import main
    from genlab.config import config_from_dict

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    run = train(config_from_dict({
        "name": "vae", "model": {"name": "vae_mlp", "hidden": 32, "latent_dim": 2}, "objective": {"name": "vae"},
        "data": {"name": "mnist", "root": str(mnist_root), "limit": 256},
        "train": {"kimg": 0.512, "batch_size": 128, "checkpoint_every_kimg": 0.256, "out_dir": str(tmp_path / "runs"),
                  "progress_bar": False, "tensorboard": False}}))
    older, newest = (p.name for p in sorted((run / "checkpoints").iterdir()))
    nll = ["--metrics", "nll", "--n", "64", "--k", "2"]
    assert main(["eval", str(run), *nll]) == 0
    assert main(["eval", str(run), "--checkpoint", older, *nll]) == 0
    default, asked = (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
    assert (default["checkpoint"], default["kimg"]) == (newest, 0.512)
    assert (asked["checkpoint"], asked["kimg"]) == (older, 0.256) and asked["elbo_nats"] != default["elbo_nats"]
    card = json.loads((run / "eval" / "mnist-n64-seed0-kimg0.256" / "card.json").read_text())
    assert (card["checkpoint"], card["kimg"]) == (older, 0.256)
    assert json.loads((run / "eval" / "mnist-n64-seed0" / "card.json").read_text())["kimg"] == 0.512
    assert "after 0.256 kimg" in (run / "eval" / "mnist-n64-seed0-kimg0.256" / "card.md").read_text()
    capsys.readouterr()
    # Another run's checkpoint, or one that is not there: one error naming the fix.
    assert main(["eval", str(run), "--checkpoint", str(tmp_path / older), *nll]) == 2
    assert "is not one of" in capsys.readouterr().err
    assert main(["eval", str(run), "--checkpoint", "ckpt-000000000999", *nll]) == 2
    assert older in capsys.readouterr().err


# ----------------------------------------------------------------------------- the classifier's training


def test_classifier_cosine_schedule_resumes_exactly(tmp_path, mnist_root):
    from safetensors.torch import load_file

    from genlab.api import train
    from genlab.config import config_from_dict
    from genlab.runs import checkpoint as ckpt

    def config(out):
        return config_from_dict({
            "name": "clf", "data": {"name": "mnist", "root": str(mnist_root), "limit": 256},
            "model": {"name": "mnist_classifier", "channels": 4, "feature_dim": 16}, "objective": {"name": "classifier"},
            "train": {"kimg": 0.512, "batch_size": 64, "out_dir": str(out), "checkpoint_every_kimg": 0.256,
                      "progress_bar": False, "tensorboard": False, "lr_schedule": {"kind": "cosine"}},
        })

    straight = train(config(tmp_path / "a"))
    resumed = train(resume=train(config(tmp_path / "b"), stop_after_kimg=0.192))
    a, b = (ckpt.latest_checkpoint(r) for r in (straight, resumed))
    wa, wb = load_file(a / ckpt.MODULES_FILE), load_file(b / ckpt.MODULES_FILE)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    groups = ckpt.load_training_state(a)["optimizers"]["classifier"]["param_groups"]
    # The 8th and last step ran at the rate for 448 of 512 images: the cosine's last value before 0.
    assert groups[0]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 448 / 512)))


# ----------------------------------------------------------------------------- conditional metrics


class _ReplaySampler(torch.nn.Module):
    """A conditional 'model' that returns real test digits of the class asked for (or, with
    ``shuffle``, of a random class): the best and a chance-level conditional sampler."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, shuffle: bool) -> None:
        super().__init__()
        self.register_buffer("images", images.float() / 127.5 - 1)
        self.labels, self.shuffle = labels, shuffle
        self.latent_dim, self.num_classes = 1, 10

    def latents(self, n, generator=None, truncation=None):
        return torch.rand(n, 1, generator=generator)

    def decode(self, z, labels=None):
        wanted = torch.randint(10, labels.shape) if self.shuffle else labels
        pools = [torch.nonzero(self.labels == k)[:, 0] for k in range(10)]
        index = torch.stack([pools[k][int(u * (len(pools[k]) - 1))] for k, u in zip(wanted.tolist(), z[:, 0].tolist())])
        return self.images[index]

    def sample(self, n, generator=None, labels=None, truncation=None):
        return self.decode(self.latents(n, generator), labels)


@pytest.mark.slow
def test_conditional_metrics_separate_a_faithful_sampler_from_a_label_blind_one(tiny_runs, tmp_path, monkeypatch, mnist_root):
    from genlab.config import config_from_dict
    from genlab.data import load_dataset
    from genlab.metrics.evaluate import evaluate
    from genlab.metrics.settings import EvalSettings

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    classifier_run, _ = tiny_runs
    config = config_from_dict({"name": "replay", "data": {"name": "mnist", "root": str(mnist_root), "limit": 512},
                               "model": {"name": "vae_mlp"}, "objective": {"name": "vae"}})
    test = load_dataset(config.data, "test")
    settings = EvalSettings(metrics=("cond_acc", "intra_fid", "cas", "truncation"), n=200, classifier=str(classifier_run),
                            reference_split="test")
    results = {}
    for shuffle in (False, True):
        model = _ReplaySampler(test["image"], test["label"], shuffle)
        results[shuffle], _ = evaluate(model, config, settings, tmp_path / f"eval-{shuffle}")
    faithful, blind = results[False], results[True]
    assert faithful["conditional_accuracy"] > blind["conditional_accuracy"] + 0.2
    assert faithful["intra_fid"] < blind["intra_fid"]
    assert faithful["cas"] > blind["cas"] + 0.2  # a classifier learns digits only from correctly labelled samples
    assert len(faithful["conditional_accuracy_per_class"]) == len(faithful["intra_fid_per_class"]) == 10
    assert [row["truncation"] for row in faithful["truncation_curve"]] == [None, 2.0, 1.5, 1.0, 0.5]
    assert (tmp_path / "eval-False" / "truncation.png").is_file()


def test_conditional_metrics_refuse_an_unconditional_model(tiny_runs, tmp_path):
    from genlab.api import load
    from genlab.errors import ConfigError
    from genlab.metrics.evaluate import evaluate
    from genlab.metrics.settings import EvalSettings
    from genlab.runs.folder import read_run

    _, vae_run = tiny_runs
    _, config, _ = read_run(vae_run)
    with pytest.raises(ConfigError, match="needs a class-conditional model"):
        evaluate(load(vae_run), config, EvalSettings(metrics=("cond_acc",), n=10), tmp_path / "never")
    assert not (tmp_path / "never").exists()
