"""The custom resources: pydantic models of both kinds and their manifests.

Owns field names, defaults, validation and reading manifests. It must not
talk to Redis, a database or a Kubernetes API: references to Secrets and
ConfigMaps are answered through the ``ObjectLookup`` protocol by whoever
holds the objects (manifest files here, the cluster in the controller).
"""

from redis_audiences.resources.models import (
    API_VERSION,
    GROUP,
    VERSION,
    RedisAudienceActivationSpec,
    RedisDestinationSpec,
    SecretKeyRef,
    check_audience_name,
)
from redis_audiences.resources.objects import (
    ManifestError,
    ManifestSet,
    ObjectLookup,
    ObjectMeta,
    RedisAudienceActivation,
    RedisDestination,
    describe_validation_error,
    load_manifests,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ManifestError",
    "ManifestSet",
    "ObjectLookup",
    "ObjectMeta",
    "RedisAudienceActivation",
    "RedisAudienceActivationSpec",
    "RedisDestination",
    "RedisDestinationSpec",
    "SecretKeyRef",
    "check_audience_name",
    "describe_validation_error",
    "load_manifests",
]
