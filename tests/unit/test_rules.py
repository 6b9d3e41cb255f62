from __future__ import annotations

import uuid
from typing import Any

import pytest

from awfdrs.analysis import IncidentFacts, load_analyzer
from awfdrs.analysis.rules import RulesAnalyzer, classify, smoothed_success_rate
from awfdrs.contracts import ErrorInfo, RetrySpec
from awfdrs.enums import ActionType, ErrorClass
from awfdrs.errors import ConfigError


def facts(error: dict[str, Any] | None, **changes: Any) -> IncidentFacts:
    values: dict[str, Any] = {
        "incident_id": uuid.uuid4(),
        "signature": "s",
        "operation": "payment",
        "event_type": "payment.failed",
        "event_count": 3,
        "attempt": 1,
        "error": ErrorInfo.model_validate(error) if error is not None else None,
        "retry": RetrySpec(path="/v1/charges"),
        "vendor_name": "stripe",
        "vendor_registered": True,
        "prior_retry_successes": 0,
        "prior_retry_failures": 0,
    }
    values.update(changes)
    return IncidentFacts(**values)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "gateway_timeout"}, ErrorClass.TRANSIENT),
        ({"message": "Connection reset by peer"}, ErrorClass.TRANSIENT),
        ({"code": "503"}, ErrorClass.TRANSIENT),
        ({"code": "http_429"}, ErrorClass.TRANSIENT),
        ({"code": "408"}, ErrorClass.TRANSIENT),
        ({"message": "upstream answered HTTP 502"}, ErrorClass.TRANSIENT),
        ({"code": "x", "retryable": True}, ErrorClass.TRANSIENT),
        ({"code": "timeout", "retryable": False}, ErrorClass.PERMANENT),
        ({"code": "404"}, ErrorClass.PERMANENT),
        ({"code": "card_declined"}, ErrorClass.PERMANENT),
        ({"message": "Invalid IBAN"}, ErrorClass.PERMANENT),
        ({"code": "unauthorized"}, ErrorClass.PERMANENT),
        ({"code": "weird_thing"}, ErrorClass.UNKNOWN),
        (None, ErrorClass.UNKNOWN),
    ],
)
def test_classification(error: dict[str, Any] | None, expected: ErrorClass) -> None:
    info = ErrorInfo.model_validate(error) if error is not None else None
    assert classify(info)[0] is expected


async def test_transient_with_a_request_retries_with_confidence_from_history() -> None:
    analyzer = RulesAnalyzer()
    fresh = await analyzer.analyze(facts({"code": "gateway_timeout"}))
    assert fresh.decision_type is ActionType.RETRY
    assert fresh.confidence == pytest.approx(0.9 * 0.9)
    assert "no earlier retries" in fresh.reasoning
    assert "0.81" in fresh.reasoning
    burnt = await analyzer.analyze(
        facts({"code": "gateway_timeout"}, prior_retry_successes=1, prior_retry_failures=3)
    )
    assert burnt.confidence < fresh.confidence < 0.8 + 0.1
    assert "1 of 4 earlier retries" in burnt.reasoning
    proven = await analyzer.analyze(
        facts({"code": "gateway_timeout"}, prior_retry_successes=8, prior_retry_failures=0)
    )
    assert proven.confidence > fresh.confidence


def test_smoothing_starts_at_the_prior() -> None:
    assert smoothed_success_rate(0, 0) == pytest.approx(0.9)
    assert smoothed_success_rate(0, 5) == pytest.approx(0.45)


async def test_permanent_and_unknown_escalate_and_nothing_to_replay_is_manual() -> None:
    analyzer = RulesAnalyzer()
    permanent = await analyzer.analyze(facts({"code": "card_declined"}))
    assert permanent.decision_type is ActionType.ESCALATE
    assert permanent.classification is ErrorClass.PERMANENT
    unknown = await analyzer.analyze(facts({"code": "weird"}))
    assert unknown.decision_type is ActionType.ESCALATE
    no_request = await analyzer.analyze(facts({"code": "timeout"}, retry=None))
    assert no_request.decision_type is ActionType.MANUAL
    assert "no payload.retry" in no_request.reasoning
    no_vendor = await analyzer.analyze(facts({"code": "timeout"}, vendor_registered=False))
    assert no_vendor.decision_type is ActionType.MANUAL
    assert "not registered" in no_vendor.reasoning
    unconnected = await analyzer.analyze(facts({"code": "timeout"}, vendor_connected=False))
    assert unconnected.decision_type is ActionType.MANUAL
    assert "no connection to vendor stripe" in unconnected.reasoning


def test_the_analyzer_is_a_setting() -> None:
    assert isinstance(load_analyzer("awfdrs.analysis.rules:RulesAnalyzer"), RulesAnalyzer)
    with pytest.raises(ConfigError, match="AWFDRS_ANALYZER"):
        load_analyzer("awfdrs.analysis.rules:Nope")
    with pytest.raises(ConfigError, match="not an Analyzer"):
        load_analyzer("awfdrs.contracts:TenantSettings")
