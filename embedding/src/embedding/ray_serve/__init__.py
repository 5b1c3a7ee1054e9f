"""The embedding service on Ray Serve: a second way to run the same service across machines.

Same model runtimes, same ``/embed`` wire contract (the model identity in every answer), same
``/health``, ``/info`` and ``/metrics``, batches bounded by the same settings; the indexer and the
app need only ``EMBEDDING_SERVICE_URL`` pointed at the Serve proxy. LitServe stays the default on
one machine (``python -m embedding``). Installed with the ``ray`` extra; every Ray internal it
relies on is listed in :mod:`embedding.ray_serve.compat`.
"""
