"""Every alert, end to end: the simulator drives the conditions, two real exporter replicas
poll it, Debian's Prometheus evaluates the mixin's rules, Debian's Alertmanager routes them
with the shipped deploy/alertmanager/alertmanager.yml, and a webhook stands in for each
receiver (pager, tickets, none).

Fast mode (``tests.support.stack.FAST_SCALE``): every ``for:``, window and step of the rules,
the poll interval and Alertmanager's grouping run 30 times faster, so a 30-minute window is a
minute.

Each alert must reach the receiver its severity routes to, firing and then resolved, with the
counts of one replica (not two) in its description; every alert that Alertmanager should
inhibit must be seen inhibited there and never reach a receiver; nothing else may arrive.
Two more projects test the credential alerts: one signs with an AK/SK read from files that
are rotated (well, then badly), the other with an agency's temporary AK/SK from the
simulator's metadata service, which goes down for a while.
A second stack shows a refused key at 200 pools in each of two projects: one page per
project, and the 400 failing items inhibited.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import Fault, Simulator, default_specs
from tests.support.scripts import mixin
from tests.support.stack import (
    AK,
    FAST_SCALE,
    POOL_INFO,
    PROJECT,
    RETIRED_POOL,
    SK,
    Stack,
    StackOptions,
    Webhook,
    main_target,
    quiet_state,
    running,
    wait_for,
)

pytestmark = pytest.mark.e2e

#: One project per kind of trouble, so that the scenarios run at once without touching
#: each other (inhibition is per project).
UNREACHABLE = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
THROTTLED = "7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b"
SLOW = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"
REFUSED = ("4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d", "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1")
#: Signs with an AK/SK read from files ({file: PATH}), which its test rotates.
KEY_FILES = "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1"
#: Signs with an agency's temporary AK/SK from the simulator's metadata service.
AGENCY = "a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9"
#: Every project's region: cn-north-4, but for these (alerts keep the region).
REGIONS = {THROTTLED: "ap-southeast-3", KEY_FILES: "cn-east-3", AGENCY: "cn-south-1"}


def region(project: str) -> str:
    return REGIONS.get(project, "cn-north-4")


BATCH_POOL = "pool-batch"  # discovered in PROJECT; turns Abnormal
FLAKY_POOL = "pool-flaky"  # configured in PROJECT; answers 500
NPU_SPEC = "modelarts.bm.npu.arm.8snt9b3.d"
CPU_SPEC = "modelarts.vm.cpu.2u"
SLOW_POOLS = tuple(f"pool-slow-{i}" for i in range(10))
REFUSED_POOLS = tuple(f"pool-{i:03d}" for i in range(200))
RUNNING = {"train": {"Running": 2, "Completed": 5}}

PAGER, TICKETS, NONE = "modelarts-pager", "modelarts-tickets", "modelarts-none"

#: KEY_FILES' key before and after its rotation (the simulator accepts both throughout).
FILE_KEYS = (
    ("FILEKEYA000000000000", "file-secret-key-a-not-real"),
    ("FILEKEYB000000000000", "file-secret-key-b-not-real"),
)
#: The agency's credentials last 15 minutes (as short as they come) in fast time, renewed
#: when half is left (above ModelArtsCredentialsExpiring's ``left``), plus half a poll
#: interval: the simulator mints a set when a poll asks, so with a whole number of intervals
#: that replica's polls would fall on the instant the set expires, and one signed just before
#: it would be refused on arrival.
AGENCY_LIFETIME = (15 * 60 + 30) * FAST_SCALE


@dataclass(frozen=True)
class Expected:
    """An alert that must reach ``receiver``: its name and the labels that identify it."""

    alertname: str
    receiver: str
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, alertname: str, receiver: str, **labels: str) -> Expected:
        """The alert with ``labels``, and the region of its project_id if it has one."""
        if "project_id" in labels:
            labels["region"] = region(labels["project_id"])
        return cls(alertname, receiver, tuple(sorted(labels.items())))


def identity(alert: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """An alert's name and labels, severity left out."""
    labels = {k: v for k, v in alert["labels"].items() if k not in ("alertname", "severity")}
    return alert["labels"]["alertname"], tuple(sorted(labels.items()))


def notified(webhook: Webhook, status: str, since: int = 0) -> set[Expected]:
    """Every (alert, receiver) notified with ``status`` from notification ``since`` on."""
    return {
        Expected(name, receiver, labels)
        for receiver, alert in webhook.notifications[since:]
        if alert["status"] == status
        for name, labels in [identity(alert)]
    }


def concerning(found: set[Expected], project: str) -> set[Expected]:
    """The alerts of ``project``, and those of no project at all."""
    return {e for e in found if dict(e.labels).get("project_id") in (project, None)}


def of_project(found: set[Expected], *projects: str) -> set[Expected]:
    return {e for e in found if dict(e.labels).get("project_id") in projects}


def inhibited(stack: Stack, alertname: str, **labels: str) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds as suppressed by an inhibition, matching the labels."""
    return [
        alert
        for alert in stack.alertmanager_alerts()
        if alert["labels"]["alertname"] == alertname
        and all(alert["labels"].get(k) == v for k, v in labels.items())
        and alert["status"]["state"] == "suppressed"
        and alert["status"]["inhibitedBy"]
    ]


def signed(sim: Simulator, project: str, since: float) -> set[tuple[str | None, int]]:
    """(access key, status) of the project's requests the simulator answered since
    ``since`` (Unix time)."""
    return {
        (r.access_key, r.status)
        for r in sim.requests()
        if r.time >= since and f"/{project}/" in r.path
    }


def first_arrival(webhook: Webhook, alertname: str, status: str, since: int = 0) -> float:
    """When (monotonic) the first notification of ``alertname`` with ``status`` arrived,
    counting notified alerts from ``since`` on."""
    count = 0
    for arrived, _, body in webhook.log:
        for alert in body["alerts"]:
            count += 1
            if (
                count > since
                and alert["labels"]["alertname"] == alertname
                and alert["status"] == status
            ):
                return arrived
    raise AssertionError(f"no {status} {alertname}")


def setting(name: str) -> float:
    """A knob of deploy/prometheus/settings.yml (``Alert.knob``) in seconds, as the fast
    stack's rules have it."""
    value = mixin().load_settings().scaled(FAST_SCALE).duration(name)
    return float(value.seconds)


def description(webhook: Webhook, alertname: str, **labels: str) -> str:
    found = webhook.received(alertname, "firing", **labels)
    assert found, f"no firing {alertname} {labels}"
    text = found[-1][1]["annotations"]["description"]
    assert isinstance(text, str)
    return " ".join(text.split())


# --- the stack of every alert but the refused key -------------------------------------------


def setup(sim: Simulator) -> None:
    """The quiet state, plus the other projects' pools and a pool whose answers leave out
    zero counts (ModelArts may: the exporter still serves the zeros)."""
    quiet_state(sim)
    sim.set_pool_info(PROJECT, BATCH_POOL, display_name="Batch", resources={CPU_SPEC: (2, 4)})
    sim.set_pool(PROJECT, BATCH_POOL, RUNNING)
    sim.set_pool(PROJECT, FLAKY_POOL, RUNNING)
    sim.inject(Fault(path_contains="/pools/pool-infer-snt9b/workloads", variant="sparse"))
    for project, pools in ((UNREACHABLE, ("a", "b")), (THROTTLED, ("a", "b")), (SLOW, SLOW_POOLS)):
        for pool in pools:
            sim.set_pool(project, pool, RUNNING)
    sim.set_specs(
        UNREACHABLE, "train", [{**s, "no_resource": False} for s in default_specs("train")]
    )
    sim.set_access_keys({AK: SK, **dict(FILE_KEYS)})
    for project in (KEY_FILES, AGENCY):
        for pool in ("a", "b"):
            sim.set_pool(project, pool, RUNNING)
    sim.agency.configure(lifetime=AGENCY_LIFETIME)


def write_keys(secrets: Path, access_key: str, secret_key: str) -> None:
    """KEY_FILES' credential files, as a rotation writes them (one after the other)."""
    (secrets / "access_key").write_text(access_key + "\n")
    (secrets / "secret_key").write_text(secret_key + "\n")


def targets(sim: Simulator, interval: float, secrets: Path) -> list[dict[str, Any]]:
    main = main_target(sim, interval)
    main["pools"] = [RETIRED_POOL, FLAKY_POOL]

    def target(project: str, pools: tuple[str, ...], **extra: Any) -> dict[str, Any]:
        return {
            "project_id": project,
            "region": region(project),
            "endpoint": sim.url,
            "pools": list(pools),
            **extra,
        }

    return [
        main,
        target(UNREACHABLE, ("a", "b"), resource_specs={"job_types": ["train"]}),
        target(THROTTLED, ("a", "b")),
        # One request at a time against a slow API: its cycles take far longer than the
        # interval, so its items are polled too seldom (data stale, cycles skipped).
        target(SLOW, SLOW_POOLS, max_concurrency=1),
        target(
            KEY_FILES,
            ("a", "b"),
            credentials={
                "access_key": {"file": str(secrets / "access_key")},
                "secret_key": {"file": str(secrets / "secret_key")},
            },
        ),
        target(AGENCY, ("a", "b"), credentials={"type": "metadata", "url": sim.url}),
    ]


EXPORTER = {"timeout": "6s", "retry": {"initial_backoff": "50ms", "max_backoff": "1s"}}


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of KEY_FILES' credential files, holding its first key."""
    directory = tmp_path_factory.mktemp("secrets")
    write_keys(directory, *FILE_KEYS[0])
    return directory


@pytest.fixture(scope="module")
def stack(webhook: Webhook, secrets: Path) -> Iterator[Stack]:
    options = StackOptions(
        replicas=2,
        setup=setup,
        targets=partial(targets, secrets=secrets),
        exporter=EXPORTER,
        webhook_url=webhook.url,
    )
    with running(options) as started:
        wait_for(
            "both replicas scraped",
            lambda: len(started.query('up{job="modelarts-exporter"} == 1')) == 2,
        )
        yield started


class Background:
    """Conditions that need a hand on the simulator all the time, until ``stop``."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        tick = 0
        while not self.stopped.wait(1.0):
            tick += 1
            # A busy pool whose train queue moves (2, 1, 2, 1 ...) beside a stuck notebook
            # queue (3, until one job leaves it).
            queued = 2 if tick % 2 else 1
            self.sim.set_pool(
                PROJECT,
                "pool-notebooks",
                {
                    "train": {"Queue": queued, "Running": 6 - queued, "Completed": 10 + tick},
                    "notebook": {"Queue": 3, "Running": 3},
                },
            )
            # Sustained throttling: one request of the project answered 429 every second.
            self.sim.inject(Fault.throttled(0.1, path_contains=f"/{THROTTLED}/", times=1))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def pool_info(sim: Simulator, pool: str, *, phase: str = "Running", abnormal: int = 0) -> None:
    display_name, flavor, nodes = POOL_INFO.get(pool, ("Batch", CPU_SPEC, 2))
    sim.set_pool_info(
        PROJECT,
        pool,
        display_name=display_name,
        phase=phase,
        resources={flavor: (nodes, 2 * nodes)},
        nodes={"available": {flavor: nodes - abnormal}, "abnormal": {flavor: abnormal}},
    )


def specs(sim: Simulator, job_type: str, exhausted: str | None) -> None:
    sim.set_specs(
        PROJECT,
        job_type,
        [{**s, "no_resource": s["spec_code"] == exhausted} for s in default_specs(job_type)],
    )


def phase_one_expected(instances: list[str]) -> set[Expected]:
    """What reaches each receiver in the first phase, firing and then resolved; the
    per-process alerts come from each of the replicas at ``instances``."""
    return {
        Expected.of("ModelArtsJobsAbnormal", TICKETS, project_id=PROJECT, pool="pool-train-a100",
                    type="train"),
        Expected.of("ModelArtsJobsFailed", TICKETS, project_id=PROJECT, pool="pool-infer-snt9b",
                    type="train"),
        Expected.of("ModelArtsJobBacklog", TICKETS, project_id=PROJECT, pool="pool-notebooks",
                    type="notebook"),
        Expected.of("ModelArtsPoolNodesAbnormal", TICKETS, project_id=PROJECT,
                    pool="pool-infer-snt9b", flavor=POOL_INFO["pool-infer-snt9b"][1]),
        Expected.of("ModelArtsPoolUnhealthy", TICKETS, project_id=PROJECT, pool=BATCH_POOL,
                    phase="Abnormal"),
        Expected.of("ModelArtsAcceleratorSpecExhausted", TICKETS, project_id=PROJECT,
                    job_type="train", spec_code=NPU_SPEC),
        Expected.of("ModelArtsSpecExhausted", NONE, project_id=PROJECT, job_type="inference",
                    spec_code=CPU_SPEC),
        Expected.of("ModelArtsPoolNotFound", TICKETS, project_id=PROJECT, pool=RETIRED_POOL),
        Expected.of("ModelArtsPollFailing", TICKETS, project_id=PROJECT, api="workload_statistics",
                    target=FLAKY_POOL),
        Expected.of("ModelArtsApiUnreachable", PAGER, project_id=UNREACHABLE),
        Expected.of("ModelArtsApiThrottled", TICKETS, project_id=THROTTLED),
        *(
            Expected.of("ModelArtsDataStale", TICKETS, project_id=SLOW, api="workload_statistics",
                        target=pool)
            for pool in SLOW_POOLS
        ),
        *(
            Expected.of("ModelArtsPollCycleOverrun", NONE, project_id=SLOW, instance=instance,
                        job="modelarts-exporter")
            for instance in instances
        ),
    }  # fmt: skip


def signing_with(stack: Stack, access_key: str) -> bool:
    """Every request of KEY_FILES in the last two poll intervals signed with ``access_key``,
    and accepted (both replicas poll in that time)."""
    since = time.time() - 2 * stack.options.interval
    return signed(stack.simulator, KEY_FILES, since) == {(access_key, 200)}


def rotate_well(stack: Stack, secrets: Path, access_key: str, secret_key: str) -> None:
    """Rotate KEY_FILES' key: both replicas sign with the new one at once, and read it well
    (the gauge never leaves 1 on either)."""
    rotated = time.monotonic()
    write_keys(secrets, access_key, secret_key)
    wait_for(
        "both replicas signing with the new key",
        lambda: signing_with(stack, access_key),
        timeout=30,
    )
    window = int(time.monotonic() - rotated) + 2
    read = stack.query(
        "min_over_time(modelarts_credentials_last_reload_successful"
        f'{{project_id="{KEY_FILES}"}}[{window}s])'
    )
    assert sorted((r["metric"]["instance"], r["value"][1]) for r in read) == sorted(
        (e.instance, "1") for e in stack.exporters
    )


#: Seconds until AGENCY's credentials expire, on the replica whose credentials last longest.
AGENCY_SECONDS_LEFT = (
    "max by (project_id, region) (modelarts_credentials_expiry_timestamp_seconds"
    f'{{project_id="{AGENCY}"}}) - time()'
)


def renewed_in_time(stack: Stack) -> None:
    """AGENCY's credentials were renewed in time since the stack started (run alone: for two
    renewals at least): the least time left never came within ``left`` of expiry, and
    ModelArtsCredentialsExpiring was never even pending."""
    wait_for("two renewals", lambda: stack.simulator.agency.issued >= 3, timeout=90)
    [least] = stack.query(f"min_over_time(({AGENCY_SECONDS_LEFT})[1h:1s])")
    assert float(least["value"][1]) > setting("ModelArtsCredentialsExpiring.left"), least
    assert not stack.query('count_over_time(ALERTS{alertname="ModelArtsCredentialsExpiring"}[1h])')


class TestEveryAlert:
    def test_phase_one_every_data_and_project_alert_fires_resolves_and_inhibits(
        self, stack: Stack, webhook: Webhook
    ) -> None:
        """Each project's trouble reaches exactly the expected receivers, firing and then
        resolved; the alerts it explains are inhibited in Alertmanager and reach nobody."""
        sim = stack.simulator
        expected = phase_one_expected([e.instance for e in stack.exporters])
        # DataStale: it depends on how two replicas' slow cycles interleave which items go
        # stale for long enough, so at least one must, and any that do count as expected.
        stale = {e for e in expected if e.alertname == "ModelArtsDataStale"}
        overrun = {e for e in expected if e.alertname == "ModelArtsPollCycleOverrun"}

        started = time.monotonic()
        background = Background(sim)
        try:
            sim.set_pool(PROJECT, "pool-train-a100", {"train": {"Running": 2, "Abnormal": 2}})
            sim.set_pool(PROJECT, "pool-infer-snt9b", {"train": {"Running": 1, "Failed": 1}})
            pool_info(sim, "pool-infer-snt9b", abnormal=1)
            sim.set_pool(PROJECT, BATCH_POOL, {"train": {"Running": 1, "Abnormal": 1}})
            pool_info(sim, BATCH_POOL, phase="Abnormal", abnormal=1)
            specs(sim, "train", NPU_SPEC)
            specs(sim, "inference", CPU_SPEC)
            flaky = Fault.server_error(500, path_contains=f"/pools/{FLAKY_POOL}/")
            unreachable = Fault.server_error(503, path_contains=f"/{UNREACHABLE}/")
            slow = Fault.slow(4.0, path_contains=f"/{SLOW}/")
            for fault in (flaky, unreachable, slow):
                sim.inject(fault)

            def all_firing() -> bool:
                firing = notified(webhook, "firing")
                return (
                    (expected - stale - overrun) <= firing
                    and bool(stale & firing)
                    and bool(overrun & firing)
                )

            wait_for("every alert of phase one firing", all_firing, timeout=180)
            # What the replicas polled is counted once, as the simulator has it.
            assert "2 train job(s) in pool pool-train-a100" in description(
                webhook, "ModelArtsJobsAbnormal", pool="pool-train-a100"
            )
            assert description(webhook, "ModelArtsJobsFailed").startswith(
                "1 train job(s) failed in pool pool-infer-snt9b"
            )
            assert description(webhook, "ModelArtsJobBacklog").startswith(
                "At least 3 notebook job(s)"
            )
            assert description(webhook, "ModelArtsPoolNodesAbnormal").startswith(
                f"1 of 2 {POOL_INFO['pool-infer-snt9b'][1]} node(s)"
            )
            assert "named Batch" in description(webhook, "ModelArtsPoolUnhealthy")
            assert "the last error: ModelArts.50005000." in description(
                webhook, "ModelArtsPollFailing", target=FLAKY_POOL
            )
            # The inhibited: firing in Prometheus, held back by Alertmanager.
            wait_for(
                "the unhealthy pool's own node and job alerts inhibited",
                lambda: (
                    inhibited(stack, "ModelArtsPoolNodesAbnormal", pool=BATCH_POOL)
                    and inhibited(stack, "ModelArtsJobsAbnormal", pool=BATCH_POOL)
                ),
            )
            wait_for(
                "the unreachable project's items inhibited",
                lambda: len(inhibited(stack, "ModelArtsPollFailing", project_id=UNREACHABLE)) == 3,
            )

            # Recovery: the symptoms first, then their causes.
            sim.set_pool(PROJECT, "pool-train-a100", {"train": {"Running": 4}})
            sim.set_pool(PROJECT, BATCH_POOL, RUNNING)
            pool_info(sim, BATCH_POOL)
            pool_info(sim, "pool-infer-snt9b")
            specs(sim, "train", None)
            specs(sim, "inference", None)
            sim.set_pool(PROJECT, RETIRED_POOL, RUNNING)
            for fault in (flaky, unreachable, slow):
                sim.clear_faults(fault)
        finally:
            background.stop()
        # The notebook queue moves at last, and both queues empty: nothing waits any more.
        sim.set_pool(
            PROJECT,
            "pool-notebooks",
            {"train": {"Running": 6, "Completed": 40}, "notebook": {"Running": 6}},
        )

        firing = notified(webhook, "firing")
        went_stale = stale & firing
        must_resolve = (expected - stale) | went_stale
        wait_for(
            "every alert of phase one resolved",
            lambda: must_resolve <= notified(webhook, "resolved"),
            timeout=120,
        )
        projects = (PROJECT, UNREACHABLE, THROTTLED, SLOW)
        timeline = webhook.timeline(started)
        assert of_project(notified(webhook, "firing"), *projects) == must_resolve, timeline
        assert of_project(notified(webhook, "resolved"), *projects) == must_resolve, timeline

    def test_a_rejected_reload_is_reported_and_resolves(
        self, stack: Stack, webhook: Webhook
    ) -> None:
        """A configuration the replica rejects on SIGHUP (it keeps the old one) reaches the
        tickets receiver with that replica's instance, and resolves after a good reload."""
        since = len(webhook.notifications)
        replica = stack.exporters[1]
        good = replica.config.read_text()
        replica.config.write_text("poll_interval: [not a duration\n")
        replica.process.send_signal(signal.SIGHUP)
        expected = Expected.of(
            "ModelArtsExporterConfigReloadFailed",
            TICKETS,
            instance=replica.instance,
            job="modelarts-exporter",
        )
        wait_for("reload alert", lambda: expected in notified(webhook, "firing", since))
        replica.config.write_text(good)
        replica.process.send_signal(signal.SIGHUP)
        wait_for("reload resolved", lambda: expected in notified(webhook, "resolved", since))
        assert notified(webhook, "firing", since) == {expected}

    def test_a_bad_key_rotation_and_an_agency_outage_alert_and_resolve(
        self, stack: Stack, webhook: Webhook, secrets: Path
    ) -> None:
        """The two credential alerts, at once (each in a project of its own):

        - KEY_FILES' secret files ({file: PATH}) rotated well are used by both replicas at
          once and reported by neither. Emptied by a bad rotation, they cannot be read:
          ModelArtsCredentialsReloadFailed reaches the tickets receiver once per replica
          (each reads the files itself) with its instance, no sooner than its ``for``;
          meanwhile both keep signing with the key they have, and ModelArts accepts it. A
          good file again resolves it.
        - AGENCY's temporary credentials, renewed when half their lifetime is left, never
          came within ``left`` of expiry: ModelArtsCredentialsExpiring was never even
          pending. With the metadata service down, both replicas keep theirs: the freshest
          replica polls on until they expire, and the alert fires before they do. With the
          service back, the next set fetched resolves it.

        Nothing else of either project fires."""
        sim = stack.simulator
        since = len(webhook.notifications)
        ak, sk = FILE_KEYS[1]
        left = setting("ModelArtsCredentialsExpiring.left")
        expiring = Expected.of("ModelArtsCredentialsExpiring", TICKETS, project_id=AGENCY)
        reload_failed = {
            Expected.of(
                "ModelArtsCredentialsReloadFailed",
                TICKETS,
                project_id=KEY_FILES,
                instance=exporter.instance,
                job="modelarts-exporter",
            )
            for exporter in stack.exporters
        }
        assert signing_with(stack, FILE_KEYS[0][0])
        began = time.monotonic()
        rotate_well(stack, secrets, ak, sk)
        renewed_in_time(stack)

        # The trouble: a bad rotation, and the metadata service down.
        issued = sim.agency.issued
        started, started_at = time.monotonic(), time.time()
        (secrets / "secret_key").write_text("")
        sim.agency.configure(available=False)
        try:
            wait_for(
                "ModelArtsCredentialsExpiring firing in Prometheus",
                lambda: stack.query(
                    'ALERTS{alertname="ModelArtsCredentialsExpiring", alertstate="firing"}'
                ),
                timeout=60,
            )
            fired = time.time()
            [held] = stack.query(f"{AGENCY_SECONDS_LEFT} + time()")
            expires_at = float(held["value"][1])
            # Before the freshest replica's credentials expire, and nobody renewed them.
            assert fired < expires_at, (fired, expires_at)
            assert sim.agency.issued == issued
            # Back only once notified: an alert that resolves within Alertmanager's group_wait
            # is never notified at all (a replica whose credentials expired already fetches
            # a new set at its next poll).
            wait_for("expiring notified", lambda: expiring in notified(webhook, "firing", since))
        finally:
            sim.agency.configure(available=True)
        # The freshest replica kept its credentials until they expired: on it, no poll of
        # AGENCY failed until then. (The other may have held the set before, which expired
        # up to half a lifetime earlier; its polls failed since.)
        [worst] = stack.query(
            "min(max by (target) (min_over_time(modelarts_poll_success"
            f'{{project_id="{AGENCY}"}}[{int(expires_at - started_at)}s] @ {expires_at:.3f})))'
        )
        assert worst["value"][1] == "1", worst
        wait_for(
            "a reload failure from each replica",
            lambda: reload_failed <= notified(webhook, "firing", since),
        )
        arrived = first_arrival(webhook, "ModelArtsCredentialsReloadFailed", "firing", since)
        wait = setting("ModelArtsCredentialsReloadFailed.for")
        assert arrived - started >= wait, webhook.timeline(started)
        assert signing_with(stack, ak)
        (secrets / "secret_key").write_text(sk + "\n")

        everything = reload_failed | {expiring}
        wait_for(
            "both alerts resolved",
            lambda: everything <= notified(webhook, "resolved", since),
        )
        assert signing_with(stack, ak)
        assert sim.agency.issued > issued
        [fresh] = stack.query(AGENCY_SECONDS_LEFT)
        assert float(fresh["value"][1]) > left, fresh
        timeline = webhook.timeline(began)
        firing = notified(webhook, "firing", since)
        assert concerning(firing, KEY_FILES) == reload_failed, timeline
        assert concerning(firing, AGENCY) == {expiring}, timeline

    def test_a_lost_replica_pages_and_the_other_keeps_the_data(
        self, stack: Stack, webhook: Webhook
    ) -> None:
        """A replica that is gone (killed, as a crashed process or a lost pod) pages once
        (critical) with its instance; the other replica keeps every data series, so nothing
        else fires; it resolves when the replica is back."""
        since = len(webhook.notifications)
        replica = stack.exporters[1]
        expected = Expected.of(
            "ModelArtsExporterDown", PAGER, instance=replica.instance, job="modelarts-exporter"
        )
        stack.kill_exporter(1)
        try:
            wait_for("exporter down", lambda: expected in notified(webhook, "firing", since))
            assert stack.query(f'modelarts_pool_jobs{{project_id="{PROJECT}"}}')
        finally:
            stack.start_exporter(1)
        wait_for("exporter back", lambda: expected in notified(webhook, "resolved", since))
        assert notified(webhook, "firing", since) == {expected}, webhook.timeline()

    def test_no_exporter_target_at_all_pages_and_resolves(
        self, stack: Stack, webhook: Webhook
    ) -> None:
        """When service discovery finds no exporter at all (the deployment is gone),
        ModelArtsExporterAbsent pages; it resolves once the exporters are found again. Runs
        last: every other series leaves with them."""
        since = len(webhook.notifications)
        expected = Expected.of("ModelArtsExporterAbsent", PAGER, job="modelarts-exporter")
        stack.scrape_exporters(False)
        try:
            wait_for("exporter absent", lambda: expected in notified(webhook, "firing", since))
        finally:
            stack.scrape_exporters(True)
        wait_for("exporter present", lambda: expected in notified(webhook, "resolved", since))
        assert notified(webhook, "firing", since) == {expected}


# --- a refused key at 200 pools, in two projects ----------------------------------------------


def refused_setup(sim: Simulator) -> None:
    for project in REFUSED:
        for pool in REFUSED_POOLS:
            sim.set_pool(project, pool, RUNNING)
        sim.inject(Fault.unauthorized(path_contains=f"/{project}/"))


def refused_targets(sim: Simulator, interval: float) -> list[dict[str, Any]]:
    return [
        {
            "project_id": project,
            "region": "cn-north-4",
            "endpoint": sim.url,
            "pools": list(REFUSED_POOLS),
            "requests_per_second": 1000,
        }
        for project in REFUSED
    ]


@pytest.fixture(scope="class")
def refused() -> Iterator[tuple[Stack, Webhook]]:
    """A stack of its own (one replica) for the refused key, started when its class runs."""
    hook = Webhook()
    options = StackOptions(
        setup=refused_setup,
        targets=refused_targets,
        exporter=EXPORTER,
        webhook_url=hook.url,
    )
    try:
        with running(options) as started:
            yield started, hook
    finally:
        hook.stop()


class TestRefusedKeyAt200Pools:
    def test_one_page_per_project_and_everything_else_inhibited(
        self, refused: tuple[Stack, Webhook]
    ) -> None:
        """Two projects of 200 pools each whose key ModelArts refuses: each pages exactly
        once (ModelArtsAuthenticationFailed, critical), while ModelArtsApiUnreachable and 200
        ModelArtsPollFailing per project fire in Prometheus and are inhibited; the exporter
        asked each project a handful of times, not 200 times a cycle. Once the key is
        accepted again each page resolves, and nothing else was ever notified."""
        stack, webhook = refused
        pages = {Expected.of("ModelArtsAuthenticationFailed", PAGER, project_id=p) for p in REFUSED}
        wait_for("one page per project", lambda: pages <= notified(webhook, "firing"))
        for project in REFUSED:

            def all_inhibited(project: str = project) -> bool:
                found = inhibited(stack, "ModelArtsPollFailing", project_id=project)
                return len(found) == len(REFUSED_POOLS)

            wait_for(f"200 failing items of {project} inhibited", all_inhibited)
            assert inhibited(stack, "ModelArtsApiUnreachable", project_id=project)
        assert notified(webhook, "firing") == pages
        refusals = [r for r in stack.simulator.requests() if r.status == 401]
        for project in REFUSED:
            asked = [r for r in refusals if f"/{project}/" in r.path]
            assert 1 <= len(asked) <= 8, len(asked)

        for project in REFUSED:
            stack.simulator.clear_faults(Fault.unauthorized(path_contains=f"/{project}/"))
        wait_for("pages resolved", lambda: pages <= notified(webhook, "resolved"), timeout=120)
        time.sleep(2 * stack.options.interval)
        assert notified(webhook, "firing") == pages
        assert notified(webhook, "resolved") == pages
