"""Errors of the membership core.

::

    MembershipError
    ├── ConnectionFailed    Redis unreachable or credentials refused
    ├── AudienceLocked      another run holds this audience's lock
    ├── LockLost            the lock expired or was taken mid-run
    ├── WrongTypeKey        a membership key is not a Set (Fail)
    ├── SourceFailed        the source could not be read
    └── KeyLayoutError      owned keys would look like members
"""

import redis


class MembershipError(Exception):
    """A sync run could not be completed; the message is one line for users."""


class ConnectionFailed(MembershipError):
    """Redis is unreachable, refused authentication or lacks a permission."""


class AudienceLocked(MembershipError):
    """Another run of the same audience on the same Redis is in progress."""


class LockLost(MembershipError):
    """The run's lock expired or changed hands before the run finished."""


class WrongTypeKey(MembershipError):
    """A membership key holds a value that is not a Set."""


class KeyLayoutError(MembershipError):
    """The membership suffix and metadata prefix collide."""


class SourceFailed(MembershipError):
    """The keys of the run could not be read; nothing was written."""


def describe_redis_error(error: redis.RedisError) -> str:
    """One line for a Redis failure, without credentials."""
    first_line = (str(error).splitlines() or [""])[0] or type(error).__name__
    if isinstance(error, redis.AuthenticationError) or first_line.startswith("WRONGPASS"):
        return f"Redis refused the credentials: {first_line}"
    if isinstance(error, redis.exceptions.NoPermissionError) or first_line.startswith("NOPERM"):
        return f"Redis user lacks a permission: {first_line}"
    kind = "unreachable" if isinstance(error, redis.ConnectionError) else "error"
    return f"Redis {kind}: {first_line}"
