"""The provider stand-in: one `pulumi.runtime.Mocks` answering for tls, random and docker.

Unknown resource types get their inputs echoed back, as a minimal provider would.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pulumi import RunError
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from tools import standin_docker as docker
from tools import standin_random as randomness
from tools import standin_tls as tls
from tools.monitor import unwrap_secrets


class StandInError(RunError):
    """The stand-in rejected an input the real provider would reject too."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problems = [message]


class ProviderStandIn(Mocks):
    """Realistic outputs for the providers this project uses.

    :param seed: when set, every random choice (passwords, serials, EC/Ed25519 keys, ids)
        derives from it and the resource's type and name, so two runs agree.
    :param now: the moment certificates are issued at; defaults to the real clock.
    :param bcrypt_rounds: cost of `RandomPassword.bcryptHash` (the provider uses 10).
    :param unknown_computed: answer every create with its inputs only, as the engine does
        in a first `pulumi preview`: computed outputs (ids, PEMs, results) stay unknown.

    Example::

        pulumi.runtime.set_mocks(ProviderStandIn(seed="test"), preview=True)
    """

    def __init__(
        self,
        seed: str | None = None,
        now: datetime | None = None,
        bcrypt_rounds: int = randomness.DEFAULT_BCRYPT_ROUNDS,
        unknown_computed: bool = False,
    ) -> None:
        self.seed = seed
        self.unknown_computed = unknown_computed
        self.now = now or datetime.now(UTC)
        self.bcrypt_rounds = bcrypt_rounds
        self.docker = docker.DockerStandIn()
        self._resources: dict[
            str, Callable[[MockResourceArgs, random.Random], tuple[str, dict]]
        ] = {
            tls.PRIVATE_KEY: lambda a, rng: tls.private_key(a.inputs, rng, self._seed_key(a)),
            tls.SELF_SIGNED_CERT: lambda a, rng: tls.self_signed_cert(a.inputs, rng, self.now),
            tls.CERT_REQUEST: lambda a, rng: tls.cert_request(a.inputs, seed is not None),
            tls.LOCALLY_SIGNED_CERT: lambda a, rng: tls.locally_signed_cert(
                a.inputs, rng, self.now
            ),
            randomness.RANDOM_PASSWORD: lambda a, rng: randomness.random_password(
                a.inputs, rng, self.bcrypt_rounds
            ),
            randomness.RANDOM_STRING: lambda a, rng: randomness.random_string(a.inputs, rng),
            randomness.RANDOM_ID: lambda a, rng: randomness.random_id(a.inputs, rng),
            randomness.RANDOM_UUID: lambda a, rng: randomness.random_uuid(a.inputs, rng),
            randomness.RANDOM_INTEGER: lambda a, rng: randomness.random_integer(a.inputs, rng),
            docker.REMOTE_IMAGE: lambda a, _: self.docker.remote_image(a.name, a.inputs),
            docker.IMAGE: lambda a, _: self.docker.image(a.name, a.inputs),
            docker.NETWORK: lambda a, _: self.docker.network(a.name, a.inputs),
            docker.VOLUME: lambda a, _: self.docker.volume(a.name, a.inputs),
            docker.CONTAINER: lambda a, _: self.docker.container(a.name, a.inputs),
        }
        self._functions: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            tls.GET_PUBLIC_KEY: tls.public_key_lookup,
            docker.GET_REGISTRY_IMAGE: self.docker.registry_image,
            docker.GET_NETWORK: self.docker.network_lookup,
        }

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        handler = self._resources.get(args.typ)
        if self.unknown_computed:
            return "", dict(args.inputs)
        if handler is None:
            return f"{args.name}-id", dict(args.inputs)
        try:
            return handler(args, self._rng(args.typ, args.name))
        except (ValueError, KeyError, TypeError) as rejected:
            raise StandInError(f"{args.typ} {args.name!r}: {rejected}") from rejected

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        function = self._functions.get(args.token)
        arguments = unwrap_secrets(dict(args.args), "", set())
        if function is None:
            return arguments, []
        try:
            return function(arguments), []
        except (ValueError, KeyError, TypeError) as rejected:
            raise StandInError(f"{args.token}: {rejected}") from rejected

    def _rng(self, type_token: str, name: str) -> random.Random:
        if self.seed is None:
            return random.SystemRandom()
        digest = hashlib.sha256(f"{self.seed}|{type_token}|{name}".encode()).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def _seed_key(self, args: MockResourceArgs) -> str | None:
        return None if self.seed is None else f"{self.seed}|{args.typ}|{args.name}"
