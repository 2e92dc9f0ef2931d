"""redis-audiences: audience membership kept in Redis Sets.

Layers, each importing only the ones below it: ``cli`` (command line), then
``syncing`` (turns manifests into a run), then ``sources`` and ``resources``
(where keys come from; the custom resource models), then ``membership`` (the
Redis core, which knows nothing of Kubernetes or SQL).
"""

__version__ = "0.1.0"
