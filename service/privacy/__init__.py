"""Privacy across domains: retention of inquiries, erasure of inquiries and subscribers (with a
keyed-hash ledger that `tidings restore` applies again), a subscriber's right of access, and
backups. Each domain keeps its own tables; this package only calls the domains' functions.

- `stores`: the registry of stores that hold personal data (the mail copies today; bounce and
  complaint reports, webhook logs and search copies register there when they arrive).
- `erase`: the erase actions and the ledger.
- `retention`: the worker job that deletes finished inquiries after INQUIRY_RETENTION_DAYS.
- `access`: "what do you hold about me" from the preference centre.
- `backup`: `tidings backup FILE` / `tidings restore FILE`.
"""
