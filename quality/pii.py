"""Personal and secret information: find it, replace it, count it, and prove the output is clean.

What is replaced, and by what (BigCode's StarCoder PII pipeline and OpenCoder both did this):

    email addresses                        -> <EMAIL>
    public IPv4 / IPv6 addresses           -> a synthetic private address of the same family
                                              (10.x.y.z, fd00::/8), the same one for the same input
    vendor tokens in their published       -> <KEY>
      formats (AWS, Google Cloud, Azure,
      GitHub, GitLab, Slack, Stripe, Twilio,
      SendGrid, OpenAI, Anthropic, Hugging
      Face, npm, PyPI, DigitalOcean, Shopify,
      Mailchimp, Mailgun, Databricks, JWT)
    private key blocks (BEGIN ... END)     -> <KEY>
    high-entropy strings assigned to a     -> <KEY>
      key/secret/token/credential name, or
      written as the default of an
      environment lookup of such a name
    strings assigned to a password name    -> <PASSWORD>
      (password, passwd, pwd, DB_PASS...),
      passwords in URLs (user:pw@host), on
      command lines (curl -u user:pw,
      mysql -pPW, sshpass -p, --password=)
      and as environment-lookup defaults
      (getenv("DB_PASSWORD", "pw"), ${X:-pw})

Each vendor format is written here from the vendor's published shape (prefix, alphabet, length);
a prefixed token is a secret wherever it appears, unless its body is one repeated character (a
placeholder in the vendor's shape). Everything else needs a name or a command that announces a
secret, with guards against what code is full of and is not personal: private, loopback,
link-local and documentation addresses (RFC 5737, RFC 3849), public DNS resolvers, OIDs and
version strings that look like IPv4 (unless the line talks about a host: ssh/scp targets,
`host:`/`listen` keys, `connect(...)`, URLs, `IP:port`), C++ scopes and hex constants that parse
as IPv6, hashes named as hashes, UUIDs, 0x constants, version strings, dotted module paths,
placeholder values (`${PASSWORD}`, `<password>`, `***`, `changeme`, `your-token-here`), and
example.com addresses (RFC 2606 reserves them).

All regular expressions are linear: bounded repetitions, no nested unbounded quantifiers, and
name patterns are found by a keyword search first and then extended within 64 characters.

`scan(text)` lists findings; `redact(text)` replaces them and returns per-kind counts. Running
`scan` on redacted text finds nothing (the placeholders and synthetic addresses are not findings),
which the `redacted_code` asset checks on its whole output.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ahocorasick
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from quality.schema import REJECT_COLUMNS, content_sha256

STAGE = "redacted_code"
EMAIL, KEY, PASSWORD = "<EMAIL>", "<KEY>", "<PASSWORD>"
# Fine-grained kind -> the category reported in metadata.
CATEGORY = {
    "email": "email",
    "ipv4": "ip_address",
    "ipv6": "ip_address",
    "private_key": "key",
    "aws_key": "key",
    "github_token": "key",
    "gitlab_token": "key",
    "slack_token": "key",
    "stripe_key": "key",
    "openai_key": "key",
    "pypi_token": "key",
    "npm_token": "key",
    "sendgrid_key": "key",
    "jwt": "key",
    "azure_key": "key",
    "secret_assignment": "key",
    "password_assignment": "password",
    "url_password": "password",
    "google_api_key": "key",
    "google_oauth": "key",
    "twilio_key": "key",
    "anthropic_key": "key",
    "huggingface_token": "key",
    "digitalocean_token": "key",
    "shopify_token": "key",
    "mailchimp_key": "key",
    "mailgun_key": "key",
    "databricks_token": "key",
    "env_default_secret": "key",
    "cli_password": "password",
    "env_default_password": "password",
}
KINDS = tuple(CATEGORY)


@dataclass(frozen=True, kw_only=True)
class PIIConfig:
    """What `redacted_code` looks for (recipe section `pii`)."""

    emails: bool = True
    """Replace email addresses with <EMAIL>."""
    ip_addresses: bool = True
    """Replace public IPv4/IPv6 addresses with a synthetic private one of the same family."""
    keys: bool = True
    """Replace provider tokens, private keys and high-entropy secrets with <KEY>."""
    passwords: bool = True
    """Replace passwords assigned to password names or written in URLs with <PASSWORD>."""
    min_secret_length: int = 16
    """A value assigned to a key/secret/token name is a secret only from this many characters."""
    min_secret_entropy: float = 3.0
    """... and with at least this Shannon entropy in bits per character (random hex ~3.7-4,
    base64 ~4.5-5.5; English identifiers and words fall below)."""
    min_password_length: int = 4
    """Shorter password literals are not worth replacing (and are mostly placeholders)."""
    time_budget_s: float = 10.0
    """A document whose scan takes longer is quarantined as `pii_scan_timeout` (never passed on
    unscanned)."""


@dataclass(frozen=True, order=True)
class Finding:
    start: int
    end: int
    kind: str
    replacement: str

    @property
    def category(self) -> str:
        return CATEGORY[self.kind]


# ---- emails -----------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}([A-Za-z]{2,24}))(?![\w-])"
)
# Top-level domains an address may end in: every two-letter country code plus the generic ones
# seen in practice. `x@y.shape` (matrix product then an attribute) is not an address.
_GENERIC_TLDS = frozenset(
    "com org net edu gov mil int info biz name pro aero coop museum io ai dev app co me tv xyz tech "
    "online site cloud email page blog digital solutions systems software network company group "
    "science academy agency studio design global world today life live news media space store shop "
    "team tools works zone codes engineering services consulting capital ventures partners".split()
)
_RESERVED_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "example.edu",
    "localhost",
    "test",
    "invalid",
)
_NON_PERSONAL_LOCAL = frozenset({"git"})


def _emails(text: str) -> Iterator[Finding]:
    # Only around an "@": the pattern opens with a lookbehind, which makes `re` try every position.
    end = 0
    while (at := text.find("@", end)) >= 0:
        floor = max(end, at - 64)
        match = _EMAIL.search(text, text.rfind("\n", floor, at) + 1 or floor, at + 300)
        end = at + 1
        if match is None or match.start() > at:
            continue
        end = match.end()
        domain, tld = match.group(1).lower(), match.group(2).lower()
        if not (len(tld) == 2 or tld in _GENERIC_TLDS):
            continue
        if domain in _RESERVED_DOMAINS or domain.endswith(tuple("." + d for d in _RESERVED_DOMAINS)):
            continue
        local = match.group()[: match.group().index("@")]
        if local.lower() in _NON_PERSONAL_LOCAL:
            continue
        # `scheme://user:password@host`: the part before @ is URL credentials, not a mailbox.
        before = text[max(0, match.start() - 100) : match.start()]
        token = before.split()[-1] if before.split() else ""
        if "://" in token and not before[-1:].isspace():
            continue
        yield Finding(match.start(), match.end(), "email", EMAIL)


# ---- IP addresses ---------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
# What _IPV4 can match, led by a digit so that `re` skips to candidates quickly (a leading
# lookbehind makes it try every position); the exact pattern then runs at the candidate only.
_IPV4_CANDIDATE = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")
_IPV6_CANDIDATE = re.compile(r":[0-9A-Fa-f]{0,4}:")


def _candidate_starts(text: str, candidates: re.Pattern[str], digits: str) -> Iterator[int]:
    """Where an address may start: each candidate (led by a literal separator, which `re` finds
    fast) backed up over the at most 4 address characters before it."""
    for candidate in candidates.finditer(text):
        start = candidate.start()
        floor = max(0, start - 4)
        while start > floor and text[start - 1] in digits:
            start -= 1
        yield start


_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![\w:])"
)
_VERSION_CONTEXT = re.compile(r"(?i)(?:version|release)\w*\W{0,6}$|(?:\bv|==|>=|<=|~=|!=|@)\s*['\"]?$")
_ADDRESS_CONTEXT = re.compile(
    r"(?i)\b(?:ssh|scp|rsync|sftp|ping|telnet|nc|curl|wget|host|hostname|server|addr|address|ip|endpoint"
    r"|upstream|proxy|listen|bind|connect|remote|gateway|dns|nameserver|peer|node|master|target)\b"
    r"|[\w-]@\d|://\d|\d:\d{2,5}\b"
)
# Well-known public resolvers: in code they are configuration, not anyone's address.
_PUBLIC_RESOLVERS = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
    }
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def synthetic_ipv4(original: str) -> str:
    """A private 10.x.y.z address fixed by the original (the same input always maps the same)."""
    d = _digest(original)
    return f"10.{d[0]}.{d[1]}.{1 + d[2] % 254}"


def synthetic_ipv6(original: str) -> str:
    """A unique-local fdxx:: address fixed by the original."""
    d = _digest(original)
    return f"fd{d[0]:02x}:{d[1]:02x}{d[2]:02x}::{d[3]:02x}{d[4]:02x}"


def _ip_addresses(text: str) -> Iterator[Finding]:
    done = 0
    for start in _candidate_starts(text, _IPV4_CANDIDATE, "0123456789"):
        match = _IPV4.match(text, start) if start >= done else None
        if match is None:
            continue
        done = match.end()
        value = match.group()
        address = ipaddress.IPv4Address(value)
        # Private, loopback, link-local, multicast, reserved and documentation ranges (RFC 5737
        # 192.0.2/24, 198.51.100/24, 203.0.113/24) are nobody's address: `is_global` is False.
        if not address.is_global or address.is_multicast or value in _PUBLIC_RESOLVERS:
            continue
        floor = max(0, match.start() - 200)  # bounded: a minified line may hold thousands
        line_start = text.rfind("\n", floor, match.start()) + 1 or floor
        before = text[max(line_start, match.start() - 24) : match.start()]
        line_end = text.find("\n", match.end(), match.end() + 80)
        line = text[line_start : match.end() + 80 if line_end < 0 else line_end]
        # A version number that happens to have four small parts (`__version__ = "2.10.1.4"`,
        # `pkg==1.2.3.4`) is kept unless the line says it is talking about a host: shell commands
        # (`ssh deploy@IP`, `scp f root@IP:/srv`), config keys (`host: IP`, `listen IP:80`) and
        # code (`connect("IP", 22)`, `"http://IP/"`).
        if _VERSION_CONTEXT.search(before) and not _ADDRESS_CONTEXT.search(line):
            continue
        yield Finding(match.start(), match.end(), "ipv4", synthetic_ipv4(value))
    done = 0
    for start in _candidate_starts(text, _IPV6_CANDIDATE, "0123456789abcdefABCDEF"):
        match = _IPV6.match(text, start) if start >= done else None
        if match is None:
            continue
        done = match.end()
        value = match.group()
        if value.count(":") < 2:
            continue
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        # Only global unicast space (2000::/3) belongs to someone; `ab::cd` (C++ scope) or
        # `dead::beef` parse as IPv6 but live in reserved space.
        if address not in _GLOBAL_UNICAST or not address.is_global:
            continue
        yield Finding(match.start(), match.end(), "ipv6", synthetic_ipv6(value))


# ---- keys and tokens of the large clouds and SaaS vendors ---------------------------------------
# Each format as its vendor publishes it (prefix, alphabet, length); a prefixed token is a secret
# wherever it appears. The body must not be a run of few characters (`ghp_xxxx...` placeholders).
# A format is (kind, literal triggers, where the token starts relative to the trigger, pattern):
# one Aho-Corasick pass finds every trigger, and the pattern is matched only there. (Python's `re`
# runs an alternation of 30 formats at every position of the text: five times slower.)
_EDGE = r"(?<![A-Za-z0-9_])"
_VENDOR_FORMATS: tuple[tuple[str, tuple[str, ...], int, str], ...] = (
    # AWS access key ids: AKIA long-term, ASIA temporary (STS), ABIA/ACCA/A3T* older kinds.
    (
        "aws_key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        0,
        _EDGE + r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    # Google Cloud: API keys are "AIza" + 35 URL-safe base64 characters (39 in all); OAuth
    # client secrets start "GOCSPX-"; OAuth access tokens "ya29.".
    ("google_api_key", ("AIza",), 0, _EDGE + r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("google_oauth", ("GOCSPX-",), 0, _EDGE + r"GOCSPX-[0-9A-Za-z_-]{28}(?![0-9A-Za-z_-])"),
    ("google_oauth", ("ya29.",), 0, _EDGE + r"ya29\.[0-9A-Za-z_-]{30,512}"),
    # Azure: storage account keys (64 bytes in base64: 86 characters and "=="), Service Bus/Event
    # Hubs shared access keys (32 bytes: 43 and "="), Entra ID client secrets (3 characters, a
    # digit, "Q~", 31-34 more), SAS signatures in URLs.
    ("azure_key", ("AccountKey=",), 11, r"[A-Za-z0-9+/]{86}=="),
    ("azure_key", ("SharedAccessKey=",), 16, r"[A-Za-z0-9+/]{42,44}=?"),
    ("azure_key", ("Q~",), -4, r"(?<![\w~.-])[\w~.-]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])"),
    ("azure_key", ("?sig=", "&sig="), 5, r"[A-Za-z0-9%+/]{40,100}(?:%3D|=){0,2}"),
    # GitHub: ghp_ (personal), gho_ (OAuth), ghu_/ghs_ (app user/server), ghr_ (refresh), then 36
    # alphanumerics; fine-grained personal tokens "github_pat_" + 22 + "_" + 59.
    (
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        0,
        _EDGE + r"gh[pousr]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9])",
    ),
    ("github_token", ("github_pat_",), 0, _EDGE + r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"),
    # GitLab: personal/project/group (glpat-), pipeline trigger (glptt-), deploy (gldt-), runner
    # (glrt-), feed (glft-), CI build, incoming mail, SCIM and OAuth application secrets; legacy
    # runner registration tokens "GR1348941".
    (
        "gitlab_token",
        ("glpat-", "glptt-", "gldt-", "glrt-", "glft-", "glcbt-", "glimt-", "glsoat-", "gloas-"),
        0,
        _EDGE + r"gl(?:pat|ptt|dt|rt|ft|cbt|imt|soat|oas)-[0-9A-Za-z_-]{20,64}",
    ),
    ("gitlab_token", ("GR1348941",), 0, _EDGE + r"GR1348941[0-9A-Za-z_-]{20}"),
    # Slack: bot/user/app/config tokens xox[abposre]-, app-level xapp-, incoming webhooks.
    ("slack_token", ("xox",), 0, _EDGE + r"xox[abposre]-[0-9A-Za-z-]{10,250}"),
    ("slack_token", ("xapp-",), 0, _EDGE + r"xapp-\d-[A-Z0-9]{9,12}-\d{10,16}-[a-f0-9]{32,80}"),
    (
        "slack_token",
        ("hooks.slack.com/",),
        0,
        r"hooks\.slack\.com/(?:services|workflows)/T[A-Za-z0-9_]{6,12}/[A-Za-z0-9_/]{20,100}",
    ),
    # Stripe: secret and restricted keys, live and test (publishable pk_ keys are public by
    # design); webhook signing secrets.
    (
        "stripe_key",
        ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
        0,
        _EDGE + r"[sr]k_(?:live|test)_[0-9A-Za-z]{24,247}",
    ),
    ("stripe_key", ("whsec_",), 0, _EDGE + r"whsec_[0-9A-Za-z]{32,64}"),
    # Twilio: account SIDs "AC" and API key SIDs "SK", each + 32 lower-case hex digits.
    ("twilio_key", ("AC", "SK"), 0, _EDGE + r"(?:AC|SK)[0-9a-f]{32}(?![0-9A-Za-z])"),
    # SendGrid: "SG." + 22 + "." + 43 URL-safe base64 characters.
    ("sendgrid_key", ("SG.",), 0, _EDGE + r"SG\.[\w-]{22}\.[\w-]{43}(?![\w-])"),
    # OpenAI: keys carrying the "T3BlbkFJ" marker (base64 of "OpenAI"), project/service
    # account/admin keys, and the legacy "sk-" + 48 alphanumerics.
    (
        "openai_key",
        ("sk-",),
        0,
        _EDGE + r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{16,200}T3BlbkFJ[A-Za-z0-9_-]{16,200}",
    ),
    (
        "openai_key",
        ("sk-proj-", "sk-svcacct-", "sk-admin-"),
        0,
        _EDGE + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}",
    ),
    ("openai_key", ("sk-",), 0, _EDGE + r"sk-[A-Za-z0-9]{48}(?![A-Za-z0-9])"),
    # Anthropic: "sk-ant-" + key family and version (api03, admin01) + 80-120 URL-safe characters.
    ("anthropic_key", ("sk-ant-",), 0, _EDGE + r"sk-ant-(?:api|admin|sid|oat)\d{2}-[A-Za-z0-9_-]{80,120}"),
    # Hugging Face user access tokens: "hf_" + 34 letters.
    ("huggingface_token", ("hf_",), 0, _EDGE + r"hf_[A-Za-z]{34}(?![A-Za-z0-9_])"),
    # npm granular/automation tokens; PyPI (and TestPyPI) API tokens are macaroons whose head
    # encodes the issuer ("pypi.org", "test.pypi.org").
    ("npm_token", ("npm_",), 0, _EDGE + r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    (
        "pypi_token",
        ("pypi-AgE",),
        0,
        _EDGE + r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,500}",
    ),
    # Other widely used services with a published prefix or suffix.
    ("digitalocean_token", ("dop_v1_", "doo_v1_", "dor_v1_"), 0, _EDGE + r"do[opr]_v1_[a-f0-9]{64}"),
    (
        "shopify_token",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        0,
        _EDGE + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
    ),
    ("mailchimp_key", ("-us",), -32, _EDGE + r"[0-9a-f]{32}-us\d{1,2}(?![\w-])"),
    ("mailgun_key", ("key-",), 0, _EDGE + r"key-[0-9a-f]{32}(?![0-9a-zA-Z])"),
    ("databricks_token", ("dapi",), 0, _EDGE + r"dapi[0-9a-f]{32}(?:-\d)?(?![0-9a-zA-Z])"),
    # JSON Web Tokens: base64url header "eyJ" ('{"'), payload "eyJ", signature.
    ("jwt", ("eyJ",), 0, _EDGE + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)
_PREFIX = re.compile(r"^(?:[A-Za-z0-9]{2,10}[_.-]){1,3}")


def _automaton(words: Iterable[str]) -> ahocorasick.Automaton:
    """One Aho-Corasick automaton over `words`; each word's value is the word itself."""
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton


def _hits(automaton: ahocorasick.Automaton, text: str) -> Iterator[tuple[int, str]]:
    """(start, word) of every occurrence of the automaton's words in `text`."""
    for end, word in automaton.iter(text):
        yield end - len(word) + 1, word


@lru_cache(maxsize=1)
def _vendor_index() -> tuple[ahocorasick.Automaton, dict[str, list[tuple[str, int, re.Pattern[str]]]]]:
    by_trigger: dict[str, list[tuple[str, int, re.Pattern[str]]]] = {}
    for kind, triggers, offset, pattern in _VENDOR_FORMATS:
        compiled = re.compile(pattern)
        for trigger in triggers:
            by_trigger.setdefault(trigger, []).append((kind, offset, compiled))
    return _automaton(by_trigger), by_trigger


def _provider_tokens(text: str) -> Iterator[Finding]:
    automaton, by_trigger = _vendor_index()
    for position, trigger in _hits(automaton, text):
        for kind, offset, pattern in by_trigger[trigger]:
            start = position + offset
            match = pattern.match(text, start) if start >= 0 else None
            if match is None:
                continue
            token = match.group()
            body = _PREFIX.sub("", token) or token
            # Placeholders in the vendor's shape (`ghp_xxxxxxxx...`, `AKIA0000...`) are not keys.
            if len(set(body.lower())) < 6:
                continue
            yield Finding(match.start(), match.end(), kind, KEY)
            if kind == "aws_key":
                yield from _aws_secret_beside(text, match.end())
            break


_AWS_SECRET_LITERAL = re.compile(
    r"""(["'])(?=[A-Za-z0-9/+]*\d)(?=[A-Za-z0-9/+]*[a-z])([A-Za-z0-9/+]{40})\1"""
)


def _aws_secret_beside(text: str, key_id_end: int) -> Iterator[Finding]:
    """The secret access key passed next to its key id without a name of its own
    (`new BasicAWSCredentials("AKIA...", "...")`): a quoted 40-character base64 literal on the
    same line."""
    line_end = text.find("\n", key_id_end, key_id_end + 200)
    match = _AWS_SECRET_LITERAL.search(text, key_id_end, line_end if line_end >= 0 else key_id_end + 200)
    if match:
        yield Finding(match.start(2), match.end(2), "aws_key", KEY)


_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")


def _private_keys(text: str) -> Iterator[Finding]:
    for match in _PRIVATE_KEY_BEGIN.finditer(text):
        end = text.find("-----END", match.end())
        if end < 0:
            end = len(text)
        else:
            close = text.find("-----", end + 8)
            end = len(text) if close < 0 else close + 5
        yield Finding(match.start(), end, "private_key", KEY)


# ---- names that announce a secret ---------------------------------------------------------
# Matched where one of _SECRET_TRIGGERS occurs (an Aho-Corasick pass over the lower-cased text
# finds them; a case-insensitive alternation run at every position is ten times slower). The
# short words need edges: `DB_PASS`, `dbPass` and `pw` are names, `bypass`, `compass` and `monkey`
# are not; `(?-i:...)` keeps the camel-case rules case-sensitive.
_SECRET_TRIGGERS = ("pass", "pwd", "pw", "secret", "token", "credential", "key")
_SECRET_WORD = re.compile(
    r"(?i)passw(?:or)?d|passwd|pwd|passphrase|secret|token|credential"
    r"|(?<![A-Za-z])pass(?![a-z])|(?-i:(?<=[a-z])Pass)(?![a-z])|(?<![A-Za-z])pw(?![a-z])"
    r"|(?<![A-Za-z])key(?![a-z])|(?-i:(?<=[a-z])Key)(?![a-z])"
    r"|(?:(?<=api)|(?<=access)|(?<=auth)|(?<=private)|(?<=signing)|(?<=encryption)|(?<=subscription)"
    r"|(?<=master)|(?<=account))key(?![a-z])"
)
_PASSWORD_WORD = re.compile(
    r"(?i)passw(?:or)?d|passwd|pwd|passphrase|(?<![A-Za-z])pass(?![a-z])|(?-i:(?<=[a-z])Pass)(?![a-z])"
    r"|(?<![A-Za-z])pw(?![a-z])"
)
# A name whose only secret word is a bare `key` (AZURE_SPEECH_KEY, subscriptionKey, sort_key):
# most such values are lookup keys, so only a random-looking token counts.
_STRONG_SECRET_WORD = re.compile(
    r"(?i)secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|private[_-]?key|signing[_-]?key"
    r"|encryption[_-]?key|subscription[_-]?key|master[_-]?key|account[_-]?key|credential"
)
_KEY_ONLY_VALUE = re.compile(r"[A-Za-z0-9+/=_-]{20,256}")
_AWS_SECRET = re.compile(r"(?=[A-Za-z0-9/+]*\d)[A-Za-z0-9/+]{40}")
_NAME_TAIL = re.compile(r"[\w.-]{0,64}")
# After the name: an optional closing quote/bracket, an optional Python annotation, the assignment.
_ASSIGNMENT = re.compile(r"""["']?\]?(?:\s*:\s*[\w.\[\], |]{1,40}(?==))?\s*(?:=>|:=|=(?!=)|:(?!:))\s*""")
# A setter or builder call with a literal: `.password("x")`, `setApiKey('x')`, `withToken("x")`.
_SETTER_CALL = re.compile(r"""\(\s*(?=[bru]{0,2}["'`])""")
_SETTER_NAME = re.compile(
    r"(?i)(?:set|with)?_?(?:passw(?:or)?d|passwd|pwd|pass|passphrase|secret|token|api_?key|access_?key"
    r"|auth_?token|access_?token|client_?secret|secret_?key)"
)
_QUOTED_VALUE = re.compile(r"""(?:[bru]{0,2})(["'`])([^"'`\n]{1,256})\1""")
_BARE_VALUE = re.compile(r"""([^\s"'`,;#&)}\]]{1,256})""")
# Config and command languages, where values are written without quotes.
CONFIG_LANGUAGES = frozenset(
    {
        "yaml",
        "ini",
        "toml",
        "json",
        "properties",
        "dotenv",
        "shell",
        "dockerfile",
        "xml",
        "text",
        "makefile",
        "batchfile",
        "powershell",
    }
)
# In code, an unquoted `NAME=value` is still an environment assignment when the name is upper case
# and it starts a line, follows `export`/`ENV`/`set`/`env`/`-e`, or opens a string
# (`"DB_PASS=x ./run"`); a keyword argument (`f(a, DB_PASS=db_pass)`) is not one.
_ENV_STYLE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_ENV_STYLE_BEFORE = re.compile(
    r"""(?:^|\n)[ \t]*(?:export[ \t]+|ENV[ \t]+|set[ \t]+)?$|["'`][ \t]*$|(?:\s-e|--env|\benv)[ \t]+$"""
)

_HASH_NAME = re.compile(r"(?i)hash|digest|checksum|sha\d*|md5|fingerprint|etag|integrity")
_UUID = re.compile(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VERSION = re.compile(r"v?\d+(?:\.\d+)+(?:[-+.]?\w+)?")
_DOTTED_NAME = re.compile(r"[A-Za-z_][\w-]*(?:[./:][A-Za-z_][\w-]*)+")
_PLACEHOLDER = re.compile(
    r"""(?ix)
    \$\{?[\w.]+\}?|%\(?\w*\)?[sd]|\{[\w.]*\}|<[^<>]*>|\[[^\[\]]*\]|\*+|x+|\.+|-+|•+|_+|\#+
    |none|null|nil|true|false|undefined|empty|change_?me|example|sample|dummy|test|testing|secret|password
    |passwd|pass|pwd|token|key|your[_-]\w*|my[_-]\w*|xxx\w*|todo|fixme|redacted|hidden|\w*passw(?:or)?d\w*
    """
)
# Words that mark a value as a stand-in to be replaced by the user, wherever they appear in it.
_PLACEHOLDER_WORD = re.compile(
    r"(?i)change[_-]?me|changeit|replace[_-]?me|placeholder|example|dummy|sample|your[_-]|xxxx|<|>|\$\{|\{\{"
)


def entropy(text: str) -> float:
    """Shannon entropy of `text` in bits per character."""
    if not text:
        return 0.0
    import math

    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _looks_like_secret(value: str, name: str, config: PIIConfig) -> bool:
    value = value.removeprefix("base64:")  # Laravel's APP_KEY=base64:...
    if len(value) < config.min_secret_length or any(ch.isspace() for ch in value):
        return False
    if _PLACEHOLDER.fullmatch(value) or value.lower().startswith(
        ("0x", "http://", "https://", "/", "./", "~")
    ):
        return False
    if _UUID.fullmatch(value) or _VERSION.fullmatch(value):
        return False
    if _DOTTED_NAME.fullmatch(value) and entropy(value) < 4.5:
        return False  # a module path or URL path; base64 with "/" is more random than any path
    # A hash named as one (sha256 = "...", checksum: ...) is content addressing, not a credential.
    if _HASH_NAME.search(name) and re.fullmatch(r"[0-9a-fA-F]{32,128}", value.split(":")[-1]):
        return False
    if not _STRONG_SECRET_WORD.search(name) and not (
        _KEY_ONLY_VALUE.fullmatch(value) and sum(c.isdigit() for c in value) >= 3 and entropy(value) >= 3.5
    ):
        return False  # sort_key = "created_at:desc", cache_key = "user_profile_v2" and the like
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    return entropy(value) >= config.min_secret_entropy


def _looks_like_password(value: str, config: PIIConfig) -> bool:
    if len(value) < config.min_password_length or any(ch.isspace() for ch in value):
        return False
    if _PLACEHOLDER.fullmatch(value) or value.startswith(
        ("$", "%", "{", "<", "os.", "env", "getenv", "ENV[", "process.env", "System.")
    ):
        return False
    if _PLACEHOLDER_WORD.search(value):
        return False
    return not value.endswith(":")  # a label ("Password:")


@lru_cache(maxsize=1)
def _secret_automaton() -> ahocorasick.Automaton:
    return _automaton(_SECRET_TRIGGERS)


def _name_before(text: str, end: int) -> int:
    start = end
    while start > 0 and end - start < 64 and (text[start - 1].isalnum() or text[start - 1] in "_.-"):
        start -= 1
    return start


def _assignments(text: str, lowered: str, lang: str, config: PIIConfig) -> Iterator[Finding]:
    bare_allowed = lang in CONFIG_LANGUAGES
    done: set[int] = set()
    for position, _ in _hits(_secret_automaton(), lowered):
        word = _SECRET_WORD.match(text, position)
        if word is None:
            continue
        tail = _NAME_TAIL.match(text, word.end())
        name_end = tail.end() if tail else word.end()
        if name_end in done:
            continue  # the same name holds two keywords (api_token_secret)
        done.add(name_end)
        name_start = _name_before(text, word.start())
        name = text[name_start:name_end]
        assign = _ASSIGNMENT.match(text, name_end)
        if assign is None and _SETTER_NAME.fullmatch(name.rsplit(".", 1)[-1]):
            assign = _SETTER_CALL.match(text, name_end)
        if assign is None:
            continue
        quoted = _QUOTED_VALUE.match(text, assign.end())
        if quoted:
            value, value_start = quoted.group(2), quoted.start(2)
        elif bare_allowed or (
            text[name_end : name_end + 1] == "="
            and _ENV_STYLE_NAME.fullmatch(name)
            and _ENV_STYLE_BEFORE.search(text, max(0, name_start - 12), name_start)
        ):
            bare = _BARE_VALUE.match(text, assign.end())
            if bare is None or text[bare.end() : bare.end() + 1] == "(":
                continue  # a call, not a value
            value, value_start = bare.group(1), bare.start(1)
        else:
            continue
        if name.endswith("_authToken") and value and not _PLACEHOLDER_WORD.search(value):
            if not value.startswith("$"):  # .npmrc: the registry token, whatever its shape
                yield Finding(value_start, value_start + len(value), "npm_token", KEY)
            continue
        if _PASSWORD_WORD.search(name):
            if config.passwords and _looks_like_password(value, config):
                yield Finding(value_start, value_start + len(value), "password_assignment", PASSWORD)
        elif config.keys and "aws" in name.lower() and _AWS_SECRET.fullmatch(value):
            # AWS secret access keys: 40 base64 characters (30 random bytes), named for AWS.
            yield Finding(value_start, value_start + len(value), "aws_key", KEY)
        elif config.keys and _looks_like_secret(value, name, config):
            yield Finding(value_start, value_start + len(value), "secret_assignment", KEY)


# ---- rules anchored on a trigger word, matched in a window around it ---------------------------
@dataclass(frozen=True)
class _WindowRule:
    """A pattern tried only near its triggers (found by one Aho-Corasick pass over the lower-cased
    text), within the trigger's line and `before`/`after` characters of it: linear however long
    the line (minified files), and fast because most text holds no trigger."""

    kind: str
    triggers: tuple[str, ...]
    pattern: re.Pattern[str]
    before: int
    after: int


_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\"<>]{1,64}:([^\s:/@'\"<>]{1,128})@")
_ARG = r"""('[^'\n]{1,128}'|"[^"\n]{1,128}"|[^\s'"`;|&)]{1,128})"""
_WINDOW_RULES: tuple[_WindowRule, ...] = (
    # scheme://user:password@host
    _WindowRule("url_password", ("://",), _URL_CREDENTIALS, 30, 200),
    # curl/wget basic auth: `-u user:pw`, `--user user:pw`, `--user=user:pw`.
    _WindowRule(
        "cli_password",
        ("curl", "wget"),
        re.compile(r"\b(?:curl|wget)\b[^\n]{0,300}?(?:\s-u\s*|--user[=\s])['\"]?[^\s:'\"]{1,64}:" + _ARG),
        0,
        420,
    ),
    # MySQL/MariaDB clients: the password glued to -p (`-pS3cret`; a bare `-p` prompts).
    _WindowRule(
        "cli_password",
        ("mysql", "mariadb"),
        re.compile(
            r"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mariadb|mariadb-dump)\b[^\n]{0,300}?\s-p" + _ARG
        ),
        0,
        460,
    ),
    # sshpass -p PW, redis-cli -a PW, docker/podman/helm/buildah login -p PW.
    _WindowRule("cli_password", ("sshpass",), re.compile(r"\bsshpass\s+-p\s*" + _ARG), 0, 150),
    _WindowRule(
        "cli_password", ("redis-cli",), re.compile(r"\bredis-cli\b[^\n]{0,300}?\s-a\s+" + _ARG), 0, 450
    ),
    _WindowRule(
        "cli_password",
        ("login",),
        re.compile(r"\b(?:docker|podman|helm|buildah)\s+(?:registry\s+)?login\b[^\n]{0,300}?\s-p\s+" + _ARG),
        30,
        450,
    ),
    # Any command's long option: --password=PW, --password PW, --db-password PW, --passwd=PW.
    _WindowRule(
        "cli_password",
        ("passw",),
        re.compile(r"(?<![\w-])--[\w-]{0,20}passw(?:or)?d[=\s]\s*" + _ARG),
        24,
        150,
    ),
    # Secrets written as the default of an environment lookup: os.getenv("X", "d"),
    # os.environ.get('X', 'd'), ENV.fetch("X", "d"), getEnv("X", "d") (Go helpers),
    # System.getenv().getOrDefault("X", "d"), config("X", default="d") (python-decouple).
    _WindowRule(
        "env_default",
        ("env", "config", "getordefault"),
        re.compile(
            r"""(?i)\b(?:\w{0,20}env\w{0,20}|config|getOrDefault)\s*(?:\.\s*\w+\s*)?\(\s*(["'])([\w.-]{1,64})\1"""
            r"""\s*,\s*(?:default\s*=\s*)?(["'`])([^"'`\n]{1,256})\3"""
        ),
        40,
        420,
    ),
    # process.env.X || "d", process.env["X"] ?? 'd', ENV["X"] || "d", os.environ.get("X") or "d".
    _WindowRule(
        "env_default",
        ("env",),
        re.compile(
            r"""(?i)\benv(?:iron)?(?:\.get\(\s*|\.|\[\s*)(["']?)([\w.-]{1,64})\1\s*[\])]?\s*(?:\|\||\?\?|\bor\b)"""
            r"""\s*(["'`])([^"'`\n]{1,256})\3"""
        ),
        4,
        420,
    ),
    # ${X:-d} / ${X-d} in shell, compose files and Makefiles; Spring's ${x.password:d}.
    _WindowRule(
        "env_default",
        ("${",),
        re.compile(r"""\$\{(\s*)([\w.-]{1,64})(?::-|-|:)()([^}\s"'$]{1,256})\}"""),
        0,
        330,
    ),
)


@lru_cache(maxsize=1)
def _window_index() -> tuple[ahocorasick.Automaton, dict[str, list[int]]]:
    by_trigger: dict[str, list[int]] = {}
    for index, rule in enumerate(_WINDOW_RULES):
        for trigger in rule.triggers:
            by_trigger.setdefault(trigger, []).append(index)
    return _automaton(by_trigger), by_trigger


def _lowered(text: str) -> str:
    """`text` in lower case, position for position (str.lower can change the length: 'İ')."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _window_matches(text: str, lowered: str) -> Iterator[tuple[_WindowRule, re.Match[str]]]:
    automaton, by_trigger = _window_index()
    seen: set[tuple[int, int]] = set()
    for position, trigger in _hits(automaton, lowered):
        for index in by_trigger[trigger]:
            rule = _WINDOW_RULES[index]
            floor = max(0, position - rule.before)
            low = text.rfind("\n", floor, position) + 1 or floor
            high = text.find("\n", position, position + rule.after)
            high = high if high >= 0 else min(len(text), position + rule.after)
            for match in rule.pattern.finditer(text, low, high):
                if (index, match.start()) not in seen:
                    seen.add((index, match.start()))
                    yield rule, match


def _window_findings(text: str, lowered: str, config: PIIConfig) -> Iterator[Finding]:
    for rule, match in _window_matches(text, lowered):
        if rule.kind == "env_default":
            yield from _env_default(match, config)
            continue
        if not config.passwords:
            continue
        value, start = match.group(1), match.start(1)
        if value[:1] in "'\"":
            value, start = value[1:-1], start + 1
        if _looks_like_password(value, config) and not value.startswith("-"):
            yield Finding(start, start + len(value), rule.kind, PASSWORD)


def _env_default(match: re.Match[str], config: PIIConfig) -> Iterator[Finding]:
    name, value, start = match.group(2), match.group(4), match.start(4)
    if not _SECRET_WORD.search(name) or _HASH_NAME.search(name):
        return
    if _PASSWORD_WORD.search(name):
        if config.passwords and _looks_like_password(value, config):
            yield Finding(start, start + len(value), "env_default_password", PASSWORD)
    elif config.keys and len(value) >= 8 and _looks_like_password(value, config):
        if not (_UUID.fullmatch(value) or _VERSION.fullmatch(value) or value.isdigit()):
            yield Finding(start, start + len(value), "env_default_secret", KEY)


# ---- the whole scan --------------------------------------------------------------------------
def scan(text: str, lang: str | None = None, config: PIIConfig | None = None) -> list[Finding]:
    """Every finding in `text`, non-overlapping (an earlier, then longer, finding wins)."""
    config = config or PIIConfig()
    lang = (lang or "").lower()
    lowered = _lowered(text)
    found: list[Finding] = []
    if config.keys:
        found += _private_keys(text)
        found += _provider_tokens(text)
    if config.keys or config.passwords:
        found += _assignments(text, lowered, lang, config)
    found += _window_findings(text, lowered, config)
    if config.emails:
        found += _emails(text)
    if config.ip_addresses:
        found += _ip_addresses(text)
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for finding in found:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def redact(text: str, lang: str | None = None, config: PIIConfig | None = None) -> tuple[str, dict[str, int]]:
    """(`text` with every finding replaced, count per fine-grained kind)."""
    findings = scan(text, lang, config)
    if not findings:
        return text, {}
    pieces, position = [], 0
    for finding in findings:
        pieces.append(text[position : finding.start])
        pieces.append(finding.replacement)
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces), dict(Counter(f.kind for f in findings))


def by_category(counts: dict[str, int]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for kind, count in counts.items():
        totals[CATEGORY.get(kind, kind)] += count
    return dict(totals)


# ---- Spark -------------------------------------------------------------------------------------
COUNTS_TYPE = T.MapType(T.StringType(), T.LongType())


def _redact_batches(
    batches: Iterator[pa.RecordBatch], config: PIIConfig, names: list[str]
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        contents = batch.column("content").to_pylist()
        langs = batch.column("lang").to_pylist()
        new_contents, counts, errors = [], [], []
        for text, lang in zip(contents, langs, strict=True):
            started = time.perf_counter()
            try:
                redacted, found = redact(text or "", lang, config)
                if time.perf_counter() - started > config.time_budget_s:
                    raise TimeoutError(
                        f"scan took {time.perf_counter() - started:.1f}s > {config.time_budget_s:g}s"
                    )
                new_contents.append(redacted if text is not None else None)
                counts.append(list(found.items()))
                errors.append(None)
            except Exception as error:  # noqa: BLE001  (quarantined with the reason, never passed on unscanned)
                new_contents.append(text)
                counts.append([])
                errors.append(f"{type(error).__name__}: {error}"[:300])
        columns = {name: batch.column(name) for name in batch.schema.names}
        content = pa.array(new_contents, pa.string())
        columns["content"] = content
        columns["sha256"] = pa.array(
            [content_sha256(c) if c is not None else None for c in new_contents], pa.string()
        )
        columns["size_bytes"] = pc.cast(pc.binary_length(pc.cast(content, pa.binary())), pa.int64())
        columns["pii_counts"] = pa.array(counts, pa.map_(pa.string(), pa.int64()))
        columns["_pii_error"] = pa.array(errors, pa.string())
        yield pa.RecordBatch.from_arrays([columns[n] for n in names], names=names)


@dataclass
class Redaction:
    """The outputs of one redaction pass; `release()` drops the cached scan once both are written."""

    kept: DataFrame
    rejected: DataFrame
    scanned: DataFrame

    def release(self) -> None:
        self.scanned.unpersist()


def redact_documents(documents: DataFrame, config: PIIConfig) -> Redaction:
    """Kept documents (content redacted, with `pii_counts`) and reject rows for failed scans.

    `sha256` and `size_bytes` are recomputed for the new content, so they stay true to it. The
    scan runs once: both outputs come from a cached copy."""
    base = documents.drop("pii_counts") if "pii_counts" in documents.columns else documents
    schema = T.StructType(
        list(base.schema.fields)
        + [T.StructField("pii_counts", COUNTS_TYPE, True), T.StructField("_pii_error", T.StringType(), True)]
    )
    names = schema.fieldNames()
    scanned = base.mapInArrow(lambda batches: _redact_batches(batches, config, names), schema)
    scanned = scanned.persist(StorageLevel.MEMORY_AND_DISK)
    kept = scanned.filter(F.col("_pii_error").isNull()).drop("_pii_error")
    rejected = scanned.filter(F.col("_pii_error").isNotNull()).select(
        "doc_id",
        F.lit(STAGE).alias("stage"),
        F.when(F.col("_pii_error").startswith("TimeoutError"), F.lit("pii_scan_timeout"))
        .otherwise(F.lit("pii_scan_error"))
        .alias("reason"),
        F.col("_pii_error").alias("detail"),
        "path",
        "lang",
        "size_bytes",
        F.lit(None).cast("string").alias("cluster_id"),
        F.lit(None).cast("string").alias("kept_doc_id"),
    )
    return Redaction(kept, rejected.select(*REJECT_COLUMNS), scanned)


def count_totals(redacted: DataFrame) -> dict[str, int]:
    """Findings per fine-grained kind over a redacted stage output (from its `pii_counts`)."""
    rows = (
        redacted.select(F.explode("pii_counts").alias("kind", "count"))
        .groupBy("kind")
        .agg(F.sum("count").alias("count"))
        .collect()
    )
    return {row["kind"]: int(row["count"]) for row in sorted(rows, key=lambda r: r["kind"])}


def rescan(documents: DataFrame, config: PIIConfig, examples: int = 5) -> dict[str, Any]:
    """Scan already-redacted documents again: what a blocking check requires to be empty."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            ids, kinds, snippets = [], [], []
            for doc_id, text, lang in zip(
                batch.column("doc_id").to_pylist(),
                batch.column("content").to_pylist(),
                batch.column("lang").to_pylist(),
                strict=True,
            ):
                for finding in scan(text or "", lang, config):
                    ids.append(doc_id)
                    kinds.append(finding.kind)
                    snippets.append(text[max(0, finding.start - 20) : finding.end + 20])
            yield pa.RecordBatch.from_arrays(
                [pa.array(ids, pa.string()), pa.array(kinds, pa.string()), pa.array(snippets, pa.string())],
                names=["doc_id", "kind", "context"],
            )

    # A clean output has no findings (a dirty one few): one job collects them all.
    schema = "doc_id string, kind string, context string"
    found = documents.select("doc_id", "content", "lang").mapInArrow(run, schema).collect()
    by_kind = Counter(row["kind"] for row in found)
    sample = [row.asDict() for row in sorted(found, key=lambda r: (r["doc_id"], r["kind"]))[:examples]]
    return {"findings": len(found), "by_kind": dict(sorted(by_kind.items())), "examples": sample}
