"""What a replay sends: the request's harmless headers, the connection's credentials over them."""

from __future__ import annotations

from awfdrs.activities.requests import with_credentials


def test_the_connections_credentials_win_and_stored_event_credentials_are_dropped() -> None:
    stored = {
        "stripe-account": "acct_1",
        "x-order-ref": "o-1",
        # Stored from an event before events were refused for carrying credentials.
        "authorization": "Bearer from-an-old-event",
        "x-api-key": "from-an-old-event",
        "cookie": "session=old",
    }
    sent = with_credentials(stored, {"Authorization": "Bearer from-the-connection"})
    assert sent == {
        "stripe-account": "acct_1",
        "x-order-ref": "o-1",
        "Authorization": "Bearer from-the-connection",
    }
    assert with_credentials(stored, {}) == {"stripe-account": "acct_1", "x-order-ref": "o-1"}
