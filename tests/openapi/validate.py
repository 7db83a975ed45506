"""Checks Herald's OpenAPI document with libraries nobody here wrote:
openapi-spec-validator (through openapi-core) validates the document
against the OpenAPI specification, then openapi-core validates real
requests and Herald's real answers to them — successes and errors — against
what the document says. Needs HERALD_URL, HERALD_TOKEN and HERALD_SINK (an
endpoint URL Herald may deliver to). Prints one line: the OpenAPI version,
the number of paths and the number of exchanges checked."""

import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate

BASE = os.environ["HERALD_URL"]
TOKEN = os.environ["HERALD_TOKEN"]
SINK = os.environ["HERALD_SINK"]

with urllib.request.urlopen(BASE + "/api/v1/openapi.json") as answer:
    document = json.load(answer)
validate(document)
api = OpenAPI.from_dict(document)
checked = 0


def call(method, path, body=None, args=None, token=True, valid_request=True, expect=None,
         raw_body=None, extra_headers=None):
    """Sends one request; checks the request (unless it is meant to be
    invalid) and the answer against the document; answers (status, JSON)."""
    global checked
    headers = {"authorization": f"Bearer {TOKEN}"} if token else {}
    headers.update(extra_headers or {})
    data = raw_body
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    url = BASE + path + ("?" + urllib.parse.urlencode(args) if args else "")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as answer:
            status, raw, kind = answer.status, answer.read(), answer.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get_content_type()
    described = MockRequest(BASE, method.lower(), path, args=args, headers=headers, data=data)
    if valid_request:
        api.validate_request(described)
    if raw:
        api.validate_response(described, MockResponse(raw, status_code=status, content_type=kind))
    checked += 1
    if expect is not None:
        assert status == expect, f"{method} {path}: {status} {raw[:300]!r}"
    return status, (json.loads(raw) if raw else None)


# Applications, event types, endpoints.
call("POST", "/api/v1/app", {"name": "OpenAPI", "uid": "openapi-app"}, expect=201)
call("POST", "/api/v1/app", {"name": "OpenAPI", "uid": "openapi-app"},
     args={"get_if_exists": "true"}, expect=200)
call("GET", "/api/v1/app/openapi-app", expect=200)
call("GET", "/api/v1/app", args={"limit": "10"}, expect=200)
call("PATCH", "/api/v1/app/openapi-app", {"metadata": {"team": "billing"}}, expect=200)
call("POST", "/api/v1/event-type",
     {"name": "invoice.paid", "description": "An invoice was paid"}, expect=201)
call("GET", "/api/v1/event-type", expect=200)
_, endpoint = call("POST", "/api/v1/app/openapi-app/endpoint",
                   {"url": SINK, "uid": "sink", "eventTypes": ["invoice.paid"]}, expect=201)
for path in ["", "/secret", "/headers", "/stats"]:
    call("GET", f"/api/v1/app/openapi-app/endpoint/sink{path}", expect=200)
call("PATCH", "/api/v1/app/openapi-app/endpoint/sink", {"description": "the sink"}, expect=200)
call("PUT", "/api/v1/app/openapi-app/endpoint/sink/headers",
     {"headers": {"x-team": "billing"}}, expect=204)
call("POST", "/api/v1/app/openapi-app/endpoint/sink/secret/rotate", {}, expect=200)

# A message, its delivery and its attempt.
_, message = call("POST", "/api/v1/app/openapi-app/msg",
                  {"eventType": "invoice.paid", "payload": {"amount": 42}}, expect=202)
msg = message["id"]
call("GET", "/api/v1/app/openapi-app/msg", expect=200)
call("GET", f"/api/v1/app/openapi-app/msg/{msg}", expect=200)
deadline = time.monotonic() + 20
while True:
    _, attempts = call("GET", f"/api/v1/app/openapi-app/attempt/msg/{msg}", expect=200)
    if attempts["data"]:
        break
    assert time.monotonic() < deadline, "no attempt was logged"
    time.sleep(0.05)
call("GET", f"/api/v1/app/openapi-app/msg/{msg}/attempt/{attempts['data'][0]['id']}", expect=200)
call("GET", f"/api/v1/app/openapi-app/msg/{msg}/endpoint", expect=200)
call("GET", f"/api/v1/app/openapi-app/endpoint/{endpoint['id']}/msg", expect=200)
call("GET", f"/api/v1/app/openapi-app/attempt/endpoint/{endpoint['id']}", expect=200)
call("POST", f"/api/v1/app/openapi-app/msg/{msg}/endpoint/sink/resend", expect=202)

# Recover and replay answer background tasks, which can be read back.
_, task = call("POST", "/api/v1/app/openapi-app/endpoint/sink/replay-missing",
               {"since": "2000-01-01T00:00:00Z"}, expect=202)
call("POST", "/api/v1/app/openapi-app/endpoint/sink/recover",
     {"since": "2000-01-01T00:00:00Z"}, expect=202)
call("GET", f"/api/v1/background-task/{task['id']}", expect=200)
call("GET", "/api/v1/background-task", args={"task": "endpoint.replay"}, expect=200)

# Inbound sources, operational endpoints, the portal, health.
call("POST", "/ingest/api/v1/source",
     {"name": "GitHub", "uid": "gh", "type": "github", "config": {"secret": "s3cret"}}, expect=201)
call("GET", "/ingest/api/v1/source/gh", expect=200)
# The receiver, signed as GitHub documents it
# (https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries).
push = json.dumps({"ref": "refs/heads/main"}).encode()
signature = "sha256=" + hmac.new(b"s3cret", push, hashlib.sha256).hexdigest()
_, received = call("POST", "/in/gh", token=False, raw_body=push, expect=200, extra_headers={
    "content-type": "application/json",
    "x-github-event": "push",
    "x-github-delivery": "delivery-1",
    "x-hub-signature-256": signature,
})
assert received["msgId"].startswith("msg_"), received
call("POST", "/in/gh", token=False, raw_body=push, expect=401, extra_headers={
    "content-type": "application/json",
    "x-github-event": "push",
    "x-hub-signature-256": "sha256=" + "0" * 64,
})
call("GET", "/ingest/api/v1/source/gh/request", expect=200)
call("GET", "/api/v1/operational-webhook/endpoint", expect=200)
call("POST", "/api/v1/auth/app-portal-access/openapi-app", {}, expect=200)
call("GET", "/api/v1/health", token=False, expect=200)
call("GET", "/api/v1/health/ready", token=False, expect=200)

# Errors answer the documented error body.
call("GET", "/api/v1/app/not-there", expect=404)
call("POST", "/api/v1/app", {"uid": "no-name"}, valid_request=False, expect=422)
call("GET", "/api/v1/app", token=False, valid_request=False, expect=401)
call("POST", "/api/v1/app", {"name": "Again", "uid": "openapi-app"}, expect=409)

print("valid", document["openapi"], len(document["paths"]), checked)
