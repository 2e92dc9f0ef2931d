"""Errors of the membership core.

::

    MembershipError
    ├── ConnectionFailed    Redis cannot be reached or refused the credentials
    ├── AudienceLocked      another run holds this audience's lock
    ├── LockLost            the lock expired or was taken while the run wrote
    ├── WrongTypeKey        a membership key holds another type (onWrongType: Fail)
    ├── SourceFailed        the source could not be read (the layer above says why)
    └── KeyLayoutError      suffix and prefix would make owned keys look like members
"""


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
