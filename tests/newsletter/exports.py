"""Files in the layouts other tools publish, built by the tests: Mailchimp's audience export
(quoted header, UTF-8 BOM, CRLF, TAGS as a quoted list inside a quoted cell, an interest column)
with its unsubscribed and cleaned files and the zip holding all three; listmonk's subscriber
export (attributes as JSON); Ghost's members export; Substack's email list and its zip beside
the posts."""

from __future__ import annotations

import csv
import io
import json
import zipfile

_MC_HEAD = ["Email Address", "First Name", "Last Name", "Address", "Phone Number", "MEMBER_RATING", "OPTIN_TIME",
            "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC",
            "REGION", "LAST_CHANGED", "LEID", "EUID", "NOTES"]
_MC_TAIL = ["TAGS"]


def _csv(rows: list[list[str]], *, bom: bool = True, crlf: bool = True) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def _mc_row(email: str, first: str, last: str, *, optin: str = "2023-01-15 10:20:30", tags: str = "",
            extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    return [email, first, last, "", "", "2", optin, "198.51.100.7", "2023-01-15 10:21:00", "198.51.100.8", "", "",
            "", "", "", "", "", "2023-02-01 09:00:00", "123", "abcd", "", *extra, tags]


def mailchimp_subscribed() -> bytes:
    """Mailchimp's subscribed file, with a group column "Interests" and tags."""
    head = [*_MC_HEAD, "Interests", *_MC_TAIL]
    return _csv([head,
                 _mc_row("ana@example.org", "Ana", "Lima", tags='"anxiety","VIP"', extra=["PTSD, Gardening"]),
                 _mc_row("Bo@Example.org", "Bo", "", tags="", extra=[""]),
                 _mc_row("cy@example.org", "Cy, Jr.", "O\"Neil", tags='"depression"', extra=[""])])


def mailchimp_unsubscribed() -> bytes:
    head = [*_MC_HEAD, "UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
            "UNSUB_REASON_OTHER", *_MC_TAIL]
    row = _mc_row("di@example.org", "Di", "Ray", extra=["2023-05-02 08:00:00", "May news", "c1", "NORMAL", ""])
    return _csv([head, row])


def mailchimp_cleaned() -> bytes:
    head = [*_MC_HEAD, "CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID", *_MC_TAIL]
    return _csv([head, _mc_row("ed@example.org", "Ed", "", extra=["2023-06-03 07:00:00", "June news", "c2"])])


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def mailchimp_zip() -> bytes:
    return zipped({"subscribed_members_export_1a2b3c.csv": mailchimp_subscribed(),
                   "unsubscribed_members_export_1a2b3c.csv": mailchimp_unsubscribed(),
                   "cleaned_members_export_1a2b3c.csv": mailchimp_cleaned()})


def listmonk() -> bytes:
    """listmonk's export: no BOM, LF, attributes as JSON in a quoted cell."""
    head = ["uuid", "email", "name", "attributes", "status", "created_at", "updated_at"]
    return _csv([head,
                 ["5e1a", "fay@example.org", "Fay Wu", json.dumps({"topics": ["OCD", "Yoga"], "city": "Oslo"}),
                  "enabled", "2022-03-01 10:00:00.123456+00", "2022-03-02 10:00:00+00"],
                 ["5e1b", "gus@example.org", "Gus", "{}", "blocklisted", "2022-03-01 11:00:00+00",
                  "2022-04-01 11:00:00+00"],
                 ["5e1c", "hal@example.org", "Hal", "", "disabled", "2022-03-01 12:00:00+00",
                  "2022-04-02 12:00:00+00"]], bom=False, crlf=False)


def ghost() -> bytes:
    head = ["id", "email", "name", "note", "subscribed_to_emails", "complimentary_plan", "stripe_customer_id",
            "created_at", "deleted_at", "labels", "tiers"]
    return _csv([head,
                 ["63a1", "ivy@example.org", "Ivy Ng", "met at a talk,\r\nwith a line break", "true", "false", "",
                  "2023-01-10T10:00:00.000Z", "", "anxiety,Imported 2023", ""],
                 ["63a2", "jo@example.org", "Jo", "", "false", "false", "cus_1", "2023-01-11T10:00:00.000Z", "",
                  "", "Gold"]], bom=False)


def substack() -> bytes:
    head = ["email", "active_subscription", "expiry", "plan", "email_disabled", "created_at", "first_payment_at"]
    return _csv([head,
                 ["kim@example.org", "false", "", "free", "false", "2021-07-01T09:00:00.000Z", ""],
                 ["lee@example.org", "true", "2024-01-01T00:00:00.000Z", "monthly", "true",
                  "2021-08-01T09:00:00.000Z", "2021-08-01T09:00:00.000Z"]], bom=True)


def substack_zip() -> bytes:
    posts = _csv([["post_id", "post_date", "is_published", "email_sent_at", "title"],
                  ["1", "2021-07-01", "true", "2021-07-01", "Hello"]], bom=False)
    opens = _csv([["post_id", "timestamp", "email", "country"], ["1", "2021-07-02", "kim@example.org", "NO"]])
    return zipped({"email_list.clinic.csv": substack(), "posts.csv": posts, "posts/1.opens.csv": opens})


def zip_bomb(cap: int) -> bytes:
    """A zip whose one CSV unpacks to more than `cap` bytes (it compresses to about a thousandth)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("subscribed_members_export.csv", "w", force_zip64=True) as member:
        member.write(b'"Email Address",OPTIN_TIME,CONFIRM_TIME,LEID,EUID\r\n')
        chunk = b"a@example.org,,,1,1\r\n" * 50_000
        written = 0
        while written <= cap:
            member.write(chunk)
            written += len(chunk)
    return out.getvalue()
