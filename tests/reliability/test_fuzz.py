"""Property-based fuzzing of what users type: config files, ``--set`` overrides and command lines.

Whatever the input, ``genlab`` ends in exit code 0 or 2 (argparse's own errors exit 2 through
SystemExit), never in a traceback; and no run folder is left behind unless a run was trained
(each one left has a checkpoint). Every test runs in an empty working directory, so that a
stray ``runs/`` would show. The examples are fixed (derandomized) and bounded in number and size,
so CI sees the same few hundred cases in a few seconds; GENLAB_FUZZ_SCALE=10 tries ten times as many.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import shutil
import typing
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from genlab.cli.main import main
from genlab.config import TrainConfig
from genlab.registry import DATASETS, MODELS, OBJECTIVES
from genlab.runs.folder import RUN_NUMBER

from .conftest import fuzz_examples
from .test_images import user_files
from .test_kill import RECIPES as KILL_RECIPES

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

EXAMPLES = {"config": 100, "overrides": 100, "start": 40, "cli": 160}  # per test, times GENLAB_FUZZ_SCALE


def examples(test: str) -> settings:
    return fuzz_examples(EXAMPLES[test])


def genlab(argv: list[str]) -> int:
    """``main(argv)``'s exit code, its output swallowed; argparse's SystemExit is allowed with code 2 only.

    A failure must end in a message for people: the last line on stderr is genlab's (``genlab: error:
    ...``, argparse's ``genlab sample: error: ...`` after its usage, translate's summary).
    """
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            assert exit.code == 2, f"SystemExit({exit.code!r}) from {argv}"
            code = 2
    assert code in (0, 2), f"exit code {code} from {argv}"
    lines = err.getvalue().strip().splitlines()
    assert "Traceback" not in err.getvalue() and (code == 0 or lines and lines[-1].startswith("genlab")), (argv, lines)
    event(f"{argv[0] if argv else 'nothing'}: exit {code}")
    return code


def run_folders(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_dir() and RUN_NUMBER.match(p.name) and "checkpoints" not in p.parts]


def assert_no_half_made_run_folder(cwd: Path, trained: bool) -> None:
    """No run folder, or (after a successful training start) only ones with a checkpoint; then a clean slate."""
    folders = run_folders(cwd)
    if not trained:
        assert not folders, folders
    for folder in folders:
        assert any((folder / "checkpoints").glob("ckpt-*")), f"half-made run folder {folder}"
        shutil.rmtree(folder)


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# ----------------------------------------------------------------------------- values a user may type

# Real command lines cannot hold NUL; anything else printable or not may come.
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
NUMBER_WORDS = st.sampled_from(["0", "-0", "1", "-1", "2", "1.5", "1e-3", "1e9", "1e400", "-1e400", ".5", "nan", "inf",
                                "-inf", ".nan", ".inf", "0x10", "1_000", str(2**64), str(-2**63), "", " ", "x"])
WORDS = st.sampled_from(["auto", "cpu", "cuda", "cuda:7", "mps", "meta", "fp16", "bf16", "stop", "rollback", "linear",
                         "cosine", "AtoB", "BtoA", "edges", "grey2color", "hinge", "wgan_gp", "~", "null", "[]", "{}",
                         "[1, 2]", "{a: 1}", "!!python/object:os.system", "*anchor", "&a", "'", '"', ":", "- x", "..."])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.integers(), st.floats(), TEXT, NUMBER_WORDS,
                    WORDS)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=6)
SECTIONS = {"data": DATASETS, "model": MODELS, "objective": OBJECTIVES}


def field_names(cls) -> list[str]:
    return [name for name in typing.get_type_hints(cls) if not name.startswith("_") and name not in (
        "bounds", "registry", "family", "example_spec", "example_variants")]


@st.composite
def sections(draw, registry=None, cls=None, depth: int = 0) -> dict:
    """A config section: a (mostly) registered name and a few of its keys (mostly real ones) with any values."""
    body = {}
    if registry is not None:
        body["name"] = draw(st.sampled_from(registry.names()) | VALUES)
        name = body["name"]
        cls = registry.get(name).config_cls if isinstance(name, str) and name in registry.names() else None
    keys = field_names(cls) if cls is not None else []
    hints = typing.get_type_hints(cls) if cls is not None else {}
    for key in draw(st.lists(st.sampled_from(keys) | TEXT if keys else TEXT, max_size=4)):
        nested = hints.get(key)
        if depth < 2 and isinstance(nested, type) and hasattr(nested, "registry"):  # e.g. pairs' base: a data section
            body[key] = draw(sections(nested.registry, depth=depth + 1) | VALUES)
        elif depth < 2 and isinstance(nested, type) and hasattr(nested, "__dataclass_fields__"):  # train.lr_schedule
            body[key] = draw(sections(cls=nested, depth=depth + 1) | VALUES)
        else:
            body[key] = draw(VALUES)
    return body


def flow(value) -> str:
    """``value`` as YAML on one line, as ``--set`` reads it."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def plausible(hint) -> st.SearchStrategy:
    """Values of the key's own type, mostly in range: what a user who read the docs might write."""
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    return {bool: st.booleans(), int: st.integers(0, 64), str: st.sampled_from(["auto", "cpu", "runs", "x"]),
            float: st.sampled_from([0.0, 1e-4, 1e-3, 0.5, 1.0, 2.0]) | st.floats(0, 10)}.get(hint, VALUES)


TRAIN = {"kimg": 0.032, "batch_size": 32, "progress_bar": False, "tensorboard": False, "threads": 1}
RECIPES = {family: {"name": "fuzz", **yaml.safe_load(f"data: {data}\n{rest}"), "train": TRAIN}
           for family, (data, rest, _) in KILL_RECIPES.items()}  # tiny vae, gan, pix2pix, cyclegan and diffusion


def section_class(doc: dict, section: str):
    return TrainConfig if section == "train" else SECTIONS[section].get(doc[section]["name"]).config_cls


@st.composite
def edited_recipes(draw) -> dict:
    """A working recipe with one to three keys set (to their own type or anything), removed or added."""
    base = RECIPES[draw(st.sampled_from(sorted(RECIPES)))]
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["data", "model", "objective", "train"]))
        cls = section_class(base, section)  # the recipe's, even once its name is edited
        hints = {k: v for k, v in typing.get_type_hints(cls).items()  # leaf keys: nested sections stay whole
                 if k in field_names(cls) and not dataclasses.is_dataclass(v) and typing.get_origin(v) is not dict}
        key = draw(TEXT) if draw(st.integers(0, 5)) == 0 else draw(st.sampled_from(sorted(hints)))  # sometimes a typo
        edit = draw(st.sampled_from(["typed", "typed", "any", "remove"]))
        if edit == "remove":
            doc[section].pop(key, None)
        else:
            doc[section][key] = draw(plausible(hints.get(key)) if edit == "typed" else VALUES)
    return doc


@st.composite
def random_documents(draw) -> dict:
    """The known sections (each sometimes missing or replaced) holding a few keys of any value."""
    doc = {}
    if draw(st.booleans()):
        doc["name"] = draw(VALUES)
    for key, registry in SECTIONS.items():
        if draw(st.integers(0, 9)):
            doc[key] = draw(sections(registry) | VALUES) if draw(st.integers(0, 9)) == 0 else draw(sections(registry))
    if draw(st.booleans()):
        doc["train"] = draw(sections(cls=TrainConfig))
    for key in draw(st.lists(TEXT, max_size=1)):
        doc[key] = draw(VALUES)
    return doc


@st.composite
def documents(draw) -> str:
    """YAML text of an edited recipe (two times in three) or a random document, one time in five cut short."""
    doc = draw(st.sampled_from([edited_recipes(), edited_recipes(), random_documents()]).flatmap(lambda s: s))
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    return text[: draw(st.integers(0, len(text)))] if draw(st.integers(0, 4)) == 0 else text


OVERRIDE_KEYS = sorted({f"{section}.{key}" for section, registry in SECTIONS.items() for name in registry.names()
                        for key in field_names(registry.get(name).config_cls)}
                       | {f"train.{key}" for key in field_names(TrainConfig)}
                       | {"train.lr_schedule.kind", "train.lr_schedule.final_fraction", "train.lr_schedules.vae.warmup_kimg",
                          "data.base.name", "data.base.image_size", "name", "train", "model", ""})


def override_values() -> st.SearchStrategy[str]:
    return st.one_of(NUMBER_WORDS, WORDS, TEXT, VALUES.map(flow))


OVERRIDES = st.one_of(
    st.tuples(st.sampled_from(OVERRIDE_KEYS) | TEXT, st.sampled_from(["=", "==", " = ", ""]), override_values())
    .map("".join), TEXT)


@st.composite
def recipe_overrides(draw) -> str:
    """``section.key=value`` for a key of the VAE recipe, with a value of its type: mostly valid."""
    doc = RECIPES["vae"]
    section = draw(st.sampled_from(["data", "model", "objective", "train"]))
    hints = typing.get_type_hints(section_class(doc, section))
    key = draw(st.sampled_from([k for k in field_names(section_class(doc, section)) if k != "name"]))
    return f"{section}.{key}={flow(draw(plausible(hints[key])))}"

VAE_RECIPE = ("name: fuzz\ndata: {name: sprites, image_size: 28, n_train: 64, n_test: 32}\n"
              "model: {name: conv_vae, latent_dim: 4, channels: 4}\nobjective: {name: vae}\n"
              "train: {kimg: 0.032, batch_size: 32, log_every_kimg: 0, snapshot_every_kimg: 0, progress_bar: false, "
              "tensorboard: false, threads: 1}\n")


# ----------------------------------------------------------------------------- config files and --set


@examples("config")
@given(document=documents())
def test_any_config_file_is_loaded_or_refused_in_one_line(cwd, document):
    (cwd / "c.yaml").write_text(document, encoding="utf-8")
    genlab(["train", "c.yaml", "--dry-run"])
    assert_no_half_made_run_folder(cwd, trained=False)


@examples("config")
@given(data=st.binary(max_size=64))
def test_any_bytes_as_a_config_file_are_refused_in_one_line(cwd, data):
    (cwd / "c.yaml").write_bytes(data)
    genlab(["train", "c.yaml", "--dry-run"])
    assert_no_half_made_run_folder(cwd, trained=False)


@examples("overrides")
@given(overrides=st.lists(recipe_overrides() | recipe_overrides() | OVERRIDES, min_size=1, max_size=3))
def test_any_overrides_are_applied_or_refused_in_one_line(cwd, overrides):
    (cwd / "c.yaml").write_text(VAE_RECIPE)
    genlab(["train", "c.yaml", *(arg for item in overrides for arg in ("--set", item)), "--dry-run"])
    assert_no_half_made_run_folder(cwd, trained=False)


# Starts of real training with one or two keys of a tiny recipe changed; values kept small so that any run
# that starts is one iteration, but many of them out of range or of the wrong type.
SMALL = {int: st.sampled_from([-1, 0, 1, 2, 3, 8, 16, 27, 28, 32, 33]),
         float: st.sampled_from([-1.0, 0.0, 1e-9, 1e-3, 0.032, 0.5, 2.0, 1e30, math.nan, math.inf]),
         str: st.sampled_from(["", "x", "auto", "cpu", "cuda", "cuda:1", "mps", "meta", "/dev/null/runs", "bernoulli"]),
         bool: st.sampled_from([True, False])}


@st.composite
def small_changes(draw) -> list[str]:
    changes = []
    for _ in range(draw(st.integers(1, 2))):
        section = draw(st.sampled_from(["data", "model", "objective", "train"]))
        cls = TrainConfig if section == "train" else {"data": DATASETS.get("sprites"), "model": MODELS.get("conv_vae"),
                                                       "objective": OBJECTIVES.get("vae")}[section].config_cls
        key = draw(st.sampled_from([k for k in field_names(cls) if k not in ("name", "lr_schedules", "kimg")]))
        hint = typing.get_type_hints(cls)[key]
        if typing.get_origin(hint) is typing.Literal:
            value = draw(st.sampled_from([*typing.get_args(hint), "bogus"]))
        else:
            value = draw(SMALL.get(hint, st.sampled_from(["x", 1, -1])) | st.sampled_from(["x", [1], None]))
        changes.append(f"{section}.{key}={flow(value)}")
    return changes


@examples("start")
@given(changes=small_changes())
def test_a_start_with_changed_keys_trains_or_fails_without_a_half_made_run_folder(cwd, changes):
    (cwd / "c.yaml").write_text(VAE_RECIPE)
    threads = torch.get_num_threads()
    try:
        code = genlab(["train", "c.yaml", *(arg for item in changes for arg in ("--set", item)), "--stop-after-kimg", "0.032"])
    finally:
        torch.set_num_threads(threads)  # a changed train.threads must not slow the rest of the suite
    assert_no_half_made_run_folder(cwd, trained=code == 0)


# ----------------------------------------------------------------------------- command lines


@pytest.fixture
def places(cwd, pristine_run, translator, tmp_path) -> dict[str, str]:
    """Paths a command line may name: runs (a copy to write into), inputs, files, folders, nothing."""
    vae = shutil.copytree(pristine_run, tmp_path / "vae-run")
    user_files(tmp_path / "images")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file.txt").write_text("not a run\n")
    return {"vae": str(vae), "translator": str(translator), "images": str(tmp_path / "images"),
            "image": str(tmp_path / "images" / "a-plain.png"), "empty": str(tmp_path / "empty"),
            "file": str(tmp_path / "a-file.txt"), "missing": str(tmp_path / "missing"), "here": "."}


OUTPUTS = st.sampled_from(["s.png", "out/s.png", "s.jpg", "S.PNG", "", ".", "out/", "{file}/s.png", "{file}", "{images}",
                           "/proc/s.png", "{vae}/s.png", ".png"]) | TEXT.map(lambda t: t + ".png")
DEVICES = st.sampled_from(["cpu", "cuda", "cuda:0", "cuda:x", "mps", "meta", "xpu", "cpu:0", "CPU", ""])
SMALL_INTS = st.integers(-3, 12).map(str) | NUMBER_WORDS
OPTIONS = {  # option -> values; every command line below also gets a few of these with random tokens
    "sample": {"-n": SMALL_INTS, "-o": OUTPUTS, "--output": OUTPUTS, "--class": SMALL_INTS, "--seed": NUMBER_WORDS,
               "--truncation": NUMBER_WORDS | st.sampled_from(["0.04", "0.01", "1e-300", "3"]), "--device": DEVICES},
    "eval": {"--metrics": st.sampled_from(["nll", "modes", "nll,modes", "fidd", "", ",", "nll,", " nll", "NLL"]) | TEXT,
             "--n": st.integers(-2, 12).map(str) | NUMBER_WORDS, "--k": st.integers(-1, 3).map(str) | NUMBER_WORDS,
             "--features": st.sampled_from(["inception", "mnist", "x"]), "--reference": st.sampled_from(["train", "test", "x"]),
             "--seed": NUMBER_WORDS, "--device": DEVICES, "-o": OUTPUTS, "--data-root": st.sampled_from(["{empty}", "{missing}"]),
             "--classifier": st.sampled_from(["{vae}", "{missing}"]), "--inception-weights": st.sampled_from(["{file}", "{missing}"])},
    "info": {},
    "translate": {"-o": OUTPUTS | st.sampled_from(["out", "{images}"]), "--seed": NUMBER_WORDS, "--device": DEVICES,
                  "--direction": st.sampled_from(["AtoB", "BtoA", "CtoD", ""]),
                  "--rollout": st.sampled_from(["0", "1", "2", "-1", "x", "1.5"])},  # no upper bound yet: kept small
    "train": {"--set": OVERRIDES, "--resume": st.sampled_from(["{vae}", "{translator}", "{missing}", "{empty}"]),
              "--stop-after-kimg": NUMBER_WORDS, "--data-root": st.sampled_from(["{empty}", "{missing}"])},
}
POSITIONALS = {  # the choices for each positional argument, in order, a usable one first
    "sample": [["{vae}", "{translator}", "{missing}", "{file}", "{empty}"]],
    "eval": [["{vae}", "{translator}", "{missing}", "{file}"]],
    "info": [["{vae}", "{translator}", "{missing}", "{file}", "{empty}", "{here}"]],
    "translate": [["{translator}", "{vae}", "{missing}"], ["{images}", "{image}", "{missing}", "{empty}", "{file}"]],
    "train": [["c.yaml", "{file}", "{missing}", "{images}"]],
}
# Put first, so that drawn options still override them: small values for the defaults that would make a
# valid command slow (10,000 samples, 1,000 importance samples, a download), and translate's required -o.
FIRST = {"eval": ["--n", "4", "--k", "2", "--metrics", "nll"], "sample": ["-n", "4"], "translate": ["-o", "out"]}


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    argv = [command, *FIRST.get(command, [])]
    slots = POSITIONALS[command]
    count = len(slots) if draw(st.integers(0, 4)) else draw(st.integers(0, len(slots) + 1))  # sometimes short or long
    for choices in (slots + slots[-1:])[:count]:
        argv.append(draw(st.sampled_from(choices[:1] if draw(st.integers(0, 1)) else choices)))  # often the usable one
    options = OPTIONS[command]
    for _ in range(draw(st.integers(0, 4))):
        choice = draw(st.integers(0, 19))
        if choice == 0:
            argv.append(draw(TEXT | st.sampled_from(["--", "-", "--n=3", "-n3", "--dry-run", "--set"])))  # a stray token
        elif options:
            option = draw(st.sampled_from(sorted(options)))
            argv += [option] if choice == 1 else [option, draw(options[option])]  # 1: its value forgotten
    if command == "train":
        argv.append("--dry-run")  # a start that trains is test_a_start_with_changed_keys...
    return argv


def placed(arg: str, places: dict[str, str]) -> str:
    for name, path in places.items():
        arg = arg.replace(f"{{{name}}}", path)
    return arg


@examples("cli")
@given(argv=command_lines())
def test_any_command_line_exits_0_or_2_without_a_traceback(cwd, places, argv):
    (cwd / "c.yaml").write_text(VAE_RECIPE)
    threads = torch.get_num_threads()
    try:
        genlab([placed(arg, places) for arg in argv])
    finally:
        torch.set_num_threads(threads)
    assert_no_half_made_run_folder(cwd, trained=False)
    assert not (cwd / "runs").exists()
