"""Every endpoint of the app given requests generated from its own schema (Schemathesis, in
process, on a logged-in session): none answers a server error, whatever the parameters and
bodies. The served app hides its schema (``openapi_url=None``); the test takes it from the
application object, with the routes the schema leaves out (the page, the SAMP links) put in."""

from __future__ import annotations

import copy

import pytest
import schemathesis
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from test_candidates import make_project
from test_web import enqueue

from specscout.web import AppConfig, create_app
from specscout.web.routes import candidates, labels, pool_map, samp, session, spectra

from conftest import log_in

BASE = "http://127.0.0.1"
#: Generated requests per endpoint.
EXAMPLES = 100


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("props"))
    enqueue(project)
    app = create_app(project, AppConfig(annotator="ana", samp=False))
    client = log_in(TestClient(app, base_url=BASE))
    return app, dict(client.cookies), {k: client.headers[k] for k in
                                      ("X-Session-Secret", "X-CSRF-Token")}


def operations(app) -> list:
    # the app's schema, made again with the routes it leaves out (copies of them, shown)
    routes = []
    for module in (session, labels, spectra, candidates, pool_map, samp):
        for route in module.router.routes:
            if isinstance(route, APIRoute) and not route.include_in_schema:
                route = copy.copy(route)
                route.include_in_schema = True
            routes.append(route)
    paths = get_openapi(title=app.title, version=app.version, routes=routes)
    assert {"/", "/samp/{expires}/{sig}/spectrum/{row}.fits"} <= set(paths["paths"])
    schema = schemathesis.openapi.from_dict(paths)
    schema.app = app
    return [result.ok() for result in schema.get_all_operations()]


def test_no_request_is_a_server_error(served):
    app, cookies, headers = served
    found = operations(app)
    assert len(found) >= 25
    sent: dict[str, int] = {}
    codes: dict[int, int] = {}

    def requests(operation):
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            name = f"{case.method.upper()} {case.path}"
            response = case.call(base_url=BASE, headers={**headers, "Host": "127.0.0.1"},
                                 cookies=cookies)
            sent[name] = sent.get(name, 0) + 1
            if case.path.startswith("/samp/"):  # a VO tool's link: only a signed one opens
                assert response.status_code == 404, (name, case.path_parameters)
            else:
                codes[response.status_code] = codes.get(response.status_code, 0) + 1
            assert response.status_code < 500, (name, case.path_parameters, case.query,
                                                case.body, response.text[:300])
        return call

    # the session's own endpoints last: a logout ends the session the others run in
    last = ("/api/login", "/api/launch", "/api/logout")
    for operation in sorted(found, key=lambda o: (o.path in last, last.index(o.path)
                                                  if o.path in last else 0)):
        requests(operation)()
    print(f"{sum(sent.values())} requests to {len(sent)} endpoints, no server error; "
          f"answers {dict(sorted(codes.items()))}")
    assert sum(sent.values()) >= 1000
    # in the session: most are served, not refused at the door
    assert codes.get(200, 0) > sum(codes.values()) / 3 and 400 not in codes
