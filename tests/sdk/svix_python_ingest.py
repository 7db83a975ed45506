#!/usr/bin/env python3
"""Drives Herald's inbound gateway with the `ingest` module of the official
Svix Python SDK (svix==2.9.1): sources of the Svix-named types and their
destinations are created, listed, read, replaced and deleted, then a Stripe
event signed with the standard library (Stripe's documented scheme) is
posted to a source's ingestUrl.

Run by the Rust integration test `python_sdk` (crates/herald/tests/it),
with HERALD_URL, HERALD_TOKEN and HERALD_RECEIVER_URL as for svix_python.py.
Prints `ingested <msg_id>` so the caller can check the receiver got it.
"""
import hashlib
import hmac
import json
import os
import time
import urllib.request

from svix.api import (
    IngestEndpointHeadersIn,
    IngestEndpointIn,
    IngestEndpointSecretIn,
    IngestEndpointUpsertIn,
    IngestSourceIn,
    Svix,
    SvixOptions,
)
from svix.api.errors.http_error import HttpError
from svix.api.errors.http_validation_error import HTTPValidationError
from svix.api.ingest_endpoint import IngestEndpointListOptions
from svix.api.ingest_source import IngestSourceListOptions

client = Svix(
    os.environ["HERALD_TOKEN"],
    SvixOptions(server_url=os.environ["HERALD_URL"], retry_schedule=[0.05, 0.1]),
)
ingest = client.ingest
receiver = os.environ["HERALD_RECEIVER_URL"]

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SOURCES = {
    "svix": {"secret": STANDARD_SECRET},
    "stripe": {"secret": "whsec_stripe_sdk_secret"},
    "github": {"secret": "github-secret"},
    "slack": {"secret": "slack-secret"},
    "shopify": {"secret": "shopify-secret"},
    "generic-webhook": {},
}

created = {}
for kind, config in SOURCES.items():
    source = ingest.source.create(
        IngestSourceIn(name=f"{kind} source", uid=f"sdk-{kind}", type=kind, config=config)
    )
    assert source.id.startswith("src_"), source.id
    assert source.type == kind, source.type
    assert source.ingest_url and source.ingest_url.endswith(f"/in/{source.id}"), source.ingest_url
    created[kind] = source

listed = ingest.source.list(IngestSourceListOptions(limit=3))
assert len(listed.data) == 3 and not listed.done, listed
rest = ingest.source.list(IngestSourceListOptions(limit=10, iterator=listed.iterator))
assert {s.id for s in listed.data + rest.data} == {s.id for s in created.values()}

by_uid = ingest.source.get("sdk-github")
assert by_uid.id == created["github"].id and by_uid.type == "github"
renamed = ingest.source.upsert(
    "sdk-github",
    IngestSourceIn(name="GitHub (org)", type="github", config={"secret": "rotated"}),
)
assert renamed.name == "GitHub (org)" and renamed.id == created["github"].id

try:
    ingest.source.create(IngestSourceIn(name="bad", type="stripe", config={"secret": ""}))
    raise SystemExit("a stripe source with an empty secret was accepted")
except HTTPValidationError as error:
    assert error.detail[0].loc[-1] == "secret", error.detail

stripe = created["stripe"]
destination = ingest.endpoint.create(
    stripe.id, IngestEndpointIn(url=receiver, description="billing service", uid="billing")
)
assert destination.id.startswith("ep_") and destination.description == "billing service"
assert ingest.endpoint.get("sdk-stripe", "billing").id == destination.id
listed = ingest.endpoint.list(stripe.id, IngestEndpointListOptions(limit=10))
assert [d.id for d in listed.data] == [destination.id], listed
secret = ingest.endpoint.get_secret(stripe.id, destination.id)
assert secret.key.startswith("whsec_"), secret
ingest.endpoint.rotate_secret(stripe.id, destination.id, IngestEndpointSecretIn())
assert ingest.endpoint.get_secret(stripe.id, destination.id).key != secret.key
ingest.endpoint.set_headers(
    stripe.id, destination.id, IngestEndpointHeadersIn(headers={"X-Team": "billing"})
)
assert ingest.endpoint.get_headers(stripe.id, destination.id).headers == {"X-Team": "billing"}
updated = ingest.endpoint.upsert(
    stripe.id, destination.id, IngestEndpointUpsertIn(url=receiver, description="billing v2")
)
assert updated.description == "billing v2"

spare = ingest.endpoint.create(created["shopify"].id, IngestEndpointIn(url=receiver))
ingest.endpoint.delete(created["shopify"].id, spare.id)
try:
    ingest.endpoint.get(created["shopify"].id, spare.id)
    raise SystemExit("a deleted destination is still there")
except HttpError as error:
    assert error.status_code == 404

ingest.source.delete("sdk-generic-webhook")
try:
    ingest.source.get("sdk-generic-webhook")
    raise SystemExit("a deleted source is still there")
except HttpError as error:
    assert error.status_code == 404

# A Stripe event, signed as Stripe documents (HMAC-SHA256 of "{t}.{body}").
body = json.dumps({"id": "evt_sdk_1", "type": "invoice.paid", "data": {"object": {}}}).encode()
timestamp = str(int(time.time()))
signature = hmac.new(
    b"whsec_stripe_sdk_secret", timestamp.encode() + b"." + body, hashlib.sha256
).hexdigest()
request = urllib.request.Request(
    stripe.ingest_url,
    data=body,
    headers={"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(request) as answer:
    assert answer.status == 200, answer.status
    msg_id = json.load(answer)["msgId"]
print(f"ingested {msg_id}")
