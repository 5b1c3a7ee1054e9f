"""Every use the Ray Serve backend makes of Ray beyond its public, stable API, in this one module.

Checked against Ray 2.60.0 (:data:`RAY_VERSION`), the version ``embedding/pyproject.toml``'s ``ray``
extra pins exactly. ``embedding/tests/test_ray_seam.py`` fails when the installed, pinned or locked
Ray is another version (re-read each item below against the new source, then bump all three) and
when any other module imports a private Ray name.

The rest of the backend uses Ray as documented: ``serve.deployment``, ``serve.ingress``,
``serve.batch`` (with its ``set_max_batch_size`` / ``set_batch_wait_timeout_s`` setters),
``serve.start``, ``serve.run``, deployment handles, and the ``ray start`` command line. What it
needs besides, and why:

1. **Which replica this is**: ``serve.get_replica_context()`` is a developer API; its
   ``replica_tag`` names the replica, so the metrics hub keeps one snapshot per replica
   (:func:`replica_name`).
2. **Loopback addresses**: ``ray start --node-ip-address 127.0.0.1`` (or ``localhost``) is replaced
   by the address of the host's outgoing interface (``ray._private.services.resolve_ip_for_localhost``),
   and a worker derives its own address from that. A cluster meant to stay on this machine names
   other loopback addresses, which Ray keeps as given (:func:`loopback_node_ip`).
3. **Fixed metric ports**: the head's autoscaler monitor and dashboard bind 44217 and 44227 unless
   the environment variables ``AUTOSCALER_METRIC_PORT`` and ``DASHBOARD_METRIC_PORT`` say otherwise
   (``ray/autoscaler/_private/constants.py``, ``ray/dashboard/consts.py``); two clusters on one host
   need their own (:data:`HEAD_METRIC_PORT_ENV`).
4. **Agents on a busy host**: a raylet waits for its dashboard and runtime-env agents (Python
   processes) to write their port files and aborts the node when they are late: a fixed 15 s for
   the dashboard agent's ports in this version (``NodeManager::WaitForDashboardAgentPorts``; the
   listen port is waited for even when ``ray start`` is given one), ``agent_register_timeout_ms``
   for the runtime-env agent; then ``ray start`` waits ``raylet_start_wait_time_s`` for the node to
   register. Every node gets :data:`NODE_ENV` with the two configurable ones raised (Ray reads
   ``RAY_<config name>`` variables); the fixed one is why a node must not be starved of CPU while
   it starts (``testkit.ray_nodes.prioritise``).
5. **Replica processes**: a replica runs in a worker process titled
   ``ray::ServeReplica:<app>:<deployment>`` (:data:`REPLICA_PROCESS_TITLE`); tests find the
   process to kill in the middle of a batch by that title.
"""

from __future__ import annotations

RAY_VERSION = "2.60.0"

# `ray start` replaces these with the host's outgoing interface address (item 2 above).
_REPLACED_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

HEAD_METRIC_PORT_ENV = ("AUTOSCALER_METRIC_PORT", "DASHBOARD_METRIC_PORT")

NODE_ENV = {"RAY_agent_register_timeout_ms": "120000", "RAY_raylet_start_wait_time_s": "120"}

REPLICA_PROCESS_TITLE = "ray::ServeReplica:{app}:{deployment}"


def replica_name() -> str:
    """The running replica's unique tag (only inside a replica)."""
    from ray import serve  # here, so that reading the settings never waits for Ray to import

    return serve.get_replica_context().replica_tag


def ray_keeps_node_ip(address: str) -> bool:
    """Whether ``ray start --node-ip-address address`` keeps the address as given (item 2 above)."""
    from ray._private.services import resolve_ip_for_localhost

    return resolve_ip_for_localhost(address) == address


def loopback_node_ip(node: int) -> str:
    """A loopback address for node ``node`` (0 = head) that ``ray start`` keeps as given: 127.0.0.2, .3, ..."""
    address = f"127.0.0.{node + 2}"
    assert address not in _REPLACED_LOOPBACK
    return address


def replica_process_title(app: str, deployment: str) -> str:
    """The process title of a replica of ``deployment`` in ``app`` (what ``ps`` and psutil show)."""
    return REPLICA_PROCESS_TITLE.format(app=app, deployment=deployment)
