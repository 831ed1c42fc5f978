from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.twin.lateness import LatenessBook

events = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0.1, 3), st.floats(0, 50), st.booleans()), min_size=1, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(jobs=events, reads=st.lists(st.floats(0, 200), max_size=10))
def test_totals_match_a_pass_over_every_job(jobs, reads):
    """Jobs (due, weight, time in system, departs?) released at t=0, read at increasing times."""
    book = LatenessBook()
    for i, (due, weight, _, _) in enumerate(jobs):
        book.open(i, due, weight)
    closed: dict[int, float] = {}
    for now in [*sorted(reads), 250.0]:
        for i, (due, weight, stay, departs) in enumerate(jobs):
            if departs and stay <= now and i not in closed:
                book.close(i, due, weight, stay)
                closed[i] = stay
        plain, weighted = book.totals(now)
        end = [closed.get(i, now) for i in range(len(jobs))]
        expect_plain = sum(max(0.0, e - due) for e, (due, _, _, _) in zip(end, jobs, strict=True))
        expect_weighted = sum(w * max(0.0, e - due) for e, (due, w, _, _) in zip(end, jobs, strict=True))
        assert abs(plain - expect_plain) < 1e-6 * (1 + expect_plain)
        assert abs(weighted - expect_weighted) < 1e-6 * (1 + expect_weighted)
