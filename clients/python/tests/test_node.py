"""The client against a real ``quire node`` process: every frame, errors
as typed exceptions, pipelining, and what happens to requests owed when
the connection or the node goes away."""

import os
import pathlib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from node import NodeProcess, module
from quire_client import (
    Client,
    ConnectionLost,
    DeployFailed,
    FrameTooLarge,
    HandshakeRequired,
    NotFound,
    Priority,
    Rejected,
    SlowClient,
    Unauthorized,
)
from quire_client.protocol import Decoder


def count(reply: bytes) -> int:
    return int.from_bytes(reply, "little") if len(reply) == 8 else 0


class EveryFrame(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = NodeProcess()
        cls.client = cls.node.client()
        cls.client.deploy("echo", module("echo"))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.node.close()

    def test_welcome_names_the_node_and_states_its_limits(self):
        w = self.client.welcome
        self.assertEqual(w.version, 1)
        self.assertEqual(w.shards, self.node.shards)
        self.assertTrue(w.node)
        self.assertGreater(w.limits.max_frame_bytes, 1 << 20)  # admin: deploys may be large
        plain = self.node.client(token=None)
        self.assertEqual(plain.limits.max_frame_bytes, 1 << 20)
        self.assertGreater(plain.limits.max_unsent_bytes, 0)
        plain.close()

    def test_call_returns_the_agents_reply_and_msgpack_values_round_trip(self):
        self.assertEqual(self.client.call("echo", b"hi"), b"hi")
        self.assertEqual(self.client.call("echo", b"", priority=Priority.CRITICAL), b"")
        value = {"order": 7, "items": ["a", "b"], "blob": b"\x00\xff"}
        self.assertEqual(self.client.call_msgpack("echo", value), value)

    def test_send_is_acknowledged_with_a_message_id(self):
        mid = self.client.send("echo", b"one-way")
        self.assertTrue(mid)
        self.assertNotEqual(mid, self.client.send("echo", b"again"))
        self.client.send_unacknowledged("echo", b"no answer at all")
        self.assertEqual(self.client.call("echo", b"after"), b"after")  # nothing stray came back

    def test_a_durable_send_is_committed_once_and_its_retry_is_a_duplicate(self):
        self.client.deploy("tally", module("counter"))
        first = self.client.send("tally", b"+", durable_key="py-order-1")
        again = self.client.send("tally", b"+", durable_key="py-order-1")
        self.assertNotEqual(first, "duplicate")
        self.assertEqual(again, "duplicate")
        # The counter counts what it handled: one send, then this call.
        self.assertEqual(count(self.client.call("tally", b"?")), 2)

    def test_pipelined_calls_are_each_answered_with_their_own_reply(self):
        pending = [self.client.start_call("echo", f"m{i}".encode()) for i in range(1000)]
        sends = [self.client.start_send("echo", b"s") for _ in range(20)]
        self.assertEqual([x.result() for x in pending], [f"m{i}".encode() for i in range(1000)])
        self.assertTrue(all(s.result() for s in sends))
        self.assertEqual(self.client.owed, 0)

    def test_calls_past_the_mailbox_are_refused_queue_full_never_dropped(self):
        # More in flight than one agent's mailbox holds (1024 by default).
        pending = [self.client.start_call("echo", f"m{i}".encode()) for i in range(4000)]
        outcomes = {"reply": 0, "queue_full": 0}
        for i, x in enumerate(pending):
            try:
                self.assertEqual(x.result(), f"m{i}".encode())
                outcomes["reply"] += 1
            except Rejected as e:
                self.assertEqual(e.reason, "queue_full")
                outcomes["queue_full"] += 1
        self.assertEqual(sum(outcomes.values()), 4000, outcomes)
        self.assertGreater(outcomes["reply"], 0, outcomes)

    def test_agents_stats_members_and_where_describe_the_node(self):
        names = {a.name: a for a in self.client.agents()}
        self.assertIn("echo", names)
        self.assertIn(names["echo"].state, ("running", "idle"))
        stats = self.client.stats()
        self.assertEqual(sorted(s["shard"] for s in stats), list(range(self.node.shards)))
        self.assertGreater(sum(s["handled"] for s in stats), 0)
        (me,) = self.client.members()
        self.assertEqual((me.name, me.state, me.shards), (self.client.node, "alive", self.node.shards))
        here = self.client.where("echo")
        self.assertEqual((here.node, here.deployed, here.shard), (me.name, True, names["echo"].shard))
        self.assertEqual(self.client.where("never-deployed").deployed, False)
        self.assertGreater(self.client.ping(), 0)

    def test_deploy_many_lists_the_names_it_refused(self):
        out = self.client.deploy_many(["batch-1", "batch-2", "echo"], module("echo"))
        self.assertEqual([n for n, _ in out.failed], ["echo"])
        self.assertEqual(len(out.hash), 64)
        self.assertEqual(self.client.call("batch-2", b"x"), b"x")
        self.client.undeploy("batch-1")
        with self.assertRaises(Rejected) as e:
            self.client.call("batch-1", b"x")
        self.assertEqual(e.exception.reason, "no_such_agent")

    def test_reload_keeps_state_stop_refuses_until_start_and_info_follows(self):
        c = self.client
        c.deploy("py-tally", module("counter"))
        self.assertEqual([count(c.call("py-tally", b"")) for _ in range(2)], [1, 2])
        first = c.info("py-tally").version
        new_hash = c.reload("py-tally", module("echo"))
        self.assertEqual(c.call("py-tally", b"swapped"), b"swapped")
        self.assertTrue(new_hash.startswith(c.info("py-tally").version))
        self.assertNotEqual(c.info("py-tally").version, first)
        c.reload("py-tally", module("counter"))
        self.assertEqual(count(c.call("py-tally", b"")), 3)  # its state was kept
        c.stop("py-tally")
        self.assertEqual(c.info("py-tally").state, "stopped")
        with self.assertRaises(Rejected) as e:
            c.call("py-tally", b"")
        self.assertEqual(e.exception.reason, "agent_stopped")
        c.start("py-tally")
        self.assertEqual(count(c.call("py-tally", b"")), 4)
        for attempt in (lambda: c.stop("nobody"), lambda: c.info("nobody"), lambda: c.reload("nobody", module("echo"))):
            with self.assertRaises(NotFound):
                attempt()

    def test_a_deploy_sets_its_own_limits_and_a_refused_setting_is_named(self):
        c = self.client
        c.deploy("py-starved", module("counter"), fuel_per_message=5, policy="stop")
        with self.assertRaises(Rejected) as e:
            c.call("py-starved", b"")
        self.assertEqual(e.exception.reason, "fuel_exhausted")
        self.assertTrue(c.info("py-starved").last_error.startswith("fuel_exhausted: "))
        with self.assertRaises(DeployFailed) as e:
            c.deploy("py-refused", module("echo"), fuel=1)
        self.assertIn('"fuel"', e.exception.message)
        c.reload("py-starved", module("counter"), fuel_per_message=10_000_000)
        self.assertEqual(count(c.call("py-starved", b"")), 1)

    def test_patterns_are_listed_with_their_module(self):
        h = self.client.deploy("py-sensor-*", module("echo"))
        listed = dict(self.client.patterns())
        self.assertTrue(h.startswith(listed["py-sensor-*"]))
        self.client.undeploy("py-sensor-*")
        self.assertNotIn("py-sensor-*", dict(self.client.patterns()))

    def test_refusals_are_typed_errors_and_the_connection_goes_on(self):
        with self.assertRaises(Rejected) as e:
            self.client.call("nobody", b"x")
        self.assertEqual(e.exception.reason, "no_such_agent")
        with self.assertRaises(NotFound):
            self.client.undeploy("nobody")
        with self.assertRaises(DeployFailed) as e:
            self.client.deploy("broken", b"not wasm")
        self.assertTrue(e.exception.message)
        plain = self.node.client(token=None)
        with self.assertRaises(Unauthorized):
            plain.deploy("sneaky", module("echo"))
        self.assertEqual(plain.call("echo", b"still here"), b"still here")
        with self.assertRaises(FrameTooLarge):
            plain.call("echo", bytes(2 << 20))  # refused before it is sent
        self.assertEqual(plain.call("echo", b"kept"), b"kept")
        self.assertEqual(plain.reconnects, 0)
        plain.close()

    def test_a_wrong_token_is_refused_at_the_handshake(self):
        with self.assertRaises(Unauthorized):
            Client(self.node.addr, "wrong")

    def test_welcome_states_the_credential_its_scopes_and_the_window(self):
        self.assertEqual(self.client.access.credential, "admin")
        self.assertEqual(self.client.access.scopes, {"message", "read", "admin"})
        self.assertEqual(self.client.limits.max_requests_in_flight, 16384)
        plain = self.node.client(token=None)
        self.assertEqual(plain.access.credential, "anonymous")
        self.assertEqual(plain.access.scopes, {"message", "read"})
        plain.close()


SCOPED = """
[network]
anonymous_scopes = []
max_requests_in_flight = 4

[[network.tokens]]
name = "ingest"
secret = "py-ingest-secret"
scopes = ["message"]
"""


class Scopes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = NodeProcess(config=SCOPED, env={"QUIRE_STORAGE_BATCH_MAX_DELAY_US": "200000"})
        with cls.node.client() as admin:
            admin.deploy("echo", module("echo"))

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def test_a_request_outside_the_scopes_is_refused_naming_it_and_the_connection_goes_on(self):
        with self.node.client(token="py-ingest-secret") as ingest:
            self.assertEqual(ingest.access.credential, "ingest")
            self.assertEqual(ingest.access.scopes, {"message"})
            self.assertEqual(ingest.call("echo", b"hi"), b"hi")
            with self.assertRaises(Unauthorized) as e:
                ingest.agents()
            self.assertEqual(e.exception.scope, "read")
            with self.assertRaises(Unauthorized) as e:
                ingest.deploy("sneaky", module("echo"))
            self.assertEqual(e.exception.scope, "admin")
            self.assertEqual(ingest.call("echo", b"kept"), b"kept")
            self.assertEqual(ingest.reconnects, 0)
        with self.node.client(token=None) as anonymous:
            self.assertEqual(anonymous.access.scopes, frozenset())
            with self.assertRaises(Unauthorized) as e:
                anonymous.call("echo", b"x")
            self.assertEqual(e.exception.scope, "message")
            anonymous.ping()

    def test_the_client_keeps_within_the_window_so_nothing_is_refused(self):
        with self.node.client() as c:
            self.assertEqual(c.limits.max_requests_in_flight, 4)
            # Durable sends wait ~200 ms for their commit: without the
            # client's own window the fifth would be refused WINDOW_FULL.
            pending = [c.start_send("echo", b"d", durable_key=f"w-{i}") for i in range(12)]
            self.assertLessEqual(c.owed, 4)
            ids = [p.result() for p in pending]
            self.assertEqual(len(set(ids)), 12)
            self.assertNotIn("duplicate", ids)


class NodeGoesAway(unittest.TestCase):
    def setUp(self):
        self.node = NodeProcess()

    def tearDown(self):
        self.node.close()

    def test_a_restarted_node_is_reconnected_and_committed_state_is_there(self):
        c = self.node.client()
        c.deploy("tally", module("counter"))
        for _ in range(5):
            c.send("tally", b"+")
        self.assertEqual(count(c.call("tally", b"?")), 6)  # a reply reports committed state
        self.node.kill()
        self.node.restart()
        # The old connection is gone; a read-only request reconnects by itself.
        self.assertEqual(c.members()[0].state, "alive")
        self.assertEqual(c.reconnects, 1)
        self.assertEqual(count(c.call("tally", b"?")), 7)
        c.close()

    def test_requests_owed_when_the_node_dies_raise_connection_lost(self):
        c = self.node.client()
        c.deploy("echo", module("echo"))
        self.assertEqual(c.call("echo", b"x"), b"x")
        self.node.kill()
        owed = [c.start_call("echo", b"late") for _ in range(10)]
        for x in owed:
            with self.assertRaises(ConnectionLost):
                x.result()
        with self.assertRaises(ConnectionLost):
            c.call("echo", b"nobody listens")  # no node to reconnect to
        c.close()

    def test_answers_left_unread_close_the_connection_and_every_owed_request_is_told(self):
        self.node.stop()
        self.node.env["QUIRE_NETWORK_MAX_UNSENT_BYTES"] = "1000000"
        self.node.restart()
        with self.node.client() as admin:
            admin.deploy("echo", module("echo"))
        slow = Client(self.node.addr, None)
        self.assertEqual(slow.limits.max_unsent_bytes, 1_000_000)
        big = bytes(64 * 1024)
        owed = [slow.start_call("echo", big) for _ in range(2 * 1_000_000 // len(big) + 32)]
        slow.flush()
        time.sleep(2)  # the node answers, unread, until its limit is passed
        outcomes = []
        for x in owed:
            try:
                self.assertEqual(len(x.result()), len(big))
                outcomes.append("reply")
            except ConnectionLost as e:
                outcomes.append(type(e.cause).__name__)
        self.assertIn("SlowClient", outcomes)
        first_lost = outcomes.index("SlowClient")
        # Answers sent before the close are read; every later one is told.
        self.assertEqual(outcomes, ["reply"] * first_lost + ["SlowClient"] * (len(owed) - first_lost))
        # The next request opens a new connection.
        self.assertEqual(slow.call("echo", b"back"), b"back")
        self.assertEqual(slow.reconnects, 1)
        slow.close()

    def test_a_connection_that_never_says_hello_is_closed_with_slow_client(self):
        self.node.stop()
        self.node.env["QUIRE_NETWORK_HELLO_TIMEOUT_MS"] = "200"
        self.node.restart()
        host, port = self.node.addr.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        (err,) = Decoder().feed(data)
        self.assertIsInstance(err.content, SlowClient)
        self.assertIn("HELLO", err.content.message)


class OverTls(unittest.TestCase):
    """A node with ``[network.tls]`` and certificates from ``quire certs``."""

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.TemporaryDirectory(prefix="quire-py-certs-")
        d = pathlib.Path(cls.certs.name)
        binary = os.environ["QUIRE_BIN"]
        subprocess.run([binary, "certs", "--out", str(d / "ours"), "--nodes", "node-a"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([binary, "certs", "--out", str(d / "theirs"), "--nodes", "node-a"], check=True,
                       stdout=subprocess.DEVNULL)
        cls.ca = str(d / "ours" / "ca.pem")
        cls.stranger_ca = str(d / "theirs" / "ca.pem")
        config = (f'[network.tls]\ncert_file = "{d / "ours" / "node-a.pem"}"\n'
                  f'key_file = "{d / "ours" / "node-a.key"}"\n')
        cls.node = NodeProcess(durability="none", config=config, tls_ca=cls.ca)
        with cls.node.client() as c:
            c.deploy("echo", module("echo"))

    @classmethod
    def tearDownClass(cls):
        cls.node.close()
        cls.certs.cleanup()

    def test_calls_pipelined_over_tls_are_each_answered(self):
        with self.node.client() as c:
            self.assertEqual(c.call("echo", b"over tls"), b"over tls")
            pending = [c.start_call("echo", str(i).encode()) for i in range(300)]
            self.assertEqual([f.result() for f in pending], [str(i).encode() for i in range(300)])

    def test_an_untrusted_or_misnamed_node_and_clear_text_are_refused(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            Client(self.node.addr, tls_ca=self.stranger_ca, reconnect_attempts=1)
        with self.assertRaises(ssl.SSLCertVerificationError):
            Client(self.node.addr, tls_ca=self.ca, tls_name="node-b", reconnect_attempts=1)
        with self.assertRaises(HandshakeRequired) as refused:
            Client(self.node.addr, reconnect_attempts=1)
        self.assertIn("speaks TLS only", refused.exception.message)


if __name__ == "__main__":
    unittest.main()
