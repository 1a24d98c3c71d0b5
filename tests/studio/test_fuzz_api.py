"""Property-based fuzzing of every studio route from its own OpenAPI schema (schemathesis's
strategies, run by hypothesis): whatever a client sends, in the schema or against it, the
answer is never a 5xx.

The schema comes from the app over the trained fixture runs, so the operations are looped
over inside one test rather than collected by schemathesis's pytest plugin.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from .conftest import LOCAL

EXAMPLES = 25  # per operation and generation mode: about 40 s for the whole API on one core

pytestmark = pytest.mark.slow  # the slow tier (make test-slow)


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_no_request_gets_a_server_error(studio_app, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", studio_app, headers={"Host": "127.0.0.1"})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9  # every route is in the schema
    game = case_free_game(studio_app)
    failures: list[str] = []
    refused_host: list[bool] = []  # a fuzz the host check answered would test nothing
    for operation in operations:
        known = {"key": game} if "{key}" in operation.path else None  # a live game, not only unknown ids
        @given(operation.as_strategy(generation_mode=mode, path_parameters=known))
        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call(base_url=LOCAL)  # the studio refuses any other Host
            refused_host.append(response.text == "Invalid host header")
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200} -> "
                                f"{response.status_code}: {response.text[:300]}")

        try:
            check()
        except Unsatisfiable:  # nothing to get wrong: a route without parameters or body has no negative case
            assert mode is schemathesis.GenerationMode.NEGATIVE and not operation.body and not len(operation.query)
    for run in studio_app.state.served:  # evaluations the fuzz started end before the next test
        run.wait_eval()
    assert not failures, "\n".join(failures[:10])
    assert refused_host and not any(refused_host)


def case_free_game(app) -> str:
    """The id of a game started through the API."""
    from fastapi.testclient import TestClient

    with TestClient(app, base_url=LOCAL) as client:
        return client.post("/api/game", json={"data": "ring"}).json()["id"]
