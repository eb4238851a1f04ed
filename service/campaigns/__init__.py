"""Digest campaigns: composition, rendering, the delivery queue and send engine, schedules, stats."""
