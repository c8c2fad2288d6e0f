"""Child-side SDK and framework adapters.

The host imports only the catalogs (``adapters.frameworks``, ``adapters.catalog``,
``adapters.<framework>.catalog``, ``adapters.metrics``); everything else runs in a framework's
env, started as ``python -m adapters.entrypoint --spec job.json``.
"""
