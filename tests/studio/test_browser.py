"""The studio end to end in headless Chromium (Debian's package, driven by Playwright for Python
through ``executable_path``; Playwright's own browser download is never used).

The fixture installs Chromium with apt-get where it is missing and the test runs as root; the
tests skip, saying why, only where it cannot be installed, and never in CI (CI=true), where that fails. Screenshots of every view are
written to ``$GENLAB_STUDIO_SHOTS`` when that is set (to look at them), else to a temp folder.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from PIL import Image

from .conftest import INDEX

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow  # the slow tier (make test-slow)


def unavailable(reason: str) -> NoReturn:
    """Skip where Chromium cannot be had; in CI (CI=true) fail instead, so that no browser test is lost silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}")
    pytest.skip(reason)


def find_or_install_chromium() -> str:
    """Path of a Chromium binary, installed from Debian's packages if needed; skips (fails in CI) otherwise."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        unavailable("no chromium on PATH and no way to install it here (needs apt-get as root): "
                    "apt-get install chromium, then rerun")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            unavailable(f"could not install chromium ({' '.join(command)}: {done.stderr.strip()[-300:]})")
    if path := shutil.which("chromium"):
        return path
    unavailable("apt-get installed chromium but no chromium binary is on PATH")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("playwright is a dev dependency: pip install -e '.[dev]'")
    executable = find_or_install_chromium()
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("GENLAB_STUDIO_SHOTS") or tmp_path_factory.mktemp("studio-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, studio_url):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(studio_url)
    page.wait_for_selector("#samples-grid img")
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def image_of(page, selector: str) -> np.ndarray:
    src = page.get_attribute(selector, "src")
    assert src and src.startswith("data:image/png;base64,"), f"{selector} shows no image"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"), dtype=np.int16)


def wait_for_new_src(page, selector: str, old: str | None) -> None:
    page.wait_for_function("([sel, old]) => { const s = document.querySelector(sel).getAttribute('src');"
                           " return s && s.startsWith('data:') && s !== old; }", arg=[selector, old], timeout=20_000)


def assert_slider_changes_image(page, dim: int, value: float) -> None:
    """Move latent slider ``dim`` to ``value``: the decoded image must change visibly (mean pixel difference)."""
    before_src = page.get_attribute("#latent-image", "src")
    before = image_of(page, "#latent-image")
    page.locator("#sliders input").nth(dim).fill(str(value))
    wait_for_new_src(page, "#latent-image", before_src)
    assert np.abs(image_of(page, "#latent-image") - before).mean() > 0.5


def stroke(page, points, steps: int = 6) -> None:
    """Drag the mouse on the drawing canvas through ``points`` (pixels from its top-left corner)."""
    box = page.locator("#canvas").bounding_box()
    (x0, y0), *rest = points
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for x, y in rest:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)
    page.mouse.up()


def choose_run(page, name: str) -> None:
    page.select_option("#run-select", str(INDEX[name]))


def test_samples_appear_and_new_samples_replace_them(page, shots):
    first = page.locator("#samples-grid img").nth(0).get_attribute("src")
    assert page.locator("#samples-grid img").count() == 16
    page.screenshot(path=shots / "samples.png")
    page.click("#new-samples")
    wait_for_new_src(page, "#samples-grid img:nth-child(1)", first)
    assert page.input_value("#seed") == "1"


def test_a_slider_changes_the_decoded_image(page, shots):
    page.locator("#samples-grid img").nth(3).click()
    page.click("#tab-latent")
    assert_slider_changes_image(page, 0, 2.5)
    page.screenshot(path=shots / "latent.png")
    page.click("#reset-sliders")
    page.wait_for_function("document.querySelector('#sliders input').value !== '2.5'")


def test_interpolating_between_two_picked_samples(page):
    page.locator("#samples-grid img").nth(0).click()
    page.locator("#samples-grid img").nth(1).click()
    page.click("#tab-latent")
    page.fill("#interp-steps", "6")
    page.click("#interpolate")
    page.wait_for_function("document.querySelectorAll('#interp-strip img').length === 6")


def test_style_mixing_of_two_picked_samples(page, shots):
    choose_run(page, "style")
    page.wait_for_selector("#samples-grid img")
    page.locator("#samples-grid img").nth(0).click()
    page.locator("#samples-grid img").nth(1).click()
    page.click("#tab-latent")
    wait_for_new_src(page, "#mix-image", None)
    before = page.get_attribute("#mix-image", "src")
    page.locator("#crossover").fill("0")  # every layer from B
    wait_for_new_src(page, "#mix-image", before)
    page.screenshot(path=shots / "style-mixing.png")


def test_a_caption_box_for_text_to_image_runs(page):
    choose_run(page, "text")
    page.wait_for_selector("#sample-text", state="visible")
    page.wait_for_selector("#samples-grid img")
    first = page.locator("#samples-grid img").nth(0).get_attribute("src")
    page.fill("#sample-text", "a small blue heart in the lower right")
    page.press("#sample-text", "Enter")
    page.locator("#sample-text").blur()  # "change" fires on commit
    wait_for_new_src(page, "#samples-grid img:nth-child(1)", first)


def test_a_caption_is_composed_from_the_attribute_words_as_choices(page, shots):
    choose_run(page, "text")
    page.wait_for_selector("#caption-form select")
    slots = page.eval_on_selector_all("#caption-form select", "ss => ss.map((s) => s.title)")
    assert slots == ["size", "colour", "shape", "vertical", "horizontal", "rotation"]  # the template's order
    page.wait_for_selector("#samples-grid img")
    first = page.locator("#samples-grid img").nth(0).get_attribute("src")
    page.select_option("#caption-colour", "blue")
    assert page.input_value("#sample-text") == "a big blue square in the upper left , upright"
    wait_for_new_src(page, "#samples-grid img:nth-child(1)", first)
    page.screenshot(path=shots / "caption-form.png")


def test_a_diffusion_run_shows_its_steps_guidance_and_denoising_strip(page, shots):
    choose_run(page, "flow")
    page.wait_for_selector("#sample-steps", state="visible")
    page.wait_for_selector("#guidance", state="visible")
    page.wait_for_function("document.querySelectorAll('#denoise-strip img').length === 5", timeout=20_000)
    first = page.locator("#samples-grid img").nth(0).get_attribute("src")
    page.fill("#sample-steps", "2")
    page.locator("#sample-steps").blur()  # "change" fires on commit
    wait_for_new_src(page, "#samples-grid img:nth-child(1)", first)
    page.wait_for_function("document.querySelectorAll('#denoise-strip img').length === 3", timeout=20_000)
    page.screenshot(path=shots / "diffusion.png")
    choose_run(page, "vae")
    assert not page.locator("#sample-steps").is_visible() and not page.locator("#denoising").is_visible()


def test_uploaded_image_is_encoded_then_edited(page, shots, tmp_path):
    picture = np.full((48, 48, 3), 80, dtype=np.uint8)
    picture[10:30, 14:34] = (40, 200, 60)
    Image.fromarray(picture).save(tmp_path / "mine.png")
    page.click("#tab-latent")
    page.set_input_files("#upload-input", str(tmp_path / "mine.png"))
    wait_for_new_src(page, "#upload-recon", None)
    assert "MSE" in page.text_content("#upload-caption")
    assert_slider_changes_image(page, 1, -2.5)
    page.screenshot(path=shots / "upload-edit.png")


def test_drawing_on_the_canvas_gives_a_translation(page, shots):
    choose_run(page, "edges")
    page.wait_for_selector("#tab-translate[aria-selected=true]")
    stroke(page, [(50, 60), (200, 70), (110, 210)], steps=8)
    wait_for_new_src(page, "#translation", None)
    assert image_of(page, "#translation").shape == (32, 32, 3)
    page.screenshot(path=shots / "translate-edges.png")


def test_label_map_canvas_offers_the_classes_as_pens(page, shots):
    choose_run(page, "labels")
    page.wait_for_selector("#tab-translate[aria-selected=true]")
    assert page.locator("#pens button").all_text_contents() == ["background", "square", "ellipse", "heart"]
    page.locator("#pens button").nth(3).click()
    stroke(page, [(90, 90), (160, 160)])
    wait_for_new_src(page, "#translation", None)
    drawn = page.get_attribute("#translation", "src")
    page.click("#example-source")  # a real label map from the test split, drawn over
    wait_for_new_src(page, "#example-target", None)
    wait_for_new_src(page, "#translation", drawn)
    page.screenshot(path=shots / "translate-labels.png")


def test_a_label_map_and_a_style_image_give_a_spade_synthesis(page, shots, tmp_path):
    choose_run(page, "spade")
    page.wait_for_selector("#tab-translate[aria-selected=true]")
    assert page.locator("#style-input").is_visible()
    page.locator("#pens button").nth(1).click()
    stroke(page, [(60, 60), (180, 170)])
    wait_for_new_src(page, "#translation", None)
    seeded = page.get_attribute("#translation", "src")
    Image.fromarray(np.full((32, 32, 3), (40, 80, 220), dtype=np.uint8)).save(tmp_path / "blue.png")
    page.set_input_files("#style-input", str(tmp_path / "blue.png"))
    wait_for_new_src(page, "#translation", seeded)
    assert page.get_attribute("#style-image", "src")
    page.screenshot(path=shots / "translate-spade.png")


@pytest.mark.parametrize("data", ["mixture", "ring"])
def test_ten_steps_of_the_game_update_the_plot(page, shots, data):
    page.click("#tab-game")
    page.select_option("#game-data", data)
    page.click("#game-new")
    page.wait_for_function("([data]) => state.game && state.game.data === data && state.game.step === 0"
                           " && document.getElementById('value-plot').dataset.points === '1'", arg=[data])
    plot_before = page.evaluate("document.getElementById('value-plot').toDataURL()")
    page.click("#game-step10")
    page.wait_for_function("document.getElementById('value-plot').dataset.points === '2'")
    assert page.text_content("#game-step-label").startswith("step 10:")
    assert page.evaluate("document.getElementById('value-plot').toDataURL()") != plot_before
    page.screenshot(path=shots / f"game-{data}.png")


def test_the_game_steps_d_alone_g_alone_and_changes_its_loss_while_playing(page, shots):
    page.click("#tab-game")
    page.select_option("#game-data", "ring")
    page.wait_for_function("state.game && state.game.data === 'ring' && state.game.step === 0")
    heat = "document.getElementById('game-field').toDataURL()"
    before, fake = page.evaluate(heat), page.evaluate("JSON.stringify(state.game.fake)")
    page.click("#game-step-d")  # D moves, G's points stay
    page.wait_for_function("(old) => document.getElementById('game-field').toDataURL() !== old", arg=before)
    assert page.evaluate("JSON.stringify(state.game.fake)") == fake and page.evaluate("state.game.step") == 0
    d = page.evaluate("JSON.stringify(state.game.d)")
    page.click("#game-step-g")  # G moves, D stays
    page.wait_for_function("state.game.step === 1")
    assert page.evaluate("JSON.stringify(state.game.d)") == d and page.evaluate("JSON.stringify(state.game.fake)") != fake
    assert "‖∇G‖" in page.text_content("#game-step-label")
    page.select_option("#game-loss", "minimax")  # mid-game: the same game, another loss
    page.wait_for_function("state.game.settings.g_loss === 'minimax' && state.game.step === 1")
    page.click("#game-step10")
    page.wait_for_function("document.getElementById('grad-plot').dataset.points === '3'")  # steps 0, 1, 11
    page.screenshot(path=shots / "game-players.png")


def test_the_game_plays_on_a_distribution_drawn_with_the_mouse(page, shots):
    page.click("#tab-game")
    page.select_option("#game-data", "drawn")
    box = page.locator("#game-field").bounding_box()
    for fx, fy in ((0.25, 0.25), (0.75, 0.25), (0.5, 0.8)):  # three clicks: three modes
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    assert page.text_content("#game-field-caption") == "your data: 3 points"
    page.click("#game-new")
    page.wait_for_function("state.game && state.game.data === 'drawn'")
    top_left = page.evaluate("state.drawn[0]")
    assert top_left[0] < 0 < top_left[1]  # x left, y up, as on the heat map
    page.click("#game-step10")
    page.wait_for_function("state.game.step === 10")
    page.screenshot(path=shots / "game-drawn.png")


@pytest.mark.parametrize("run, kinds", [("cgan", ["classes", "traversal"]), ("style", ["mixing", "traversal"]),
                                        ("vae", ["traversal"])])
def test_each_model_shows_its_signature_grids(page, shots, run, kinds):
    choose_run(page, run)
    page.click("#tab-grids")
    assert page.eval_on_selector_all("#grid-kind option", "os => os.map((o) => o.value)") == kinds
    wait_for_new_src(page, "#grid-image", None)  # the first grid appears when the tab opens
    first = page.get_attribute("#grid-image", "src")
    control = {"classes": "#grid-truncation", "mixing": "#grid-crossover", "traversal": "#grid-span"}[kinds[0]]
    page.fill(control, "1")  # truncation 1, crossover 1, span 1: another grid
    page.locator(control).blur()
    wait_for_new_src(page, "#grid-image", first)
    assert page.locator(control).is_visible() and page.text_content("#grid-hint")
    page.screenshot(path=shots / f"grid-{run}.png")


def test_two_runs_side_by_side_with_the_same_seeds_their_cards_and_one_chart(page, shots):
    page.click("#tab-compare")
    for name in ("cgan", "flow"):
        page.check(f"#compare-runs input[value='{INDEX[name]}']")
    page.click("#compare-go")
    page.wait_for_function("document.querySelectorAll('#compare-samples .strip img').length === 16")
    assert page.locator("#compare-cards tr").count() == 3  # a header and a row per run
    page.wait_for_function("document.getElementById('compare-chart').dataset.axes?.startsWith('kimg|')")
    assert page.locator("#compare-curve option").count() >= 1 and "flow" in page.text_content("#compare-legend")
    page.screenshot(path=shots / "compare.png")


def test_a_run_without_a_card_computes_one_from_the_page(page, shots):
    choose_run(page, "flow")  # an MNIST run whose card no other test writes
    page.wait_for_selector("#eval-start")
    assert "no eval card yet" in page.text_content("#run-summary")
    page.fill("#eval-metrics", "pr")
    page.select_option("#eval-n", "500")
    page.click("#eval-start")
    page.wait_for_function("document.querySelector('#run-summary').textContent.includes('precision =')", timeout=120_000)
    assert "genlab eval" in page.text_content("#run-summary .card")  # the card says how to make it again
    page.screenshot(path=shots / "eval-card.png")


def test_monitor_plots_the_training_log(page, shots):
    choose_run(page, "cgan")
    page.click("#tab-monitor")
    page.wait_for_function("document.querySelectorAll('#monitor-charts canvas').length >= 3")
    captions = " ".join(page.locator("#monitor-charts figcaption").all_text_contents())
    assert "D/D(x)" in captions and "D/D(G(z))" in captions and "G/loss" in captions
    axes = page.eval_on_selector_all("#monitor-charts canvas", "cs => cs.map((c) => c.dataset.axes)")
    assert all(a.startswith("kimg|") for a in axes) and "kimg|images / s" in axes and "kimg|D's output" in axes
    page.screenshot(path=shots / "monitor.png")
    page.emulate_media(color_scheme="dark")  # the page follows the system's theme
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(20, 23, 28)"
    page.screenshot(path=shots / "monitor-dark.png")


def test_errors_are_shown_to_the_user(page):
    choose_run(page, "cgan")  # conditional: the page passes the picked class
    page.wait_for_selector("#samples-grid img")
    page.fill("#truncation", "50")  # beyond the API's bound
    page.click("#new-samples")
    page.wait_for_selector("#status.error")
    assert "sampling" in page.text_content("#status")


def test_the_zoo_opens_with_each_models_view_working_at_once(browser, zoo_url, shots):
    """``genlab studio --zoo``: every generator of the zoo is in the run menu, and choosing one shows its view
    working without training anything: samples for a sampler (a caption box for a text model, the denoising
    strip for diffusion), the canvas for a translator, whose stroke is translated."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{zoo_url}/api/runs") as answer:
        runs = json.load(answer)
    names = [run["name"] for run in runs]
    assert {"mnist-cgan", "cyclegan-mnist2mnistm", "spade-sprites", "text-flow-sprites"} <= set(names)
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(zoo_url)
    for run in runs:
        page.select_option("#run-select", str(run["index"]))
        caps = run["capabilities"]
        if caps["translator"]:
            page.click("#tab-translate")  # the page keeps the view it was on when the new run has it
            old = page.get_attribute("#translation", "src")
            stroke(page, [(60, 60), (180, 170)])
            wait_for_new_src(page, "#translation", old)
            if caps["reverse"]:  # CycleGAN: the same drawing through the reverse G
                assert page.locator("#translate-direction").is_visible()
                forward = page.get_attribute("#translation", "src")
                page.select_option("#translate-direction", "BtoA")
                wait_for_new_src(page, "#translation", forward)
            else:
                assert not page.locator("#translate-direction").is_visible()
        elif not caps["sampler"]:  # no image to show (Social GAN's trajectories): its training curves
            page.wait_for_selector("#tab-monitor[aria-selected=true]")
            page.wait_for_function("document.querySelectorAll('#monitor-charts canvas').length > 0")
        else:
            page.click("#tab-samples")
            page.wait_for_function("document.querySelectorAll('#samples-grid img').length > 0", timeout=60_000)
            if caps["text"]:
                assert page.locator("#sample-text").is_visible()
            if caps.get("iterative"):
                page.wait_for_function("document.querySelectorAll('#denoise-strip img').length > 0", timeout=60_000)
            page.click("#tab-grids")  # its signature grid (class x seed, style mixing, or a traversal)
            page.wait_for_function("document.getElementById('grid-image').getAttribute('src')", timeout=60_000)
            page.screenshot(path=shots / f"zoo-{run['name']}-grid.png")
            page.click("#tab-samples")
        assert not page.locator("#status.error").count(), page.text_content("#status")
        # its shipped eval card, with the command that made it (or the command that would)
        page.wait_for_function("(name) => document.querySelector('#run-summary').textContent.includes(name)",
                               arg=f"genlab eval zoo:{run['name']}")
        page.screenshot(path=shots / f"zoo-{run['name']}.png")
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
