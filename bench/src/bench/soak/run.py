"""Chaos soak of the whole pipeline: ``python -m bench soak [--quick] [options]``.

Real processes of every service on this machine: the downloader, the indexer and the embedding
service (LitServe, the tiny random-weight model) against the real RabbitMQ (a queue of the soak's
own) and an embedded Qdrant folder, fed by a local HTTP server with good images, duplicates and
every kind of bad URL (:mod:`bench.soak.catalog`).

Two runs in one invocation, each with fresh queues, images, state and Qdrant folder:

1. calm: nothing is attacked; gives ``calm_images_per_s``.
2. chaos: at random moments (:mod:`bench.soak.chaos`) the indexer and the embedding service are
   SIGKILLed and restarted, the downloader is stopped (SIGTERM) and started again, and SIGKILLed
   and started again (``--downloader-kills``), the broker closes the soak's connections, and
   poison messages are published; gives ``chaos_images_per_s`` and every other figure.

Then, with every service stopped, ``dyimages audit``'s own checks (:mod:`search_app.ops.audit`) must
find the books balanced (``audit_problems`` 0: every URL done or failed with a reason, every done
URL's file stored intact and listed in its image's point, made by the collection's model, no
orphaned file, point or state row, every dead letter with a reason) with no work left in flight;
and, from the soak's own catalog: each good image indexed (``indexed`` == ``expected_good``,
``lost`` 0), each bad URL recorded as failed with a reason (``unrecorded_bad`` 0) and logged (a
JSON event with its ``url`` and ``reason``), each invalid line of the URL file logged with its
number, the work queue empty (``queue_left`` 0), the dead-letter queue holding exactly the poison
messages, every graceful stop exiting 0, and (chaos run) every metric of the Grafana dashboard
exported at some point. ``kills`` counts only the SIGKILLs that landed with work in flight
(messages queued or images still to index; for the downloader, URLs still to fetch), and the chaos
run needs ``--min-kills`` of them; ``kills_idle`` counts the others. A failed invariant raises
:class:`SoakFailed` after the figures are printed, and keeps the work folder (logs, URL state,
Qdrant) for a look. Throughput is good images / (last ``indexed_at`` - downloader start); the
source is paced (``--latency``, ``--per-host``: a remote server's latency, one host) so that the
attacks land while work is in flight.

Full run (a few thousand URLs, more kills): ``python -m bench soak``; CI runs ``--quick``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.encoder import resolved_runtime
from bench.soak.catalog import DOWNLOAD_TIMEOUT_S, INVALID_LINES, MAX_IMAGE_BYTES, Catalog, build_catalog
from bench.soak.chaos import (
    CLOSE_CONNECTIONS,
    KILL_DOWNLOADER,
    KILL_EMBEDDING,
    KILL_INDEXER,
    POISON,
    RESTART_DOWNLOADER,
    ChaosEvent,
    chaos_plan,
    close_connections,
    publish_poison,
)
from bench.soak.checks import audit_run, last_indexed_at, ready_messages
from bench.soak.logs import read_json_log
from bench.soak.services import (
    RunDirs,
    Service,
    dashboard_metric_names,
    downloader_env,
    embedding_service,
    free_port,
    indexer_env,
    metric_total,
    scrape,
    wait_for_metrics,
)
from dyimages_common.process.logs import configure_logging
from dyimages_common.urls.state import STATUSES, status_counts
from testkit.http_server import ImageServer
from testkit.rabbit import delete_topology, require_rabbitmq, unique_queue_name

log = logging.getLogger("soak")

FIGURES = (
    "expected_good",
    "indexed",
    "lost",
    "duplicates",
    "audit_problems",
    "bad_expected",
    "unrecorded_bad",
    "queue_left",
    "dead_lettered",
    "kills",
    "kills_idle",
    "calm_images_per_s",
    "chaos_images_per_s",
)
REQUIRED = FIGURES  # what bench/__main__ checks on the line


class SoakFailed(AssertionError):
    """An invariant of the pipeline did not hold; the message lists which."""


@dataclass
class RunResult:
    name: str
    expected_good: int
    indexed: int
    lost: int
    duplicates: int  # points beyond the first for one sha256 (the audit names any as point_wrong_id)
    audit_problems: Counter[str]  # problem kind -> count, from dyimages audit's checks
    left_in_flight: dict[str, int]  # audit's in-flight work left once everything stopped (must be none)
    bad_expected: int
    unrecorded_bad: int
    unlogged_bad: int  # bad URLs without a JSON log event naming the URL and a reason
    unreported_invalid_lines: int  # invalid lines of the URL file without a log event naming the line
    not_json_lines: dict[str, int]  # per service log: lines that are not one JSON object
    unclean_exits: list[str]  # graceful stops (SIGTERM, --exit-when-idle) that did not exit 0
    metrics_never_seen: list[str]  # dashboard metrics no service exported during the run
    good_not_done: int
    queue_left: int
    dead_letter_reasons: Counter[str]
    poison: int
    kills: int  # SIGKILLs that landed with work in flight
    kills_idle: int  # SIGKILLs that landed on an idle pipeline (not counted in kills)
    min_kills: int
    images_per_s: float
    seconds: float
    events: list[ChaosEvent] = field(default_factory=list)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    refetched: int = 0  # good URLs fetched more than once (downloads in flight at a SIGKILL may be)

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letter_reasons.values())

    def failures(self) -> list[str]:
        checks = {
            "indexed != expected_good": self.indexed != self.expected_good,
            "lost images": self.lost != 0,
            f"the audit found {dict(self.audit_problems)}": bool(self.audit_problems),
            f"work left in flight {self.left_in_flight}": bool(self.left_in_flight),
            f"{self.kills} kills with work in flight, fewer than {self.min_kills}": self.kills < self.min_kills,
            "bad URLs without a recorded reason": self.unrecorded_bad != 0,
            "bad URLs without a log event (url, reason)": self.unlogged_bad != 0,
            "invalid URL-file lines not reported with their number": self.unreported_invalid_lines != 0,
            f"services not exiting cleanly {self.unclean_exits}": bool(self.unclean_exits),
            f"dashboard metrics never exported {self.metrics_never_seen}": bool(self.metrics_never_seen),
            "good URLs not done in the URL state": self.good_not_done != 0,
            "messages left in the queue": self.queue_left != 0,
            "dead letters other than the poison": self.dead_lettered != self.poison,
        }
        return [f"{self.name}: {what}" for what, failed in checks.items() if failed]


@dataclass(frozen=True)
class Options:
    urls: int
    seed: int
    latency: float
    per_host: int
    indexer_kills: int
    embedding_kills: int
    downloader_kills: int
    min_kills: int
    deadline_s: float
    keep: bool
    work_dir: Path | None


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size: 300 URLs, 2+1 kills (about 2-3 minutes)")
    parser.add_argument("--urls", type=int, help="URLs per run (default 3000, quick 300)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--latency", type=float, help="seconds the HTTP server adds to every answer")
    parser.add_argument("--per-host", type=int, help="DOWNLOADER_PER_HOST (every URL is on one host)")
    parser.add_argument("--indexer-kills", type=int)
    parser.add_argument("--embedding-kills", type=int)
    parser.add_argument("--downloader-kills", type=int, help="SIGKILLs of the downloader (default 1)")
    parser.add_argument(
        "--min-kills", type=int, help="SIGKILLs that must land with work in flight (default 3, or all if fewer)"
    )
    parser.add_argument("--deadline", type=float, help="most seconds one run may take before it counts as stuck")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, state, Qdrant)")
    parser.add_argument("--work-dir", type=Path, help="where the runs' folders go (default: a temporary folder)")
    args = parser.parse_args(argv)
    quick = args.quick
    planned_kills = sum(
        given if given is not None else default
        for given, default in (
            (args.indexer_kills, 2 if quick else 4),
            (args.embedding_kills, 1 if quick else 2),
            (args.downloader_kills, 1),
        )
    )
    return Options(
        urls=args.urls or (300 if quick else 3000),
        seed=args.seed,
        latency=args.latency if args.latency is not None else (0.1 if quick else 0.05),
        per_host=args.per_host or (2 if quick else 4),
        indexer_kills=args.indexer_kills if args.indexer_kills is not None else (2 if quick else 4),
        embedding_kills=args.embedding_kills if args.embedding_kills is not None else (1 if quick else 2),
        downloader_kills=args.downloader_kills if args.downloader_kills is not None else 1,
        min_kills=args.min_kills if args.min_kills is not None else min(3, planned_kills),
        deadline_s=args.deadline or (300.0 if quick else 1200.0),
        keep=args.keep,
        work_dir=args.work_dir,
    )


class IndexedProgress:
    """Images indexed so far, from the indexer's counter, summed over its incarnations."""

    def __init__(self, port: int, seen: set[str]) -> None:
        self.port = port
        self.base = 0.0
        self.current = 0.0
        self.seen = seen

    def incarnation_ended(self) -> None:
        self.base += self.current
        self.current = 0.0

    def value(self) -> float:
        with contextlib.suppress(httpx.HTTPError):  # restarting: keep the last value
            samples = scrape(self.port, timeout=2.0)
            self.seen.update(samples)
            self.current = metric_total(samples, "dyimages_indexer_indexed_total")
        return self.base + self.current


class Pipeline:
    """The three services of one run, their files and their queue."""

    def __init__(self, dirs: RunDirs, queue: str, options: Options) -> None:
        self.dirs = dirs
        self.queue = queue
        self.embedding_port = free_port()
        self.indexer_metrics = free_port()
        self.downloader_metrics = free_port()
        self.metrics_seen: set[str] = set()  # every sample name any service exported during the run
        limits = {"MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES), "LOG_FORMAT": "json"}
        self.embedding = embedding_service(dirs, self.embedding_port, **limits)
        embedding_url = f"http://127.0.0.1:{self.embedding_port}"
        self.indexer = Service(
            "indexer",
            "indexer",
            indexer_env(
                dirs, queue, embedding_url, self.indexer_metrics, LOG_FORMAT="json", INDEXER_SHUTDOWN_GRACE_S="10"
            ),
            dirs.logs,
        )
        self.downloader = Service(
            "downloader",
            "downloader",
            downloader_env(
                dirs,
                queue,
                self.downloader_metrics,
                **limits,
                DOWNLOADER_PER_HOST=str(options.per_host),
                DOWNLOADER_CONCURRENCY=str(max(16, options.per_host)),
                DOWNLOADER_TIMEOUT_S=str(DOWNLOAD_TIMEOUT_S),
                DOWNLOADER_CONNECT_TIMEOUT_S="1",
                DOWNLOADER_MAX_ATTEMPTS="3",
                DOWNLOADER_RETRY_INITIAL_S="0.2",
                DOWNLOADER_RETRY_MAX_S="2",
                DOWNLOADER_POLL_S="0.5",
                DOWNLOADER_SUMMARY_S="5",
            ),
            dirs.logs,
        )
        self.progress = IndexedProgress(self.indexer_metrics, self.metrics_seen)

    def scrape_others(self) -> None:
        """Note the sample names the downloader and the embedding service export now."""
        for port in (self.downloader_metrics, self.embedding_port):
            with contextlib.suppress(httpx.HTTPError):  # restarting
                self.metrics_seen.update(scrape(port, timeout=2.0))

    def start_indexer(self) -> None:
        self.indexer.start()
        wait_for_metrics(self.indexer_metrics, self.indexer)

    def services(self) -> list[Service]:
        return [self.downloader, self.indexer, self.embedding]

    def stop_all(self) -> None:
        for service in self.services():
            service.terminate(timeout=20)


def _fire(event: ChaosEvent, pipeline: Pipeline) -> None:
    """One attack. Restarts do not wait for readiness: the others must cope while it comes back."""
    if event.action == KILL_INDEXER:
        pipeline.indexer.kill()
        pipeline.progress.incarnation_ended()
        pipeline.indexer.start(wait=False)
    elif event.action == KILL_EMBEDDING:
        pipeline.embedding.kill()
        pipeline.embedding.start(wait=False)
    elif event.action == KILL_DOWNLOADER:
        pipeline.downloader.kill()
        pipeline.downloader.start()
    elif event.action == RESTART_DOWNLOADER:
        code = pipeline.downloader.terminate(timeout=30)
        event.detail = f"exit {code}"
        pipeline.downloader.start()
    elif event.action == CLOSE_CONNECTIONS:
        pids = [s.process.pid for s in (pipeline.downloader, pipeline.indexer) if s.process is not None]
        event.detail = f"{close_connections(pids)} connections closed"
    elif event.action == POISON:
        event.detail = f"{publish_poison(pipeline.queue)} messages"


def _url_counts(dirs: RunDirs, last: dict[str, int]) -> dict[str, int]:
    """The downloader's URL counts, or the last ones while the state cannot be read.

    After a SIGKILL mid-commit the rollback journal is hot: a read-only reader gets "attempt to
    write a readonly database" until the restarted downloader has rolled the journal back.
    """
    try:
        return status_counts(dirs.state_db)
    except sqlite3.OperationalError as exc:
        log.info("URL state unreadable for now (%s); using the last counts", exc)
        return last


def _downloads_settled(counts: dict[str, int], distinct_urls: int) -> bool:
    return counts["pending"] == 0 and counts["retrying"] == 0 and counts["done"] + counts["failed"] >= distinct_urls


KILLS = (KILL_INDEXER, KILL_EMBEDDING, KILL_DOWNLOADER)


def _work_in_flight(
    action: str, pipeline: Pipeline, counts: dict[str, int], indexed: float, expected: int, urls: int
) -> bool:
    """Whether a kill now lands on work: URLs still to fetch (downloader), or messages queued or
    images still to index (indexer, embedding service)."""
    if action == KILL_DOWNLOADER:
        return counts["pending"] + counts["retrying"] > 0 or counts["done"] + counts["failed"] < urls
    return (ready_messages(pipeline.queue) or 0) > 0 or indexed < expected


def _due(event: ChaosEvent, fractions: dict[str, float], indexed_since_last: float, min_gap: float) -> bool:
    # An attack on the indexing side waits for some images indexed since the last one, so that
    # it hits a working pipeline, not one still recovering.
    gap_ok = event.measure != "indexed" or indexed_since_last >= min_gap
    return fractions[event.measure] >= event.at and gap_ok


def _drive(pipeline: Pipeline, catalog: Catalog, events: list[ChaosEvent], rng: random.Random, deadline: float) -> None:
    """Run until every URL is settled, every event fired and the queue stays empty, or the deadline."""
    # The indexer counts messages: one per good URL (a second URL of the same bytes has its own).
    expected = len(catalog.good)
    min_gap = max(3.0, 0.03 * expected)
    pending = list(events)
    last_value, stable_since = -1.0, time.monotonic()
    last_report, last_fired = 0.0, -min_gap
    counts = dict.fromkeys(STATUSES, 0)
    while time.monotonic() < deadline:
        value = pipeline.progress.value()
        counts = _url_counts(pipeline.dirs, counts)
        fractions = {
            "indexed": value / expected if expected else 1.0,
            "settled": (counts["done"] + counts["failed"]) / len(catalog.urls),
        }
        due = next((e for e in pending if _due(e, fractions, value - last_fired, min_gap)), None)
        if due is not None:
            pending.remove(due)
            time.sleep(rng.uniform(0, 0.5))  # a random moment, not the poll's
            due.fired_at = fractions[due.measure]
            if due.measure == "indexed":
                last_fired = value
            if due.action in KILLS:
                due.in_flight = _work_in_flight(due.action, pipeline, counts, value, expected, len(catalog.urls))
            log.info("chaos: %s at %.0f%% %s", due.action, 100 * due.fired_at, due.measure)
            _fire(due, pipeline)
            continue
        if value != last_value:
            last_value, stable_since = value, time.monotonic()
        if time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            pipeline.scrape_others()
            log.info("progress: %d of %d good URLs' messages indexed, URLs %s", value, expected, counts)
        idle = time.monotonic() - stable_since > 3
        if idle and _downloads_settled(counts, len(catalog.urls)) and ready_messages(pipeline.queue) == 0:
            if not pending:
                pipeline.scrape_others()
                return
            # The pipeline finished before an attack was due: fire the rest now (restarts of an idle system).
            for event in pending:
                event.fired_at = fractions[event.measure]
                if event.action in KILLS:
                    event.in_flight = _work_in_flight(
                        event.action, pipeline, counts, value, expected, len(catalog.urls)
                    )
                log.info("chaos: %s after the work was done", event.action)
                _fire(event, pipeline)
            pending.clear()
            stable_since = time.monotonic()
        time.sleep(0.5)
    log.warning("run deadline reached: the pipeline did not settle")


def _check(
    name: str,
    pipeline: Pipeline,
    catalog: Catalog,
    started: float,
    poison: int,
    events: list[ChaosEvent],
    services: list[Service],
    options: Options,
) -> RunResult:
    dirs = pipeline.dirs
    audited = audit_run(dirs.urls_file, dirs.images, dirs.state_db, dirs.qdrant, pipeline.queue)
    ledgers, report = audited.ledgers, audited.report
    for problem in report.problems[:10]:
        log.warning("audit: %s %s", problem.kind, problem)
    state = {row.url: row for row in ledgers.rows}
    expected = catalog.expected_sha256
    sha256s = Counter(point.sha256 for point in ledgers.points)
    indexed = set(sha256s)
    bad_urls = {u.url for u in catalog.bad}
    unrecorded = [u for u in bad_urls if u not in state or state[u].status != "failed" or not state[u].last_error]
    for url in unrecorded[:10]:
        log.warning("bad URL without a recorded failure: %s -> %s", url, state.get(url))
    last = last_indexed_at(dirs.qdrant)
    seconds = (last - started) if last else float("nan")
    logs = {s: read_json_log(dirs.logs / f"{s}.log") for s in ("downloader", "indexer", "embedding")}
    for service, service_log in logs.items():
        if service_log.not_json:
            log.warning(
                "%s log: %d lines not JSON, e.g. %s", service, service_log.not_json, service_log.samples_not_json
            )
    invalid_numbers = {n for n, line in enumerate(catalog.lines, start=1) if line in INVALID_LINES}
    kills = [e for e in events if e.action in KILLS]
    return RunResult(
        name=name,
        expected_good=len(expected),
        indexed=len(indexed & expected),
        lost=len(expected - indexed),
        duplicates=sum(count - 1 for count in sha256s.values()),
        audit_problems=report.kinds(),
        left_in_flight={what: n for what, n in report.in_flight.items() if n},
        bad_expected=len(bad_urls),
        unrecorded_bad=len(unrecorded),
        unlogged_bad=len(bad_urls - logs["downloader"].urls_with_reason()),
        unreported_invalid_lines=len(invalid_numbers - logs["downloader"].invalid_line_numbers()),
        not_json_lines={service: service_log.not_json for service, service_log in logs.items()},
        # A calm run has no retries to count: only the chaos run must show every dashboard metric.
        metrics_never_seen=sorted(dashboard_metric_names() - pipeline.metrics_seen) if events else [],
        unclean_exits=[
            f"{service.name} exit {code}" for service in services for code in service.exit_codes if code != 0
        ],
        good_not_done=sum(1 for u in catalog.good if u.url not in state or state[u.url].status != "done"),
        queue_left=ledgers.queued,
        dead_letter_reasons=Counter(letter.reason for letter in ledgers.dead_letters),
        poison=poison,
        kills=sum(1 for e in kills if e.in_flight),
        kills_idle=sum(1 for e in kills if not e.in_flight),
        min_kills=options.min_kills if events else 0,
        images_per_s=round(len(expected) / seconds, 2) if last and seconds > 0 else 0.0,
        seconds=round(seconds, 2),
        events=events,
        failure_reasons=Counter(_reason_word(state[u].last_error or "") for u in bad_urls if u in state),
    )


def _reason_word(error: str) -> str:
    return error.split(":", 1)[0].strip() or "(empty)"


def run_once(
    name: str, server: ImageServer, options: Options, root: Path, *, chaos: bool, rng: random.Random
) -> RunResult:
    catalog = build_catalog(server, options.urls, options.seed + (1 if chaos else 0), prefix=f"/{name}")
    dirs = RunDirs(root / name)
    dirs.urls_file.parent.mkdir(parents=True, exist_ok=True)
    dirs.urls_file.write_text("\n".join(catalog.lines) + "\n")
    queue = unique_queue_name(f"soak-{name}")
    pipeline = Pipeline(dirs, queue, options)
    kills = {
        "indexer_kills": options.indexer_kills,
        "embedding_kills": options.embedding_kills,
        "downloader_kills": options.downloader_kills,
    }
    events = chaos_plan(rng, **kills) if chaos else []
    log.info(
        "%s run: %d URLs (%d good images, %d bad URLs), queue %s, folder %s",
        name,
        len(catalog.urls),
        len(catalog.expected_sha256),
        len(catalog.bad),
        queue,
        dirs.root,
    )
    try:
        pipeline.embedding.start()
        pipeline.start_indexer()
        started = time.time()
        pipeline.downloader.start()
        _drive(pipeline, catalog, events, rng, time.monotonic() + options.deadline_s)
        pipeline.downloader.terminate(timeout=30)
        pipeline.indexer.terminate(timeout=30)
        # A last indexer drains whatever a stop returned to the queue, then exits by itself.
        drain = Service("indexer-drain", "indexer", pipeline.indexer.env, dirs.logs, args=("--exit-when-idle",))
        drain.start()
        drain.wait(timeout=120)
        pipeline.embedding.terminate(timeout=20)
        poison = sum(int(e.detail.split()[0]) for e in events if e.action == POISON and e.detail)
        result = _check(name, pipeline, catalog, started, poison, events, [*pipeline.services(), drain], options)
        result.refetched = sum(1 for u in catalog.good if u.kind != "flaky" and server.hits[urlsplit(u.url).path] > 1)
        return result
    finally:
        pipeline.stop_all()
        delete_topology(queue)


def _report(result: RunResult) -> None:
    log.info(
        "%s: %d/%d good images indexed in %.1f s (%.1f images/s), %d lost, audit %s; "
        "%d bad URLs, %d without a reason; reasons %s; queue left %d; dead-lettered %d %s; "
        "kills %d with work in flight, %d on an idle pipeline",
        result.name,
        result.indexed,
        result.expected_good,
        result.seconds,
        result.images_per_s,
        result.lost,
        dict(result.audit_problems) or "balanced",
        result.bad_expected,
        result.unrecorded_bad,
        dict(result.failure_reasons),
        result.queue_left,
        result.dead_lettered,
        dict(result.dead_letter_reasons),
        result.kills,
        result.kills_idle,
    )
    log.info("%s: %d good URLs fetched more than once", result.name, result.refetched)
    for event in result.events:
        at = f"{100 * event.fired_at:.0f}%" if event.fired_at is not None else "never"
        landed = {True: "on work in flight", False: "on an idle pipeline", None: ""}[event.in_flight]
        log.info(
            "  chaos %-18s planned at %3.0f%% %s, fired at %s %s %s",
            event.action,
            100 * event.at,
            event.measure,
            at,
            event.detail,
            landed,
        )


def run(argv: list[str]) -> dict[str, object]:
    configure_logging("soak")
    # The downloader cutting an over-cap body short is part of the test, not a server error.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    options = parse(argv)
    require_rabbitmq()
    rng = random.Random(options.seed)
    root = Path(tempfile.mkdtemp(prefix="dyimages-soak-", dir=options.work_dir))
    keep = options.keep
    try:
        with ImageServer(latency=options.latency) as server:
            calm = run_once("calm", server, options, root, chaos=False, rng=rng)
            _report(calm)
            chaos = run_once("chaos", server, options, root, chaos=True, rng=rng)
            _report(chaos)
        keep = keep or bool(calm.failures() + chaos.failures())
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            log.info("work folder kept (logs, URL state, Qdrant): %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, object] = {
        "expected_good": chaos.expected_good,
        "indexed": chaos.indexed,
        "lost": chaos.lost,
        "duplicates": chaos.duplicates,
        "audit_problems": sum(calm.audit_problems.values()) + sum(chaos.audit_problems.values()),
        "bad_expected": chaos.bad_expected,
        "unrecorded_bad": chaos.unrecorded_bad,
        "queue_left": chaos.queue_left,
        "dead_lettered": chaos.dead_lettered,
        "kills": chaos.kills,
        "kills_idle": chaos.kills_idle,
        "calm_images_per_s": calm.images_per_s,
        "chaos_images_per_s": chaos.images_per_s,
        "runtime": resolved_runtime("auto"),  # the embedding service's own choice
    }
    failures = calm.failures() + chaos.failures()
    if failures:
        print(json.dumps(figures), flush=True)
        raise SoakFailed("; ".join(failures))
    return figures
