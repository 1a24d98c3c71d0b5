"""The studio's HTTP API over tiny trained runs: what each route returns, and the 4xx answers
for everything a user (or a script) can get wrong."""

from __future__ import annotations

import base64
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from genlab.cli.main import main
from .conftest import INDEX, LOCAL

pytestmark = pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")


def pixels(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))), dtype=np.int16)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sprite_png(size: int = 32) -> bytes:
    """A red square on grey, like the sprites the runs were trained on."""
    array = np.full((size, size, 3), 90, dtype=np.uint8)
    array[8:20, 10:22] = (220, 40, 40)
    return png(Image.fromarray(array))


def upload(client, path: str, data: bytes, **fields):
    return client.post(path, files={"image": ("x.png", data, "image/png")}, data={k: str(v) for k, v in fields.items()})


# ----------------------------------------------------------------------------- runs


def test_runs_describe_their_models_and_what_they_can_do(client, studio_runs):
    runs = client.get("/api/runs").json()
    assert [r["name"] for r in runs] == [p.name for p in studio_runs]
    vae, cgan, edges, labels = (runs[INDEX[k]]["capabilities"] for k in ("vae", "cgan", "edges", "labels"))
    assert vae["sampler"] and vae["encoder"] and not vae["translator"] and vae["latent_dim"] == 6
    assert vae["image_shape"] == [3, 32, 32] and vae["classes"] is None
    assert cgan["sampler"] and not cgan["encoder"] and cgan["classes"] == list("0123456789")
    assert edges["translator"] and edges["source_shape"] == [1, 32, 32] and edges["canvas"]["mode"] == "edges"
    assert labels["canvas"]["mode"] == "labels"
    assert [p["name"] for p in labels["canvas"]["pens"]] == ["background", "square", "ellipse", "heart"]
    assert runs[INDEX["vae"]]["objective"] == "vae" and runs[INDEX["vae"]]["kimg"] > 0
    style = runs[INDEX["style"]]["capabilities"]
    assert style["style_based"] and style["num_ws"] == 8 and not vae["style_based"]


def test_eval_card_is_shown_once_written(client, studio_runs, tmp_path):
    from genlab.studio.runs import ServedRun

    run = ServedRun(0, studio_runs[INDEX["vae"]])
    assert run.summary()["card"] is None
    folder = run.run_dir / "eval" / "mnist-n100-seed0"
    folder.mkdir(parents=True)
    try:
        (folder / "card.json").write_text(json.dumps({"results": {"fid": 12.5}, "warnings": ["n is small"]}))
        assert run.summary()["card"] == {"folder": "mnist-n100-seed0", "command": "", "results": {"fid": 12.5},
                                         "warnings": ["n is small"]}
    finally:
        (folder / "card.json").unlink()
        folder.rmdir()
        folder.parent.rmdir()


# ----------------------------------------------------------------------------- latents


def test_samples_are_seeded_and_their_latents_decode_to_them(client):
    path = f"/api/runs/{INDEX['vae']}"
    first = client.post(f"{path}/samples", json={"seed": 3, "n": 4}).json()
    again = client.post(f"{path}/samples", json={"seed": 3, "n": 4}).json()
    other = client.post(f"{path}/samples", json={"seed": 4, "n": 4}).json()
    assert first == again and first["latents"] != other["latents"]
    assert len(first["images"]) == 4 and len(first["latents"][0]) == 6
    decoded = client.post(f"{path}/decode", json={"z": first["latents"][2]}).json()["image"]
    assert np.abs(pixels(decoded) - pixels(first["images"][2])).max() <= 1


def test_moving_one_slider_changes_the_decoded_image(client):
    path = f"/api/runs/{INDEX['vae']}"
    z = client.post(f"{path}/samples", json={"seed": 0, "n": 1}).json()["latents"][0]
    before = pixels(client.post(f"{path}/decode", json={"z": z}).json()["image"])
    z[0] += 2.5
    after = pixels(client.post(f"{path}/decode", json={"z": z}).json()["image"])
    assert np.abs(after - before).mean() > 0.5


def test_interpolation_strip_runs_from_a_to_b(client):
    path = f"/api/runs/{INDEX['vae']}"
    a, b = client.post(f"{path}/samples", json={"seed": 1, "n": 2}).json()["latents"]
    strip = client.post(f"{path}/interpolate", json={"a": a, "b": b, "steps": 5}).json()["images"]
    assert len(strip) == 5
    ends = [client.post(f"{path}/decode", json={"z": z}).json()["image"] for z in (a, b)]
    assert np.abs(pixels(strip[0]) - pixels(ends[0])).max() <= 1
    assert np.abs(pixels(strip[-1]) - pixels(ends[1])).max() <= 1


def test_conditional_model_asks_for_a_class_it_has(client):
    path = f"/api/runs/{INDEX['cgan']}"
    missing = client.post(f"{path}/samples", json={"seed": 0, "n": 2})
    assert missing.status_code == 400 and "class-conditional with 10 classes" in missing.json()["detail"]
    wrong = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "label": 10})
    assert wrong.status_code == 400 and "out of range" in wrong.json()["detail"]
    by_class = [client.post(f"{path}/samples", json={"seed": 0, "n": 2, "label": k}).json() for k in (1, 7)]
    assert by_class[0]["latents"] == by_class[1]["latents"] and by_class[0]["images"] != by_class[1]["images"]
    unconditional = client.post(f"/api/runs/{INDEX['vae']}/samples", json={"seed": 0, "n": 1, "label": 0})
    assert unconditional.status_code == 400 and "not class-conditional" in unconditional.json()["detail"]


def test_upload_is_encoded_by_a_vae_and_inverted_by_a_gan(client):
    vae = upload(client, f"/api/runs/{INDEX['vae']}/encode", sprite_png(64)).json()
    assert vae["method"] == "encoder" and len(vae["z"]) == 6 and "resized" in vae["note"]
    assert pixels(vae["input"]).shape == (32, 32, 3)
    again = client.post(f"/api/runs/{INDEX['vae']}/decode", json={"z": vae["z"]}).json()["image"]
    assert np.abs(pixels(again) - pixels(vae["reconstruction"])).max() <= 1  # the sliders start from it
    gan = upload(client, f"/api/runs/{INDEX['cgan']}/encode", sprite_png(28), label=0).json()
    assert gan["method"] == "inversion" and len(gan["z"]) == 8 and gan["note"] is None
    assert pixels(gan["input"]).shape == (28, 28)  # grey model: the colour upload is read as grey


def test_a_flow_encodes_an_upload_exactly_and_samples_like_any_latent_model(client):
    """Glow's encoder is its inverse: the upload's latent decodes to the (resized) upload itself."""
    path = f"/api/runs/{INDEX['glow']}"
    caps = client.get(path).json()["capabilities"]
    assert caps["encoder"] and caps["sampler"] and caps["latent_dim"] == 3 * 32 * 32
    flow = upload(client, f"{path}/encode", sprite_png(32)).json()
    assert np.abs(pixels(flow["reconstruction"]) - pixels(flow["input"])).max() <= 1
    assert len(client.post(f"{path}/samples", json={"seed": 0, "n": 2}).json()["images"]) == 2


def test_a_vqvae_encodes_an_upload_to_the_noise_that_draws_its_codes(client):
    """The studio's upload view on a VQ-VAE: the upload's latent is its prior noise, which decodes to its
    reconstruction through the code grid (8 x 8 codes of a 32-pixel sprite)."""
    path = f"/api/runs/{INDEX['vqvae']}"
    caps = client.get(path).json()["capabilities"]
    assert caps["encoder"] and caps["sampler"] and caps["latent_dim"] == 8 * 8
    out = upload(client, f"{path}/encode", sprite_png(32)).json()
    again = client.post(f"{path}/decode", json={"z": out["z"]}).json()["image"]
    assert np.abs(pixels(again) - pixels(out["reconstruction"])).max() <= 1
    assert len(client.post(f"{path}/samples", json={"seed": 0, "n": 2}).json()["images"]) == 2


# ----------------------------------------------------------------------------- translation


def test_drawn_edges_are_translated(client):
    drawing = Image.new("L", (256, 256), 255)
    drawing.paste(0, (60, 60, 200, 66))
    out = upload(client, f"/api/runs/{INDEX['edges']}/translate", png(drawing), seed=1).json()
    assert pixels(out["image"]).shape == (32, 32, 3) and pixels(out["source"]).shape == (32, 32)
    same = upload(client, f"/api/runs/{INDEX['edges']}/translate", png(drawing), seed=1).json()
    assert same["image"] == out["image"]  # the seed fixes pix2pix's dropout noise


def test_a_spade_run_draws_a_label_map_in_the_style_of_an_uploaded_image(client):
    """SPADE in the draw view: the canvas paints the label classes, a test example's label map is a palette
    image, and the output follows the style image sent with it (another style, another image)."""
    path = f"/api/runs/{INDEX['spade']}"
    caps = client.get(path).json()["capabilities"]
    assert caps["translator"] and caps["style_image"] and caps["examples"]
    assert caps["canvas"]["mode"] == "labels"
    assert [p["name"] for p in caps["canvas"]["pens"]] == ["background", "square", "ellipse", "heart"]
    layout = client.get(f"{path}/example?number=0").json()["source"]
    source = png(Image.open(io.BytesIO(base64.b64decode(layout.split(",", 1)[1]))))
    styles = [sprite_png(32), png(Image.fromarray(np.full((32, 32, 3), (30, 160, 60), dtype=np.uint8)))]
    outputs = [client.post(f"{path}/translate", files={"image": ("l.png", source, "image/png"),
                                                       "style": ("s.png", style, "image/png")}).json()["image"]
               for style in styles]
    assert pixels(outputs[0]).shape == (32, 32, 3) and outputs[0] != outputs[1]
    seeded = upload(client, f"{path}/translate", source, seed=3).json()["image"]
    assert seeded == upload(client, f"{path}/translate", source, seed=3).json()["image"]
    not_styled = client.post(f"/api/runs/{INDEX['edges']}/translate", files={"image": ("l.png", source, "image/png"),
                                                                            "style": ("s.png", styles[0], "image/png")})
    assert not_styled.status_code == 409 and "style image" in not_styled.json()["detail"]


def test_each_model_draws_its_signature_grid(client):
    """A column per class for a conditional G, StyleGAN's mixing grid, a row per latent dimension for any sampler."""
    classes = client.post(f"/api/runs/{INDEX['cgan']}/grid", json={"kind": "classes", "columns": 4}).json()
    assert classes["count"] == 4 * 10 and classes["nrow"] == 10 and pixels(classes["image"]).shape[:2] == (122, 302)
    truncated = client.post(f"/api/runs/{INDEX['cgan']}/grid", json={"kind": "classes", "columns": 4, "truncation": 0.5})
    assert truncated.json()["image"] != classes["image"]
    mixing = client.post(f"/api/runs/{INDEX['style']}/grid", json={"kind": "mixing", "rows": 3, "columns": 4,
                                                                    "crossover": 2}).json()
    assert mixing["count"] == (3 + 1) * (4 + 1) and mixing["nrow"] == 5  # sources on top and left, a blank corner
    traversal = client.post(f"/api/runs/{INDEX['vae']}/grid", json={"kind": "traversal", "columns": 5}).json()
    assert traversal["count"] == 6 * 5 and traversal["nrow"] == 5  # its 6 latent dimensions
    unconditional = client.post(f"/api/runs/{INDEX['vae']}/grid", json={"kind": "classes"})
    assert unconditional.status_code == 400 and "class-conditional" in unconditional.json()["detail"]
    assert client.post(f"/api/runs/{INDEX['vae']}/grid", json={"kind": "mixing"}).status_code in (400, 409)
    assert client.post(f"/api/runs/{INDEX['vae']}/grid", json={"kind": "other"}).status_code == 422


def test_a_text_run_offers_its_captions_grammar(client):
    form = client.get(f"/api/runs/{INDEX['text']}").json()["capabilities"]["caption_form"]
    assert form["template"] == "a {size} {colour} {shape} in the {vertical} {horizontal} , {rotation}"
    assert form["choices"]["colour"] == ["red", "yellow", "green", "cyan", "blue", "magenta"]
    assert "caption_form" not in client.get(f"/api/runs/{INDEX['cgan']}").json()["capabilities"]


def test_a_cyclegan_translates_both_ways_and_a_pix2pix_one_way(client):
    from fastapi.testclient import TestClient

    from genlab.studio.app import create_app

    with TestClient(create_app(["zoo:cyclegan-mnist2mnistm"]), base_url="http://127.0.0.1") as zoo:
        assert zoo.get("/api/runs/0").json()["capabilities"]["reverse"]
        ways = {d: upload(zoo, "/api/runs/0/translate", sprite_png(28), direction=d).json()["image"]
                for d in ("AtoB", "BtoA")}
        assert ways["AtoB"] != ways["BtoA"]
    assert not client.get(f"/api/runs/{INDEX['edges']}").json()["capabilities"]["reverse"]
    one_way = upload(client, f"/api/runs/{INDEX['edges']}/translate", sprite_png(), direction="BtoA")
    assert one_way.status_code == 409 and "one way only" in one_way.json()["detail"]


def test_the_page_computes_a_card_in_the_background_with_its_progress(client):
    import time

    run = f"/api/runs/{INDEX['cgan']}"
    assert client.get(f"{run}/eval").json()["state"] in ("none", "done", "failed")  # ("none": no card asked for)
    assert client.get(run).json()["capabilities"]["default_metrics"] == ["fid", "kid", "is", "pr"]
    started = client.post(f"{run}/eval", json={"metrics": ["cond_acc"], "n": 200})
    assert started.status_code == 202 and started.json()["total"] == 1
    deadline = time.monotonic() + 60
    while (job := client.get(f"{run}/eval").json())["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job["state"] == "done" and job["done"] == 1, job
    card = client.get(run).json()["card"]
    assert "conditional_accuracy" in card["results"] and card["command"].endswith("--metrics cond_acc --n 200")
    bad = client.post(f"{run}/eval", json={"metrics": ["fidd"], "n": 200})
    assert bad.status_code == 400 and "fid" in bad.json()["detail"]  # the nearest metric names
    assert client.post(f"{run}/eval", json={"n": 5}).status_code == 422


def test_routes_a_model_cannot_serve_answer_409(client):
    not_translator = upload(client, f"/api/runs/{INDEX['vae']}/translate", sprite_png())
    assert not_translator.status_code == 409 and "does not translate" in not_translator.json()["detail"]
    not_sampler = client.post(f"/api/runs/{INDEX['edges']}/samples", json={"seed": 0, "n": 1})
    assert not_sampler.status_code == 400 and "no latent space" in not_sampler.json()["detail"]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("data, status, words", [
    (b"", 400, "empty"),
    (b"GIF89a not really", 400, "not an image"),
    (sprite_png()[:60], 400, "not an image"),  # truncated
    (b"\0" * (8 * 1024 * 1024 + 1), 413, "over the studio's limit"),
])
def test_bad_uploads_get_a_4xx_with_a_reason(client, data, status, words):
    answer = upload(client, f"/api/runs/{INDEX['edges']}/translate", data)
    assert answer.status_code == status and words in answer.json()["detail"]


def test_image_over_the_pixel_limit_is_refused_from_its_header(client):
    huge = png(Image.new("L", (4200, 4200)))  # 17.6 MP, a few kB of PNG
    answer = upload(client, f"/api/runs/{INDEX['vae']}/encode", huge)
    assert answer.status_code == 413 and "4200x4200" in answer.json()["detail"]


@pytest.mark.parametrize("path, body", [
    ("samples", {"seed": 0, "n": 0}),
    ("samples", {"seed": 0, "n": 10_000}),
    ("samples", {"seed": -1}),
    ("samples", {"seed": 0, "extra": 1}),
    ("samples", {"seed": 0, "truncation": 0}),
    ("decode", {"z": []}),
    ("decode", {"z": [1e9] * 6}),
    ("decode", {"z": "abc"}),
    ("interpolate", {"a": [0] * 6, "b": [0] * 6, "steps": 1}),
])
def test_bad_parameters_get_422(client, path, body):
    assert client.post(f"/api/runs/{INDEX['vae']}/{path}", json=body).status_code == 422


def test_non_finite_latents_and_wrong_lengths_are_refused(client):
    nan = client.post(f"/api/runs/{INDEX['vae']}/decode", content=b'{"z": [NaN, 0, 0, 0, 0, 0]}',
                      headers={"Content-Type": "application/json"})
    assert nan.status_code == 422
    short = client.post(f"/api/runs/{INDEX['vae']}/decode", json={"z": [0.0] * 5})
    assert short.status_code == 400 and "6 values" in short.json()["detail"]


@pytest.mark.parametrize("index, status", [("99", 422), ("-1", 422), ("..%2F..%2Fetc", 404), ("0x1", 422)])
def test_runs_are_addressed_by_index_only(client, index, status):
    assert client.post(f"/api/runs/{index}/decode", json={"z": [0.0] * 6}).status_code == status


# ----------------------------------------------------------------------------- monitor


def test_monitor_returns_new_rows_since_the_last_poll(client, studio_runs):
    lines = (studio_runs[INDEX["cgan"]] / "stats.jsonl").read_text().splitlines()
    first = client.get(f"/api/runs/{INDEX['cgan']}/stats").json()
    assert first["rows"] == [json.loads(line) for line in lines] and first["next"] == len(lines)
    assert {"D/D(x)", "D/D(G(z))", "G/loss"} <= set(first["rows"][-1])
    assert client.get(f"/api/runs/{INDEX['cgan']}/stats", params={"since": first["next"]}).json()["rows"] == []
    assert client.get(f"/api/runs/{INDEX['cgan']}/stats", params={"since": -1}).status_code == 422


def test_monitor_follows_a_run_as_it_writes_and_skips_a_half_written_row(studio_runs, tmp_path):
    """A run that has just started: no checkpoint yet (the model waits), stats arriving."""
    import shutil

    from genlab.studio.runs import ServedRun

    run_dir = tmp_path / "00000-live"
    run_dir.mkdir()
    for name in ("config.yaml", "data.json"):
        shutil.copy(studio_runs[INDEX["vae"]] / name, run_dir / name)
    run = ServedRun(0, run_dir)
    assert run.summary()["capabilities"]["waiting"].endswith("appears once training has written one")
    assert run.stats(0)["rows"] == []
    with open(run_dir / "stats.jsonl", "w") as f:
        f.write(json.dumps({"kimg": 1.0, "loss": 1.0}) + "\n" + '{"kimg": 2.0, "lo')
    page = run.stats(0)
    assert [r["kimg"] for r in page["rows"]] == [1.0] and page["next"] == 1
    with open(run_dir / "stats.jsonl", "a") as f:
        f.write('ss": 0.5}\n')
    assert [r["kimg"] for r in run.stats(page["next"])["rows"]] == [2.0]


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_requests_share_one_loaded_model(studio_runs, monkeypatch):
    import genlab.studio.runs as served
    from fastapi.testclient import TestClient
    from genlab.studio.app import create_app

    loads = []
    real_load = served.load
    monkeypatch.setattr(served, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    app = create_app([studio_runs[INDEX["vae"]]])
    z = [0.5, -1.0, 0.0, 2.0, 0.1, -0.3]
    answers, errors = [], []

    def client_thread() -> None:
        try:
            with TestClient(app, base_url=LOCAL) as c:
                for _ in range(6):
                    answer = c.post("/api/runs/0/decode", json={"z": z})
                    answers.append((answer.status_code, answer.json()["image"]))
        except Exception as err:  # reported below: a thread's exception would vanish otherwise
            errors.append(err)

    threads = [threading.Thread(target=client_thread) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(answers) == 36 and {status for status, _ in answers} == {200}
    assert len({image for _, image in answers}) == 1  # every request saw the same model, unharmed
    assert len(loads) == 1


# ----------------------------------------------------------------------------- the game


def test_game_plays_steps_and_keeps_its_history(client):
    game = client.post("/api/game", json={"data": "gaussian", "seed": 1}).json()
    assert game["step"] == 0 and game["dim"] == 1 and len(game["history"]) == 1
    after = client.post(f"/api/game/{game['id']}/step", json={"n": 10}).json()
    assert after["step"] == 10 and [h["step"] for h in after["history"]] == [0, 10]
    assert len(after["d"]) == len(after["x"]) == len(after["d_star"])
    ring = client.post("/api/game", json={"data": "ring"}).json()
    assert ring["dim"] == 2 and len(ring["d"]) == ring["grid"] and len(ring["d"][0]) == ring["grid"]


def test_each_player_steps_alone_and_the_settings_change_mid_game(client):
    game = client.post("/api/game", json={"data": "ring"}).json()
    assert len(game["arrows"]) == 64 and all(len(a) == 4 for a in game["arrows"])
    d_alone = client.post(f"/api/game/{game['id']}/step", json={"n": 3, "players": "D"}).json()
    assert d_alone["fake"] == game["fake"] and d_alone["d"] != game["d"] and d_alone["step"] == 0  # G did not move
    g_alone = client.post(f"/api/game/{game['id']}/step", json={"n": 3, "players": "G"}).json()
    assert g_alone["d"] == d_alone["d"] and g_alone["fake"] != d_alone["fake"] and g_alone["step"] == 3
    assert g_alone["history"][-1]["g_grad_norm"] > 0 and game["history"][-1]["g_grad_norm"] is None
    tuned = client.patch(f"/api/game/{game['id']}", json={"g_loss": "minimax", "k": 3, "lr_g": 0.01}).json()
    assert tuned["settings"] == {"k": 3, "lr_d": 0.002, "lr_g": 0.01, "g_loss": "minimax"} and tuned["step"] == 3
    assert client.patch(f"/api/game/{game['id']}", json={"data": "grid"}).status_code == 422  # a new game's
    assert client.patch(f"/api/game/{game['id']}", json={"k": 0}).status_code == 422
    assert client.patch("/api/game/nope", json={"k": 2}).status_code == 404


def test_the_saturating_loss_gives_g_a_weaker_push_while_d_wins():
    """Goodfellow et al.'s motivation for the non-saturating loss, as the game's arrows and gradient norm show it."""
    import numpy as np

    from genlab.experiments.game import GameConfig, ToyGame

    pushes = {}
    for loss in ("minimax", "nonsaturating"):
        game = ToyGame(GameConfig(data="ring", g_loss=loss, k=5))
        game.play(20)
        view = game.view()
        pushes[loss] = (np.linalg.norm(np.array(view["arrows"])[:, 2:], axis=1).mean(), game.g_grad_norm)
        both = view["history"][-1]["push"]  # both losses' push on the same points, whichever plays
        assert both["minimax"] < 0.5 * both["nonsaturating"]
    assert pushes["minimax"][0] < 0.5 * pushes["nonsaturating"][0] and pushes["minimax"][1] < pushes["nonsaturating"][1]


def test_a_collapsed_generator_is_drawn_and_flagged_by_the_health_monitors_rule():
    import torch

    from genlab.experiments.game import GameConfig, ToyGame

    game = ToyGame(GameConfig(data="ring"))
    game.play(20)
    assert game.view()["warnings"] == []
    with torch.no_grad():  # every latent to one point: G collapsed
        [m for m in game.G.modules() if isinstance(m, torch.nn.Linear)][-1].weight.zero_()
    game.play(1, "D")
    view = game.view()  # one point has no covariance: the view still draws it
    assert any("mode collapse" in w for w in view["warnings"]) and view["jsd"] > 0.5


def test_a_game_on_a_distribution_the_user_drew(client):
    points = [[-2.0, -2.0], [2.0, 2.0], [2.0, -2.0]]
    game = client.post("/api/game", json={"data": "drawn", "points": points}).json()
    assert game["dim"] == 2 and game["data"] == "drawn"
    real = np.array(game["real"])  # the data are the drawn points, each blurred by 0.2
    nearest = np.linalg.norm(real[:, None] - np.array(points)[None], axis=-1).min(1)
    assert nearest.max() < 1.5 and np.median(nearest) < 0.4
    assert client.post(f"/api/game/{game['id']}/step", json={"n": 5}).json()["step"] == 5
    for bad in ({"data": "drawn"}, {"data": "ring", "points": points}, {"data": "drawn", "points": [[9.0, 0.0]]}):
        answer = client.post("/api/game", json=bad)  # the game's own checks: 400 with the reason
        assert answer.status_code == 400 and "points" in answer.json()["detail"]
    assert client.post("/api/game", json={"data": "drawn", "points": [[0.0, 0.0]] * 201}).status_code == 422


def test_game_refuses_unknown_ids_and_bad_settings(client):
    assert client.post("/api/game/nope/step", json={"n": 1}).status_code == 404
    assert client.post("/api/game", json={"data": "spiral"}).status_code == 422
    assert client.post("/api/game", json={"k": 0}).status_code == 422
    game = client.post("/api/game", json={}).json()
    assert client.post(f"/api/game/{game['id']}/step", json={"n": 100_000}).status_code == 422


def test_only_the_newest_games_are_kept(client):
    from genlab.studio.app import MAX_GAMES

    first = client.post("/api/game", json={}).json()["id"]
    for _ in range(MAX_GAMES):
        client.post("/api/game", json={})
    assert client.post(f"/api/game/{first}/step", json={"n": 1}).status_code == 404


# ----------------------------------------------------------------------------- command line


def test_studio_command_refuses_what_it_cannot_serve(tmp_path, capsys):
    assert main(["studio", str(tmp_path)]) == 2
    assert "is not a genlab run folder" in capsys.readouterr().err
    assert main(["studio", "--port", "70000"]) == 2
    assert "is not a TCP port" in capsys.readouterr().err


def test_studio_listens_on_loopback_unless_told_otherwise():
    from genlab.cli.main import build_parser

    assert build_parser().parse_args(["studio", "run"]).host == "127.0.0.1"


@pytest.mark.parametrize("host, answers_any_name, warned", [("127.0.0.1", False, False), ("::1", False, False),
                                                            ("0.0.0.0", True, True)])
def test_studio_checks_host_names_only_on_loopback(monkeypatch, capsys, host, answers_any_name, warned):
    """On another address the studio cannot know the names it is reached by, so it answers any and warns."""
    import uvicorn
    from fastapi.testclient import TestClient

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    assert main(["studio", "--host", host]) == 0
    assert served["host"] == host and ("warning: serving on" in capsys.readouterr().out) == warned
    with TestClient(served["app"], base_url="http://studio.example") as other:
        assert (other.get("/api/runs").status_code == 200) == answers_any_name
    with TestClient(served["app"], base_url=f"http://[::1]:8000" if ":" in host else f"http://{host}:8000") as own:
        assert own.get("/api/runs").status_code == 200


def test_test_examples_give_a_real_source_and_its_target(client):
    first = client.get(f"/api/runs/{INDEX['labels']}/example", params={"number": 0}).json()
    assert pixels(first["source"]).shape == pixels(first["target"]).shape == (32, 32, 3)
    palette = {tuple(p["color"]) for p in client.get(f"/api/runs/{INDEX['labels']}").json()["capabilities"]["canvas"]["pens"]}
    assert {tuple(c) for c in pixels(first["source"]).reshape(-1, 3).tolist()} <= palette  # a real label map
    again = client.get(f"/api/runs/{INDEX['labels']}/example", params={"number": 0}).json()
    other = client.get(f"/api/runs/{INDEX['labels']}/example", params={"number": 1}).json()
    assert again == first and other["source"] != first["source"]
    wrapped = client.get(f"/api/runs/{INDEX['labels']}/example", params={"number": 32}).json()  # 32 test examples
    assert wrapped == first
    not_paired = client.get(f"/api/runs/{INDEX['vae']}/example")
    assert not_paired.status_code == 400 and "no paired source and target" in not_paired.json()["detail"]


@pytest.mark.slow
def test_genlab_studio_command_serves_the_page(studio_runs):
    """The command a user types: the page, its script and the API from a child process."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "genlab", "studio", str(studio_runs[INDEX["vae"]]),
                               "--port", str(port), "--threads", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}/" in server.stdout.readline()
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "the studio did not come up"
                time.sleep(0.1)
        assert page.status_code == 200 and "genlab studio" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/static/studio.js").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/runs").json()[0]["model"] == "conv_vae"
        for name in ("localhost", "127.0.0.1", "[::1]"):  # its own names, with its port or without
            for host in (name, f"{name}:{port}"):
                assert httpx.get(f"http://127.0.0.1:{port}/api/runs", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", ""):  # DNS rebinding's names
            refused = httpx.get(f"http://127.0.0.1:{port}/api/runs", headers={"Host": host})
            assert refused.status_code == 400, host
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_styles_of_two_samples_mix(client):
    path = f"/api/runs/{INDEX['style']}"
    a, b = client.post(f"{path}/samples", json={"seed": 0, "n": 2}).json()["latents"]
    only_a = client.post(f"{path}/mix", json={"a": a, "b": b, "crossover": 8}).json()["image"]
    only_b = client.post(f"{path}/mix", json={"a": a, "b": b, "crossover": 0}).json()["image"]
    assert np.abs(pixels(only_a) - pixels(client.post(f"{path}/decode", json={"z": a}).json()["image"])).max() <= 1
    assert np.abs(pixels(only_b) - pixels(client.post(f"{path}/decode", json={"z": b}).json()["image"])).max() <= 1
    bad = client.post(f"{path}/mix", json={"a": a, "b": b, "crossover": 9})
    assert bad.status_code == 400 and "crossover must be 0..8" in bad.json()["detail"]
    not_style = client.post(f"/api/runs/{INDEX['vae']}/mix", json={"a": [0.0] * 6, "b": [0.0] * 6, "crossover": 1})
    assert not_style.status_code == 400 and "no mapping network" in not_style.json()["detail"]


def test_text_to_image_runs_take_a_caption(client):
    path = f"/api/runs/{INDEX['text']}"
    assert client.get(path).json()["capabilities"]["text"]
    red = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "text": "a big red square"}).json()
    blue = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "text": "a small blue heart"}).json()
    assert red["latents"] == blue["latents"] and red["images"] != blue["images"]
    again = client.post(f"{path}/decode", json={"z": red["latents"][0], "text": "a big red square"}).json()["image"]
    assert np.abs(pixels(again) - pixels(red["images"][0])).max() <= 1
    bad = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "text": "a purple dragon"})
    assert bad.status_code == 400 and "unknown words" in bad.json()["detail"]
    not_text = client.post(f"/api/runs/{INDEX['vae']}/samples", json={"seed": 0, "n": 1, "text": "a red square"})
    assert not_text.status_code == 400 and "not conditioned on text" in not_text.json()["detail"]


def test_diffusion_runs_sample_with_chosen_steps_and_guidance_and_show_their_denoising(client):
    path = f"/api/runs/{INDEX['flow']}"
    caps = client.get(path).json()["capabilities"]
    assert caps["iterative"] == {"steps": 4, "sampler": "euler", "guidance": 1.0} and caps["encoder"]
    plain = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "label": 3}).json()
    fewer = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "label": 3, "steps": 1}).json()
    guided = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "label": 3, "guidance": 4.0}).json()
    assert plain["latents"] == fewer["latents"] == guided["latents"]
    assert plain["images"] != fewer["images"] and plain["images"] != guided["images"]
    z = plain["latents"][0]
    again = client.post(f"{path}/decode", json={"z": z, "label": 3}).json()["image"]
    assert np.abs(pixels(again) - pixels(plain["images"][0])).max() <= 1  # the request's settings did not stick
    strip = client.post(f"{path}/denoise", json={"z": z, "label": 3}).json()["images"]
    assert len(strip) == 5  # the noise and the state after each of the 4 steps
    assert np.abs(pixels(strip[-1]) - pixels(plain["images"][0])).max() <= 1
    assert pixels(strip[0]).std() > pixels(strip[-1]).std() * 0.5  # it starts as noise
    assert len(client.post(f"{path}/denoise", json={"z": z, "label": 3, "steps": 16}).json()["images"]) == 8


def test_a_text_diffusion_run_samples_and_denoises_a_caption_with_guidance(client):
    path = f"/api/runs/{INDEX['text_flow']}"
    caps = client.get(path).json()["capabilities"]
    assert caps["text"] and caps["iterative"]["steps"] == 2 and caps["classes"] is None
    caption = "a big red square in the upper left , upright"
    plain = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "text": caption}).json()
    guided = client.post(f"{path}/samples", json={"seed": 0, "n": 2, "text": caption, "guidance": 4.0}).json()
    assert plain["latents"] == guided["latents"] and plain["images"] != guided["images"]
    z = guided["latents"][0]
    strip = client.post(f"{path}/denoise", json={"z": z, "text": caption, "guidance": 4.0}).json()["images"]
    assert len(strip) == 3 and np.abs(pixels(strip[-1]) - pixels(guided["images"][0])).max() <= 1
    bad = client.post(f"{path}/denoise", json={"z": z, "text": "a purple square"})
    assert bad.status_code == 400 and "unknown words" in bad.json()["detail"]


def test_steps_and_guidance_are_refused_where_they_do_not_apply(client):
    vae = f"/api/runs/{INDEX['vae']}"
    one_pass = client.post(f"{vae}/samples", json={"seed": 0, "n": 1, "steps": 4})
    assert one_pass.status_code == 400 and "samples in one pass" in one_pass.json()["detail"]
    no_strip = client.post(f"{vae}/denoise", json={"z": [0.0] * 6})
    assert no_strip.status_code == 400 and "no denoising steps" in no_strip.json()["detail"]
    too_many = client.post(f"/api/runs/{INDEX['flow']}/samples", json={"seed": 0, "n": 1, "label": 0, "steps": 257})
    assert too_many.status_code == 422
