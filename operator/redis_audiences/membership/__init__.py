"""The membership core: audience membership in Redis Sets.

Owns everything that touches Redis for a sync: key names, connections, the
per-audience lock, staging, planning, batched writes, the ledger and the
metadata hash. It must not import Kubernetes, Kopf, SQL or the resource
models: callers hand it plain values (a ``RedisTarget``, ``AudienceKeys``,
key batches and ``RunOptions``), so the command line and the operator share
one code path.
"""

from redis_audiences.membership.connection import RedisClient, RedisTarget, open_client, probe
from redis_audiences.membership.errors import (
    AudienceLocked,
    ConnectionFailed,
    KeyLayoutError,
    LockLost,
    MembershipError,
    SourceFailed,
    WrongTypeKey,
    describe_redis_error,
)
from redis_audiences.membership.keys import DEFAULT_PREFIX, DEFAULT_SUFFIX, AudienceKeys
from redis_audiences.membership.runs import (
    KeyBatches,
    RunOptions,
    RunReport,
    new_run_id,
    remove_audience,
    run_sync,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_SUFFIX",
    "AudienceKeys",
    "AudienceLocked",
    "ConnectionFailed",
    "KeyBatches",
    "KeyLayoutError",
    "LockLost",
    "MembershipError",
    "RedisClient",
    "RedisTarget",
    "RunOptions",
    "RunReport",
    "SourceFailed",
    "WrongTypeKey",
    "describe_redis_error",
    "new_run_id",
    "open_client",
    "probe",
    "remove_audience",
    "run_sync",
]
