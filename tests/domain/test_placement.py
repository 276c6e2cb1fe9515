"""Placing environments on runners: filters, spread, pinning, and the reasons given."""

from collections import Counter

import pytest

from sandbay.domain.placement import (
    Availability,
    Demand,
    Node,
    NodeState,
    Placement,
    place,
    reserve,
)

GIB = 1 << 30
IMAGE = "sandbay-base:latest"


def node(
    node_id: str,
    *,
    cpus: float = 8,
    memory_gib: int = 16,
    state: NodeState = NodeState.READY,
    availability: Availability = Availability.ACTIVE,
    labels: dict[str, str] | None = None,
    images: frozenset[str] = frozenset({IMAGE}),
) -> Node:
    return Node(
        id=node_id,
        hostname=f"host-{node_id}",
        state=state,
        availability=availability,
        cpus=cpus,
        memory_bytes=memory_gib * GIB,
        labels=labels or {},
        images=images,
    )


def demand(
    cpu: float = 1,
    memory_gib: float = 1,
    *,
    image: str = "",
    labels: dict[str, str] | None = None,
    pinned: str | None = None,
    key: str = "",
) -> Demand:
    return Demand(cpu=cpu, memory_bytes=int(memory_gib * GIB), image=image,
                  labels=labels or {}, pinned=pinned, key=key)  # fmt: skip


def place_all(demands: list[Demand], nodes: list[Node]) -> tuple[list[Node], list[Placement]]:
    decisions = []
    for d in demands:
        decision = place(d, nodes, image_must_be_present=True)
        if decision.node_id is not None:
            nodes = reserve(nodes, decision.node_id, d)
        decisions.append(decision)
    return nodes, decisions


def test_thirty_mixed_environments_spread_over_three_nodes_within_capacity() -> None:
    nodes = [node("a"), node("b"), node("c", cpus=16, memory_gib=32)]
    sizes = [(0.5, 0.5), (1, 1), (2, 4), (1, 2), (0.25, 0.5)]
    demands = [demand(*sizes[i % len(sizes)], image=IMAGE, key=f"env{i}") for i in range(30)]
    placed, decisions = place_all(demands, nodes)
    assert all(d.placed for d in decisions)
    for n in placed:
        assert 0 < n.reserved_cpus <= n.cpus
        assert 0 < n.reserved_memory_bytes <= n.memory_bytes
    # spread by free share: each node ends about equally full, the big one holding most
    shares = [n.reserved_cpus / n.cpus for n in placed]
    assert max(shares) - min(shares) < 0.2
    a, b, c = placed
    assert c.reserved_cpus > a.reserved_cpus and c.reserved_cpus > b.reserved_cpus
    assert sum(n.environments for n in placed) == 30 and min(n.environments for n in placed) >= 5


def test_a_full_cluster_places_nothing_more_and_says_so() -> None:
    nodes = [node("a", cpus=2, memory_gib=4), node("b", cpus=2, memory_gib=4)]
    placed, decisions = place_all([demand(1, 1, key=f"e{i}") for i in range(6)], nodes)
    assert [d.placed for d in decisions] == [True] * 4 + [False] * 2
    assert all(n.reserved_cpus == n.cpus for n in placed)
    assert decisions[-1].message == "2 nodes: 2 lack 1 free CPU"


def test_drained_paused_and_down_nodes_get_nothing() -> None:
    nodes = [
        node("drained", availability=Availability.DRAIN),
        node("paused", availability=Availability.PAUSE),
        node("down", state=NodeState.DOWN),
        node("unknown", state=NodeState.UNKNOWN),
        node("ok", cpus=1, memory_gib=1),
    ]
    _, decisions = place_all([demand(0.5, 0.5, key=f"e{i}") for i in range(3)], nodes)
    assert [d.node_id for d in decisions] == ["ok", "ok", None]
    assert decisions[-1].message == (
        "5 nodes: 1 down, 1 unreachable, 1 drained, 1 paused, 1 lacks 0.5 free CPU"
    )


def test_labels_filter_nodes() -> None:
    nodes = [
        node("eu", labels={"region": "eu"}),
        node("us", labels={"region": "us"}),
        node("eu-gpu", labels={"region": "eu", "gpu": "true"}, cpus=1, memory_gib=1),
    ]
    assert place(demand(labels={"region": "us"}), nodes, image_must_be_present=True).node_id == "us"
    gpu = demand(labels={"region": "eu", "gpu": "true"})
    assert place(gpu, nodes, image_must_be_present=True).node_id == "eu-gpu"
    too_big = place(demand(2, labels={"gpu": "true"}), nodes, image_must_be_present=True)
    assert not too_big.placed
    assert too_big.message == "3 nodes: 2 lack label gpu=true, 1 lacks 2 free CPU"
    assert too_big.reasons() == {"lacks label gpu=true": 2, "lacks 2 free CPU": 1}


def test_memory_is_a_limit_of_its_own() -> None:
    decision = place(demand(1, 32), [node("a")], image_must_be_present=True)
    assert decision.message == "1 node: 1 lacks 32 GiB free"


def test_a_pinned_environment_returns_to_its_node_even_when_others_are_emptier() -> None:
    nodes = reserve([node("a"), node("b")], "a", demand(6, 12))
    decision = place(demand(pinned="a"), nodes, image_must_be_present=True)
    assert decision.node_id == "a" and decision.considered == 1


@pytest.mark.parametrize(
    ("pinned", "unreachable", "message"),
    [
        (node("a", state=NodeState.DOWN), True, "its node a: down"),
        (node("a", state=NodeState.UNKNOWN), True, "its node a: unreachable"),
        (node("a", availability=Availability.DRAIN), False, "its node a: drained"),
        (node("a", cpus=0.5), False, "its node a: lacks 1 free CPU"),
        (node("x"), False, "its node a: is no longer in the cluster"),
    ],
)
def test_a_pinned_environment_says_why_its_node_cannot_take_it(
    pinned: Node, unreachable: bool, message: str
) -> None:
    decision = place(demand(pinned="a"), [pinned, node("b")], image_must_be_present=True)
    assert decision.node_id is None
    assert decision.unreachable is unreachable  # a 503 to wait, else a 409 to act on
    assert decision.message == message


def test_nodes_with_the_image_are_preferred_and_required_only_when_asked() -> None:
    bare = node("bare", cpus=16, memory_gib=32, images=frozenset())
    holder = node("holder")  # half the size: less free share, but it holds the image
    wanted = demand(image=IMAGE)
    assert place(wanted, [bare, holder], image_must_be_present=False).node_id == "holder"
    other = demand(image="other:1")
    assert place(other, [bare, holder], image_must_be_present=False).node_id == "bare"
    refused = place(other, [bare, holder], image_must_be_present=True)
    assert refused.message == "2 nodes: 2 lack image other:1"
    # once placed (pulled), the image counts as present on that node
    assert "other:1" in reserve([bare], "bare", other)[0].images


def test_ties_spread_across_equal_nodes() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    # from one unchanged view (two replicas at once): different environments differ
    chosen = {place(demand(key=f"env{i}"), nodes, image_must_be_present=True).node_id
              for i in range(40)}  # fmt: skip
    assert chosen == {"n0", "n1", "n2", "n3"}
    # and the same environment gets the same answer every time
    again = {place(demand(key="env7"), nodes, image_must_be_present=True).node_id
             for _ in range(5)}  # fmt: skip
    assert len(again) == 1
    # with reservations, equal demands go round: each node gets one before any gets two
    _, decisions = place_all([demand(key=f"e{i}") for i in range(8)], nodes)
    first = Counter(d.node_id for d in decisions[:4])
    assert set(first.values()) == {1}


def test_fewest_environments_breaks_a_tie_of_free_capacity() -> None:
    busy = reserve(reserve([node("busy")], "busy", demand(0, 0)), "busy", demand(0, 0))[0]
    quiet = node("quiet")
    picks = {place(demand(key=f"e{i}"), [busy, quiet], image_must_be_present=True).node_id
             for i in range(10)}  # fmt: skip
    assert picks == {"quiet"}


def test_reserve_refuses_past_capacity_and_unknown_nodes() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        reserve([node("a", cpus=1)], "a", demand(2))
    with pytest.raises(ValueError, match="no node"):
        reserve([node("a")], "b", demand())


def test_no_nodes_is_said_plainly() -> None:
    assert place(demand(), [], image_must_be_present=False).message == "no nodes"
