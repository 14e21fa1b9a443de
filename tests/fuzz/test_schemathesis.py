"""Schemathesis against Podium's own OpenAPI schema, on a seeded database.

Every documented operation is fuzzed with no token and with a token of each scope (read, promote,
admin). Each answer must be documented (status code, content type, body: problem JSON for every
error), a schema-valid request must be accepted and a schema-invalid one refused, and nothing may
answer 5xx. These are schemathesis's own default checks, with two narrow exceptions made below
where the reason is stateful, not the schema.

The schema is read from an app built for it alone (no database is touched to build /openapi.json);
each test sends its requests to the seeded deployment of ``tests/fuzz/conftest.py``. Generation is
derandomised and seeded, so a failure reproduces; the example count is kept small enough for CI.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from registry.api import create_app
from registry.api.prediction_bodies import PARQUET_TYPES
from registry.config import PodiumConfig
from registry.db import make_engine
from tests.fuzz.conftest import Deployment, snapshot

CONFIG = {"seed": 20250630,
          "generation": {"max-examples": 12, "deterministic": True, "database": "none"}}

_DOC_APP = create_app(PodiumConfig.model_validate({"database": {"url": "sqlite://"},
                                                   "artefacts_root": "/nonexistent"}),
                      engine=make_engine("sqlite://"))
schemathesis.serializer.alias(PARQUET_TYPES[0], "application/octet-stream")  # bytes as sent
schema = schemathesis.openapi.from_asgi("/openapi.json", _DOC_APP,
                                        config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(params=[None, "read", "promote", "admin"], ids=lambda s: s or "anonymous")
def caller(request: pytest.FixtureRequest) -> str | None:
    return request.param


def _excluded_checks(case, response) -> list:
    excluded = []
    # A retried Idempotency-Key with another body is refused (422 idempotency_key_reused) because
    # an earlier example used that key: state, not the schema.
    if response.status_code == 422 and _problem_code(response) == "idempotency_key_reused":
        excluded.append(positive_data_acceptance)
    # "/versions/{version_id:path}" (kept so that "a%2Fb" is a 422 invalid_version_id, not a 404)
    # also matches "GET /versions/<id>/promote", which is therefore a 422, not a 405.
    if case.operation.path.endswith(("/promote", "/retire", "/predictions/{day}")):
        excluded.append(unsupported_method)
    # A Parquet body is "binary" to a schema: whether the bytes are a Parquet file with asset and
    # score columns is beyond what it can say (422 invalid_parquet).
    if response.status_code == 422 and _problem_code(response) == "invalid_parquet":
        excluded.append(positive_data_acceptance)
    # A JSON string may hold a lone surrogate, which is not Unicode text: no database stores it
    # (422 invalid_text), and JSON Schema has no way to say so.
    if response.status_code == 422 and _problem_code(response) == "invalid_text":
        excluded.append(positive_data_acceptance)
    # A query parameter without a name (`?=null`) names nothing; like every query parameter a
    # route does not read, it is ignored rather than refused.
    if case.query and "" in case.query:
        excluded.append(negative_data_rejection)
    return excluded


def _problem_code(response) -> str | None:
    try:
        return response.json().get("code")
    except ValueError:
        return None


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_answer_is_documented_and_never_5xx(case, podium: Deployment,
                                                  caller: str | None) -> None:
    # One seeded deployment per operation and caller, shared by that test's examples on purpose:
    # the state they leave (promotions, retirements, idempotency keys) is more to fuzz against.
    outside = snapshot(podium.outside)
    headers = podium.auth(caller)
    response = case.call(headers=headers, app=podium.app)
    assert response.status_code < 500, response.text
    case.validate_response(response, headers=headers, transport_kwargs={"app": podium.app},
                           excluded_checks=_excluded_checks(case, response))
    assert b"Traceback" not in response.content  # a bundle.tar answer is bytes, not text
    assert snapshot(podium.outside) == outside
