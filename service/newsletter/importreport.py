"""The summary of a subscriber import: counts per status (added, updated, skipped and why),
line-numbered errors, the layout each file was read as, the columns not used and the topics a
tool named that are not configured. The CLI prints it; the admin page shows it."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LISTED = 20  # line numbers listed per skip reason; the count is always complete
MAX_ERRORS = 100
MAX_TOPICS_LISTED = 30

SKIP_REASONS = {
    "duplicate": "duplicate of an earlier line in the file",
    "erased": "suppressed: the address was erased (right to be forgotten)",
    "not_revived": "already unsubscribed, bounced or complained: an import never revives it",
}
_SHORT = {"duplicate": "duplicate", "erased": "erased", "not_revived": "never revived"}


@dataclass
class Part:
    """One file of the import (a zip holds several): where its lines start in the line count."""

    base: int
    name: str | None
    layout: str


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0  # already as the file says (a re-import)
    confirmations_queued: int = 0
    pending_without_consent_date: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)
    by_status: dict[str, dict[str, int]] = field(default_factory=dict)  # status -> add/update/reason -> count
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    dry_run: bool = False
    parts: list[Part] = field(default_factory=list)
    unused_columns: list[str] = field(default_factory=list)
    unmatched_topics: dict[str, int] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)

    def error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((line, message))

    def count(self, status: str, action: str, n: int = 1) -> None:
        per = self.by_status.setdefault(status, {})
        per[action] = per.get(action, 0) + n

    def add_unused(self, columns: list[str]) -> None:
        self.unused_columns.extend(c for c in columns if c not in self.unused_columns)

    def unmatched(self, topics: list[str]) -> None:
        for topic in topics:
            if topic in self.unmatched_topics or len(self.unmatched_topics) < 1000:
                self.unmatched_topics[topic] = self.unmatched_topics.get(topic, 0) + 1

    def _at(self, line: int) -> tuple[str | None, int]:
        for part in reversed(self.parts):
            if line > part.base:
                return part.name, line - part.base
        return None, line

    def _line(self, line: int) -> str:
        name, local = self._at(line)
        return f"{name}:{local}" if name else str(local)

    def summary_lines(self) -> list[str]:
        """A human summary (the CLI prints it; the admin shows it)."""
        verb = "would be" if self.dry_run else "were"
        same = f"{self.unchanged} unchanged, " if self.unchanged else ""
        out = [f"{self.rows} rows read: {self.added} {verb} added, {self.updated} {verb} updated, {same}"
               f"{sum(self.skipped.values())} skipped, {self.error_count} with errors"]
        for part in self.parts:
            if part.layout != "our own columns" or part.name:
                out.append(f"read {part.name or 'the file'} as {'a ' if part.layout[0] != 'o' else ''}"
                           f"{part.layout}{' export' if part.layout[0] != 'o' else ''}")
        for status, per in sorted(self.by_status.items()):
            skipped = {k: v for k, v in per.items() if k in SKIP_REASONS}
            why = ", ".join(f"{v} {_SHORT[k]}" for k, v in skipped.items())
            same = f"{per['unchanged']} unchanged, " if per.get("unchanged") else ""
            out.append(f"{status}: {per.get('add', 0)} {verb} added, {per.get('update', 0)} {verb} updated, {same}"
                       f"{sum(skipped.values())} skipped{f' ({why})' if why else ''}")
        if self.pending_without_consent_date:
            out.append(f"{self.pending_without_consent_date} rows marked confirmed had no consent date "
                       "and were imported as pending")
        if self.confirmations_queued:
            out.append(f"{self.confirmations_queued} confirmation emails {verb} queued")
        for reason, count in self.skipped.items():
            listed = self.skipped_lines.get(reason, [])
            more = " …" if count > len(listed) else ""
            out.append(f"skipped {count}: {SKIP_REASONS[reason]} (lines {', '.join(map(self._line, listed))}{more})")
        if self.unmatched_topics:
            named = sorted(self.unmatched_topics.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{t} ({n})" for t, n in named[:MAX_TOPICS_LISTED])
            out.append(f"topics not configured here, not imported: {shown}"
                       f"{' …' if len(named) > MAX_TOPICS_LISTED else ''}")
        if self.unused_columns:
            out.append(f"columns not used: {', '.join(self.unused_columns)}")
        if self.ignored_files:
            out.append(f"files in the zip not imported (not a subscriber list): {', '.join(self.ignored_files)}")
        for line, message in self.errors:
            name, local = self._at(line)
            out.append(f"{name + ' ' if name else ''}line {local}: {message}")
        if self.error_count > len(self.errors):
            out.append(f"… and {self.error_count - len(self.errors)} more errors")
        return out
