"""Personal and secret information: find it, replace it, count it, and prove the output is clean.

What is replaced, and by what (BigCode's StarCoder PII pipeline and OpenCoder both did this):

    email addresses                        -> <EMAIL>
    public IPv4 / IPv6 addresses           -> a synthetic private address of the same family
                                              (10.x.y.z, fd00::/8), the same one for the same input
    provider tokens (AWS, GitHub, GitLab,  -> <KEY>
      Slack, Stripe, OpenAI, PyPI, npm,
      SendGrid, JWT, Azure storage keys)
    private key blocks (BEGIN ... END)     -> <KEY>
    high-entropy strings assigned to a     -> <KEY>
      key/secret/token/credential name
    strings assigned to a password name,   -> <PASSWORD>
      and passwords in URLs (user:pw@host)

The provider token formats come from `detect-secrets` (Yelp), a maintained secret scanner: its
plugins' `analyze_string` run on the lines a cheap trigger expression flags. Everything else is
here, with guards against what code is full of and is not personal: private, loopback, link-local
and documentation addresses, public DNS resolvers, OIDs and version strings that look like IPv4,
C++ scopes and hex constants that parse as IPv6, hashes named as hashes, UUIDs, 0x constants,
version strings, dotted module paths, placeholder passwords (`${PASSWORD}`, `<password>`, `***`),
and example.com addresses (RFC 2606 reserves them).

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
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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
    for match in _EMAIL.finditer(text):
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
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![\w:])"
)
_VERSION_CONTEXT = re.compile(r"(?i)(?:version|release)\w*\W{0,6}$|(?:\bv|==|>=|<=|~=|!=|@)\s*['\"]?$")
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
    for match in _IPV4.finditer(text):
        value = match.group()
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = text[max(line_start, match.start() - 24) : match.start()]
        if _VERSION_CONTEXT.search(before):
            continue
        address = ipaddress.IPv4Address(value)
        if not address.is_global or value in _PUBLIC_RESOLVERS:
            continue
        yield Finding(match.start(), match.end(), "ipv4", synthetic_ipv4(value))
    for match in _IPV6.finditer(text):
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


# ---- keys and tokens (detect-secrets plugins) ----------------------------------------------------
_TRIGGER = re.compile(
    r"A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA|[Aa][Ww][Ss]|gh[pousr]_|gl[a-z]{2,5}-|GR1348941|xox[aboprs]-"
    r"|hooks\.slack\.com|[rs]k_live_|T3BlbkFJ|pypi-AgE|_authToken|SG\.|eyJ|AccountKey="
)
_MAX_SCANNED_LINE = 10_000  # provider patterns are run on lines up to this long (tokens are short)


@lru_cache(maxsize=1)
def _plugins() -> tuple[tuple[str, Any], ...]:
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.npm import NpmDetector
    from detect_secrets.plugins.openai import OpenAIDetector
    from detect_secrets.plugins.pypi_token import PypiTokenDetector
    from detect_secrets.plugins.sendgrid import SendGridDetector
    from detect_secrets.plugins.slack import SlackDetector
    from detect_secrets.plugins.stripe import StripeDetector

    return (
        ("aws_key", AWSKeyDetector()),
        ("github_token", GitHubTokenDetector()),
        ("gitlab_token", GitLabTokenDetector()),
        ("slack_token", SlackDetector()),
        ("stripe_key", StripeDetector()),
        ("openai_key", OpenAIDetector()),
        ("pypi_token", PypiTokenDetector()),
        ("npm_token", NpmDetector()),
        ("sendgrid_key", SendGridDetector()),
        ("jwt", JwtTokenDetector()),
        ("azure_key", AzureStorageKeyDetector()),
    )


def _provider_tokens(text: str) -> Iterator[Finding]:
    """Provider tokens by detect-secrets' own patterns (its plugins' `denylist`), on the lines the
    trigger flags. The patterns are used with `finditer` rather than the plugins' `analyze_string`,
    which returns `findall` groups: for GitHub that is the 3-letter prefix, not the token."""
    seen_lines: set[int] = set()
    for trigger in _TRIGGER.finditer(text):
        start = text.rfind("\n", 0, trigger.start()) + 1
        if start in seen_lines:
            continue
        seen_lines.add(start)
        end = text.find("\n", trigger.end())
        end = len(text) if end < 0 else end
        line = text[start : min(end, start + _MAX_SCANNED_LINE)]
        for kind, plugin in _plugins():
            for pattern in plugin.denylist:
                for match in pattern.finditer(line):
                    span = match.span()
                    # A pattern with a group around the secret itself (AWS secret keys, npm).
                    for group in range(1, (pattern.groups or 0) + 1):
                        if match.group(group) and len(match.group(group)) >= 16:
                            span = match.span(group)
                            break
                    secret = line[span[0] : span[1]]
                    if len(secret) < 8 or (kind == "jwt" and secret.count(".") < 2):
                        continue  # `eyJ...` alone is base64 of '{"', not a token
                    yield Finding(start + span[0], start + span[1], kind, KEY)


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
_SECRET_WORD = re.compile(
    r"(?i)passw(?:or)?d|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|auth[_-]?key|private[_-]?key|signing[_-]?key|encryption[_-]?key|credential"
)
_PASSWORD_WORD = re.compile(r"(?i)passw(?:or)?d|passwd|pwd|passphrase")
_NAME_TAIL = re.compile(r"[\w.-]{0,64}")
# After the name: an optional closing quote/bracket, an optional Python annotation, the assignment.
_ASSIGNMENT = re.compile(r"""["']?\]?(?:\s*:\s*[\w.\[\], |]{1,40}(?==))?\s*(?:=>|:=|=(?!=)|:(?!:))\s*""")
_QUOTED_VALUE = re.compile(r"""(?:[bru]{0,2})(["'`])([^"'`\n]{1,256})\1""")
_BARE_VALUE = re.compile(r"""([^\s"'`,;#&)}\]]{1,256})""")
# Config formats where values are written without quotes.
CONFIG_LANGUAGES = frozenset(
    {"yaml", "ini", "toml", "json", "properties", "dotenv", "shell", "dockerfile", "xml", "text"}
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


def entropy(text: str) -> float:
    """Shannon entropy of `text` in bits per character."""
    if not text:
        return 0.0
    import math

    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _looks_like_secret(value: str, name: str, config: PIIConfig) -> bool:
    if len(value) < config.min_secret_length or any(ch.isspace() for ch in value):
        return False
    if _PLACEHOLDER.fullmatch(value) or value.lower().startswith(
        ("0x", "http://", "https://", "/", "./", "~")
    ):
        return False
    if _UUID.fullmatch(value) or _VERSION.fullmatch(value) or _DOTTED_NAME.fullmatch(value):
        return False
    # A hash named as one (sha256 = "...", checksum: ...) is content addressing, not a credential.
    if _HASH_NAME.search(name) and re.fullmatch(r"[0-9a-fA-F]{32,128}", value.split(":")[-1]):
        return False
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    return entropy(value) >= config.min_secret_entropy


def _looks_like_password(value: str, config: PIIConfig) -> bool:
    if len(value) < config.min_password_length or any(ch.isspace() for ch in value):
        return False
    if _PLACEHOLDER.fullmatch(value) or value.startswith(
        ("$", "%", "{", "<", "os.", "env", "getenv", "ENV[")
    ):
        return False
    return not value.endswith(":")  # a label ("Password:")


def _assignments(text: str, lang: str, config: PIIConfig) -> Iterator[Finding]:
    bare_allowed = lang in CONFIG_LANGUAGES
    done: set[int] = set()
    for word in _SECRET_WORD.finditer(text):
        tail = _NAME_TAIL.match(text, word.end())
        name_end = tail.end() if tail else word.end()
        if name_end in done:
            continue  # the same name holds two keywords (api_token_secret)
        done.add(name_end)
        name_start = word.start()
        while (
            name_start > 0
            and word.start() - name_start < 64
            and (text[name_start - 1].isalnum() or text[name_start - 1] in "_.-")
        ):
            name_start -= 1
        name = text[name_start:name_end]
        assign = _ASSIGNMENT.match(text, name_end)
        if assign is None:
            continue
        quoted = _QUOTED_VALUE.match(text, assign.end())
        if quoted:
            value, value_start = quoted.group(2), quoted.start(2)
        elif bare_allowed:
            bare = _BARE_VALUE.match(text, assign.end())
            if bare is None:
                continue
            value, value_start = bare.group(1), bare.start(1)
        else:
            continue
        if _PASSWORD_WORD.search(name):
            if config.passwords and _looks_like_password(value, config):
                yield Finding(value_start, value_start + len(value), "password_assignment", PASSWORD)
        elif config.keys and _looks_like_secret(value, name, config):
            yield Finding(value_start, value_start + len(value), "secret_assignment", KEY)


_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\"<>]{1,64}:([^\s:/@'\"<>]{1,128})@")


def _url_passwords(text: str, config: PIIConfig) -> Iterator[Finding]:
    for match in _URL_CREDENTIALS.finditer(text):
        password = match.group(1)
        if _looks_like_password(password, config):
            yield Finding(match.start(1), match.end(1), "url_password", PASSWORD)


# ---- the whole scan --------------------------------------------------------------------------
def scan(text: str, lang: str | None = None, config: PIIConfig | None = None) -> list[Finding]:
    """Every finding in `text`, non-overlapping (an earlier, then longer, finding wins)."""
    config = config or PIIConfig()
    lang = (lang or "").lower()
    found: list[Finding] = []
    if config.keys:
        found += _private_keys(text)
        found += _provider_tokens(text)
    if config.keys or config.passwords:
        found += _assignments(text, lang, config)
    if config.passwords:
        found += _url_passwords(text, config)
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
