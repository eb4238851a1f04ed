"""Admin area: staff accounts and sessions, the admin pages, and the audit log."""
