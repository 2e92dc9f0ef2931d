"""The Kubernetes operator: Kopf handlers, scheduling and status.

Owns when runs happen and what the custom resources' status says. It is the
only layer that may import Kopf; it runs syncs through ``syncing`` and never
talks to Redis or a database itself.

Limitations: so far this package holds the scheduling and status logic that
the handlers will use (pure, tested functions); the Kopf handlers themselves
and ``redis-audiences run`` are the next step of the operator issue.
"""
