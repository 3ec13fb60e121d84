"""pulumi-random results that honour the inputs: length, character classes and minimums.

Follows the random provider: minimums first, the rest from every enabled class, shuffled.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Mapping
from typing import Any

import bcrypt
from pulumi.runtime.rpc import wrap_rpc_secret

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_STRING = "random:index/randomString:RandomString"
RANDOM_ID = "random:index/randomId:RandomId"
RANDOM_UUID = "random:index/randomUuid:RandomUuid"
RANDOM_INTEGER = "random:index/randomInteger:RandomInteger"

LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = LOWER.upper()
NUMERIC = "0123456789"
DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"

# Limitation: the provider hashes with bcrypt cost 10 (about 85 ms each); the stand-in
# uses cost 4 so a preview with many passwords stays fast. The hash still verifies.
DEFAULT_BCRYPT_ROUNDS = 4


class RandomInputError(ValueError):
    """An input the random provider would reject, with the input name in the message."""


def random_string_result(inputs: Mapping[str, Any], rng: random.Random) -> str:
    """A string of `length` characters meeting every `min*` and class switch."""
    length = int(inputs.get("length", 0))
    if length < 1:
        raise RandomInputError(f"length: {length} must be at least 1")
    special = inputs.get("overrideSpecial") or DEFAULT_SPECIAL
    numeric_enabled = inputs.get("numeric", inputs.get("number", True))
    classes = [
        (LOWER, inputs.get("lower", True), int(inputs.get("minLower", 0))),
        (UPPER, inputs.get("upper", True), int(inputs.get("minUpper", 0))),
        (NUMERIC, numeric_enabled, int(inputs.get("minNumeric", 0))),
        (special, inputs.get("special", True), int(inputs.get("minSpecial", 0))),
    ]
    minimum_total = sum(minimum for _, _, minimum in classes)
    if minimum_total > length:
        raise RandomInputError(
            f"length: {length} is less than the sum of the minimums ({minimum_total})"
        )

    chosen = [rng.choice(chars) for chars, _, minimum in classes for _ in range(minimum)]
    pool = "".join(chars for chars, enabled, _ in classes if enabled)
    if len(chosen) < length and not pool:
        raise RandomInputError("every character class is disabled: nothing to choose from")
    chosen.extend(rng.choice(pool) for _ in range(length - len(chosen)))
    rng.shuffle(chosen)
    return "".join(chosen)


def random_password(
    inputs: Mapping[str, Any], rng: random.Random, bcrypt_rounds: int = DEFAULT_BCRYPT_ROUNDS
) -> tuple[str, dict[str, Any]]:
    """RandomPassword: `result` and `bcryptHash`, both secret, like the provider's schema."""
    result = random_string_result(inputs, rng)
    salt = bcrypt.gensalt(rounds=bcrypt_rounds, prefix=b"2a")
    digest = bcrypt.hashpw(result.encode(), salt).decode()
    return "none", {
        **_class_defaults(inputs),
        "result": wrap_rpc_secret(result),
        "bcryptHash": wrap_rpc_secret(digest),
    }


def random_string(inputs: Mapping[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    """RandomString: like a password but its result is plain and is also its id."""
    result = random_string_result(inputs, rng)
    return result, {**_class_defaults(inputs), "result": result}


def random_id(inputs: Mapping[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    """RandomId: `byteLength` random bytes in every encoding, `prefix` prepended."""
    byte_length = int(inputs.get("byteLength", 0))
    if byte_length < 1:
        raise RandomInputError(f"byteLength: {byte_length} must be at least 1")
    raw = rng.getrandbits(8 * byte_length).to_bytes(byte_length, "big")
    prefix = str(inputs.get("prefix", ""))
    b64_url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    outputs = {
        **inputs,
        "b64Url": prefix + b64_url,
        "b64Std": prefix + base64.b64encode(raw).decode(),
        "hex": prefix + raw.hex(),
        "dec": prefix + str(int.from_bytes(raw, "big")),
    }
    return b64_url, outputs


def random_uuid(inputs: Mapping[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    result = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return result, {**inputs, "result": result}


def random_integer(inputs: Mapping[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    low, high = int(inputs.get("min", 0)), int(inputs.get("max", 0))
    if high < low:
        raise RandomInputError(f"max: {high} is below min {low}")
    result = rng.randint(low, high)
    return str(result), {**inputs, "result": result}


def _class_defaults(inputs: Mapping[str, Any]) -> dict[str, Any]:
    numeric = inputs.get("numeric", inputs.get("number", True))
    return {
        "lower": True,
        "upper": True,
        "special": True,
        "minLower": 0,
        "minUpper": 0,
        "minNumeric": 0,
        "minSpecial": 0,
        **inputs,
        "numeric": numeric,
        "number": numeric,
    }
