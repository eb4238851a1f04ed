"""Benchmark: import 100,000 subscribers from a generated CSV on SQLite and PostgreSQL.

Prints rows/s of `import_subscribers` (the code behind `tidings subscribers import` and the
admin upload) and, measured in the same run, a baseline: the same rows loaded raw (asyncpg
COPY into a plain table on PostgreSQL; executemany on SQLite), i.e. the floor of what any
import could cost. Memory: tracemalloc peak of a 10,000-row and a 100,000-row import (separate,
untimed runs, since tracing slows Python down) to show it is flat in the size of the file.
Then the same number of readers as a Mailchimp audience export (its 22 columns, BOM, CRLF, quoted
TAGS), imported fresh, at the plain file's rate or close to it (the layout adds one dict per row).

Run: .venv/bin/python bench/import.py [--rows N] [--pg postgresql://postgres@127.0.0.1:5432/postgres]
Creates and drops its own databases (SQLite in a temp dir; PostgreSQL tidings_bench_newsletter).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import asyncpg
from sqlalchemy import text

import service.models  # noqa: F401 - every table in Base.metadata
from service.db import create_engine, migrate, session_factory
from service.newsletter.importer import import_subscribers
from service.settings import Settings
from service.tokens import Tokens

PG_NAME = "tidings_bench_newsletter"
TOPICS = ["depression", "anxiety", "PTSD", "chronic pain", "OCD", "other"]


def make_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "name", "topics", "status", "signup_at", "signup_source"])
        for i in range(rows):
            status = "confirmed" if i % 2 else "pending"
            w.writerow([f"reader.{i}@mail{i % 97}.example.org", f"Reader {i}", ";".join(TOPICS[: i % 3]), status,
                        "2024-05-01T09:30:00Z" if status == "confirmed" else "", "old-list"])


def make_evidence_csv(path: Path, rows: int) -> None:
    """Our own columns carrying what each Mailchimp row carries (both dates, both IPs, the tags as
    topics, confirmed): the same information, so the comparison shows what the layout costs."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "name", "topics", "status", "signup_at", "signup_ip", "confirmed_at", "confirm_ip"])
        for i in range(rows):
            w.writerow([f"reader.{i}@mail{i % 97}.example.org", f"Reader {i}", ";".join(TOPICS[: i % 3]),
                        "confirmed", "2024-05-01 09:30:00", "198.51.100.7", "2024-05-01 09:31:00", "198.51.100.7"])


MAILCHIMP_HEAD = ["Email Address", "First Name", "Last Name", "Address", "Phone Number", "MEMBER_RATING", "OPTIN_TIME",
                  "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE",
                  "CC", "REGION", "LAST_CHANGED", "LEID", "EUID", "NOTES", "TAGS"]


def make_mailchimp_csv(path: Path, rows: int) -> None:
    """A Mailchimp subscribed-members export of `rows` readers (as Mailchimp writes it)."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(MAILCHIMP_HEAD)
        for i in range(rows):
            tags = ",".join(f'"{t}"' for t in [*TOPICS[: i % 3], "VIP"])
            w.writerow([f"reader.{i}@mail{i % 97}.example.org", "Reader", str(i), "", "", "2",
                        "2024-05-01 09:30:00", "198.51.100.7", "2024-05-01 09:31:00", "198.51.100.7", "", "", "", "",
                        "", "", "", "2024-06-01 10:00:00", str(i), f"e{i}", "", tags])


async def fresh_pg(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{PG_NAME}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + PG_NAME


async def drop_pg(admin_url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_import(url: str, path: Path, *, trace: bool, fresh: bool = True) -> tuple[float, int, int]:
    """(seconds, rows added or updated, tracemalloc peak bytes or 0)."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    settings = Settings(database_url=url, secret_key="bench-secret-" + "x" * 40)
    try:
        if fresh:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM subscriber_topics"))
                await conn.execute(text("DELETE FROM subscribers"))
        if trace:
            tracemalloc.start()
            tracemalloc.reset_peak()
        started = time.perf_counter()
        async with sessions.begin() as session:
            with path.open("rb") as fh:
                report = await import_subscribers(session, fh, settings=settings, tokens=Tokens(settings))
        elapsed = time.perf_counter() - started
        peak = 0
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert report.error_count == 0, report.summary_lines()[:5]
        return elapsed, report.added + report.updated, peak
    finally:
        await engine.dispose()


def rows_of(path: Path) -> list[tuple[str, str, str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        r = csv.reader(fh)
        next(r)
        return [(row[0], row[0].lower(), row[1], row[3]) for row in r]


async def baseline_pg(url: str, path: Path) -> float:
    records = rows_of(path)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (email text, email_key text, name text, status text)")
        await conn.execute("TRUNCATE bench_raw")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("bench_raw", records=records,
                                             columns=["email", "email_key", "name", "status"])
        return time.perf_counter() - started
    finally:
        await conn.close()


async def baseline_sqlite(url: str, path: Path) -> float:
    records = rows_of(path)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_raw (email, email_key, name, status)"))
            await conn.execute(text("DELETE FROM bench_raw"))
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO bench_raw VALUES (:a, :b, :c, :d)"),
                               [{"a": a, "b": b, "c": c, "d": d} for a, b, c, d in records])
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def bench(name: str, url: str, big: Path, small: Path, mailchimp: Path, evidence: Path, rows: int) -> None:
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    seconds, added, _ = await run_import(url, big, trace=False)
    again, updated, _ = await run_import(url, big, trace=False, fresh=False)
    base = await (baseline_pg(url, big) if name == "PostgreSQL" else baseline_sqlite(url, big))
    _, _, peak_small = await run_import(url, small, trace=True)
    _, _, peak_big = await run_import(url, big, trace=True)
    plain_again, _, _ = await run_import(url, big, trace=False)  # beside the Mailchimp run, same load
    mc_seconds, mc_added, _ = await run_import(url, mailchimp, trace=False)
    same_seconds, _, _ = await run_import(url, evidence, trace=False)
    print(f"{name:10} import {rows:>7} rows: {seconds:6.2f}s = {rows / seconds:>8,.0f} rows/s ({added} added)"
          f" | again (all updates) {rows / again:>7,.0f} rows/s"
          f" | baseline raw load {rows / base:>9,.0f} rows/s"
          f" | tracemalloc peak {peak_small / 1e6:5.1f} MB for {rows // 10} rows, {peak_big / 1e6:5.1f} MB for {rows}")
    print(f"{name:10} Mailchimp export {rows:>7} rows: {mc_seconds:6.2f}s = {rows / mc_seconds:>8,.0f} rows/s "
          f"({mc_added} added) | plain file in the same minute {rows / plain_again:>8,.0f} rows/s"
          f" | our columns with the same evidence {rows / same_seconds:>8,.0f} rows/s")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big, small, mailchimp = Path(tmp) / "big.csv", Path(tmp) / "small.csv", Path(tmp) / "mailchimp.csv"
        evidence = Path(tmp) / "evidence.csv"
        make_csv(big, args.rows)
        make_evidence_csv(evidence, args.rows)
        make_mailchimp_csv(mailchimp, args.rows)
        make_csv(small, args.rows // 10)
        print(f"CSV: {args.rows} rows, {big.stat().st_size / 1e6:.1f} MB (machine shared with other jobs)")
        if not args.no_sqlite:
            await bench("SQLite", f"sqlite+aiosqlite:///{tmp}/bench.db", big, small, mailchimp, evidence, args.rows)
        url = await fresh_pg(args.pg)
        try:
            await bench("PostgreSQL", url.replace("postgresql://", "postgresql+asyncpg://"), big, small, mailchimp,
                        evidence, args.rows)
        finally:
            await drop_pg(args.pg)


if __name__ == "__main__":
    asyncio.run(main())
