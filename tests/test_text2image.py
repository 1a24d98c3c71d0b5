"""Text to image on captioned sprites: captions, tokens, the text-conditioned G and the matching-aware D."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
from genlab.cli.main import main
from genlab.config import config_from_dict, model_config_from_dict
from genlab.data import load_dataset
from genlab.data.base import Image, Tokens, spec_from_json, spec_to_json
from genlab.data.captions import (ATTRIBUTES, MAX_WORDS, TEMPLATES, VOCABULARY, attributes_of, caption, captions,
                                  one_attribute_changed, random_attributes, tokenize)
from genlab.data.sprites import COLOR_FACTORS
from genlab.errors import ConfigError
from genlab.models import build_modules
from genlab.models.protocols import TextConditional

SPEC = {"image": Image(3, 32, 32), "caption": Tokens(VOCABULARY, MAX_WORDS)}
TINY = {"name": "text_gan", "noise_dim": 8, "c_dim": 4, "text_dim": 8, "g_channels": 4, "d_channels": 4}


def test_attributes_read_the_factors():
    # shape, scale, rotation, pos_x, pos_y, hue
    factors = torch.tensor([[2.0, 0.9, 1.0, 0.2, 0.1, 0.0], [0.0, 0.6, 0.1, 0.8, 0.9, 4 / 6]])
    attributes = attributes_of(factors, COLOR_FACTORS)
    assert caption(attributes[0], 0) == "a big red heart in the upper left , rotated"
    assert caption(attributes[1], 2) == "there is a small blue square in the lower right"
    with pytest.raises(ConfigError, match="no hue"):
        attributes_of(factors[:, :5], COLOR_FACTORS[:5])


def test_captions_are_deterministic_for_a_seed_and_use_only_the_vocabulary():
    attributes = random_attributes(200, torch.Generator().manual_seed(0))
    assert captions(attributes, seed=3) == captions(attributes, seed=3) != captions(attributes, seed=4)
    tokens = tokenize(captions(attributes, seed=3))
    assert tokens.shape == (200, MAX_WORDS) and tokens.min() >= 0 and tokens.max() < len(VOCABULARY)
    used = {len(t.split()) for t in TEMPLATES}
    assert max(used) <= MAX_WORDS


@pytest.mark.parametrize("text, words", [("a purple dragon", "unknown words"), ("", "no words"),
                                         ("a " * 13, "at most 12")])
def test_tokenize_names_what_is_wrong(text, words):
    with pytest.raises(ConfigError, match=words):
        tokenize([text])


def test_unknown_words_name_the_vocabulary_word_to_say_instead():
    with pytest.raises(ConfigError, match="say 'in' for 'at', 'lower' for 'bottom', captions use") as error:
        tokenize(["a big square at the bottom"])
    assert "e.g. 'a big red square in the lower left , upright'" in str(error.value)
    tokenize(["a big red square in the lower left , upright"])  # the example it gives is valid


def test_captioned_dataset_and_its_spec_round_trip():
    cfg = config_from_dict({"name": "c", "data": {"name": "captioned", "base": {"name": "sprites", "color": True,
                                                                                "n_train": 16, "n_test": 4}},
                            "model": {"name": "dcgan"}, "objective": {"name": "gan"}}).data
    data = load_dataset(cfg, "train")
    assert isinstance(data.spec["caption"], Tokens) and all(data[name].shape == (16,) for name in ATTRIBUTES)
    assert data.spec["colour"].names == ATTRIBUTES["colour"]
    assert spec_from_json(spec_to_json(data.spec)) == data.spec
    first = " ".join(VOCABULARY[i] for i in data["caption"][0] if i)
    attributes = torch.stack([data[name][:1] for name in ATTRIBUTES], dim=1)
    assert first == captions(attributes, seed=0)[0]
    # the hard negative: the same sprite's attributes with one changed, captioned from its own stream
    all_attributes = torch.stack([data[name] for name in ATTRIBUTES], dim=1)
    wrong = one_attribute_changed(all_attributes, torch.Generator().manual_seed(0), shapes=3)
    assert torch.equal(data["caption_one_off"], tokenize(captions(wrong, seed=1000)))


def test_a_one_off_caption_differs_in_exactly_one_attribute_within_its_values():
    attributes = random_attributes(2000, torch.Generator().manual_seed(0), shapes=3)
    changed = one_attribute_changed(attributes, torch.Generator().manual_seed(1), shapes=3)
    assert ((changed != attributes).sum(dim=1) == 1).all()
    sizes = torch.tensor([3] + [len(words) for words in list(ATTRIBUTES.values())[1:]])
    assert ((changed >= 0) & (changed < sizes)).all()
    which = (changed != attributes).long().argmax(dim=1)
    assert torch.bincount(which, minlength=6).min() > 250  # every attribute is the changed one about 1/6 of the time
    assert torch.equal(changed, one_attribute_changed(attributes, torch.Generator().manual_seed(1), shapes=3))


def tiny():
    torch.manual_seed(0)
    return build_modules(model_config_from_dict(TINY, "test"), SPEC)


def test_the_caption_steers_the_image_and_a_latent_fixes_it():
    G = tiny()["G"].eval()
    assert isinstance(G, TextConditional)
    z = G.latents(2, generator=torch.Generator().manual_seed(0))
    red, blue = G.tokens(["a big red square"] * 2), G.tokens(["a small blue heart"] * 2)
    with torch.no_grad():
        assert torch.equal(G.decode(z, red), G.decode(z, red))  # conditioning augmentation's noise is in z
        assert not torch.allclose(G.decode(z, red), G.decode(z, blue))


def test_padding_does_not_change_the_sentence_embedding():
    G = tiny()["G"]
    short = G.tokens(["a red square"])
    longer = torch.cat([short[:, :3], torch.zeros(1, 20, dtype=torch.int64)], dim=1)
    # two computations (a GRU over 12 vs 23 steps, each with its own matmul shapes): float32 rounding may differ per
    # CPU; embeddings are below 1, so 1e-5 is ~100 ulps, while counting the padding would change them by far more
    assert torch.allclose(G.text(short), G.text(longer), atol=1e-5)


def test_conditioning_kl_is_zero_at_the_prior():
    G = tiny()["G"]
    torch.nn.init.zeros_(G.augment.weight)
    torch.nn.init.zeros_(G.augment.bias)
    _, kl = G(G.latents(1), G.tokens(["a red square"]), with_kl=True)
    assert kl.item() == pytest.approx(0.0, abs=1e-7)


def test_matching_aware_d_sees_mismatched_captions_as_fakes(tmp_path):
    from genlab.training.loop import build_step

    for aware in (False, True):
        config = config_from_dict({
            "name": "t", "data": {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 16,
                                                                "n_test": 4}},
            "model": TINY, "objective": {"name": "gan", "matching_aware": aware},
            "train": {"out_dir": str(tmp_path)}})
        data = load_dataset(config.data, "train")
        step = build_step(config, data.spec, torch.device("cpu"), data)
        out = step.phases()[0].loss(data.batch(slice(0, 8)))
        assert ("D(x, wrong condition)" in out.stats) is aware
        if aware:  # L_D = -log D(x, h) - [log(1 - D(x, h')) + log(1 - D(G(z, h), h))] / 2
            assert math.isfinite(out.loss.item())



def test_matching_aware_d_can_take_its_wrong_captions_from_a_field(tmp_path):
    from genlab.training.loop import build_step

    def step_for(objective):
        config = config_from_dict({
            "name": "t", "data": {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 16,
                                                                "n_test": 4}},
            "model": TINY, "objective": {"name": "gan", **objective}, "train": {"out_dir": str(tmp_path)}})
        data = load_dataset(config.data, "train")
        return build_step(config, data.spec, torch.device("cpu"), data), data

    step, data = step_for({"matching_aware": True, "mismatch_field": "caption_one_off"})
    batch = data.batch(slice(0, 8))
    seen = []
    D = step.modules["D"]
    hook = D.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    out = step.phases()[0].loss(batch)
    hook.remove()
    assert math.isfinite(out.loss.item()) and "D(x, wrong condition)" in out.stats
    assert any(torch.equal(c, batch["caption_one_off"]) for c in seen)
    for objective in ({"mismatch_field": "caption_one_off"}, {"matching_aware": True, "mismatch_field": "nope"}):
        with pytest.raises(ConfigError, match="mismatch_field"):
            step_for(objective)


def test_sample_with_a_caption_from_the_command_line(tmp_path, capsys):
    run = genlab.train(config_from_dict({
        "name": "t2i", "data": {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 64,
                                                               "n_test": 8}},
        "model": TINY, "objective": {"name": "gan", "matching_aware": True},
        "train": {"kimg": 0.064, "batch_size": 16, "out_dir": str(tmp_path), "progress_bar": False,
                  "tensorboard": False, "snapshot_every_kimg": 0}}))
    out = tmp_path / "red.png"
    assert main(["sample", str(run), "--text", "a big red square in the upper left", "-n", "4", "-o", str(out)]) == 0
    assert "of 'a big red square in the upper left'" in capsys.readouterr().out and out.is_file()
    assert main(["sample", str(run), "--text", "a purple dragon", "-o", str(out)]) == 2
    assert "unknown words ['dragon', 'purple']" in capsys.readouterr().err


def test_attribute_accuracy_counts_each_attribute_and_all_of_them():
    from genlab.metrics.captions import attribute_accuracy

    expected = torch.tensor([[0, 1, 2, 0, 1, 0], [1, 0, 3, 1, 0, 1]])
    predicted = expected.clone()
    predicted[1, 2] = 5  # one wrong colour
    scores = attribute_accuracy(predicted, expected)
    assert scores["colour"] == 0.5 and scores["shape"] == 1.0 and scores["all"] == 0.5


def test_a_classifier_with_a_head_per_attribute_trains_and_judges(tmp_path):
    from genlab.metrics.captions import attribute_probabilities, caption_accuracy, predicted_attributes

    data = {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 128, "n_test": 16}}
    run = genlab.train(config_from_dict({
        "name": "judge", "data": data,
        "model": {"name": "mnist_classifier", "channels": 4, "feature_dim": 8, "targets": list(ATTRIBUTES)},
        "objective": {"name": "classifier"},
        "train": {"kimg": 0.128, "batch_size": 32, "out_dir": str(tmp_path), "progress_bar": False, "tensorboard": False,
                  "log_every_kimg": 0.128, "snapshot_every_kimg": 0}}))
    logged = (run / "stats.jsonl").read_text()
    assert all(f'"classifier/accuracy/{name}"' in logged for name in ATTRIBUTES)
    judge = genlab.load(run)
    assert predicted_attributes(judge, torch.zeros(3, 3, 32, 32)).shape == (3, len(ATTRIBUTES))
    probabilities = attribute_probabilities(judge, torch.zeros(3, 3, 32, 32))
    assert [p.shape[1] for p in probabilities] == list(judge.head_sizes)
    assert all(torch.allclose(p.sum(1), torch.ones(3)) for p in probabilities)
    scores, images = caption_accuracy(tiny()["G"], judge, n=8)
    assert images.shape == (8, 3, 32, 32) and set(scores) == {*ATTRIBUTES, "all"}
    with pytest.raises(ConfigError, match="not conditioned on text"):
        caption_accuracy(torch.nn.Linear(1, 1), judge, n=2)


def test_attribute_shares_measure_how_much_of_an_embedding_each_attribute_moves():
    from genlab.metrics.captions import attribute_shares

    attributes = random_attributes(4000, torch.Generator().manual_seed(0))
    noise = torch.randn(4000, 8, generator=torch.Generator().manual_seed(1))
    colour_only = torch.nn.functional.one_hot(attributes[:, 2], 6).float() * 10
    shares = attribute_shares(torch.cat([colour_only, 0.1 * noise], dim=1), attributes)
    assert shares["colour"] > 0.99 and max(v for k, v in shares.items() if k != "colour") < 0.01
    unrelated = attribute_shares(noise, attributes)
    assert max(unrelated.values()) < 0.01  # about (values - 1) / n each
    half = attribute_shares(torch.cat([attributes[:, 3:4].float(), attributes[:, 4:5].float()], dim=1), attributes)
    assert half["vertical"] == pytest.approx(0.5, abs=0.02) and half["horizontal"] == pytest.approx(0.5, abs=0.02)
    assert attribute_shares(torch.ones(4000, 3), attributes) == dict.fromkeys(ATTRIBUTES, 0.0)


def test_caption_embedding_shares_follow_the_words_an_encoder_reads():
    from genlab.metrics.captions import caption_embedding_shares

    colour_words = [VOCABULARY.index(word) for word in ATTRIBUTES["colour"]]

    def reads_colour(tokens):  # counts of the colour words alone
        return torch.nn.functional.one_hot(tokens, len(VOCABULARY)).sum(1)[:, colour_words].float()

    shares = caption_embedding_shares(reads_colour, n=2000)
    assert shares["colour"] == pytest.approx(1.0) and shares["shape"] < 0.01
    G = tiny()["G"]
    assert isinstance(G, TextConditional)
    shares = caption_embedding_shares(G.embed_text, n=500)
    assert set(shares) == set(ATTRIBUTES) and all(0 <= v <= 1 for v in shares.values())
