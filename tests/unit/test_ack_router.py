"""The bridge's end-to-end ack routing, with fake links (pure logic)."""

from dataclasses import dataclass, field

from edgeagent.bridge.bridge import _AckRouter, _Origin


@dataclass
class FakeInfo:
    mid: int
    published: bool = False

    def is_published(self) -> bool:
        return self.published


@dataclass
class FakeLink:
    acked: list[tuple[int, int]] = field(default_factory=list)

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append((mid, qos))


def origin(source: FakeLink, mid: int, info: FakeInfo) -> _Origin:
    return _Origin(source, mid, 1, info)  # type: ignore[arg-type]


def test_ack_reaches_the_source_when_the_target_acks() -> None:
    router, source, target = _AckRouter(), FakeLink(), FakeLink()
    router.register(target, origin(source, 7, FakeInfo(mid=100)))  # type: ignore[arg-type]
    assert source.acked == []
    router.delivered(target, 100)  # type: ignore[arg-type]
    assert source.acked == [(7, 1)]
    router.delivered(target, 100)  # type: ignore[arg-type]
    assert source.acked == [(7, 1)], "acked once only"
    assert len(router) == 0


def test_delivery_reported_before_registration_is_not_lost() -> None:
    router, source, target = _AckRouter(), FakeLink(), FakeLink()
    info = FakeInfo(mid=5)
    router.delivered(target, 5)  # type: ignore[arg-type]  # target acked first...
    info.published = True  # ...and paho marked the info published
    router.register(target, origin(source, 9, info))  # type: ignore[arg-type]
    assert source.acked == [(9, 1)]
    assert len(router) == 0


def test_sweep_acks_what_paho_marked_published_later() -> None:
    router, source, target = _AckRouter(), FakeLink(), FakeLink()
    info = FakeInfo(mid=5)
    router.delivered(target, 5)  # type: ignore[arg-type]
    router.register(target, origin(source, 9, info))  # type: ignore[arg-type]
    assert source.acked == []
    info.published = True
    router.sweep()
    assert source.acked == [(9, 1)]


def test_same_mid_on_two_targets_is_kept_apart() -> None:
    router, source, cloud, local = _AckRouter(), FakeLink(), FakeLink(), FakeLink()
    router.register(cloud, origin(source, 1, FakeInfo(mid=3)))  # type: ignore[arg-type]
    router.register(local, origin(source, 2, FakeInfo(mid=3)))  # type: ignore[arg-type]
    router.delivered(local, 3)  # type: ignore[arg-type]
    assert source.acked == [(2, 1)]
