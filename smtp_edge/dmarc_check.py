"""DMARC (RFC 7489): the From domain's policy, and whether SPF or DKIM pass aligned with it.

Policy discovery (section 6.6.3) is ours, through the edge's cached TXT look-ups: the record at
`_dmarc.<From domain>`, else at `_dmarc.<Organizational Domain>`. The record is parsed and the
verdict evaluated by the `dmarc` library (pydmarc), except for identifier alignment: its relaxed
mode also accepts any parent domain of the From domain (`co.uk` would align with every
`*.co.uk`), where section 3.2 compares Organizational Domains. So `_Evaluation` overrides that
one method with the RFC's rule. Organizational Domains come from the Public Suffix List that
`publicsuffixlist` bundles (both ICANN and private sections, so `a.herokuapp.com` and
`b.herokuapp.com` do not align); it is never fetched at run time.

The edge only reports: `pct=`, `t=` and reports (`rua`/`ruf`) change nothing here.
"""

from __future__ import annotations

import functools
import re
from email.utils import getaddresses

import dmarc
import idna
from publicsuffixlist import PublicSuffixList

from provider.inbound.envelope import DkimResult, DmarcResult, SpfResult

from .dkim_check import HeaderFields
from .txt_cache import Deadline, TxtCache, TxtTemporaryError

_DMARC_RECORD = re.compile(rb"\s*v\s*=\s*DMARC1\s*(;|$)")
# The usual From shapes, `a@b.example` and `Name <a@b.example>` (no quotes, commas, comments),
# read without the email package's parser, which costs more than the rest of the check.
_SIMPLE_FROM = re.compile(
    r"(?:[^\x00-\x1f\"(),:;<>@\[\\\]]*<)?[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)>?"
)


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the bundled list; about 70 ms, once per process


def load_public_suffixes() -> None:
    """Parse the list now (at the edge's start) rather than in the first message's transaction."""
    _psl()


@functools.lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """RFC 7489 section 3.2: the domain one label below its public suffix (itself when it is a
    public suffix, or has nothing below one)."""
    return _psl().privatesuffix(domain) or domain


class _Evaluation(dmarc.DMARC):
    def check_alignment(
        self, fd: str, ad: str, mode: dmarc.DMARCAlignment, psl: object = None
    ) -> bool:
        if not fd or not ad:
            return False
        fd, ad = fd.lower().rstrip("."), ad.lower().rstrip(".")
        if mode is dmarc.DMARCAlignment.STRICT:
            return fd == ad
        return organizational_domain(fd) == organizational_domain(ad)


class NoFromDomain(Exception):
    """The message has no single From domain to evaluate (RFC 7489 section 6.6.1)."""


def from_domain(fields: HeaderFields) -> str:
    """The RFC5322.From domain, in A-labels, lower case. Raises NoFromDomain when there is no
    From field, more than one, or its addresses do not share one valid domain."""
    values = [value for name, value in fields if name == b"from"]
    if len(values) != 1:
        raise NoFromDomain(f"{len(values)} From fields")
    text = values[0].decode("utf-8", "replace").strip()
    simple = _SIMPLE_FROM.fullmatch(text)
    if simple and text.endswith(">") == ("<" in text):
        return simple.group(1).lower()
    addresses = getaddresses([text])
    domains = {address.rpartition("@")[2].strip().rstrip(".").lower() for _, address in addresses}
    domains.discard("")
    if len(domains) != 1:
        raise NoFromDomain("no single From domain")
    domain = domains.pop()
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise NoFromDomain(f"{domain!r} is not a valid domain name") from None


def check_dmarc(
    fields: HeaderFields,
    spf: SpfResult,
    dkim_results: list[DkimResult],
    txt: TxtCache,
    deadline: Deadline,
    *,
    cached_only: bool = False,
) -> DmarcResult:
    """No usable From domain or a malformed record is `permerror`, DNS that does not answer
    `temperror`, no record `none`. Raises only NotCached, with `cached_only`."""
    try:
        domain = from_domain(fields)
    except NoFromDomain:
        return DmarcResult("permerror", None)
    try:
        record, org_domain = _discover(domain, txt, deadline, cached_only)
    except TxtTemporaryError:
        return DmarcResult("temperror", domain)
    if record is None:
        return DmarcResult("none", domain)
    try:
        policy = _policy(record, domain, org_domain)
    except (dmarc.RecordSyntaxError, ValueError):
        return DmarcResult("permerror", domain)
    published = policy.p
    if org_domain is not None and policy.sp is not dmarc.DMARCDisposition.UNSPECIFIED:
        published = policy.sp
    results = dmarc.AuthResults(
        spf=dmarc.SPF(spf.domain, dmarc.SPFResult(spf.result)),
        dkim=[dmarc.DKIM(d.domain, dmarc.DKIMResult(d.result)) for d in dkim_results],
    )
    verdict = _Evaluation().get_result(policy, auth_results=results)
    result = "pass" if verdict.result is dmarc.DMARCResult.PASS else "fail"
    return DmarcResult(result, domain, str(published.value))


@functools.lru_cache(maxsize=4096)
def _policy(record: bytes, domain: str, org_domain: str | None) -> dmarc.Policy:
    """A record parsed once per domain it is read for (parsing was a fifth of a cached check);
    `get_result` only reads the policy. A record that does not parse raises each time."""
    policy = dmarc.Policy("DMARC1", domain, org_domain)
    policy.parse_record(record.decode("utf-8", "replace"), strict=False)
    return policy


def _discover(
    domain: str, txt: TxtCache, deadline: Deadline, cached_only: bool
) -> tuple[bytes | None, str | None]:
    """The record that applies and the Organizational Domain when it came from there."""
    record = _record_at(domain, txt, deadline, cached_only)
    if record is not None:
        return record, None
    org = organizational_domain(domain)
    if org == domain:
        return None, None
    return _record_at(org, txt, deadline, cached_only), org


def _record_at(domain: str, txt: TxtCache, deadline: Deadline, cached_only: bool) -> bytes | None:
    """The one DMARC record at `_dmarc.<domain>`; several count as none (section 6.6.3)."""
    answer = txt.lookup(f"_dmarc.{domain}", deadline, cached_only=cached_only)
    records = [r for r in answer if _DMARC_RECORD.match(r)]
    return records[0] if len(records) == 1 else None
