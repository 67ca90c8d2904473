"""The write path end to end: capture → the Redis Stream queue → the ingester, against a private redis-server that
each test may stop and start (so outages are real), on SQLite and on PostgreSQL.

The rows compared between two ways of recording the same items are everything the rows hold, with database ids
replaced by what they stand for.
"""

import json
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection

from automations.models import ActionRun
from tests.automations.services import free_port, require_programs
from tests.factories import AccountFactory, ActionFactory, CustomEventFactory, MarketingSourceFactory
from tests.keys import hit_id, row_key
from tracking import queue
from tracking.capture import capture
from tracking.consumer import Consumer
from tracking.hits import Hit
from tracking.ingest import ingest
from tracking.items import ApiEvent, ApiItem, HitItem
from tracking.models import UTM_FIELDS, Contact, EventRecord, Impression, Session, Visitor

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class RedisServer:
    """A redis-server of the test's own on a free loopback port: stop() and start() are real outages."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            # Durable as in production: what was accepted before a stop is there after the start.
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.directory),
            ]
            + ["--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        queue.client_reset()


@pytest.fixture
def redis_server(settings, tmp_path):
    require_programs("redis-server", hint="apt-get install -y redis-server")
    server = RedisServer(tmp_path)
    server.start()
    settings.INGEST_QUEUE_URL = server.url
    settings.INGEST_SHARDS = 4
    settings.INGEST_LEASE_SECONDS = 1.0
    settings.INGEST_BATCH_WAIT_MS = 10
    queue.client_reset()
    yield server
    queue.client_reset()
    if server.process.poll() is None:
        server.stop()


def read_all(consumer: Consumer, count: int, *, timeout: float = 10.0) -> list:
    """What the consumer reads, batch after batch, until it holds `count` entries: one read returns what arrived
    within INGEST_BATCH_WAIT_MS, which on a busy machine can be part of what is there."""
    entries = []
    deadline = time.monotonic() + timeout
    while len(entries) < count and time.monotonic() < deadline:
        entries += consumer._read()
    return entries


def hit(n: int, kind: str, visitor: str, *, url: str = "https://acme.test/", **fields) -> Hit:
    return Hit(type=kind, id=f"{kind[:3]}-{n:07d}", visitor=visitor, url=url, **fields)


def sequence(account) -> list:
    """Hits and API events of three visitors and two known contacts, with every rule in play: new visitors, visits
    continued and timed out, a campaign change, conversions attributed, metadata dropped, an identification, a
    repeated hit id, API events with a marketing source, a visitor id and an idempotency key (twice)."""
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    CustomEventFactory(account=account, slug="watched-video")
    MarketingSourceFactory(account=account, name="Partner Portal", channel="AFFILIATE")
    at = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731
    rows = [
        (at(0), hit(1, "impression", "visitor-aaaa", url="https://acme.test/?utm_source=news&utm_campaign=spring")),
        (at(1), hit(2, "impression", "visitor-bbbb", referrer="https://www.google.com/")),
        (at(2), hit(3, "event", "visitor-aaaa", slug="watched-video", metadata={"percent": 87})),
        (at(3), hit(4, "impression", "visitor-aaaa", url="https://acme.test/pricing")),
        (at(4), hit(5, "event", "visitor-aaaa", slug="requested-demo")),
        (at(5), hit(6, "event", "visitor-bbbb", slug="requested-demo", metadata_dropped_bytes=5000)),
        (at(6), ApiEvent(slug="requested-demo", email="ada@example.com", marketing_source="partner portal")),
        (at(7), hit(7, "identify", "visitor-bbbb", email="grace@example.com")),
        (at(8), ApiEvent(slug="watched-video", email="grace@example.com", visitor_id="visitor-bbbb")),
        (at(9), ApiEvent(slug="requested-demo", email="ada@example.com", idempotency_key="order-1")),
        (at(10), ApiEvent(slug="requested-demo", email="ada@example.com", idempotency_key="order-1")),
        (at(11), hit(8, "impression", "visitor-aaaa", url="https://acme.test/?utm_source=ads&utm_campaign=summer")),
        (at(12), hit(4, "impression", "visitor-aaaa", url="https://acme.test/pricing", retry=True)),
        (at(50), hit(9, "impression", "visitor-cccc")),
        (at(51), hit(10, "event", "visitor-cccc", slug="requested-demo")),
        (at(90), hit(11, "event", "visitor-cccc", slug="requested-demo")),
    ]
    items = []
    for received_at, payload in rows:
        if isinstance(payload, Hit):
            items.append(HitItem(account_id=account.pk, received_at=received_at, hit=payload))
        else:
            items.append(ApiItem(account_id=account.pk, received_at=received_at, event=payload))
    return items


def ordered(rows) -> list:
    return sorted(rows, key=repr)  # rows hold None beside values: an order that needs no comparison of the two


def rows_of(account) -> dict:
    """Everything recorded for the account, as comparable values."""
    impressions = {i.pk: hit_id(i) for i in Impression.objects.filter(account=account)}
    sessions = {s.pk: n for n, s in enumerate(Session.objects.filter(account=account).order_by("started_at", "pk"))}
    return {
        "contacts": ordered(
            (c.email or "", c.identified_at is not None) for c in Contact.objects.filter(account=account)
        ),
        "visitors": ordered(
            (v.uid, v.contact.email, v.last_seen_at, sessions.get(v.current_session_id))
            for v in Visitor.objects.filter(account=account).select_related("contact")
        ),
        "sessions": [
            (s.visitor.uid, s.started_at, s.last_seen_at, s.landing_url, s.referrer, s.channel, s.utm_campaign)
            for s in Session.objects.filter(account=account).select_related("visitor").order_by("started_at", "pk")
        ],
        "impressions": ordered(
            (hit_id(i), i.visitor.uid, sessions[i.session_id], i.url, i.channel, i.occurred_at, *i.utm.values())
            for i in Impression.objects.filter(account=account).select_related("visitor")
        ),
        "events": ordered(
            (
                e.custom_event.slug,
                e.contact.email,
                e.visitor.uid if e.visitor else None,
                sessions.get(e.session_id),
                e.source,
                e.occurred_at,
                e.page_url,
                e.marketing_channel,
                e.marketing_source.name if e.marketing_source else None,
                e.marketing_source_name,
                json.dumps(e.metadata, sort_keys=True),
                e.metadata_dropped,
                e.metadata_bytes,
                e.is_conversion,
                impressions.get(e.attributed_impression_id),
                # The queue gives API events without a key of their own their entry's id (not the caller's key).
                row_key(e) if not (row_key(e) or "").startswith("q:") else None,
                *(getattr(e, name) for name in UTM_FIELDS),
            )
            for e in EventRecord.objects.filter(account=account).select_related(
                "custom_event", "contact", "visitor", "marketing_source"
            )
        ),
        "runs": ActionRun.objects.filter(account=account).count(),
    }


def drain():
    Consumer(name="test-consumer").run(until_idle=True, max_seconds=60)


def test_queue_inline_and_one_batch_record_identical_rows(redis_server, settings):
    inline, queued, batched = AccountFactory(domains=["acme.test"]), AccountFactory(), AccountFactory()
    results = {}
    for account in (inline, queued, batched):
        items = sequence(account)
        ActionFactory(custom_event=account.custom_events.get(slug="requested-demo"))
        if account is batched:
            # Every item in one transaction: two hits of one visitor in one batch give what they give across batches.
            results[account.pk] = [o.status for o in ingest(items)]
            continue
        settings.INGEST_QUEUE_URL = redis_server.url if account is queued else ""
        results[account.pk] = [outcome.status for item in items for outcome in capture(account=account, items=[item])]
    drain()

    assert results[queued.pk] == ["accepted"] * 16
    assert results[inline.pk] == results[batched.pk]
    assert results[inline.pk].count("duplicate") == 2  # the repeated key and the retried page view
    expected = rows_of(inline)
    assert len(expected["events"]) == 8 and len(expected["impressions"]) == 5 and len(expected["sessions"]) == 5
    assert expected["runs"] == 6
    assert rows_of(queued) == expected
    assert rows_of(batched) == expected
    assert all(s.waiting == 0 for s in queue.queue_status())


def test_each_visitors_items_wait_in_one_shard_in_order(redis_server):
    account = AccountFactory()
    items = [
        HitItem(account_id=account.pk, received_at=T0, hit=hit(n, "impression", f"visitor-{n % 3:04d}"))
        for n in range(30)
    ]

    capture(account=account, items=items)

    r = queue.client()
    seen = {}
    for shard in range(queue.shard_count()):
        for _, fields in r.xrange(queue.stream_key(shard)):
            body = json.loads(fields[queue.FIELD])
            seen.setdefault(body["h"]["visitor"], set()).add(shard)
            assert shard == queue.shard_of(body["h"]["visitor"])
    assert set(seen) == {"visitor-0000", "visitor-0001", "visitor-0002"}
    assert all(len(shards) == 1 for shards in seen.values())


def test_a_consumer_killed_before_acknowledging_is_redelivered_and_stored_once(redis_server, settings):
    account = AccountFactory()
    items = sequence(account)
    capture(account=account, items=items)
    crashed = Consumer(name="crashed")
    crashed.leases_refresh(force=True)

    # It read every item and recorded them, then died before its acknowledgement.
    entries = read_all(crashed, 16)
    assert len(entries) == 16
    from tracking.items import item_loads

    ingest([item_loads(raw, position=(str(shard), entry_id)) for shard, entry_id, raw in entries])
    recorded = rows_of(account)
    time.sleep(settings.INGEST_LEASE_SECONDS + 0.2)  # its leases lapse

    drain()

    assert rows_of(account) == recorded
    assert len(recorded["events"]) == 8
    assert all(s.waiting == 0 and s.pending == 0 for s in queue.queue_status())


def test_a_consumer_killed_before_recording_leaves_its_items_to_the_next(redis_server, settings):
    account = AccountFactory()
    capture(account=account, items=sequence(account))
    crashed = Consumer(name="crashed")
    crashed.leases_refresh(force=True)
    assert len(read_all(crashed, 16)) == 16  # read, never recorded
    time.sleep(settings.INGEST_LEASE_SECONDS + 0.2)

    drain()

    assert len(rows_of(account)["events"]) == 8
    assert all(s.waiting == 0 and s.pending == 0 for s in queue.queue_status())


def test_the_ingester_waits_for_the_database_and_resumes(redis_server):
    account = AccountFactory()
    capture(account=account, items=sequence(account))
    unreachable_until = time.monotonic() + 1.5
    refused = []

    def unreachable_for_a_while(execute, sql, params, many, context):
        # Every statement fails, as when the server is down, for a second and a half.
        if time.monotonic() < unreachable_until:
            refused.append(sql)
            raise OperationalError("could not connect to server: Connection refused")
        return execute(sql, params, many, context)

    consumer = Consumer(name="test-consumer")
    with connection.execute_wrapper(unreachable_for_a_while):
        consumer.run(until_idle=True, max_seconds=60)

    assert refused and consumer.failures == 0  # it failed, waited, and recorded once the database answered
    assert len(rows_of(account)["events"]) == 8
    assert all(s.waiting == 0 and s.pending == 0 for s in queue.queue_status())


def post(client, account, n: int):
    body = {"type": "impression", "id": f"imp-{n:07d}", "visitor": "visitor-aaaa", "url": "https://acme.test/"}
    return client.post(
        f"/collect/{account.site_key}",
        data=json.dumps(body),
        content_type="text/plain",
        headers={"Origin": "https://acme.test"},
    )


def blocked(*args, **kwargs):
    raise OperationalError("the database cannot be reached")


def test_outages_capture_keeps_answering_and_every_accepted_hit_is_stored_once(client, redis_server):
    account = AccountFactory(domains=["acme.test"])
    answers = [post(client, account, 1).status_code]  # queued

    redis_server.stop()  # Redis down: recorded inline
    answers.append(post(client, account, 2).status_code)
    with connection.execute_wrapper(blocked):  # both down: 503, retry later
        both_down = post(client, account, 3)

    redis_server.start()
    queue.client_reset()
    with connection.execute_wrapper(blocked):  # PostgreSQL down, Redis up: queued from the cached account
        answers.append(post(client, account, 4).status_code)
    answers.append(post(client, account, 3).status_code)  # the beacon's retry of the refused hit
    drain()

    assert answers == [202, 200, 202, 202]
    assert both_down.status_code == 503 and both_down["Retry-After"] == "5"
    assert sorted(hit_id(i) for i in Impression.objects.filter(account=account)) == [
        f"imp-{n:07d}" for n in (1, 2, 3, 4)
    ]


def test_the_beacon_script_is_served_while_the_database_is_down(client, redis_server):
    account = AccountFactory()
    from paminga.cache import memo_clear_all

    memo_clear_all()
    with connection.execute_wrapper(blocked):
        response = client.get(f"/beacon/{account.site_key}.js")

    assert response.status_code == 200 and account.site_key in response.content.decode()


def test_backpressure_answers_503_with_retry_after(client, redis_server, settings, monkeypatch):
    settings.INGEST_QUEUE_MAX_DEPTH = 2
    monkeypatch.setattr(queue, "DEPTH_CHECK_SECONDS", 0.0)  # ask the depth on every hit, not 4 times a second
    account = AccountFactory(domains=["acme.test"])

    answers = [post(client, account, n).status_code for n in range(1, 6)]

    assert answers[:3] == [202, 202, 202] and set(answers[3:]) == {503}
    response = post(client, account, 9)
    assert response["Retry-After"] == str(settings.INGEST_RETRY_AFTER_SECONDS)
    queue._full_until = 0.0


def test_status_and_healthz_report_the_lag(client, redis_server):
    from django.core.management import call_command

    account = AccountFactory(domains=["acme.test"])
    post(client, account, 1)
    time.sleep(0.05)

    lag = client.get("/healthz").json()["ingest"]
    import io

    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        call_command("ingest", "--status")
    status = json.loads(out.getvalue())

    assert lag["waiting"] == 1 and lag["oldest_age_seconds"] > 0
    assert sum(s["waiting"] for s in status["shards"]) == 1 and len(status["shards"]) == 4


def test_the_event_debugger_says_when_recent_hits_are_still_queued(client, redis_server):
    from tests.factories import MembershipFactory, UserFactory

    account = AccountFactory(domains=["acme.test"])
    user = UserFactory(username="owner@acme.test")
    MembershipFactory(user=user, account=account)
    client.force_login(user)
    quiet = client.get("/settings/account/event-debugger/").content.decode()
    post(client, account, 1)

    queued = client.get("/settings/account/event-debugger/").content.decode()
    drain()
    drained = client.get("/settings/account/event-debugger/").content.decode()

    assert 'id="queued"' not in quiet and 'id="queued"' not in drained
    assert 'id="queued"' in queued and "still being recorded" in queued


def test_an_event_waiting_in_the_queue_keeps_its_definition_and_its_conversion_flag(client, redis_server):
    from custom_events.services import custom_event_update

    account = AccountFactory(domains=["acme.test"])
    demo = CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    body = {"type": "event", "id": "evt-0000001", "visitor": "visitor-aaaa", "url": "https://acme.test/"}
    answer = client.post(
        f"/collect/{account.site_key}",
        data=json.dumps({**body, "slug": "requested-demo"}),
        content_type="text/plain",
        headers={"Origin": "https://acme.test"},
    )

    # Edited while the hit waits: renamed, and no longer a conversion.
    custom_event_update(custom_event=demo, slug="booked-demo", counts_as_conversion=False)
    drain()

    assert answer.status_code == 202
    record = EventRecord.objects.get(account=account)
    assert record.custom_event == demo and record.is_conversion  # as when it fired


def test_a_takeover_reads_what_was_left_pending_once_per_batch(redis_server, settings):
    from tracking.models import RejectedHit

    account = AccountFactory()
    items = [HitItem(account_id=account.pk, received_at=T0, hit=hit(n, "impression", "visitor-aaaa")) for n in range(3)]
    capture(account=account, items=items)
    crashed = Consumer(name="crashed")
    crashed.leases_refresh(force=True)
    assert len(read_all(crashed, 3)) == 3  # read, never recorded
    time.sleep(settings.INGEST_LEASE_SECONDS + 0.2)

    successor = Consumer(name="successor")
    successor.leases_refresh(force=True)
    entries = read_all(successor, 3)

    assert sorted(entry_id for _, entry_id, _ in entries) == sorted({entry_id for _, entry_id, _ in entries})
    assert len(entries) == 3
    drain()
    assert Impression.objects.filter(account=account).count() == 3
    assert not RejectedHit.objects.filter(account=account).exists()  # a redelivery is no sender's mistake


def test_the_api_keeps_queueing_events_through_a_database_outage(client, redis_server):
    from django.core.cache import cache

    from paminga.cache import memo_clear_all
    from paminga.services import _api_key_cache_key, _hash_secret, api_key_create

    account = AccountFactory()
    CustomEventFactory(account=account, slug="requested-demo")
    key, secret = api_key_create(account=account, name="CRM")
    mutation = json.dumps(
        {"query": 'mutation { triggerCustomEvent(input: {slug: "requested-demo", email: "a@b.co"}) }'}
    )

    def call():
        return client.post(
            "/graphql/", mutation, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
        )

    assert call().json() == {"data": {"triggerCustomEvent": True}}
    # Long into the outage: the key's cached copy is past its freshness, and this process remembers nothing.
    cache_key = _api_key_cache_key(_hash_secret(secret))
    cache.set(cache_key, (0.0, cache.get(cache_key)[1]), None)
    memo_clear_all()
    with connection.execute_wrapper(blocked):
        answer = call()
    drain()

    assert answer.status_code == 200 and answer.json() == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.filter(account=account).count() == 2


class RedisClusterNodes:
    """Three masters of a Redis Cluster of the test's own, on free loopback ports."""

    def __init__(self, directory):
        self.servers = []
        for n in range(3):
            node_dir = directory / f"node{n}"
            node_dir.mkdir()
            server = RedisServer(node_dir)
            server.port = self._free_port_with_bus()
            server.extra = ["--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf")]
            self.servers.append(server)

    @staticmethod
    def _free_port_with_bus() -> int:
        """A free port whose cluster bus port (the port + 10,000) is free too, and so below 55,536."""
        import random

        for _ in range(200):
            port = random.randint(20000, 45000)
            try:
                for candidate in (port, port + 10000):
                    with socket.socket() as probe:
                        probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
        raise RuntimeError("no free port pair for a cluster node")

    def start(self):
        for server in self.servers:
            server.process = subprocess.Popen(
                ["redis-server", "--port", str(server.port), "--bind", "127.0.0.1", "--save", "", "--dir"]
                + [str(server.directory), "--appendonly", "no", *server.extra],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for server in self.servers:
            for _ in range(100):
                try:
                    with socket.create_connection(("127.0.0.1", server.port), timeout=0.1):
                        break
                except OSError:
                    time.sleep(0.05)
        nodes = [f"127.0.0.1:{server.port}" for server in self.servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        for _ in range(100):
            if redis.Redis(port=self.servers[0].port).cluster("info").get("cluster_state") == "ok":
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not come up")

    def stop(self):
        for server in self.servers:
            if server.process is not None and server.process.poll() is None:
                server.process.terminate()
                server.process.wait(timeout=10)


def test_with_a_redis_cluster_the_shards_spread_over_its_nodes_and_every_hit_is_recorded_once(settings, tmp_path):
    import redis

    require_programs("redis-server", "redis-cli", hint="apt-get install -y redis-server")
    cluster = RedisClusterNodes(tmp_path)
    try:
        cluster.start()  # inside: a cluster that fails to form still has its servers stopped
        # Any node of the cluster: the client notices cluster mode.
        settings.INGEST_QUEUE_URL = f"redis://127.0.0.1:{cluster.servers[1].port}/0"
        settings.INGEST_SHARDS = 8
        settings.INGEST_LEASE_SECONDS = 1.0
        settings.INGEST_BATCH_WAIT_MS = 10
        queue.client_reset()
        account = AccountFactory()
        items = [
            HitItem(account_id=account.pk, received_at=T0, hit=hit(n, "impression", f"visitor-{n:04d}"))
            for n in range(60)
        ]

        outcomes = capture(account=account, items=items)
        holding = [len(redis.Redis(port=server.port).keys("paminga:ingest:{*}")) for server in cluster.servers]
        drain()

        assert queue.is_cluster() and {o.status for o in outcomes} == {"accepted"}
        assert sum(1 for keys in holding if keys) >= 2  # the streams live on more than one node
        assert Impression.objects.filter(account=account).count() == 60
        assert all(s.waiting == 0 for s in queue.queue_status())
    finally:
        queue.client_reset()
        cluster.stop()


def test_a_consumer_paused_past_its_leases_does_not_commit_what_it_read(redis_server, settings):
    from tracking.consumer import LeaseLost
    from tracking.items import item_loads

    account = AccountFactory()
    capture(account=account, items=sequence(account))
    paused = Consumer(name="paused")
    paused.leases_refresh(force=True)
    entries = read_all(paused, 16)
    assert len(entries) == 16
    time.sleep(settings.INGEST_LEASE_SECONDS + 0.2)  # its leases lapse while it is stopped
    successor = Consumer(name="successor")
    successor.leases_refresh(force=True)

    shards = sorted({shard for shard, _, _ in entries})
    items = [item_loads(raw, position=(str(shard), entry_id)) for shard, entry_id, raw in entries]
    with pytest.raises(LeaseLost):
        ingest(items, before_commit=lambda: paused._still_holding(shards))

    assert not EventRecord.objects.filter(account=account).exists()  # its batch was undone
    successor.run(until_idle=True, max_seconds=60)
    assert len(rows_of(account)["events"]) == 8
