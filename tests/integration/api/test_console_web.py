"""The web console against the real stack: the API as a process serving it over HTTP, real
PostgreSQL, a Temporal dev server and a worker on the API's task queue.

One browser journey in Debian's chromium (Playwright): sign in, the incident awaiting approval
at the top of the queue, its plan approved, its resolution seen without a reload, a kill switch
activated by one operator and released by another (the first refused), the audit trail, a
viewer without buttons. Then, over plain HTTP, what a browser would not send: forged POSTs
(no or a wrong CSRF token, another origin, a viewer's session), another tenant's session, a
stale plan, and SSO sign-in with a token naming two tenants.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from temporalio.testing import WorkflowEnvironment

from awfdrs.api.keys import Role, create_key, revoke_key
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus, Phase
from tests.integration.api.test_operator import awaiting_approval
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import Browserless
from tests.support.database import ScratchDatabase
from tests.support.factories import TenantRef, make_incident
from tests.support.pipeline import Stack, eventually
from tests.support.processes import ApiProcess, api_env

SSO_SECRET = "console-test-sso-secret-0123456789abcdef0123"
SSO_ISSUER = "https://idp.example.test"
TEMPORAL_UI = "http://127.0.0.1:8233"


@pytest.fixture
def task_queue(api_queue: str) -> str:
    """The in-process worker (fixture ``stack``) polls the API process's queue."""
    return api_queue


@pytest.fixture(scope="module")
async def api_url(
    database: ScratchDatabase,
    temporal_env: WorkflowEnvironment,
    api_queue: str,
    api_logs: Path,
    api_processes: list[ApiProcess],
) -> str:
    """The API process with the console's SSO and Temporal UI settings."""
    env = api_env(
        database.app_url,
        temporal_env.client.service_client.config.target_host,
        api_queue,
        AWFDRS_CONSOLE_SESSION_SECRET="console-test-session-secret-0123456789abcdef",
        AWFDRS_CONSOLE_SSO_SECRET=SSO_SECRET,
        AWFDRS_CONSOLE_SSO_ISSUER=SSO_ISSUER,
        AWFDRS_TEMPORAL_UI_URL=TEMPORAL_UI,
    )
    process = ApiProcess(env, api_logs / "api-console.log")
    api_processes.append(process)
    return await process.start()


def _screenshots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("AWFDRS_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def _need_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed on this machine (CI installs it)")


@pytest.fixture
async def browserless(api_url: str) -> AsyncIterator[Browserless]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        yield Browserless(http)


async def _settled_incident(stack: Stack, tenant: TenantRef) -> uuid.UUID:
    """A closed incident created after the one awaiting approval: newest first would list it
    on top; the queue puts the one needing a person first."""
    async with tenant_session(stack.sessions, tenant.id) as session:
        return await make_incident(
            session, tenant, signature=f"sig-{uuid.uuid4().hex[:8]}", title="payment: settled",
            status=IncidentStatus.RESOLVED, phase=Phase.CLOSED, resolved_at=datetime.now(UTC),
        )  # fmt: skip


# --- the browser journey ------------------------------------------------------------------------


async def test_an_operator_approves_in_the_browser_and_two_people_handle_a_kill_switch(
    stack: Stack, api_url: str, tmp_path: Path
) -> None:
    _need_chromium()
    from playwright.async_api import Page, ViewportSize, async_playwright, expect

    started = time.monotonic()
    tenant, incident_id, plan_id = await awaiting_approval(stack)
    await _settled_incident(stack, tenant)
    alice, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="alice@ops")
    bob, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="bob@ops")
    viewer, _ = await create_key(stack.sessions, tenant.id, Role.VIEWER, name="vera-viewer")
    shots = _screenshots(tmp_path)

    async def sign_in(page: Page, key: str, shot: bool = False) -> None:
        await page.goto(f"{api_url}/console/queue")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.get_by_label("Key (viewer, operator or admin)").fill(key)
        if shot:
            await page.screenshot(path=str(shots / "console-signin.png"))
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Queue")).to_be_visible()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            size: ViewportSize = {"width": 1280, "height": 900}
            alices = await browser.new_context(viewport=size)
            page = await alices.new_page()
            await sign_in(page, alice, shot=True)
            assert "alice@ops" in await page.inner_text("#who")

            # The incident awaiting approval is the first row, marked in words.
            first = page.locator("#queue-rows tr").first
            assert await first.get_attribute("data-incident") == str(incident_id)
            await expect(first).to_contain_text("NEEDS A PERSON")
            await expect(first).to_contain_text("approve or reject")
            await page.screenshot(path=str(shots / "console-queue.png"), full_page=True)

            # A second tab keeps the queue open: its row follows the incident, never reloaded.
            watcher = await alices.new_page()
            await watcher.goto(f"{api_url}/console/queue")
            await watcher.evaluate("window.__stayed = true")
            await first.get_by_role("link").click()
            await expect(page.get_by_role("heading", name="Plan awaiting approval")).to_be_visible()
            assert plan_id in await page.inner_text("#live")
            link = page.get_by_role("link", name=re.compile("Temporal UI"))
            workflow = f"{TEMPORAL_UI}/namespaces/default/workflows/incident-{incident_id}"
            await expect(link).to_have_attribute("href", workflow)
            await page.screenshot(path=str(shots / "console-incident.png"), full_page=True)
            await page.get_by_label("Reason (optional)").first.fill("vendor is back")
            await page.get_by_role("button", name="Approve this plan").click()
            await expect(page.locator("#flash")).to_contain_text("Plan approved by alice@ops")
            # From here on the page is never reloaded: the live region shows the resolution.
            await page.evaluate("window.__stayed = true")
            await expect(page.locator("#status")).to_have_text("RESOLVED", timeout=30_000)
            assert await page.evaluate("window.__stayed === true")
            await expect(page.get_by_role("button", name="Approve this plan")).to_have_count(0)
            row = watcher.locator(f'#queue-rows tr[data-incident="{incident_id}"]')
            await expect(row).to_contain_text("RESOLVED", timeout=10_000)
            await expect(row).not_to_contain_text("NEEDS A PERSON")
            assert await watcher.evaluate("window.__stayed === true")
            await watcher.close()

            # Kill switch: alice stops automation; she cannot release it herself; bob can.
            await page.get_by_role("link", name="Controls").click()
            await page.get_by_label("Reason", exact=True).fill("vendor outage drill")
            await page.get_by_role("button", name=re.compile("STOP automation")).click()
            await expect(page.locator("#flash")).to_contain_text("Kill switch activated")
            await expect(page.locator("#switches")).to_contain_text("vendor outage drill")
            await page.screenshot(path=str(shots / "console-controls.png"), full_page=True)
            await page.get_by_role("button", name="Release").click()
            await expect(page.locator("#flash")).to_contain_text("two-person rule")
            await expect(page.locator("#flash")).to_contain_text("bob@ops (operator)")
            await expect(page.locator("#switches")).to_contain_text("vendor outage drill")

            bobs = await (await browser.new_context(viewport=size)).new_page()
            await sign_in(bobs, bob)
            await bobs.get_by_role("link", name="Controls").click()
            await bobs.get_by_role("button", name="Release").click()
            await expect(bobs.locator("#flash")).to_contain_text("released by bob@ops")
            await expect(bobs.locator("#no-switch")).to_be_visible()

            await page.get_by_role("link", name="Audit").click()
            await expect(page.locator("#verdict")).to_contain_text("CHAIN INTACT")
            await expect(page.locator("table.audit")).to_contain_text("alice@ops")
            await expect(page.locator("table.audit")).to_contain_text("bob@ops")
            await page.screenshot(path=str(shots / "console-audit.png"), full_page=True)

            # A viewer reads everything and is offered nothing to press (on a phone, too).
            small: ViewportSize = {"width": 390, "height": 844}
            phone = await (await browser.new_context(viewport=small)).new_page()
            await sign_in(phone, viewer)
            await phone.goto(f"{api_url}/console/incidents/{incident_id}")
            await expect(phone.locator("#status")).to_have_text("RESOLVED")
            await phone.screenshot(path=str(shots / "console-phone.png"), full_page=False)
            await phone.goto(f"{api_url}/console/controls")
            assert await phone.locator("main button").count() == 0
            assert await phone.locator("main form[method=post]").count() == 0
        finally:
            await browser.close()

    deciders = {d.decided_by for d in await stack.decisions(tenant, incident_id)}
    assert "alice@ops" in deciders
    assert time.monotonic() - started < 90


# --- what a browser would not send ----------------------------------------------------------------


async def test_forged_posts_are_refused_and_change_nothing(
    stack: Stack, browserless: Browserless, api_url: str
) -> None:
    tenant, incident_id, plan_id = await awaiting_approval(stack)
    operator, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="olga@ops")
    viewer, _ = await create_key(stack.sessions, tenant.id, Role.VIEWER, name="vic-viewer")
    path = f"/console/incidents/{incident_id}/approve"
    form = {"plan_id": plan_id, "tenant": str(tenant.id)}
    await browserless.sign_in(key=operator)
    await browserless.page(f"/console/incidents/{incident_id}")

    no_token = await browserless.http.post(path, data=form)
    wrong = await browserless.http.post(path, data={**form, "csrf": "0" * 64})
    unicode = await browserless.http.post(path, data={**form, "csrf": "é" * 64})
    elsewhere = await browserless.post(path, form, headers={"Origin": "https://evil.example"})
    cross_site = await browserless.post(path, form, headers={"Sec-Fetch-Site": "cross-site"})
    as_json = await browserless.http.post(
        path, json={**form, "csrf": browserless.csrf}
    )  # a form-less body is not a console form
    # Sign-in without the form's own token (login CSRF) is refused the same way.
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as fresh:
        blind = await fresh.post("/console/signin", data={"key": operator})
        assert "awfdrs_console=" not in blind.headers.get("set-cookie", "")
    for refused in (no_token, wrong, unicode, elsewhere, cross_site, as_json, blind):
        assert refused.status_code == 403, refused.text
        assert "Refused" in refused.text

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as other:
        reader = Browserless(other)
        await reader.sign_in(key=viewer)
        await reader.page(f"/console/incidents/{incident_id}")
        page = await reader.page(f"/console/incidents/{incident_id}")
        assert "Approve this plan" not in page
        by_viewer = await reader.post(path, form)
        assert by_viewer.status_code == 403, by_viewer.text
        assert "can only read" in by_viewer.text

    still = await stack.client.snapshot(incident_id)
    assert still.phase is Phase.AWAITING_APPROVAL
    assert still.plan is not None
    assert still.plan.plan_id == plan_id
    assert not [d for d in await stack.decisions(tenant, incident_id) if d.decided_by]

    # A stale plan is refused with the plan that waits; the page keeps its context.
    stale = await browserless.post(path, {**form, "plan_id": "plan-0"})
    assert stale.status_code == 303
    shown = await browserless.page(stale.headers["location"])
    assert "Refused:" in shown
    assert plan_id in shown
    assert "Plan awaiting approval" in shown

    # Behind a proxy that terminates TLS the browser's origin is https: the host decides.
    host = api_url.split("://", 1)[1]
    out = await browserless.post("/console/signout", {}, headers={"Origin": f"https://{host}"})
    assert out.status_code == 303
    assert out.headers["location"] == "/console/signin"


async def test_another_tenants_session_sees_and_touches_nothing(
    stack: Stack, browserless: Browserless, api_url: str
) -> None:
    a, incident_id, plan_id = await awaiting_approval(stack)
    b = await stack.tenant()
    b_admin, _ = await create_key(stack.sessions, b.id, Role.ADMIN, name="b-admin")
    await browserless.sign_in(key=b_admin)
    queue = await browserless.page("/console/queue")
    assert str(incident_id) not in queue
    for path in (
        f"/console/incidents/{incident_id}",
        f"/console/incidents/{incident_id}?tenant={a.id}",
        f"/console/incidents/{incident_id}/live",
        f"/console/controls?tenant={a.id}",
        f"/console/audit?tenant={a.id}",
    ):
        answer = await browserless.http.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert a.name not in answer.text
        assert plan_id not in answer.text
    for verb, data in (("approve", {"plan_id": plan_id}), ("resolve", {"reason": "b's"})):
        answer = await browserless.post(f"/console/incidents/{incident_id}/{verb}", data)
        assert answer.status_code == 404, answer.text
    mode = await browserless.post(
        "/console/controls/workflow-mode", {"workflow": str(a.workflow_id), "mode": "off"}
    )
    assert mode.status_code == 303
    assert "Not done" in await browserless.page(mode.headers["location"])
    assert (await stack.client.snapshot(incident_id)).phase is Phase.AWAITING_APPROVAL


async def test_sso_sign_in_spans_the_tenants_of_the_token_and_acts_as_its_subject(
    stack: Stack, browserless: Browserless
) -> None:
    a, incident_id, plan_id = await awaiting_approval(stack)
    b = await stack.tenant()
    b_incident = await _settled_incident(stack, b)

    def token(**claims: Any) -> str:
        body = {"iss": SSO_ISSUER, "aud": "awfdrs-console", "sub": "sam@corp",
                "exp": int(time.time()) + 300, "awfdrs_role": "operator",
                "awfdrs_tenants": [str(a.id), str(b.id)], **claims}  # fmt: skip
        return jwt.encode(body, SSO_SECRET, algorithm="HS256")

    for bad in (token(iss="https://other.example"), token(exp=int(time.time()) - 10),
                jwt.encode({"sub": "x"}, "another-secret-of-enough-length-0123456789"),
                token(awfdrs_role="ingest")):  # fmt: skip
        form = await browserless.http.get("/console/signin")
        pre = re.search(r'name="pre" value="([^"]+)"', form.text)
        assert pre
        refused = await browserless.http.post(
            "/console/signin", data={"pre": pre.group(1), "sso_token": bad}
        )
        assert refused.status_code == 401, refused.text
        assert "Not signed in" in refused.text

    await browserless.sign_in(token=token())
    both = await browserless.page("/console/queue")
    assert str(incident_id) in both
    assert str(b_incident) in both
    assert both.index(str(incident_id)) < both.index(str(b_incident))
    only_b = await browserless.page(f"/console/queue?tenant={b.id}")
    assert str(incident_id) not in only_b
    assert str(b_incident) in only_b
    assert f">{a.name}</option>" in only_b  # the tenant filter names the token's tenants
    # A link without its tenant (an escalation's) finds the incident in the token's tenants.
    assert "payment: settled" in await browserless.page(f"/console/incidents/{b_incident}")
    for query, shown in {
        "status=RESOLVED": {b_incident},
        "status=ANALYZING": {incident_id},
        "workflow=payments&age=1h": {incident_id, b_incident},
        "workflow=no-such-flow": set(),
        "severity=critical": set(),
    }.items():
        rows = await browserless.http.get(f"/console/queue/rows?{query}")
        listed = set(re.findall(r'data-incident="([^"]+)"', rows.text))
        assert listed == {str(i) for i in shown}, (query, listed)

    approved = await browserless.post(
        f"/console/incidents/{incident_id}/approve", {"plan_id": plan_id, "tenant": str(a.id)}
    )
    assert approved.status_code == 303
    assert "approved by sso:sam@corp" in await browserless.page(approved.headers["location"])

    async def decided() -> bool | None:
        found = await stack.decisions(a, incident_id)
        return True if any(d.decided_by == "sso:sam@corp" for d in found) else None

    await eventually(decided, 15, "the approval recorded with the SSO subject")
    await asyncio.sleep(0)


async def test_an_admin_sets_remediation_modes_and_a_revoked_keys_session_ends(
    stack: Stack, browserless: Browserless, api_url: str
) -> None:
    from awfdrs.admin import list_workflows

    tenant = await stack.tenant()
    admin, info = await create_key(stack.sessions, tenant.id, Role.ADMIN, name="ada-admin")
    operator, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="otto@ops")
    await browserless.sign_in(key=admin)
    await browserless.page("/console/controls")
    flow = {"workflow": str(tenant.workflow_id), "tenant": str(tenant.id)}
    shadow = await browserless.post("/console/controls/workflow-mode", {**flow, "mode": "shadow"})
    off = await browserless.post("/console/controls/tenant-mode", {"mode": "off"})
    assert (shadow.status_code, off.status_code) == (303, 303)
    controls_page = await browserless.page("/console/controls")
    assert "remediation mode is now off" in controls_page
    [workflow] = await list_workflows(stack.sessions, tenant.id)
    assert workflow.settings == {"remediation_mode": "shadow"}
    audit = await browserless.page("/console/audit?kind=settings")
    assert "workflow.settings.change" in audit
    assert "settings.change" in audit
    assert "ada-admin" in audit

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as other:
        otto = Browserless(other)
        await otto.sign_in(key=operator)
        controls = await otto.page("/console/controls")
        assert "tenant-mode" not in controls  # an operator is not offered the mode forms
        refused = await otto.post("/console/controls/workflow-mode", {**flow, "mode": "live"})
        assert "needs an admin" in await otto.page(refused.headers["location"])
    [workflow] = await list_workflows(stack.sessions, tenant.id)
    assert workflow.settings == {"remediation_mode": "shadow"}

    # A vendor connection stopped and released from the page, recorded as the admin.
    vendor = await stack.vendor()
    stop = await browserless.post("/console/controls/vendor-stop",
                                  {"vendor": vendor, "reason": "vendor on fire"})  # fmt: skip
    stopped = await browserless.page(stop.headers["location"])
    assert "STOPPED by ada-admin: vendor on fire" in stopped
    go = await browserless.post("/console/controls/vendor-release", {"vendor": vendor})
    assert f"Calls to {vendor} released" in await browserless.page(go.headers["location"])
    audit = await browserless.page("/console/audit?actor=ada")
    assert "connection.force_open" in audit
    assert "connection.release" in audit

    await revoke_key(stack.sessions, str(info.id))

    async def signed_out() -> bool | None:
        answer = await browserless.http.get("/console/queue")
        gone = answer.status_code == 303 and "signin" in answer.headers["location"]
        return True if gone else None

    await eventually(signed_out, 10, "the revoked key's session sent back to sign in")
    late = await browserless.post("/console/controls/tenant-mode", {"mode": "live"})
    assert late.status_code in (303, 403)
    assert "signin" in late.headers.get("location", "signin")


async def test_an_irreversible_plan_needs_a_second_person_in_the_console(
    stack: Stack, browserless: Browserless, api_url: str
) -> None:
    from tests.integration.api.test_operator import only_incident
    from tests.support.pipeline import event

    tenant = await stack.tenant()
    name = await stack.vendor()
    refund = event(tenant, "refund-1", error={"code": "gateway_timeout", "vendor": name},
                   retry={"method": "POST", "path": "/v1/refunds", "body": {},
                          "reversible": False})  # fmt: skip
    await stack.client.ingest(tenant.id, [refund])
    incident_id = await only_incident(stack, tenant)
    waiting = await stack.wait_snapshot(
        incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL and s.plan is not None
    )
    assert waiting.plan is not None
    alice, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="alice")
    bob, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="bob")
    path = f"/console/incidents/{incident_id}/approve"
    form = {"plan_id": waiting.plan.plan_id, "tenant": str(tenant.id)}

    await browserless.sign_in(key=alice)
    first = await browserless.post(path, form)
    shown = await browserless.page(first.headers["location"])
    assert "Approval by alice recorded" in shown
    assert "second approver" in shown
    again = await browserless.post(path, form)
    alone = await browserless.page(again.headers["location"])
    assert "Refused:" in alone
    assert "bob (operator)" in alone

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as other:
        second = Browserless(other)
        await second.sign_in(key=bob)
        done = await second.post(path, form)
        assert "Plan approved by bob" in await second.page(done.headers["location"])
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
