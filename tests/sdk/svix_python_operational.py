#!/usr/bin/env python3
"""Manages operational webhook endpoints with the official Svix Python SDK
(svix==2.9.1) and provokes a `message.attempt.exhausted` event.

Run by the Rust integration test `hardening` (crates/herald/tests/it), which
starts Herald and two receivers and passes:
  HERALD_URL            Herald's base URL
  HERALD_TOKEN          an API token
  HERALD_RECEIVER_URL   where the operational endpoint should deliver
  HERALD_FAILING_URL    an endpoint URL that always answers 500
Prints `operational-secret <key>` and `exhausted <msg_id>` so the caller can
verify the event that arrives.
"""
import os
import sys

from svix.api import (
    ApplicationIn,
    EndpointIn,
    MessageIn,
    OperationalWebhookEndpointHeadersIn,
    OperationalWebhookEndpointIn,
    OperationalWebhookEndpointSecretIn,
    OperationalWebhookEndpointUpsertIn,
    Svix,
    SvixOptions,
)
from svix.api.errors.http_validation_error import HTTPValidationError

client = Svix(
    os.environ["HERALD_TOKEN"],
    SvixOptions(server_url=os.environ["HERALD_URL"], retry_schedule=[0.05]),
)
operations = client.operational_webhook.endpoint


def check(condition, what):
    if not condition:
        print(f"broken expectation: {what}", file=sys.stderr)
        sys.exit(1)


# An endpoint that only wants exhausted retries, created, read and edited
# through the SDK's operational_webhook module.
created = operations.create(
    OperationalWebhookEndpointIn(
        url=os.environ["HERALD_RECEIVER_URL"],
        description="on-call",
        event_types=["message.attempt.exhausted"],
        uid="on-call",
    )
)
check(created.id.startswith("ep_"), "an operational endpoint id")
check(operations.get("on-call").id == created.id, "found by uid")
listed = operations.list()
check([endpoint.id for endpoint in listed.data] == [created.id], "listed alone")
updated = operations.upsert(
    created.id,
    OperationalWebhookEndpointUpsertIn(
        url=os.environ["HERALD_RECEIVER_URL"],
        description="on-call rotation",
        event_types=["message.attempt.exhausted"],
    ),
)
check(updated.description == "on-call rotation", "upsert changes the description")
operations.set_headers(
    created.id, OperationalWebhookEndpointHeadersIn(headers={"x-team": "payments"})
)
check(operations.get_headers(created.id).headers == {"x-team": "payments"}, "headers")
before = operations.get_secret(created.id).key
operations.rotate_secret(created.id, OperationalWebhookEndpointSecretIn())
after = operations.get_secret(created.id).key
check(before != after and after.startswith("whsec_"), "rotation gives a new secret")

# A subscription to something that is not an operational event is refused.
try:
    operations.create(
        OperationalWebhookEndpointIn(url=os.environ["HERALD_RECEIVER_URL"], event_types=["invoice.paid"])
    )
    check(False, "an unknown operational event type is refused")
except HTTPValidationError:
    pass

# A delivery whose retries run out.
app = client.application.create(ApplicationIn(name="Exhausted"))
client.endpoint.create(app.id, EndpointIn(url=os.environ["HERALD_FAILING_URL"]))
message = client.message.create(app.id, MessageIn(event_type="invoice.paid", payload={"n": 1}))

print(f"operational-secret {after}")
print(f"exhausted {message.id}")
