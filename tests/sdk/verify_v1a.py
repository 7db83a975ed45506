"""Checks Standard Webhooks `v1a` (ed25519) signatures the way a receiver
that holds only the `whpk_` public key would, with libsodium (PyNaCl): an
implementation independent of Herald's, used by
crates/herald/tests/it/signing.rs. No published Standard Webhooks library
verifies `v1a` yet, so this follows the specification directly: the signed
content is "{webhook-id}.{webhook-timestamp}.{body}", the header a
space-separated list of "version,base64" entries, `whpk_` the base64 of the
32-byte public key and `whsk_` the base64 of libsodium's 64-byte secret key
(seed, then public key).

Reads one JSON object on stdin and prints one JSON object:
  {"generate": true}
      -> {"secret": "whsk_...", "public": "whpk_..."}, a fresh key pair
  {"checks": [{"public_key": "whpk_...", "headers": {...}, "body_b64": ...}]}
      -> {"verified": [true | false, ...]}, one answer per check
"""

import base64
import json
import sys
import time

import nacl.bindings
import nacl.exceptions
import nacl.signing
import nacl.utils

TOLERANCE_SECONDS = 5 * 60


def public_key(text):
    if not text.startswith("whpk_"):
        raise ValueError("not a whpk_ key: " + text[:8])
    raw = base64.b64decode(text[len("whpk_"):], validate=True)
    return nacl.signing.VerifyKey(raw)


def verified(check):
    key = public_key(check["public_key"])
    headers = {name.lower(): value for name, value in check["headers"].items()}
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    body = base64.b64decode(check["body_b64"])
    content = f"{msg_id}.{timestamp}.".encode() + body
    for entry in headers["webhook-signature"].split(" "):
        version, _, encoded = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(content, base64.b64decode(encoded, validate=True))
            return True
        except (nacl.exceptions.BadSignatureError, ValueError):
            continue
    return False


def main():
    request = json.load(sys.stdin)
    if request.get("generate"):
        # libsodium's secret key is the seed followed by the public key.
        public, secret = nacl.bindings.crypto_sign_seed_keypair(nacl.utils.random(32))
        answer = {
            "secret": "whsk_" + base64.b64encode(secret).decode(),
            "public": "whpk_" + base64.b64encode(public).decode(),
        }
    else:
        answer = {"verified": [verified(check) for check in request["checks"]]}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
