"""The default analyzer: deterministic rules a human can check line by line."""

from __future__ import annotations

import re

from awfdrs.analysis.base import Analysis, IncidentFacts
from awfdrs.contracts import ErrorInfo
from awfdrs.enums import ActionType, ErrorClass

# A Beta(4.5, 0.5) prior: retries are assumed to work 90% of the time until the signature's own
# history says otherwise; five observations weigh as much as the prior.
PRIOR_SUCCESSES = 4.5
PRIOR_FAILURES = 0.5

TRANSIENT_WORDS = re.compile(
    r"time[ds]?[ _-]?out|timed[ _-]out|deadline|connection[ _-](reset|refused|aborted|closed)|"
    r"econn(reset|refused|aborted)|etimedout|unavailable|temporar|throttl|rate[ _-]?limit|"
    r"too[ _-]many[ _-]requests|try[ _-]again|overloaded|deadlock|gateway",
    re.I,
)
PERMANENT_WORDS = re.compile(
    r"invalid|validation|unauthori[sz]ed|forbidden|authenticat|auth[ _-]failed|declined|"
    r"insufficient[ _-]funds|not[ _-]found|do[ _-]not[ _-]honou?r|expired|fraud|"
    r"unprocessable|bad[ _-]request|duplicate|permission",
    re.I,
)
HTTP_STATUS = re.compile(r"^(?:http[ _-]?)?([1-5]\d\d)$", re.I)
HTTP_STATUS_IN_TEXT = re.compile(r"\b(?:http|status)[ _:-]*([1-5]\d\d)\b", re.I)


def http_status(error: ErrorInfo) -> int | None:
    """An HTTP status carried by the error: its code (``503``, ``http_429``) or its message."""
    for candidate in (getattr(error, "status", None), getattr(error, "http_status", None)):
        if isinstance(candidate, int) and 100 <= candidate <= 599:
            return candidate
    if error.code and (match := HTTP_STATUS.match(error.code.strip())):
        return int(match.group(1))
    if error.message and (match := HTTP_STATUS_IN_TEXT.search(error.message)):
        return int(match.group(1))
    return None


def classify(error: ErrorInfo | None) -> tuple[ErrorClass, str, float]:
    """(class, why, how sure) for an error report."""
    if error is None:
        return ErrorClass.UNKNOWN, "the event carries no error details", 0.5
    if error.retryable is True:
        return ErrorClass.TRANSIENT, "the sender marked the error retryable", 0.95
    if error.retryable is False:
        return ErrorClass.PERMANENT, "the sender marked the error not retryable", 0.95
    status = http_status(error)
    if status is not None:
        if status in (408, 429) or status >= 500:
            return ErrorClass.TRANSIENT, f"HTTP {status} is a transient status", 0.92
        if 400 <= status < 500:
            return ErrorClass.PERMANENT, f"HTTP {status} is a client error", 0.92
    text = " ".join(filter(None, [error.code, error.message]))
    if match := TRANSIENT_WORDS.search(text):
        return ErrorClass.TRANSIENT, f"{match.group(0)!r} points to a transient fault", 0.9
    if match := PERMANENT_WORDS.search(text):
        return ErrorClass.PERMANENT, f"{match.group(0)!r} points to a permanent fault", 0.9
    return ErrorClass.UNKNOWN, "the error matches no known transient or permanent pattern", 0.5


def smoothed_success_rate(successes: int, failures: int) -> float:
    return (successes + PRIOR_SUCCESSES) / (successes + failures + PRIOR_SUCCESSES + PRIOR_FAILURES)


class RulesAnalyzer:
    """Transient → retry (when there is a request to replay through a registered vendor);
    permanent → escalate; unknown → escalate; transient with nothing to replay → manual."""

    model = "awfdrs-rules/1"

    async def analyze(self, facts: IncidentFacts) -> Analysis:
        classification, why, certainty = classify(facts.error)
        details: dict[str, object] = {"why": why, "certainty": certainty}
        if classification is ErrorClass.TRANSIENT:
            if facts.retry is None:
                return Analysis(
                    ActionType.MANUAL,
                    classification,
                    round(certainty * 0.65, 4),
                    f"Transient: {why}, but the event has no payload.retry request to replay; "
                    "handing over for manual work.",
                    details,
                )
            if not facts.vendor_registered:
                vendor = facts.vendor_name or "(none given)"
                return Analysis(
                    ActionType.MANUAL,
                    classification,
                    round(certainty * 0.65, 4),
                    f"Transient: {why}, but vendor {vendor} is not registered, so there is "
                    "nowhere to replay the request; handing over for manual work.",
                    details,
                )
            if not facts.vendor_connected:
                return Analysis(
                    ActionType.MANUAL,
                    classification,
                    round(certainty * 0.65, 4),
                    f"Transient: {why}, but this tenant has no connection to vendor "
                    f"{facts.vendor_name}, so the request is not sent anywhere; connect it "
                    f"(awfdrs vendors connect {facts.vendor_name} --tenant …) and replay it by "
                    "hand; handing over for manual work.",
                    details,
                )
            rate = smoothed_success_rate(facts.prior_retry_successes, facts.prior_retry_failures)
            confidence = round(certainty * rate, 4)
            history = facts.prior_retry_successes + facts.prior_retry_failures
            seen = (
                f"{facts.prior_retry_successes} of {history} earlier retries of this signature "
                "succeeded"
                if history
                else "no earlier retries of this signature"
            )
            details |= {"success_rate": round(rate, 4), "prior_retries": history}
            return Analysis(
                ActionType.RETRY,
                classification,
                confidence,
                f"Transient: {why}; {seen} (smoothed success rate {rate:.2f}); confidence "
                f"{certainty:.2f} x {rate:.2f} = {confidence:.2f}. Retry {facts.retry.method} "
                f"{facts.retry.path} through {facts.vendor_name}.",
                details,
            )
        if classification is ErrorClass.PERMANENT:
            return Analysis(
                ActionType.ESCALATE,
                classification,
                certainty,
                f"Permanent: {why}; retrying cannot help, escalating to a human "
                f"(confidence {certainty:.2f}).",
                details,
            )
        return Analysis(
            ActionType.ESCALATE,
            classification,
            certainty,
            f"Unknown: {why}; escalating rather than guessing (confidence {certainty:.2f}).",
            details,
        )
