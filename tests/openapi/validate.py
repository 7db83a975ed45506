"""Validates Herald's OpenAPI document with openapi-spec-validator (from
PyPI): fetches it from HERALD_URL without a token, as a tool would, and
checks it against the OpenAPI specification's own schema and rules
(every $ref resolves, path parameters are declared, operation ids are
unique, ...). Prints the version and the number of paths it checked."""

import json
import os
import urllib.request

from openapi_spec_validator import validate

with urllib.request.urlopen(os.environ["HERALD_URL"] + "/api/v1/openapi.json") as answer:
    document = json.load(answer)

validate(document)
print("valid", document["openapi"], len(document["paths"]))
