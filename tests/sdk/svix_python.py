#!/usr/bin/env python3
"""Drives a running Herald with the official Svix Python SDK (svix==2.9.1).

Run by the Rust integration test `python_sdk` (crates/herald/tests/it), which
starts Herald and a receiver and passes:
  HERALD_URL           Herald's base URL
  HERALD_TOKEN         an API token
  HERALD_RECEIVER_URL  where the endpoint created here should deliver
Exits non-zero on the first broken expectation; prints `delivered <msg_id>`
so the caller can check the receiver got that message.
"""
import os
import sys
import time

from svix.api import (
    AppPortalAccessIn,
    ApplicationIn,
    ApplicationTokenExpireIn,
    BackgroundTaskListOptions,
    BackgroundTaskType,
    EndpointHeadersIn,
    EndpointIn,
    EndpointPatch,
    EndpointSecretRotateIn,
    EventTypeIn,
    MessageIn,
    RecoverIn,
    ReplayIn,
    Svix,
    SvixOptions,
)
from svix.api.application import ApplicationListOptions
from svix.api.errors.http_error import HttpError
from svix.api.errors.http_validation_error import HTTPValidationError
from svix.api.message import MessageCreateOptions, MessageGetOptions, MessageListOptions
from svix.api.message_attempt import (
    MessageAttemptListAttemptedDestinationsOptions,
    MessageAttemptListByEndpointOptions,
    MessageAttemptListByMsgOptions,
)

import datetime

client = Svix(
    os.environ["HERALD_TOKEN"],
    SvixOptions(server_url=os.environ["HERALD_URL"], retry_schedule=[0.05]),
)
receiver_url = os.environ["HERALD_RECEIVER_URL"]


def wait_for(what, check, seconds=20.0):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


# Applications, including the idempotent get-or-create.
app = client.application.create(ApplicationIn(name="SDK tenant", uid="sdk-tenant", metadata={"tier": "gold"}))
assert app.id.startswith("app_"), app.id
assert app.metadata == {"tier": "gold"}
again = client.application.get_or_create(ApplicationIn(name="ignored", uid="sdk-tenant"))
assert again.id == app.id, (again.id, app.id)
assert client.application.get("sdk-tenant").id == app.id

for index in range(4):
    client.application.create(ApplicationIn(name=f"filler {index}"))
page = client.application.list(ApplicationListOptions(limit=2))
assert len(page.data) == 2 and not page.done, page
rest = client.application.list(ApplicationListOptions(limit=10, iterator=page.iterator))
assert len(rest.data) == 3 and rest.done, rest

# Event types and an endpoint filtered on one of them.
client.event_type.create(EventTypeIn(name="invoice.paid", description="An invoice was paid"))
endpoint = client.endpoint.create(
    app.id,
    EndpointIn(url=receiver_url, event_types=["invoice.paid"], description="billing", uid="billing"),
)
assert endpoint.event_types == ["invoice.paid"], endpoint.event_types
assert client.endpoint.get(app.id, "billing").id == endpoint.id
patched = client.endpoint.patch(app.id, endpoint.id, EndpointPatch(description="billing v2"))
assert patched.description == "billing v2"
assert patched.url == receiver_url

secret = client.endpoint.get_secret(app.id, endpoint.id)
assert secret.key.startswith("whsec_")
client.endpoint.set_headers(app.id, endpoint.id, EndpointHeadersIn(headers={"X-Source": "sdk"}))
assert client.endpoint.get_headers(app.id, endpoint.id).headers == {"X-Source": "sdk"}
client.endpoint.rotate_secret(app.id, endpoint.id, EndpointSecretRotateIn())
assert client.endpoint.get_secret(app.id, endpoint.id).key != secret.key

# Messages: an idempotent create answers the first message again.
options = MessageCreateOptions(idempotency_key="sdk-once", with_content=True)
message = client.message.create(
    app.id, MessageIn(event_type="invoice.paid", payload={"amount": 42}, event_id="inv-42"), options
)
repeat = client.message.create(
    app.id, MessageIn(event_type="invoice.paid", payload={"amount": 42}, event_id="inv-42"), options
)
assert repeat.id == message.id, (repeat.id, message.id)
assert message.payload == {"amount": 42}
assert client.message.get(app.id, "inv-42").id == message.id
listed = client.message.list(app.id, MessageListOptions(event_types=["invoice.paid"]))
assert [m.id for m in listed.data] == [message.id], listed

# The attempt log, per message and per endpoint, and the delivery status.
attempts = wait_for(
    "a successful attempt",
    lambda: [
        attempt
        for attempt in client.message_attempt.list_by_msg(app.id, message.id, MessageAttemptListByMsgOptions()).data
        if attempt.status == 0
    ],
)
assert attempts[0].response_status_code == 200, attempts[0]
assert attempts[0].endpoint_id == endpoint.id
assert client.message_attempt.get(app.id, message.id, attempts[0].id).id == attempts[0].id
# The receiver's answer is logged, and can be deleted.
logged = client.message_attempt.get(app.id, message.id, attempts[0].id)
assert logged.response == "thanks", logged
client.message_attempt.expunge_content(app.id, message.id, attempts[0].id)
assert client.message_attempt.get(app.id, message.id, attempts[0].id).response == ""
sent_to_endpoint = client.message_attempt.list_attempted_messages(app.id, endpoint.id)
assert [(m.id, m.status) for m in sent_to_endpoint.data] == [(message.id, 0)], sent_to_endpoint
by_endpoint = client.message_attempt.list_by_endpoint(app.id, endpoint.id, MessageAttemptListByEndpointOptions())
assert [a.id for a in by_endpoint.data] == [attempts[0].id]
destinations = client.message_attempt.list_attempted_destinations(
    app.id, message.id, MessageAttemptListAttemptedDestinationsOptions()
)
assert destinations.data[0].id == endpoint.id and destinations.data[0].status == 0, destinations

# Resend, recover and stats.
client.message_attempt.resend(app.id, message.id, endpoint.id)
wait_for(
    "the manual attempt",
    lambda: any(
        a.trigger_type == 1
        for a in client.message_attempt.list_by_msg(app.id, message.id, MessageAttemptListByMsgOptions()).data
    ),
)
recovered = client.endpoint.recover(
    app.id, endpoint.id, RecoverIn(since=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
)
assert recovered.task == "endpoint.recover", recovered
stats = client.endpoint.get_stats(app.id, endpoint.id)
assert stats.success == 1, stats

# Replay, and both tasks looked up afterwards by the ids they answered.
replay = client.endpoint.replay_missing(
    app.id, endpoint.id, ReplayIn(since=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
)
assert replay.task == "endpoint.replay" and replay.status == "finished", replay
assert client.background_task.get(recovered.id).task == "endpoint.recover"
replays = client.background_task.list(BackgroundTaskListOptions(task=BackgroundTaskType.ENDPOINT_REPLAY))
assert [task.id for task in replays.data] == [replay.id], replays
assert replays.data[0].data == {"messagesSent": 0}, replays

# Errors surface as the SDK's own exception types.
try:
    client.application.get("no-such-app")
    sys.exit("expected a 404")
except HttpError as error:
    assert error.status_code == 404 and error.code == "not_found", error
try:
    client.endpoint.create(app.id, EndpointIn(url="ftp://nowhere"))
    sys.exit("expected a 422")
except HTTPValidationError as error:
    assert error.detail[0].loc == ["body", "url"], error.detail

# A scheduled message: answered with its time, pending until then.
later = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(hours=1)
scheduled = client.message.create(
    app.id, MessageIn(event_type="invoice.paid", payload={"unpaid": True}, deliver_at=later)
)
assert scheduled.deliver_at == later, (scheduled.deliver_at, later)
waiting = client.message_attempt.list_attempted_destinations(
    app.id, scheduled.id, MessageAttemptListAttemptedDestinationsOptions(limit=1)
)
assert [(d.id, d.status, d.next_attempt) for d in waiting.data] == [(endpoint.id, 1, later)], waiting
assert waiting.done, waiting

# An application's portal token is an API token for that application alone.
access = client.authentication.app_portal_access(app.id, AppPortalAccessIn())
tenant = Svix(access.token, SvixOptions(server_url=os.environ["HERALD_URL"], retry_schedule=[0.05]))
assert endpoint.id in [e.id for e in tenant.endpoint.list(app.id).data]
try:
    tenant.application.list()
    sys.exit("expected a 403 for another application's business")
except HttpError as error:
    assert error.status_code == 403 and error.code == "forbidden", error
# Expiring one session's tokens ends those and leaves the others working.
def portal_client(session_id):
    link = client.authentication.app_portal_access(app.id, AppPortalAccessIn(session_id=session_id))
    return Svix(link.token, SvixOptions(server_url=os.environ["HERALD_URL"], retry_schedule=[0.05]))


def ended(api):
    try:
        api.endpoint.list(app.id)
        return False
    except HttpError as error:
        assert error.status_code == 401, error
        return True


alice, bob = portal_client("alice"), portal_client("bob")
assert not ended(alice) and not ended(bob), "both links work"
# A link issued in the very millisecond of an order counts as issued after it.
time.sleep(0.002)
client.authentication.expire_all(app.id, ApplicationTokenExpireIn(expiry=0, session_ids=["alice"]))
assert ended(alice), "alice's session was expired"
assert not ended(bob), "bob's session was not"
assert not ended(tenant), "nor a token issued without a session"
# Expiring the application's tokens ends the ones issued so far.
client.authentication.expire_all(app.id, ApplicationTokenExpireIn(expiry=0))
assert ended(tenant) and ended(bob), "every token of the application ended"

# A message's content can be deleted; the message stays. (SDK v2 asks for
# no content unless told to, so the payload is asked for explicitly.)
content = MessageGetOptions(with_content=True)
assert client.message.get(app.id, scheduled.id, content).payload == {"unpaid": True}
client.message.expunge_content(app.id, scheduled.id)
assert client.message.get(app.id, scheduled.id, content).payload == {}, "the payload is gone"

# Or kept for less time than the message, asked for in hours or in days;
# out of bounds (or both at once) is refused, naming the field.
brief = client.message.create(
    app.id, MessageIn(event_type="invoice.paid", payload={"card": "4242"}, payload_retention_hours=1)
)
assert client.message.get(app.id, brief.id, content).payload == {"card": "4242"}, "kept for the hour"
try:
    client.message.create(app.id, MessageIn(event_type="invoice.paid", payload={}, payload_retention_period=91))
    sys.exit("expected a 422")
except HTTPValidationError as error:
    assert error.detail[0].loc == ["body", "payloadRetentionPeriod"], error.detail

print(f"delivered {message.id}")
