"""Key sources: where an audience's profile keys come from.

Each module reads one kind of source (``inline``, ``configmap``, ``sql``) and
meets the ``KeySource`` contract of ``base``. Sources stream; none may hold a
whole audience in memory. This layer knows nothing of Redis or Kubernetes
clients: it is handed already-resolved values (a ConfigMap's text, a database
URL).
"""

from redis_audiences.sources.base import MAX_KEY_BYTES, KeySource, KeyStream, SourceError
from redis_audiences.sources.configmap import ConfigMapSource
from redis_audiences.sources.inline import InlineSource
from redis_audiences.sources.sql import SqlSource

__all__ = [
    "MAX_KEY_BYTES",
    "ConfigMapSource",
    "InlineSource",
    "KeySource",
    "KeyStream",
    "SourceError",
    "SqlSource",
]
