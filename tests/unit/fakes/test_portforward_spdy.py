"""The SPDY/3.1 core of `pods/portforward` (`SpdyServer`), without sockets: frames in, events
out, bytes back; the header blocks through the shared zlib streams; the stream state table;
bad frames giving errors that say what was wrong."""

from __future__ import annotations

import struct
import zlib

import pytest

from rxkube.fakes._portforward import (
    CANCEL,
    DICTIONARY,
    GOAWAY,
    PING,
    RST_STREAM,
    SETTINGS,
    SYN_REPLY,
    TRANSITIONS,
    WINDOW_UPDATE,
    DataReceived,
    GoAwayReceived,
    LocalSpdyError,
    PingReceived,
    SettingsReceived,
    SpdyClient,
    SpdyError,
    SpdyServer,
    StreamOpened,
    StreamReset,
    StreamState,
    UnknownFrame,
    WindowUpdated,
    control_frame,
    data_frame,
    decode_header_block,
    encode_header_block,
)

PAIR = {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}


def test_the_dictionary_is_the_spdy3_one() -> None:
    # 1423 bytes; its Adler-32 is the DICTID every SPDY/3 zlib header names (78 F9 E3 C6 A7 C2
    # as kubectl's client-go sends it).
    assert len(DICTIONARY) == 1423
    assert zlib.adler32(DICTIONARY) == 0xE3C6A7C2
    assert DICTIONARY.endswith(b"enq=0.")


def test_header_block_round_trip() -> None:
    headers = {"streamtype": ["data"], "port": ["8080"], "multi": ["a", "b"]}
    assert decode_header_block(encode_header_block(headers)) == headers


def test_stream_open_reply_and_data_round_trip() -> None:
    server, client = SpdyServer(), SpdyClient()
    stream_id, frame = client.open(PAIR)
    events = server.receive_data(frame)
    assert events == [StreamOpened(stream_id, PAIR)]
    opened = events[0]
    assert isinstance(opened, StreamOpened)
    assert opened.header("streamType") == "error"
    reply = server.reply(1)
    assert client.frames(reply) == [("reply", 1, 0, {})]
    out = server.send_data(1, b"hello")
    assert client.frames(out) == [("data", 1, 0, b"hello")]
    assert server.receive_data(data_frame(1, b"ping?", fin=True)) == [
        DataReceived(1, b"ping?", fin=True)
    ]
    assert server.streams[1].state is StreamState.REMOTE_CLOSED
    assert client.frames(server.send_data(1, b"", fin=True)) == [("data", 1, 1, b"")]
    assert 1 not in server.streams  # closed both ways: forgotten


def test_compressed_headers_share_one_zlib_stream_across_frames() -> None:
    server, client = SpdyServer(), SpdyClient()
    frames = b""
    for request in range(5):
        headers = {"streamtype": ["data"], "port": ["8080"], "requestid": [str(request)]}
        frames += client.open(headers)[1]
    # Cut the bytes anywhere (WebSocket messages carry SPDY in arbitrary pieces).
    events = []
    for offset in range(0, len(frames), 7):
        events += server.receive_data(frames[offset : offset + 7])
    assert [e.header("requestid") for e in events if isinstance(e, StreamOpened)] == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    # Later blocks compress better: the dictionary and history are shared.
    replies = b"".join(server.reply(stream_id) for stream_id in (1, 3, 5, 7, 9))
    assert [f[1] for f in client.frames(replies)] == [1, 3, 5, 7, 9]


def test_large_data_is_cut_into_frames() -> None:
    server, client = SpdyServer(), SpdyClient()
    server.receive_data(client.open(PAIR)[1])
    server.reply(1)
    frames = client.frames(server.send_data(1, b"x" * 70000, fin=True))
    assert [len(f[3]) for f in frames] == [32768, 32768, 4464]
    assert [f[2] for f in frames] == [0, 0, 1]


def test_control_frames_are_reported() -> None:
    server, client = SpdyServer(), SpdyClient()
    server.receive_data(client.open(PAIR)[1])
    events = server.receive_data(
        control_frame(PING, 0, struct.pack(">I", 1))
        + control_frame(SETTINGS, 0, struct.pack(">III", 1, 7, 65536))
        + control_frame(WINDOW_UPDATE, 0, struct.pack(">II", 1, 4096))
        + control_frame(0x77, 0, b"???")
        + control_frame(RST_STREAM, 0, struct.pack(">II", 1, CANCEL))
        + control_frame(GOAWAY, 0, struct.pack(">II", 0, 0))
    )
    assert events == [
        PingReceived(1),
        SettingsReceived({7: 65536}),
        WindowUpdated(1, 4096),
        UnknownFrame(0x77),
        StreamReset(1, CANCEL),
        GoAwayReceived(0, 0),
    ]
    assert server.streams == {}
    assert server.gone_away
    assert client.frames(server.ping(1)) == [("ping", 1, 0, None)]


def test_data_for_a_reset_stream_is_dropped() -> None:
    server, client = SpdyServer(), SpdyClient()
    server.receive_data(client.open(PAIR)[1])
    server.reset(1)
    assert server.receive_data(data_frame(1, b"late")) == []


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (struct.pack(">HHI", 0x8002, 1, 0), "unsupported SPDY version 2"),
        (control_frame(PING, 0, b"\x00\x00\x00\x01\x00"), "PING frame has length 5, must be 4"),
        (control_frame(RST_STREAM, 0, struct.pack(">II", 1, 0)), "RST_STREAM with stream id 1"),
        (data_frame(0, b"x"), "DATA frame with stream id 0"),
        (control_frame(SYN_REPLY, 0, b"\x00\x00\x00\x01"), "SYN_REPLY from the client"),
        (
            control_frame(1, 0, struct.pack(">IIBB", 1, 0, 0, 0) + b"not zlib"),
            "header block does not decompress",
        ),
    ],
)
def test_bad_frames_give_a_clear_error(frame: bytes, message: str) -> None:
    with pytest.raises(SpdyError, match=message):
        SpdyServer().receive_data(frame)


def test_stream_ids_must_be_odd_and_rising() -> None:
    server, client = SpdyServer(), SpdyClient()
    client.next_id = 5
    server.receive_data(client.open(PAIR)[1])
    client.next_id = 3
    with pytest.raises(SpdyError, match="SYN_STREAM id 3 is not above the last one"):
        server.receive_data(client.open(PAIR)[1])
    other, client = SpdyServer(), SpdyClient()
    client.next_id = 2
    with pytest.raises(SpdyError, match="even stream id 2"):
        other.receive_data(client.open(PAIR)[1])


def test_data_after_the_clients_fin_is_an_error() -> None:
    server, client = SpdyServer(), SpdyClient()
    server.receive_data(client.open(PAIR, fin=True)[1])
    with pytest.raises(SpdyError, match="after the client finished it"):
        server.receive_data(data_frame(1, b"more"))


def test_uppercase_header_names_are_refused() -> None:
    block = encode_header_block({"port": ["1"]}).replace(b"port", b"Port")
    with pytest.raises(SpdyError, match="not lower-case"):
        decode_header_block(block)


def test_sending_on_a_finished_or_unreplied_stream_is_a_local_error() -> None:
    server, client = SpdyServer(), SpdyClient()
    server.receive_data(client.open(PAIR)[1])
    with pytest.raises(LocalSpdyError, match="not open for sending"):
        server.send_data(1, b"too early")
    server.reply(1)
    server.send_data(1, b"", fin=True)
    with pytest.raises(LocalSpdyError, match="finished by this side"):
        server.send_data(1, b"too late")


@pytest.mark.parametrize(("state", "what"), list(TRANSITIONS))
def test_every_transition_of_the_table(state: StreamState, what: str) -> None:
    server, client = SpdyServer(), SpdyClient()
    server.receive_data(client.open(PAIR)[1])
    server.reply(1)
    if state is StreamState.REMOTE_CLOSED:
        server.receive_data(data_frame(1, b"", fin=True))
    elif state is StreamState.LOCAL_CLOSED:
        server.send_data(1, b"", fin=True)
    assert server.streams[1].state is state
    if what == "recv fin":
        server.receive_data(data_frame(1, b"", fin=True))
    elif what == "send fin":
        server.send_data(1, b"", fin=True)
    else:
        server.reset(1)
    following = TRANSITIONS[(state, what)]
    if following is StreamState.CLOSED:
        assert 1 not in server.streams
    else:
        assert server.streams[1].state is following
