"""The Kubernetes operator: Kopf handlers, scheduling, status and metrics.

Owns when runs happen and what the custom resources' status says. It is the
only layer that may import Kopf; it runs syncs through ``syncing`` and never
talks to a database itself (Redis only through the membership core).
"""
