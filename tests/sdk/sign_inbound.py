"""Signs an inbound webhook the way each provider documents it, with the
Python standard library only: an implementation independent of Herald's
verifiers, used by crates/herald/tests/it/gateway.rs.

Reads one JSON object on stdin:
  {"scheme": ..., "secret": ..., "body_b64": ..., "timestamp": int,
   "url": ..., "header"/"algorithm"/"encoding"/"prefix": (generic hmac)}
and prints a JSON object of the headers to send.
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.parse


def mac(algorithm, key, message):
    return hmac.new(key.encode(), message, getattr(hashlib, algorithm)).digest()


def main():
    request = json.load(sys.stdin)
    scheme = request["scheme"]
    secret = request.get("secret", "")
    body = base64.b64decode(request["body_b64"])
    timestamp = str(request.get("timestamp", 0))
    headers = {}
    if scheme == "stripe":
        # https://docs.stripe.com/webhooks#verify-manually
        signature = mac("sha256", secret, timestamp.encode() + b"." + body).hex()
        headers["Stripe-Signature"] = f"t={timestamp},v1={signature}"
    elif scheme == "github":
        # https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
        headers["X-Hub-Signature-256"] = "sha256=" + mac("sha256", secret, body).hex()
    elif scheme == "slack":
        # https://api.slack.com/authentication/verifying-requests-from-slack
        base = b"v0:" + timestamp.encode() + b":" + body
        headers["X-Slack-Request-Timestamp"] = timestamp
        headers["X-Slack-Signature"] = "v0=" + mac("sha256", secret, base).hex()
    elif scheme == "shopify":
        # https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(mac("sha256", secret, body)).decode()
    elif scheme == "twilio":
        # https://www.twilio.com/docs/usage/webhooks/webhooks-security
        params = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        signed = request["url"] + "".join(k + v for k, v in sorted(params))
        headers["X-Twilio-Signature"] = base64.b64encode(
            mac("sha1", secret, signed.encode())
        ).decode()
    elif scheme == "gitlab":
        # https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token
        headers["X-Gitlab-Token"] = secret
    elif scheme == "hmac":
        digest = mac(request["algorithm"], secret, body)
        encoded = digest.hex() if request["encoding"] == "hex" else base64.b64encode(digest).decode()
        headers[request["header"]] = request.get("prefix", "") + encoded
    elif scheme == "basic-auth":
        user, _, password = secret.partition(":")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = "Basic " + token
    elif scheme == "api-key":
        headers[request["header"]] = secret
    else:
        raise SystemExit(f"unknown scheme {scheme}")
    json.dump(headers, sys.stdout)


if __name__ == "__main__":
    main()
