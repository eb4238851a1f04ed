"""Insight's reports in the admin (service/insight): campaigns, content, lead sources and
audience. Each page shows server-rendered SVG charts with the same figures in a table beside
them, and exports its figures as CSV (audited, like every export). Counts only: no report names
a person, and no inquiry's content is read."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from service.admin.audit import record_audit
from service.admin.guard import admin_error, get_or_404, page
from service.admin.stats import bar_chart
from service.campaigns.models import Campaign
from service.csvfile import stream_csv
from service.db import get_session, utcnow
from service.insight.audience import audience_weeks, topics_by_popularity
from service.insight.reports import CampaignReport, campaign_report, campaign_summaries
from service.insight.sources import DIMENSIONS, FUNNEL, ROWS_SHOWN, content_report, lead_sources
from service.validation import small_int

CAMPAIGNS_SHOWN = 12
MONTHS_DEFAULT = 12
MONTHS_MAX = 120


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


async def reports_index(request: Request) -> Response:
    session = get_session(request)
    campaigns = (await session.scalars(select(Campaign).where(Campaign.started_at.is_not(None))
                                       .order_by(Campaign.started_at.desc()).limit(CAMPAIGNS_SHOWN))).all()
    return page(request, "admin/reports.html", {
        "summaries": await campaign_summaries(session, campaigns), "pct": pct})


async def _campaign(request: Request) -> tuple[Campaign, CampaignReport]:
    session = get_session(request)
    campaign = await get_or_404(session, Campaign, request.path_params["campaign_id"], what="campaign")
    return campaign, await campaign_report(session, campaign)


async def campaign_page(request: Request) -> Response:
    campaign, report = await _campaign(request)
    chart = bar_chart([("bar-a", [n for _, n in report.hours])], [f"{h:%d %b %H}h" for h, _ in report.hours])
    return page(request, "admin/report_campaign.html", {"campaign": campaign, "r": report, "chart": chart,
                                                         "pct": pct})


def campaign_rows(report: CampaignReport) -> Iterable[list[object]]:
    s = report.summary
    yield ["measure", "item", "value"]
    for name, value in (("delivered", s.delivered), ("bounced", report.bounced), ("complained", report.complained),
                        ("unsubscribed_after", report.unsubscribed_after), ("clicks", s.clicks),
                        ("readers", s.readers), ("click_through_rate", pct(s.ctr)), ("inquiries", s.inquiries)):
        yield [name, "", value]
    for kind, n in sorted(report.scanners.items()):
        yield ["scanner_clicks", kind, n]
    for link in report.links:
        yield ["clicks_by_link", link.title, link.clicks]
        yield ["readers_by_link", link.title, link.readers]
    for hour, n in report.hours:
        yield ["clicks_by_hour", f"{hour:%Y-%m-%dT%H:00Z}", n]
    yield ["clicks_later", "", report.later_clicks]
    for status, n in report.inquiries_by_status.items():
        yield ["inquiries_by_status", status, n]


async def campaign_csv(request: Request) -> Response:
    campaign, report = await _campaign(request)
    return await _export(request, f"campaign-{campaign.id}", campaign_rows(report))


async def content_page(request: Request) -> Response:
    rows = await content_report(get_session(request))
    top = sorted(rows, key=lambda r: (-(r.clicks + r.inquiries), r.article.title))[:10]
    chart = bar_chart([("bar-a", [r.clicks for r in top]), ("bar-b", [r.inquiries for r in top])],
                      [str(i + 1) for i in range(len(top))])
    return page(request, "admin/report_content.html", {"rows": rows, "top": top, "chart": chart})


async def content_csv(request: Request) -> Response:
    rows = await content_report(get_session(request))
    return await _export(request, "content", [
        ["article", "link", "published", "newsletter_clicks", "readers", "inquiries", "signups"],
        *([r.article.title, r.article.link, f"{r.article.published_at:%Y-%m-%d}", r.clicks, r.readers, r.inquiries,
           r.signups] for r in rows)])


def _months(request: Request) -> int | None:
    raw = request.query_params.get("months", str(MONTHS_DEFAULT))
    months = small_int(raw)
    return months if months is not None and 1 <= months <= MONTHS_MAX else None


async def _leads(request: Request, *, limit: int | None = ROWS_SHOWN) -> tuple[int, dict[str, Any]] | Response:
    months = _months(request)
    if months is None:
        return admin_error(request, 400, f"Months: enter a whole number of months from 1 to {MONTHS_MAX}.")
    since = utcnow() - dt.timedelta(days=31 * months)
    return months, await lead_sources(get_session(request), since=since, limit=limit)


async def leads_page(request: Request) -> Response:
    found = await _leads(request)
    if isinstance(found, Response):
        return found
    months, sources = found
    by_month = sources["month"]
    chart = bar_chart([(f"bar-{c}", [r.by_status[s] for r in by_month]) for c, s in zip("abcd", FUNNEL, strict=True)],
                      [r.value for r in by_month])
    return page(request, "admin/report_leads.html", {"months": months, "sources": sources, "dimensions": DIMENSIONS,
                                                      "funnel": FUNNEL, "chart": chart})


async def leads_csv(request: Request) -> Response:
    found = await _leads(request, limit=None)  # the page shows the first ROWS_SHOWN; the export has all
    if isinstance(found, Response):
        return found
    months, sources = found
    rows: list[list[object]] = [["dimension", "value", *FUNNEL, "total"]]
    for name, items in sources.items():
        rows += [[name, r.value, *(r.by_status[s] for s in FUNNEL), r.total] for r in items]
    return await _export(request, "lead-sources", rows, detail={"months": months})


async def audience_page(request: Request) -> Response:
    session = get_session(request)
    weeks = await audience_weeks(session, now=utcnow())
    labels = [f"{w.start:%d %b}" for w in weeks]
    chart = bar_chart([("bar-a", [w.signups for w in weeks]), ("bar-b", [w.confirmed for w in weeks]),
                       ("bar-c", [w.unsubscribed + w.bounced + w.complained for w in weeks])], labels)
    topics = await topics_by_popularity(session)
    topic_chart = bar_chart([("bar-a", [n for _, n in topics])], [t for t, _ in topics])
    return page(request, "admin/report_audience.html", {"weeks": weeks, "chart": chart, "topics": topics,
                                                         "topic_chart": topic_chart, "pct": pct})


async def audience_csv(request: Request) -> Response:
    session = get_session(request)
    weeks = await audience_weeks(session, now=utcnow())
    topics = await topics_by_popularity(session)
    rows: list[list[object]] = [["measure", "item", "value"]]
    for w in weeks:
        week = w.start.isoformat()
        rows += [[m, week, v] for m, v in (("signups", w.signups), ("confirmation_rate", pct(w.confirmation_rate)),
                                           ("confirmed", w.confirmed), ("unsubscribed", w.unsubscribed),
                                           ("bounced", w.bounced), ("complained", w.complained), ("net", w.net))]
    rows += [["subscribers_by_topic", topic, n] for topic, n in topics]
    return await _export(request, "audience", rows)


async def _export(request: Request, name: str, rows: Iterable[Iterable[object]],
                  detail: dict[str, Any] | None = None) -> Response:
    """The report as CSV (cells made safe by `service.csvfile`), recorded in the audit log."""
    await record_audit(get_session(request), request=request, action="report_export", target_type="report",
                       target_id=name, detail=detail)

    async def aiter_rows() -> AsyncIterator[Iterable[object]]:
        for row in rows:
            yield row

    return StreamingResponse(stream_csv(aiter_rows()), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="tidings-{name}.csv"', "cache-control": "no-store"})


routes: list[BaseRoute] = [
    Route("/reports", reports_index, name="admin_reports"),
    Route("/reports/campaigns/{campaign_id:int}", campaign_page, name="admin_report_campaign"),
    Route("/reports/campaigns/{campaign_id:int}.csv", campaign_csv, name="admin_report_campaign_csv"),
    Route("/reports/content", content_page, name="admin_report_content"),
    Route("/reports/content.csv", content_csv, name="admin_report_content_csv"),
    Route("/reports/leads", leads_page, name="admin_report_leads"),
    Route("/reports/leads.csv", leads_csv, name="admin_report_leads_csv"),
    Route("/reports/audience", audience_page, name="admin_report_audience"),
    Route("/reports/audience.csv", audience_csv, name="admin_report_audience_csv"),
]
