"""Image references: every image is pinned to a version tag or a digest, never `latest`.

A container's `image` input is the RemoteImage's id (a sha256 the engine resolves), so the
reference is judged on the RemoteImage's `name`, and on the `imageName` of images built here.
"""

import re

from pulumi_policy import Severity

from .framework import BUILT_IMAGE, REMOTE_IMAGE, resource_policy, schema, setting

INTEGRITY = "164.312(c)(1)"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
FLOATING_TAGS = {"latest", "stable", "main", "master", "edge", "nightly", "lts"}

PINNING_SCHEMA = schema(
    requireDigest={
        "type": "boolean",
        "default": False,
        "description": "Demand `@sha256:` digests instead of version tags.",
    }
)


def image_tag(reference: str) -> str | None:
    """The tag of `registry:port/repo:tag[@digest]`, None when there is none."""
    without_digest = reference.split("@", 1)[0]
    last_segment = without_digest.rsplit("/", 1)[-1]
    return last_segment.split(":", 1)[1] if ":" in last_segment else None


def validate_pinned_image(args, report_violation):
    key = "name" if args.resource_type == REMOTE_IMAGE else "imageName"
    reference = str(args.props.get(key, ""))
    if DIGEST.search(reference):
        return
    if setting(args, PINNING_SCHEMA, "requireDigest"):
        report_violation(
            f"Image '{args.name}' ({reference}) is not pinned by digest; append `@sha256:<digest>`."
        )
        return
    tag = image_tag(reference)
    if tag is None or tag.lower() in FLOATING_TAGS:
        report_violation(
            f"Image '{args.name}' ({reference}) floats; pin a version tag such as "
            "`mariadb:11.4.5` or a digest."
        )


POLICIES = [
    resource_policy(
        name="image-disallow-floating-tag",
        description="Container images are pinned to a version tag or digest, never `latest`.",
        validate=validate_pinned_image,
        resource_types=[REMOTE_IMAGE, BUILT_IMAGE],
        severity=Severity.MEDIUM,
        citations=[INTEGRITY],
        cis=["5.28"],
        remediation="Reference images as `repository:version` or `repository@sha256:digest`.",
        config_schema=PINNING_SCHEMA,
    ),
]
