"""Every domain's models, imported so that `Base.metadata` knows all tables (Alembic's env.py,
the tests and the app import this module; `service.db` itself imports no domain)."""

from __future__ import annotations

import service.activity
import service.admin.models
import service.articles.models
import service.bounces.models
import service.campaigns.models
import service.inquiries.models
import service.insight.models
import service.mail.models
import service.newsletter.models
import service.privacy.models
import service.ratelimit
import service.webhooks.models  # noqa: F401
from service.db import Base

metadata = Base.metadata
