"""devhost.core.history: timestamps rendered as the host renders them."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, strategies as st

from devhost.core import history

EPOCHS = st.one_of(
    st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False),
    # Just below a whole second, where rounding the microseconds moves the second.
    st.builds(lambda s, f: s + f, st.integers(0, 4_000_000_000),
              st.sampled_from([0.0, 0.9999994999, 0.9999995, 0.9999996, 0.4999999, 1e-7])))


@given(EPOCHS)
def test_status_times_are_the_whole_second_datetime_renders(epoch: float) -> None:
    # The status API's createdTime/lastUpdatedTime: .NET ToString("s") + "Z".
    expected = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert history.format_status_time(epoch) == expected
