"""The timer index (stove_ctl/core/timer_index.py): each burner's next cut, kept up to
date job by job, always equal to the earliest cutting job found the slow way."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stove_ctl.core.timer_index import TimerIndex

BURNERS = ["k/left", "k/right", "h/left"]


def kwargs(burners: list[str], action: str = "shutoff") -> dict[str, Any]:
    return {"burners": burners, "action": action}


def test_the_next_cut_follows_adds_moves_and_removals() -> None:
    index = TimerIndex()
    index.load([("a", 100.0, ["k/left"], "shutoff"), ("b", 50.0, ["k/left", "k/right"], "lock")])
    assert index.next_cut("k/left") == 50.0 and index.next_cut("k/right") == 50.0
    index.put("c", 40.0, kwargs(["k/left"], "release"))  # a release is no cut
    assert index.next_cut("k/left") == 50.0
    index.put("b", 150.0, kwargs(["k/left", "k/right"]))  # extended past a
    assert index.next_cut("k/left") == 100.0 and index.next_cut("k/right") == 150.0
    index.drop("a")
    assert index.next_cut("k/left") == 150.0
    index.put("d", None, kwargs(["k/left"]))  # paused: no time to show
    index.drop("b")
    assert index.next_cut("k/left") is None and index.next_cut("k/right") is None
    assert index.ids_for(["k/left"]) == {"c", "d"}
    index.clear()
    assert index.ids_for(BURNERS) == set()


operation = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from("abcdef"),
        st.one_of(st.none(), st.integers(0, 20).map(float)),
        st.lists(st.sampled_from(BURNERS), min_size=1, max_size=3, unique=True),
        st.sampled_from(["shutoff", "lock", "release"]),
    ),
    st.tuples(st.just("drop"), st.sampled_from("abcdef")),
    st.tuples(st.just("ask"), st.sampled_from(BURNERS)),
)


@settings(max_examples=300)
@given(st.lists(operation, max_size=40))
def test_the_cached_next_cut_is_always_the_earliest_cut(ops: list[tuple[Any, ...]]) -> None:
    index = TimerIndex()
    truth: dict[str, tuple[float | None, list[str], str]] = {}
    for op in ops:
        if op[0] == "put":
            _, job, due, burners, action = op
            index.put(job, due, kwargs(burners, action))
            truth[job] = (due, burners, action)
        elif op[0] == "drop":
            index.drop(op[1])
            truth.pop(op[1], None)
        else:
            index.next_cut(op[1])  # fills the cache, which later operations must keep right
        for burner in BURNERS:
            cuts = [
                due
                for due, burners, action in truth.values()
                if burner in burners and action != "release" and due is not None
            ]
            assert index.next_cut(burner) == (min(cuts) if cuts else None)
            ids = {j for j, (_, burners, _) in truth.items() if burner in burners}
            assert index.ids_for([burner]) == ids
