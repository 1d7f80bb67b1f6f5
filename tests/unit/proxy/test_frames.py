"""The WebSocket frame guard on frames made by wsproto (a client's, masked), split every way."""

from __future__ import annotations

import random

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, Event, Ping, TextMessage

from rxkube.proxy._frames import FrameGuard, FrameTooLarge


def client_frames(*events: Event) -> bytes:
    connection = Connection(ConnectionType.CLIENT)  # an open client: masks every frame
    return b"".join(connection.send(event) for event in events)


SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70_000]


def test_frames_within_the_limit_pass_in_any_split() -> None:
    stream = client_frames(
        *(BytesMessage(data=b"x" * n) for n in SIZES), TextMessage(data="é" * 10), Ping()
    )
    rng = random.Random(7)
    for _ in range(50):
        guard = FrameGuard(70_000)
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 2, 3, 13, 14, 15, 1000, 65536])
            guard.feed(stream[pos : pos + step])
            pos += step
        assert guard.frames == len(SIZES) + 2


@pytest.mark.parametrize("size", [70_001, 2**20])
@pytest.mark.parametrize("split", [1, 5, 1 << 20])
def test_an_oversized_frame_is_refused_at_its_head(size: int, split: int) -> None:
    stream = client_frames(BytesMessage(data=b"ok"), BytesMessage(data=b"x" * size))
    guard = FrameGuard(70_000)
    head_end = 8 + (2 + 8 + 4)  # the first frame (2 + 4 mask + 2), then the big one's head
    refused: FrameTooLarge | None = None
    for pos in range(0, len(stream), split):
        try:
            guard.feed(stream[pos : pos + split])
        except FrameTooLarge as error:
            refused = error
            break
        assert pos + split < head_end, "the oversized head was let through"
    assert refused is not None
    assert refused.length == size
    assert guard.frames == 1


def test_a_forged_64_bit_length_is_refused() -> None:
    head = bytes([0x82, 0xFF]) + (2**63 - 1).to_bytes(8, "big") + b"mask"
    guard = FrameGuard(1 << 24)
    with pytest.raises(FrameTooLarge):
        guard.feed(head)
