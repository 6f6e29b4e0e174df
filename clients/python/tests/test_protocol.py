"""The codec alone, byte for byte against docs/protocol.md."""

import random
import struct
import unittest

import msgpack

from quire_client import protocol as p
from quire_client.errors import NotOwner, ProtocolError, Rejected


class Encoding(unittest.TestCase):
    def test_the_example_in_docs_protocol_md_is_exact(self):
        sent = p.call(1, "echo", msgpack.packb("hi"), p.Priority.NORMAL, 1000)
        doc = "00 00 00 11 96 04 01 a4 65 63 68 6f c4 03 a2 68 69 02 cd 03 e8"
        self.assertEqual(sent.hex(" "), doc)

    def test_hello_names_the_protocol_and_its_role(self):
        body = msgpack.unpackb(p.hello("t")[4:])
        self.assertEqual(body, [1, "QUIRE", 1, "client", "t", None])

    def test_a_durable_send_appends_its_key_and_a_plain_one_does_not(self):
        plain = msgpack.unpackb(p.send(3, "a", b"x")[4:])
        durable = msgpack.unpackb(p.send(3, "a", b"x", durable_key="k")[4:])
        self.assertEqual(plain, [3, 3, "a", b"x", 2, None])
        self.assertEqual(durable, plain + ["k"])


def answer(fields):
    return p.frame(fields)


class Decoding(unittest.TestCase):
    def test_every_answer_decodes_to_its_content(self):
        stream = b"".join(
            [
                answer([2, 1, "n", 0, 2, 1048576, 8388608]),
                answer([5, 1, b"pay"]),
                answer([6, 2, "id-7"]),
                answer([10, 3, [["a", 1, "running", None, 0, 0, 0, 1, 65536]]]),
                answer([12, 4, [{"shard": 0, "handled": 9}]]),
                answer([14, 5, [["n", "127.0.0.1:1", "alive", 2]]]),
                answer([21, 6, "n", "127.0.0.1:1", "alive", 1, True]),
                answer([19, 7, "ab", [["x", "taken"]]]),
                answer([16, 8]),
                answer([17, 9, 6, "refused", "no_such_agent"]),
            ]
        )
        frames = p.Decoder().feed(stream)
        self.assertEqual(frames[0], p.Welcome(1, "n", 0, 2, p.Limits(1048576, 8388608)))
        contents = [f.content for f in frames[1:]]
        self.assertEqual(contents[0], b"pay")
        self.assertEqual(contents[1], "id-7")
        self.assertEqual(contents[2][0].name, "a")
        self.assertEqual(contents[2][0].memory_bytes, 65536)
        self.assertEqual(contents[2][0].calls_waiting, 0)
        self.assertEqual(contents[3], [{"shard": 0, "handled": 9}])
        self.assertEqual(contents[4], [p.Member("n", "127.0.0.1:1", "alive", 2)])
        self.assertEqual(contents[5], p.Location("n", "127.0.0.1:1", "alive", 1, True))
        self.assertEqual(contents[6], p.Deployed("ab", [("x", "taken")]))
        self.assertIsNone(contents[7])
        self.assertIsInstance(contents[8], Rejected)
        self.assertEqual(contents[8].reason, "no_such_agent")
        self.assertEqual([f.req for f in frames[1:]], list(range(1, 10)))

    def test_an_older_welcome_has_no_limits_and_newer_fields_are_ignored(self):
        old, new = p.Decoder().feed(answer([2, 1, "n", 0, 1]) + answer([16, 3, "later", 1]))
        self.assertIsNone(old.limits)
        self.assertEqual(new.req, 3)

    def test_a_welcome_of_revision_1_3_states_the_access_and_the_window(self):
        (w,) = p.Decoder().feed(answer([2, 1, "n", 0, 2, 1048576, 8388608, "ingest", ["message", "teleport"], 64, "later"]))
        self.assertEqual(w.access, p.Access("ingest", frozenset({"message", "teleport"})))
        self.assertEqual(w.limits, p.Limits(1048576, 8388608, 64))
        (w,) = p.Decoder().feed(answer([2, 1, "n", 0, 2, 1048576, 8388608, "anonymous", [], 0]))
        self.assertEqual(w.access.scopes, frozenset())
        self.assertIsNone(w.limits.max_requests_in_flight)

    def test_an_error_code_from_a_newer_node_reads_as_internal(self):
        (f,) = p.Decoder().feed(answer([17, 1, 99, "new", None]))
        self.assertEqual(f.content.code.name, "INTERNAL")
        (f,) = p.Decoder().feed(answer([17, 1, 9, "owned elsewhere", "10.0.0.2:7400"]))
        self.assertIsInstance(f.content, NotOwner)
        self.assertEqual(f.content.owner, "10.0.0.2:7400")

    def test_a_stream_cut_anywhere_gives_the_same_frames(self):
        stream = b"".join(answer([5, i, bytes(i)]) for i in range(1, 200))
        rng = random.Random(7)
        d, got, at = p.Decoder(), [], 0
        while at < len(stream):
            n = rng.randint(1, 40)
            got += d.feed(stream[at : at + n])
            at += n
        self.assertEqual([f.req for f in got], list(range(1, 200)))
        self.assertEqual(d.buffered, 0)

    def test_bad_bytes_are_protocol_errors_never_crashes(self):
        for body in [b"\xc1", msgpack.packb({"a": 1}), msgpack.packb([99, 1]), msgpack.packb([5]),
                     msgpack.packb([4, 1, "echo", b"", 2, 0]), msgpack.packb([21, 1, "n", "a", "alive", 0, 3])]:
            with self.assertRaises(ProtocolError, msg=body):
                p.decode_body(body)
        with self.assertRaises(ProtocolError):
            p.Decoder(max_body=16).feed(struct.pack(">I", 17))
        rng = random.Random(1)
        for _ in range(2000):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            try:
                p.decode_body(junk)
            except ProtocolError:
                pass


if __name__ == "__main__":
    unittest.main()
