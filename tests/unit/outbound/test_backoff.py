from datetime import timedelta

from hypothesis import given, strategies as st

from maildesk.outbound.outbox import MAX_RETRY, backoff


def test_backoff_doubles_from_a_minute_up_to_an_hour():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert backoff(7) == timedelta(hours=1)


@given(st.integers(min_value=0, max_value=10**9))
def test_backoff_never_overflows_or_exceeds_the_cap(attempts):
    assert timedelta(0) < backoff(attempts) <= MAX_RETRY
