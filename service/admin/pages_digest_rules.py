"""Recurring digest rules: the list (with the campaigns awaiting approval), create, edit, and
activate/deactivate. The rules themselves (`campaigns.rules`) and saving them
(`campaigns.actions`, audit-logged) belong to the campaigns domain."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor
from service.admin.campaign_forms import RuleForm
from service.admin.guard import get_or_404, page
from service.campaigns.actions import save_digest_rule, set_digest_rule_active
from service.campaigns.models import DigestRule
from service.campaigns.queries import awaiting_approval
from service.campaigns.rules import WEEKDAYS, RuleError, list_rules
from service.db import get_session, utcnow
from service.web import settings_of


async def _rules_page(request: Request, form: RuleForm | None = None, *, editing: DigestRule | None = None,
                      status_code: int = 200) -> Response:
    session = get_session(request)
    ctx: dict[str, Any] = {
        "rules": await list_rules(session), "approval": await awaiting_approval(session),
        "form": form or RuleForm(), "editing": editing, "weekdays": WEEKDAYS, "topics": settings_of(request).topics,
        "notice": request.query_params.get("notice", ""),
    }
    return page(request, "admin/rules.html", ctx, status_code)


async def rules(request: Request) -> Response:
    return await _rules_page(request)


async def _save_rule(request: Request, rule: DigestRule | None) -> Response:
    async with request.form() as data:
        form = RuleForm.parse(data, topics=settings_of(request).topics)
    if form.errors:
        return await _rules_page(request, form, editing=rule, status_code=422)
    try:
        rule = await save_digest_rule(get_session(request), rule, actor=Actor.of(request), spec=form.spec,
                                      now=utcnow(), name=form.name, subject=form.subject,
                                      audience_topics=form.topics if form.audience == "topics" else [],
                                      requires_approval=form.requires_approval)
    except RuleError as exc:
        form.errors["at_time"] = str(exc)
        return await _rules_page(request, form, editing=rule, status_code=422)
    return RedirectResponse("/admin/digest-rules?notice=saved", status_code=303)


async def rule_create(request: Request) -> Response:
    return await _save_rule(request, None)


async def rule_edit(request: Request) -> Response:
    rule = await get_or_404(get_session(request), DigestRule, request.path_params["rule_id"], what="digest rule")
    if request.method == "GET":
        return await _rules_page(request, RuleForm.for_rule(rule), editing=rule)
    return await _save_rule(request, rule)


async def rule_active(request: Request) -> Response:
    session = get_session(request)
    rule = await get_or_404(session, DigestRule, request.path_params["rule_id"], what="digest rule")
    async with request.form() as data:
        active = data.get("active") == "1"
    await set_digest_rule_active(session, rule, active=active, actor=Actor.of(request), now=utcnow())
    return RedirectResponse("/admin/digest-rules?notice=" + ("activated" if active else "deactivated"),
                            status_code=303)


routes: list[BaseRoute] = [
    Route("/digest-rules", rules, name="admin_digest_rules"),
    Route("/digest-rules/new", rule_create, methods=["POST"], name="admin_digest_rule_new"),
    Route("/digest-rules/{rule_id:int}", rule_edit, methods=["GET", "POST"], name="admin_digest_rule"),
    Route("/digest-rules/{rule_id:int}/active", rule_active, methods=["POST"], name="admin_digest_rule_active"),
]
