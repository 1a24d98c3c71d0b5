"""The studio's HTTP layer: FastAPI routes over the latent toolkit, translation and the toy game.

Routes hold no model logic: each validates its request (pydantic, from which the OpenAPI
schema at ``/openapi.json`` comes), calls a library function and encodes the result. Runs
are addressed by their index in the list given on the command line; nothing from a request
is ever used as a file path. Errors a user can fix are 4xx answers with a message:
422 for a malformed request, 400 for a value the model refuses (a class it does not have),
404 for a game that does not exist (a run index outside the served list is a 422: the schema
bounds it), 409 for a run that cannot do what was asked,
413 for an upload over the limits. A 5xx is a bug.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at run time,
# and RunIndex below is local to create_app.
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from genlab.errors import ConfigError, GenlabError, RunError
from genlab.experiments.game import MAX_DRAWN, MAX_STEPS_PER_PLAY, GameConfig, ToyGame
from genlab.images import make_grid
from genlab.latent import interpolate as interp
from genlab.latent import style
from genlab.latent.conditional import sweep_grid
from genlab.latent.edit import image_latents
from genlab.latent.sample import class_labels, decode, require_iterative, require_sampler, sample_shape, sampling
from genlab.latent.traverse import traversal
from genlab.models.protocols import (
    REVERSE_ROLE,
    Encoder,
    LatentSampler,
    LayoutSynthesiser,
    TextConditional,
    Translator,
    as_module,
    eval_mode,
    is_conditional,
)
from genlab.studio.codec import MAX_UPLOAD_BYTES, BadUpload, png_data_url, png_data_urls, read_upload
from genlab.studio.runs import ServedRun

STATIC = Path(__file__).parent / "static"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")  # the names a browser on this machine uses
MAX_GAMES = 16  # games kept at once; the oldest is dropped for a new one
MAX_SAMPLES = 64
LATENT_LIMIT = 10.0  # prior standard deviations; sliders go to +-3
STUDIO_INVERSION = {"steps": 150, "restarts": 2}  # a GAN inversion that answers in about a second on a CPU
MAX_STEPS = 256  # a diffusion model's sampling steps per request: 16 images at 256 steps take ~10 s on a CPU

Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
Label = Annotated[int, Field(ge=0, le=10_000)] | None
Coordinate = Annotated[float, Field(ge=-LATENT_LIMIT, le=LATENT_LIMIT, allow_inf_nan=False)]
Latent = Annotated[list[Coordinate], Field(min_length=1, max_length=4096)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Diffusion and flow-matching models: sampling steps and classifier-free guidance (None: the model's own)
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)] | None
Guidance = Annotated[float, Field(ge=0, le=20, allow_inf_nan=False)] | None


class SampleRequest(Strict):
    seed: Seed = 0
    n: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] = 16
    label: Label = None
    truncation: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] | None = None
    text: Annotated[str, Field(max_length=300)] | None = None  # text-to-image models: the caption
    steps: Steps = None
    guidance: Guidance = None


class DecodeRequest(Strict):
    z: Latent
    label: Label = None
    text: Annotated[str, Field(max_length=300)] | None = None
    steps: Steps = None
    guidance: Guidance = None


class DenoiseRequest(Strict):
    z: Latent
    label: Label = None
    text: Annotated[str, Field(max_length=300)] | None = None
    steps: Steps = None
    guidance: Guidance = None


class InterpolateRequest(Strict):
    a: Latent
    b: Latent
    steps: Annotated[int, Field(ge=2, le=32)] = 9
    method: Literal["lerp", "slerp"] | None = None
    label: Label = None


class GridRequest(Strict):
    """A model's signature grid: ``classes`` (a column per class, a row per seed, ``columns`` of them; BigGAN's
    truncation),
    ``mixing`` (StyleGAN's: a row per source A giving the coarse styles, a column per source B the fine, each
    cell their mix at ``crossover``, truncated in W by ``psi``) or ``traversal`` (a row per latent dimension
    from -span to +span around the first seed's latent)."""

    kind: Literal["classes", "mixing", "traversal"]
    seed: Seed = 0
    columns: Annotated[int, Field(ge=1, le=12)] = 8
    truncation: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] | None = None
    crossover: Annotated[int, Field(ge=0, le=64)] = 0
    psi: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] = 1.0
    rows: Annotated[int, Field(ge=1, le=12)] = 8  # mixing: sources A; traversal: dimensions
    span: Annotated[float, Field(gt=0, le=6, allow_inf_nan=False)] = 3.0


class EvalRequest(Strict):
    metrics: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=16)] | None = None  # None: defaults
    n: Annotated[int, Field(ge=100, le=10_000)] = 1000


class MixRequest(Strict):
    a: Latent  # gives the coarse styles (layers before the crossover)
    b: Latent  # gives the fine styles
    crossover: Annotated[int, Field(ge=0, le=64)]
    psi: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] = 1.0


class GameRequest(Strict):
    data: Literal["gaussian", "mixture", "ring", "grid", "drawn"] = "mixture"
    # data="drawn": the points the user put down, each a Gaussian (the game checks count and range)
    points: Annotated[list[tuple[float, float]], Field(max_length=MAX_DRAWN)] = []
    g_loss: Literal["nonsaturating", "minimax"] = "nonsaturating"
    k: Annotated[int, Field(ge=1, le=10)] = 1
    lr_d: Annotated[float, Field(gt=0, le=0.1, allow_inf_nan=False)] = 2e-3
    lr_g: Annotated[float, Field(gt=0, le=0.1, allow_inf_nan=False)] = 2e-3
    batch_size: Annotated[int, Field(ge=8, le=4096)] = 256
    seed: Seed = 0


class StepRequest(Strict):
    n: Annotated[int, Field(ge=1, le=MAX_STEPS_PER_PLAY)] = 1
    players: Literal["both", "D", "G"] = "both"  # D alone (k updates a step), G alone, or both


class TuneRequest(Strict):
    """What may change while a game plays; each left out stays as it is."""

    g_loss: Literal["nonsaturating", "minimax"] | None = None
    k: Annotated[int, Field(ge=1, le=10)] | None = None
    lr_d: Annotated[float, Field(gt=0, le=0.1, allow_inf_nan=False)] | None = None
    lr_g: Annotated[float, Field(gt=0, le=0.1, allow_inf_nan=False)] | None = None


class Games:
    """The games in progress, each with its own lock; at most MAX_GAMES, oldest dropped first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._games: OrderedDict[str, tuple[threading.Lock, ToyGame]] = OrderedDict()

    def new(self, cfg: GameConfig) -> tuple[str, ToyGame, threading.Lock]:
        game, lock, key = ToyGame(cfg), threading.Lock(), uuid.uuid4().hex
        with self._lock:
            self._games[key] = (lock, game)
            while len(self._games) > MAX_GAMES:
                self._games.popitem(last=False)
        return key, game, lock

    def get(self, key: str) -> tuple[threading.Lock, ToyGame]:
        with self._lock:
            if key not in self._games:
                raise HTTPException(404, f"no game {key!r}: it ended or the studio restarted; start a new one")
            self._games.move_to_end(key)
            return self._games[key]


def create_app(run_dirs: Sequence[str | Path], allowed_hosts: Sequence[str] | None = LOOPBACK_NAMES) -> FastAPI:
    """The studio for ``run_dirs`` (each read now, its model loaded on first use).

    It answers only requests whose ``Host`` (any port) is one of ``allowed_hosts`` and refuses the
    rest with a 400: a page on another site that rebinds its own name to 127.0.0.1 (DNS rebinding)
    sends its own name, so it cannot reach the models. ``None`` answers any name (for a studio
    served on a non-loopback address, whose names the studio cannot know).
    """
    runs = [ServedRun(i, path) for i, path in enumerate(run_dirs)]
    games = Games()
    # A run's index, bounded in the schema too (so clients and fuzzers know the valid ones).
    RunIndex = Annotated[int, PathParam(ge=0, le=max(len(runs) - 1, 0), description="index in the served list")]
    app = FastAPI(title="genlab studio", version="1", description=__doc__)
    app.state.served = runs  # for a server's shutdown and tests: each run's background evaluation
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False)

    @app.exception_handler(GenlabError)
    async def genlab_error(request: Request, err: GenlabError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=409 if isinstance(err, RunError) else 400)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer echoes the input, which fails to encode when it holds NaN (a 500)
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(BadUpload)
    async def bad_upload(request: Request, err: BadUpload) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    def run_at(index: int) -> ServedRun:
        if not 0 <= index < len(runs):
            raise HTTPException(404, f"no run {index}: this studio serves runs 0..{len(runs) - 1}")
        return runs[index]

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/runs")
    def list_runs() -> list[dict[str, Any]]:
        """Every served run: config summary, capabilities, latest eval card."""
        return [run.summary() for run in runs]

    @app.get("/api/runs/{index}")
    def run_summary(index: RunIndex) -> dict[str, Any]:
        return run_at(index).summary()

    @app.post("/api/runs/{index}/samples")
    def samples(index: RunIndex, req: SampleRequest) -> dict[str, Any]:
        """``n`` samples of seed ``seed`` and their latents (to move with the sliders)."""
        with run_at(index).model() as model:
            sampler = require_sampler(model)
            z = sampler.latents(req.n, generator=torch.Generator().manual_seed(req.seed), truncation=req.truncation)
            with sampling(model, req.steps, req.guidance):
                if req.text is not None:
                    return {"images": png_data_urls(_text_decode(sampler, z, req.text)), "latents": z.tolist()}
                return {"images": png_data_urls(decode(sampler, z, req.label)), "latents": z.tolist()}

    @app.post("/api/runs/{index}/decode")
    def decode_latent(index: RunIndex, req: DecodeRequest) -> dict[str, Any]:
        """One latent (the sliders' values) -> its image."""
        with run_at(index).model() as model:
            sampler = require_sampler(model)
            z = _latent(req.z, sampler.latent_dim)
            with sampling(model, req.steps, req.guidance):
                if req.text is not None:
                    return {"image": png_data_urls(_text_decode(sampler, z, req.text))[0]}
                return {"image": png_data_urls(decode(sampler, z, req.label))[0]}

    @app.post("/api/runs/{index}/denoise")
    def denoise(index: RunIndex, req: DenoiseRequest) -> dict[str, Any]:
        """A diffusion model's path from one latent (its initial noise) to its sample, as 8 images."""
        with run_at(index).model() as model:
            sampler = require_sampler(model)
            steps = require_iterative(model, "it has no denoising steps to show")
            z = _latent(req.z, sampler.latent_dim)
            with sampling(model, req.steps, req.guidance):
                condition = _tokens(model, req.text) if req.text is not None else class_labels(model, req.label, 1)
                return {"images": png_data_urls(torch.cat(steps.trajectory(z, condition)))}

    @app.post("/api/runs/{index}/interpolate")
    def interpolate(index: RunIndex, req: InterpolateRequest) -> dict[str, Any]:
        """The strip from latent ``a`` to latent ``b`` (slerp for Gaussian priors unless ``method`` says)."""
        with run_at(index).model() as model:
            sampler = require_sampler(model)
            keys = torch.cat([_latent(req.a, sampler.latent_dim), _latent(req.b, sampler.latent_dim)])
            return {"images": png_data_urls(interp.interpolate(sampler, keys, req.steps, req.method, req.label))}

    @app.post("/api/runs/{index}/mix")
    def mix(index: RunIndex, req: MixRequest) -> dict[str, Any]:
        """Style mixing of a style-based generator: ``a``'s styles before ``crossover``, ``b``'s after."""
        with run_at(index).model() as model:
            G = style.require_style_based(model)
            z_a, z_b = _latent(req.a, G.latent_dim), _latent(req.b, G.latent_dim)
            with eval_mode(as_module(G)):
                return {"image": png_data_urls(G.mix(z_a, z_b, req.crossover, req.psi))[0]}

    @app.post("/api/runs/{index}/grid")
    def grid(index: RunIndex, req: GridRequest) -> dict[str, Any]:
        """The model's signature grid (see GridRequest) as one image."""
        with run_at(index).model() as model:
            sampler = require_sampler(model)
            generator = torch.Generator().manual_seed(req.seed)
            with eval_mode(as_module(model)):
                if req.kind == "classes":
                    if not is_conditional(model):
                        raise ConfigError(
                            "a class x seed grid needs a class-conditional model; this one has no classes"
                        )
                    shown = sweep_grid(sampler, sampler.latents(req.columns, generator, req.truncation))
                elif req.kind == "mixing":
                    G = style.require_style_based(model)
                    rows, columns = G.latents(req.rows, generator), G.latents(req.columns, generator)
                    shown = style.mixing_grid(G, rows, columns, min(req.crossover, G.num_ws), req.psi)
                else:
                    dims = list(range(min(req.rows, sampler.latent_dim)))
                    z = sampler.latents(1, generator, req.truncation)
                    shown = traversal(sampler, z, dims, steps=req.columns, span=req.span)
        return {
            "image": png_data_url(make_grid(shown.images, nrow=shown.nrow)),
            "nrow": shown.nrow,
            "count": len(shown.images),
        }

    @app.post("/api/runs/{index}/encode")
    def encode(
        index: RunIndex,
        image: Annotated[UploadFile, File()],
        label: Annotated[int | None, Form(ge=0, le=10_000)] = None,
    ) -> dict[str, Any]:
        """An uploaded image's latent (the encoder's mean, or a GAN's inversion) and its reconstruction."""
        data = image.file.read(MAX_UPLOAD_BYTES + 1)  # one past the limit tells "over" from "at"
        with run_at(index).model() as model:
            sampler = require_sampler(model)
            shape = _image_shape(sampler)
            x, note = read_upload(data, shape)
            with torch.enable_grad():  # inversion optimises the latent; encoding needs none
                found = image_latents(
                    sampler,
                    x,
                    label,
                    use_inversion=not isinstance(model, Encoder),
                    **({} if isinstance(model, Encoder) else STUDIO_INVERSION),
                )
            return {
                "z": found.z[0].tolist(),
                "input": png_data_urls(x)[0],
                "reconstruction": png_data_urls(found.reconstruction)[0],
                "mse": float(found.mse[0]),
                "method": "encoder" if isinstance(model, Encoder) else "inversion",
                "note": note,
            }

    @app.post("/api/runs/{index}/translate")
    def translate(
        index: RunIndex,
        image: Annotated[UploadFile, File()],
        seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
        style: Annotated[UploadFile | None, File()] = None,
        direction: Annotated[Literal["AtoB", "BtoA"], Form()] = "AtoB",
    ) -> dict[str, Any]:
        """An uploaded or drawn source image -> the model's translation (``BtoA``: by a CycleGAN's reverse G);
        for a label-map-and-style model (SPADE), in the style of the ``style`` image when one is sent, else
        of a style drawn from ``seed``."""
        data = image.file.read(MAX_UPLOAD_BYTES + 1)  # one past the limit tells "over" from "at"
        style_data = None if style is None else style.file.read(MAX_UPLOAD_BYTES + 1)
        served = run_at(index)
        if direction == "BtoA" and not served.reversible:
            raise HTTPException(409, f"run {index} translates one way only; a CycleGAN run translates B to A too")
        with served.model(REVERSE_ROLE if direction == "BtoA" else None) as model:
            if not isinstance(model, Translator):
                raise HTTPException(
                    409,
                    f"run {index} ({type(model).__name__}) does not translate images; "
                    "pick an image-to-image run (pix2pix, CycleGAN)",
                )
            x, note = read_upload(data, model.source_shape)
            generator = torch.Generator().manual_seed(seed)
            if style_data is None:
                y = model.translate(x, generator=generator)
            elif isinstance(model, LayoutSynthesiser):
                styled, style_note = read_upload(style_data, model.target_shape, "the style image")
                y = model.synthesise(model.labels_of(x), styled, generator)
                note = "; ".join(n for n in (note, style_note) if n) or None
            else:
                raise HTTPException(409, f"run {index} ({type(model).__name__}) takes no style image; a SPADE run does")
            return {"source": png_data_urls(x)[0], "image": png_data_urls(y)[0], "note": note}

    @app.post("/api/runs/{index}/eval", status_code=202)
    def start_eval(index: RunIndex, req: EvalRequest) -> dict[str, Any]:
        """Compute the run's eval card in the background (what ``genlab eval`` would); poll GET for progress.
        One evaluation at a time in the whole studio (409 while one runs): each takes the CPU for a while."""
        busy = [r.index for r in runs if r.eval_job is not None and r.eval_job.state == "running"]
        if busy:
            raise HTTPException(409, f"run {busy[0]} is being evaluated; one evaluation at a time, wait for its card")
        return run_at(index).start_eval(req.metrics, req.n).as_dict()

    @app.get("/api/runs/{index}/eval")
    def eval_progress(index: RunIndex) -> dict[str, Any]:
        """The background evaluation's progress (metrics done of total), its failure, or ``state: none``."""
        job = run_at(index).eval_job
        return {"state": "none"} if job is None else job.as_dict()

    @app.get("/api/runs/{index}/example")
    def example(index: RunIndex, number: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> dict[str, Any]:
        """A test-set source and its target of an image-to-image run (to draw over a real source)."""
        pair = run_at(index).example(number)
        return {"source": png_data_urls(pair["source"])[0], "target": png_data_urls(pair["target"])[0]}

    @app.get("/api/runs/{index}/stats")
    def stats(index: RunIndex, since: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> dict[str, Any]:
        """Training log rows after the first ``since`` (losses, D(x), D(G(z)), ...) and health warnings."""
        return run_at(index).stats(since)

    @app.post("/api/game")
    def new_game(req: GameRequest) -> dict[str, Any]:
        """Start a toy game; returns its id and first view."""
        settings = req.model_dump()
        key, game, lock = games.new(GameConfig(**{**settings, "points": tuple(map(tuple, settings["points"]))}))
        with lock:
            return {"id": key, **game.view()}

    @app.post("/api/game/{key}/step")
    def step_game(key: str, req: StepRequest) -> dict[str, Any]:
        """Play ``n`` more steps (each k discriminator updates then one generator update, or one player alone)
        and view the game."""
        lock, game = games.get(key)
        with lock:
            game.play(req.n, req.players)
            return {"id": key, **game.view()}

    @app.patch("/api/game/{key}")
    def tune_game(key: str, req: TuneRequest) -> dict[str, Any]:
        """Change k, the learning rates or G's loss of a game in progress; returns its view."""
        lock, game = games.get(key)
        with lock:
            game.retune(**req.model_dump(exclude_none=True))
            return {"id": key, **game.view()}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _latent(values: list[float], latent_dim: int) -> torch.Tensor:
    if len(values) != latent_dim:
        raise ConfigError(f"this model's latents have {latent_dim} values, the request gave {len(values)}")
    return torch.tensor(values, dtype=torch.float32)[None]  # finite and within +-LATENT_LIMIT: checked by pydantic


def _tokens(model: object, text: str) -> torch.Tensor:
    """The word indices [1, L] of ``text`` for a text-to-image model."""
    if not isinstance(model, TextConditional):
        raise ConfigError("this model is not conditioned on text; leave the caption out")
    return model.tokens([text])


def _text_decode(model: LatentSampler, z: torch.Tensor, text: str) -> torch.Tensor:
    """Latents [N, D] decoded with one caption by a text-to-image model."""
    with eval_mode(as_module(model)):
        return model.decode(z, _tokens(model, text).expand(z.shape[0], -1))


def _image_shape(sampler) -> tuple[int, int, int]:
    shape = sample_shape(sampler)
    if len(shape) != 3:
        raise ConfigError("this model's samples are points, not images; use the game view for toy data")
    return shape
