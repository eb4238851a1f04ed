"""Digest links as Insight rewrites them: article links tagged with the campaign's utm fields
(`UTM_TAGGING`), and every article and "view in browser" link sent through `/r/{token}`
(`CLICK_COUNTING`).

The token is signed (`service.tokens`, its own salt) and carries the campaign, the link number
and the address it leads to, nothing else: every recipient of a campaign gets the very same
links, so a click cannot name a person. The redirect goes only to the address that was signed,
so `/r/` is no open redirect; a token changed by one character is refused."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from service.settings import Settings
from service.tokens import TokenError, Tokens
from service.validation import safe_http_url

PURPOSE = "click"
UTM_SOURCE = "newsletter"
UTM_MEDIUM = "email"
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Link:
    """What a click token says: campaign, link number (an article id, 0 = the web version), target."""

    campaign_id: int
    link: int
    url: str

    @property
    def location(self) -> str:
        """The URL as a Location header carries it (what Starlette's RedirectResponse sends)."""
        return quote(self.url, safe=":/%#?=@[]!$&'()*+,;")


def with_utm(url: str, campaign: str) -> str:
    """`url` with utm_source=newsletter, utm_medium=email and utm_campaign=`campaign` (replacing
    any utm fields of those names it had; everything else kept in order)."""
    parts = urlsplit(url)
    ours = {"utm_source": UTM_SOURCE, "utm_medium": UTM_MEDIUM, "utm_campaign": campaign}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    return urlunsplit(parts._replace(query=urlencode([*query, *ours.items()])))


def click_token(tokens: Tokens, link: Link) -> str:
    return tokens.dumps_forever(PURPOSE, [link.campaign_id, link.link, link.url])


class LinkReader:
    """Reads click tokens, remembering the good ones (a campaign has a handful of links, clicked
    thousands of times: the signature is checked once per link and process)."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self._seen: OrderedDict[str, Link] = OrderedDict()
        self.locations: dict[Link, bytes] = {}

    def location(self, link: Link) -> bytes:
        """The Location header's value of `link`, encoded once."""
        found = self.locations.get(link)
        if found is None:
            found = self.locations[link] = link.location.encode("latin-1")
            if len(self.locations) > _CACHE_SIZE:
                self.locations.clear()
        return found

    def read(self, token: str) -> Link:
        """The link a token names; TokenError when it was not signed by us (or not as a click link)."""
        found = self._seen.get(token)
        if found is not None:
            return found
        data = self.tokens.loads_forever(PURPOSE, token)
        try:
            campaign_id, link, url = data
            if not isinstance(campaign_id, int) or not isinstance(link, int) or not isinstance(url, str):
                raise TypeError
        except (TypeError, ValueError):
            raise TokenError("this link is not valid") from None
        if safe_http_url(url) is None:  # signed by us, so never; checked anyway before redirecting
            raise TokenError("this link is not valid")
        found = self._seen[token] = Link(campaign_id, link, url)
        if len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)
        return found


class DigestLinks:
    """How one campaign's links are written in its digest (rendered once per campaign)."""

    def __init__(self, settings: Settings, *, campaign_id: int, campaign: str) -> None:
        self.settings = settings
        self.tokens = Tokens(settings)
        self.campaign_id = campaign_id
        self.campaign = campaign

    def article(self, article_id: int, url: str | None) -> str | None:
        """An article's link: utm-tagged, then through /r/ (each as the settings say)."""
        if not url:
            return url
        if self.settings.utm_tagging:
            url = with_utm(url, self.campaign)
        return self._counted(article_id, url)

    def archive(self, url: str | None) -> str | None:
        """The "view in browser" link (our own page: no utm fields)."""
        return self._counted(0, url) if url else url

    def _counted(self, link: int, url: str) -> str:
        if not self.settings.click_counting:
            return url
        return f"{self.settings.base_url}/r/{click_token(self.tokens, Link(self.campaign_id, link, url))}"
