"""Quality stage measurements, each against a baseline measured in the same run.

    .venv/bin/python benchmarks/quality.py [--limit N] [--repeats R] [--parts 1,2,3]

1. Signals and decisions, docs/s, on the demo corpus (this interpreter's standard library plus the
   site-packages slices the demo recipe reads), engine level (one process, one core):
   - vectorised character/line signals vs the same numbers computed per character in Python;
   - the whole signal pass (both tiers);
   - decisions per Arrow batch vs the per-document Python evaluator, and decisions vs signals
     (what re-running a threshold change costs compared with recomputing signals).
2. PII precision and recall on a labelled set of realistic snippets (secrets in config files,
   emails in licence headers, hashes/UUIDs/versions that must survive), against detect-secrets'
   own default scan on the same set.
3. Decontamination recall on planted exact and edited copies of HumanEval and MBPP items inside
   real stdlib modules, false positives on clean modules, and the Aho-Corasick matcher's speed
   against a naive loop of `pattern in text`.
"""

from __future__ import annotations

import os
import sys

# Replace the script folder on the path before anything imports `tokenize`: the sibling
# benchmarks/tokenize.py would shadow the standard library module.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402

from quality.decontaminate import (  # noqa: E402
    DecontaminationConfig,
    Decontaminator,
    humaneval_path,
    load_benchmarks,
    naive_check,
    normalize,
)
from quality.filters import decide_batch, load_profiles  # noqa: E402
from quality.ingest import glob_to_regex  # noqa: E402
from quality.languages import language_of  # noqa: E402
from quality.pii import redact  # noqa: E402
from quality.recipe import PROJECT_ROOT  # noqa: E402
from quality.signals import SignalConfig, signal_batch, vector_signals  # noqa: E402
from quality.textio import Rejected, decode_text  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
SITE_SLICES = (
    "pip/**",
    "setuptools/**",
    "pkg_resources/**",
    "google/protobuf/**",
    "dagster_webserver/graphiql/**",
    "yaml/**",
)


def demo_corpus(limit: int | None) -> list[dict]:
    """The demo recipe's sources, read and decoded as ingest does (files ingest would reject are skipped)."""
    docs = []
    for root, include in ((STDLIB, ("**",)), (SITE, SITE_SLICES)):
        patterns = [glob_to_regex(g) for g in include]
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or "__pycache__" in rel or rel.startswith("site-packages/"):
                continue
            if not any(p.match(rel) for p in patterns):
                continue
            lang, _ = language_of(rel)
            if lang is None or path.stat().st_size > 8 * 1024 * 1024:
                continue
            try:
                text = decode_text(path.read_bytes())
            except (Rejected, OSError):
                continue
            docs.append(
                {"doc_id": rel, "content": text, "lang": lang, "path": rel, "size_bytes": len(text.encode())}
            )
    random.Random(0).shuffle(docs)
    return docs[:limit] if limit else docs


def naive_char_signals(text: str) -> dict:
    """The vectorised tier's character and line numbers, computed the per-character way."""
    lines = text.splitlines() or [""]
    n = max(1, len(text))
    return {
        "frac_alpha": sum(c.isalpha() for c in text) / n,
        "frac_digit": sum(c.isdecimal() for c in text) / n,
        "frac_whitespace": sum(c.isspace() for c in text) / n,
        "max_line_length": max(len(line) for line in lines),
        "mean_line_length": sum(len(line) for line in lines) / len(lines),
        "frac_hex_chars": sum(len(m) for m in re.findall(r"\b0[xX][0-9a-fA-F]+\b", text)) / n,
    }


def _batches(docs: list[dict], size: int = 2000) -> list[pa.RecordBatch]:
    return [pa.RecordBatch.from_pylist(docs[i : i + size]) for i in range(0, len(docs), size)]


def bench_signals(docs: list[dict], repeats: int) -> None:
    mb = sum(d["size_bytes"] for d in docs) / 1e6
    print(
        f"\n== 1. signals and decisions on the demo corpus: {len(docs)} documents, {mb:.1f} MB (one process)"
    )
    batches = _batches(docs)

    def timed(fn) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    naive = timed(lambda: [naive_char_signals(d["content"]) for d in docs])
    vector = timed(lambda: [vector_signals(b.column("content")) for b in batches])
    print(
        f"character/line signals, per-character Python: {len(docs) / naive:10.0f} docs/s ({mb / naive:6.1f} MB/s)"
    )
    print(
        f"character/line signals, vectorised (Arrow):   {len(docs) / vector:10.0f} docs/s ({mb / vector:6.1f} MB/s)"
    )
    print(f"  ratio vectorised / per-character: {naive / vector:.1f}x")

    config = SignalConfig()
    tables: list[pa.RecordBatch] = []
    started = time.perf_counter()
    for batch in batches:
        tables.append(signal_batch(batch, config))
    full = time.perf_counter() - started
    slowest = max(max(t.column("signal_seconds").to_pylist()) for t in tables)
    timed_out = sum(sum(bool(x) for x in t.column("timed_out").to_pylist()) for t in tables)
    print(
        f"all signals (vectorised + per-document tier):  {len(docs) / full:10.0f} docs/s ({mb / full:6.2f} MB/s)"
    )
    print(f"  slowest document {slowest:.2f}s (budget {config.time_budget_s:g}s), timed out: {timed_out}")

    profiles = load_profiles()
    batched = timed(lambda: [decide_batch(t, profiles) for t in tables])
    rows = [(r, r["doc_id"], r["lang"]) for t in tables for r in t.to_pylist()]
    per_doc = timed(lambda: [profiles.fired_rules(r, d, lang) for r, d, lang in rows])
    rejected = sum(
        sum(x is not None for x in decide_batch(t, profiles).column("reason").to_pylist()) for t in tables
    )
    print(f"decisions, per-document Python evaluator:     {len(docs) / per_doc:10.0f} docs/s")
    print(f"decisions, vectorised per Arrow batch:        {len(docs) / batched:10.0f} docs/s")
    print(
        f"  ratio batch / per-document: {per_doc / batched:.1f}x; decisions vs recomputing signals: {full / batched:.0f}x cheaper"
    )
    print(f"  verdict: {len(docs) - rejected} kept, {rejected} rejected ({rejected / len(docs):.1%})")


# ---- PII ------------------------------------------------------------------------------------------
# (language, snippet, secrets that must be replaced, strings that must survive)
PII_SET: list[tuple[str, str, list[str], list[str]]] = [
    (
        "python",
        "# Copyright (c) 2014 Maria Garcia <maria.garcia@uni-hamburg.de>\n# Licensed under the MIT licence.\n",
        ["maria.garcia@uni-hamburg.de"],
        ["MIT"],
    ),
    (
        "c",
        "/*\n * Copyright (C) 2009 Wei Chen <chenwei1979@163.com>\n * SPDX-License-Identifier: GPL-2.0\n */\n",
        ["chenwei1979@163.com"],
        ["GPL-2.0"],
    ),
    (
        "python",
        '__author__ = "Tom Baker"\n__email__ = "tbaker@fastmail.fm"\n__version__ = "2.4.1.0"\n',
        ["tbaker@fastmail.fm"],
        ["2.4.1.0"],
    ),
    (
        "javascript",
        '// Maintainer: priya.n@startup.io\nconst VERSION = "1.0.12";\n',
        ["priya.n@startup.io"],
        ["1.0.12"],
    ),
    (
        "python",
        'setup(name="pkg", author_email="dev.team+pypi@bigcorp.co.uk", url="https://example.com")\n',
        ["dev.team+pypi@bigcorp.co.uk"],
        ["https://example.com"],
    ),
    (
        "yaml",
        "maintainers:\n  - name: Ola Nordmann\n    email: ola.nordmann@firma.no\n",
        ["ola.nordmann@firma.no"],
        ["Ola Nordmann"],
    ),
    (
        "python",
        'ADMINS = [("Ops", "ops-alerts@payments-co.com")]\nEMAIL_HOST = "smtp.payments-co.com"\n',
        ["ops-alerts@payments-co.com"],
        ["smtp.payments-co.com"],
    ),
    (
        "text",
        "Report security issues to security@openproject.org (PGP key 0x9E3779B9).\n",
        ["security@openproject.org"],
        ["0x9E3779B9"],
    ),
    (
        "python",
        'AWS_ACCESS_KEY_ID = "AKIAZ7VRSQ5TJN3EXMPL"\nAWS_SECRET_ACCESS_KEY = "9drTJvcXLB89EXAMPLEKEYhYt2xV2d9rR2Ov1CEf"\nAWS_REGION = "eu-west-1"\n',
        ["AKIAZ7VRSQ5TJN3EXMPL", "9drTJvcXLB89EXAMPLEKEYhYt2xV2d9rR2Ov1CEf"],
        ["eu-west-1"],
    ),
    (
        "ini",
        "[default]\naws_access_key_id = AKIAQ4PLXN2EXAMPLE7Z\naws_secret_access_key = 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\nregion = us-east-2\n",
        ["AKIAQ4PLXN2EXAMPLE7Z", "t7Yh3kLmN9pQ2rS5vW8xZ1aB4cD6eF0gH3jK5mN7"],
        ["us-east-2"],
    ),
    (
        "yaml",
        "github:\n  token: ghp_" + "R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3sXY\n  org: acme\n",
        ["ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3sXY"],
        ["acme"],
    ),
    (
        "shell",
        "export GITHUB_TOKEN=gho_" + "9sKd8fJ3mN2pQ5rT7vW0xZ4aB6cE1gH3jL5n\necho done\n",
        ["gho_9sKd8fJ3mN2pQ5rT7vW0xZ4aB6cE1gH3jL5n"],
        ["echo done"],
    ),
    (
        "python",
        'SLACK_BOT_TOKEN = "xoxb-' + '2345678901-3456789012345-aBcDeFgHiJkLmNoPqRsTuVwX"\n',
        ["xoxb-2345678901-3456789012345-aBcDeFgHiJkLmNoPqRsTuVwX"],
        [],
    ),
    (
        "json",
        '{"webhook": "https://hooks.slack.com/services/'
        + 'T0A1B2C3D/B4E5F6G7H/abcdefghijklmnopqrstuvwx", "channel": "#ops"}\n',
        ["https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/abcdefghijklmnopqrstuvwx"],
        ["#ops"],
    ),
    (
        "python",
        'stripe.api_key = "sk_live_' + '4eC39HqLyjWDarjtT1zdp7dc"\n',
        ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"],
        [],
    ),
    (
        "python",
        'KEY = """-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBq8c7vK9h0\n-----END OPENSSH PRIVATE KEY-----"""\n',
        ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", "QyNTUxOQAAACBq8c7vK9h0"],
        [],
    ),
    (
        "text",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2Ot\n-----END RSA PRIVATE KEY-----\n",
        ["MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2Ot"],
        [],
    ),
    (
        "python",
        'SECRET_KEY = "django-insecure-7x#k2m!q9z@w4v$p1r&t8y^u3i*o6e"\nDEBUG = False\n',
        ["django-insecure-7x#k2m!q9z@w4v$p1r&t8y^u3i*o6e"],
        ["DEBUG = False"],
    ),
    (
        "python",
        'OPENWEATHER_API_KEY = "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"\n',
        ["3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"],
        [],
    ),
    (
        "javascript",
        "const config = { apiKey: 'AIzaSyD4x9Kq2mVn8Lp3Rt7Wz1Yb6Hc0Jf5Ge2s', authDomain: 'app.firebaseapp.com' };\n",
        ["AIzaSyD4x9Kq2mVn8Lp3Rt7Wz1Yb6Hc0Jf5Ge2s"],
        ["app.firebaseapp.com"],
    ),
    (
        "yaml",
        "auth:\n  client_id: my-service\n  client_secret: Zq8vT3mK9pL2xR7wN4bY6hJ1\n",
        ["Zq8vT3mK9pL2xR7wN4bY6hJ1"],
        ["my-service"],
    ),
    (
        "ini",
        "[database]\nhost = db.internal\nuser = app\npassword = Wint3r!sComing2024\n",
        ["Wint3r!sComing2024"],
        ["db.internal"],
    ),
    (
        "yaml",
        "spring:\n  datasource:\n    username: admin\n    password: Adm1nP@ssw0rd\n",
        ["Adm1nP@ssw0rd"],
        ["admin"],
    ),
    (
        "python",
        'conn = psycopg2.connect(host="db", user="etl", password="etl_pa55_prod")\n',
        ["etl_pa55_prod"],
        ['user="etl"'],
    ),
    (
        "python",
        'DATABASE_URL = "postgresql://svc_user:Xk9!mP2qR7@prod-db.acme.net:5432/orders"\n',
        ["Xk9!mP2qR7"],
        ["prod-db.acme.net"],
    ),
    # Added after the detector was written, not tuned for: command-line credentials, .env files,
    # bearer tokens, fallbacks, connection strings, other languages, prose.
    (
        "shell",
        "curl -u deploy:D3pl0yM3N0w https://ci.acme.dev/job\nmysql -h db -u root -pRootPw123\n",
        ["D3pl0yM3N0w", "RootPw123"],
        ["https://ci.acme.dev/job"],
    ),
    (
        "dotenv",
        "STRIPE_SECRET=sk_test_" + "51HxQ2aLkd8f7G6h5J4k3L2m1N0pQ\nPORT=8080\n",
        ["sk_test_51HxQ2aLkd8f7G6h5J4k3L2m1N0pQ"],
        ["8080"],
    ),
    (
        "python",
        'headers = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"}\n',
        [
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
        ],
        ['"Authorization"'],
    ),
    (
        "python",
        'api_key = os.getenv("MAPS_KEY", "c2Vjb25kLWZhbGxiYWNrLWtleS05OTE")\n',
        ["c2Vjb25kLWZhbGxiYWNrLWtleS05OTE"],
        ["MAPS_KEY"],
    ),
    (
        "xml",
        '<add key="StorageConnection" value="DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey='
        + "Qm9ndXNLZXlGb3JUZXN0aW5nT25seUJvZ3VzS2V5Rm9yVGVzdGluZ09ubHlCb2d1c0tleUZvcg=="
        + ';EndpointSuffix=core.windows.net" />\n',
        ["Qm9ndXNLZXlGb3JUZXN0aW5nT25seUJvZ3VzS2V5Rm9yVGVzdGluZ09ubHlCb2d1c0tleUZvcg=="],
        ["AccountName=acmeprod"],
    ),
    (
        "java",
        'private static final String DB_PASS = "Qw3rty!2023";\nprivate static final String DB_USER = "report";\n',
        ["Qw3rty!2023"],
        ['"report"'],
    ),
    (
        "go",
        'const apiToken = "tk_9fJ2kL8mQ4nR7sT1vW3xY6zA"\nconst timeout = 30\n',
        ["tk_9fJ2kL8mQ4nR7sT1vW3xY6zA"],
        ["30"],
    ),
    (
        "markdown",
        "Questions? Write to **anna.k@research-lab.eu** or open an issue.\n",
        ["anna.k@research-lab.eu"],
        ["open an issue"],
    ),
    (
        "python",
        "# Contact: j.smith at example dot com\nHOST = '35.190.247.13'\n",
        ["35.190.247.13"],
        ["j.smith at example dot com"],
    ),
    ("json", '{"users": [{"name": "bob", "password": "b0bSecure#1"}]}\n', ["b0bSecure#1"], ['"bob"']),
    ("python", 'SERVERS = ["52.14.201.7", "10.0.0.12"]\n', ["52.14.201.7"], ["10.0.0.12"]),
    (
        "yaml",
        "ingress:\n  allowed: 203.0.113.50\n  upstream: 34.117.59.81\n",
        ["34.117.59.81"],
        ["203.0.113.50"],
    ),
    (
        "python",
        'resolver = ("2a00:1450:4001:81c::200e", 53)\nlocal = "::1"\n',
        ["2a00:1450:4001:81c::200e"],
        ["::1"],
    ),
    (
        "text",
        "Server log: connection from 198.51.100.23 and 91.198.174.192 refused\n",
        ["91.198.174.192"],
        ["198.51.100.23"],
    ),
    # --- negatives: must survive untouched -------------------------------------------------------
    (
        "python",
        'EXPECTED_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"\n',
        [],
        ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    ),
    (
        "text",
        "requests==2.31.0 --hash=sha256:58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f\n",
        [],
        ["58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f"],
    ),
    (
        "python",
        'commit = "3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"\nmd5 = "5d41402abc4b2a76b9719d911017c592"\n',
        [],
        ["3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f", "5d41402abc4b2a76b9719d911017c592"],
    ),
    (
        "python",
        'NAMESPACE = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")\nrequest_token = "f47ac10b-58cc-4372-a567-0e02b2c3d479"\n',
        [],
        ["6ba7b810-9dad-11d1-80b4-00c04fd430c8", "f47ac10b-58cc-4372-a567-0e02b2c3d479"],
    ),
    (
        "c",
        "#define CRC_KEY 0xEDB88320\nstatic const uint64_t SECRET_MIX = 0x9E3779B97F4A7C15ULL;\n",
        [],
        ["0xEDB88320", "0x9E3779B97F4A7C15"],
    ),
    (
        "python",
        '__version__ = "3.11.4.1"\nMIN_VERSION = (3, 8)\nrequires = "numpy>=1.24.2.1"\n',
        [],
        ["3.11.4.1", "1.24.2.1"],
    ),
    (
        "python",
        'LOCALHOST = "127.0.0.1"\nLAN = "192.168.1.20"\nDOCS = "192.0.2.44"\nDNS = "8.8.8.8"\n',
        [],
        ["127.0.0.1", "192.168.1.20", "192.0.2.44", "8.8.8.8"],
    ),
    (
        "python",
        'OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1"\nSNMP = "1.3.6.1.2.1.1.5.0"\n',
        [],
        ["1.3.6.1.5.5.7.3.1", "1.3.6.1.2.1.1.5.0"],
    ),
    (
        "cpp",
        'std::map<std::string, int> m; ns::ab::cd x; auto t = parse("23:59:59");\n',
        [],
        ["std::map", "ab::cd", "23:59:59"],
    ),
    (
        "python",
        'password = input("Password: ")\npassword = os.environ.get("APP_PASSWORD")\nPASSWORD_MIN_LENGTH = 12\n',
        [],
        ['"Password: "', "APP_PASSWORD"],
    ),
    (
        "python",
        'if password == "":\n    raise ValueError("empty password")\nfield = "password_hash"\n',
        [],
        ['"password_hash"'],
    ),
    (
        "yaml",
        "db:\n  password: ${DB_PASSWORD}\n  token: <your-token-here>\n",
        [],
        ["${DB_PASSWORD}", "<your-token-here>"],
    ),
    (
        "python",
        'TOKEN_URL = "https://oauth2.googleapis.com/token"\ntoken_type = "Bearer"\n',
        [],
        ["https://oauth2.googleapis.com/token", '"Bearer"'],
    ),
    (
        "python",
        "result = a @ b.T\nz = X@W.shape[0]\n@functools.lru_cache\ndef f(): pass\n",
        [],
        ["X@W.shape"],
    ),
    (
        "text",
        "See user@example.com and admin@example.org for the placeholder addresses.\n",
        [],
        ["user@example.com", "admin@example.org"],
    ),
    ("shell", "git clone git@github.com:acme/tools.git\n", [], ["git@github.com"]),
    (
        "yaml",
        "image: ghcr.io/acme/api@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n",
        [],
        ["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
    ),
    (
        "python",
        'tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")\nsecret_len = 32\n',
        [],
        ["bert-base-uncased"],
    ),
    (
        "json",
        '{"integrity": "sha512-Vv3pQ2u5mD0HnPzBm1sPh4Fu2o3JtKQ5m4yN6aUcXkA9bR8gT5wYfE7dC1LsZ0oI3jH2kG6nV8rW4tX9yB7eQ==", "version": "4.17.21"}\n',
        [],
        ["4.17.21"],
    ),
]


def _outcome(text: str, redacted: str, secrets: list[str], survivors: list[str]) -> tuple[int, int, int]:
    tp = sum(1 for s in secrets if s not in redacted)
    fn = len(secrets) - tp
    fp = sum(1 for s in survivors if s in text and s not in redacted)
    return tp, fn, fp


def _detect_secrets_redact(text: str) -> str:
    """The baseline: detect-secrets' default scan (all its plugins and filters), each secret it
    reports replaced; it has no email rule and no IP replacement of its own kind."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    out = text
    with default_settings():
        for line in text.splitlines():
            for found in scan_line(line):
                if found.secret_value:
                    out = out.replace(found.secret_value, "<SECRET>")
    return out


def bench_pii() -> None:
    totals = {"codecook": [0, 0, 0], "detect-secrets default scan": [0, 0, 0]}
    misses, false_hits = [], []
    started = time.perf_counter()
    for lang, text, secrets, survivors in PII_SET:
        redacted, _ = redact(text, lang)
        tp, fn, fp = _outcome(text, redacted, secrets, survivors)
        for i, v in enumerate((tp, fn, fp)):
            totals["codecook"][i] += v
        if fn:
            misses.append(text.strip()[:90])
        if fp:
            false_hits.append(text.strip()[:90])
    ours = time.perf_counter() - started
    for _lang, text, secrets, survivors in PII_SET:
        tp, fn, fp = _outcome(text, _detect_secrets_redact(text), secrets, survivors)
        for i, v in enumerate((tp, fn, fp)):
            totals["detect-secrets default scan"][i] += v
    positives = sum(len(s) for _, _, s, _ in PII_SET)
    guards = sum(len(s) for _, _, _, s in PII_SET)
    print(
        f"\n== 2. PII on a labelled set: {len(PII_SET)} snippets, {positives} secrets to replace, {guards} look-alikes to keep"
    )
    for name, (tp, fn, fp) in totals.items():
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        print(f"{name:30s} precision {precision:.3f}  recall {recall:.3f}  (TP {tp}, FN {fn}, FP {fp})")
    print(f"  codecook scan time for the set: {ours * 1000:.1f} ms")
    for text in misses:
        print(f"  missed: {text!r}")
    for text in false_hits:
        print(f"  false hit: {text!r}")


# ---- decontamination ------------------------------------------------------------------------------
def _edit(code: str, name: str) -> str:
    """An edited copy: renamed function, reindented, a comment and a blank line inserted."""
    code = re.sub(rf"\b{re.escape(name)}\b", name + "_impl", code)
    code = code.replace("\r\n", "\n").replace("    ", "  ").replace("\t", "  ")
    lines = code.split("\n")
    lines.insert(len(lines) // 2, "  # keep this in sync with the spec")
    return "\n".join(lines)


def bench_decontamination(repeats: int) -> None:
    config = DecontaminationConfig()
    texts = load_benchmarks(config)
    checker = Decontaminator(texts, config)
    with gzip.open(humaneval_path(config), "rt", encoding="utf-8") as handle:
        humaneval = [json.loads(line) for line in handle]
    mbpp = [
        json.loads(line)
        for line in (PROJECT_ROOT / "training/data/mbpp_sanitized.jsonl").read_text().splitlines()
        if line
    ]
    hosts = [
        STDLIB / n
        for n in ("heapq.py", "textwrap.py", "statistics.py", "fractions.py", "calendar.py", "shlex.py")
    ]
    host_texts = [h.read_text(encoding="utf-8") for h in hosts]
    rng = random.Random(0)
    planted: list[tuple[str, str, str]] = []  # (kind, expected item id, document)
    for row in humaneval:
        code = row["prompt"] + row["canonical_solution"]
        host = rng.choice(host_texts)
        planted.append(("exact", row["task_id"], host + "\n\n" + code))
        planted.append(("edited", row["task_id"], host + "\n\n" + _edit(code, row["entry_point"])))
    for row in mbpp:
        name = re.search(r"def (\w+)", row["code"])
        code = f'"""{row["prompt"]}"""\n' + row["code"]
        host = rng.choice(host_texts)
        planted.append(("exact", str(row["task_id"]), host + "\n\n" + code))
        planted.append(
            ("edited", str(row["task_id"]), host + "\n\n" + _edit(code, name.group(1) if name else "x"))
        )
    print(
        f"\n== 3. decontamination: {len(texts)} benchmark texts; {len(planted)} planted copies in real stdlib modules"
    )
    for kind in ("exact", "edited"):
        cases = [(item, doc) for k, item, doc in planted if k == kind]
        caught = 0
        for item, doc in cases:
            verdict = checker.check(doc)
            caught += verdict is not None and (
                f" {item} " in verdict[1] + " " or f"/{item.split('/')[-1]} " in verdict[1]
            )
        print(
            f"recall on {kind:6s} copies: {caught / len(cases):.3f} ({caught}/{len(cases)}, removed naming the planted item)"
        )
    clean = [d for d in demo_corpus(None) if d["lang"] == "python"][:2000]
    false_positives = [d["path"] for d in clean if checker.check(d["content"])]
    print(
        f"false positives on {len(clean)} clean demo-corpus Python files: {len(false_positives)} {false_positives[:5]}"
    )

    documents = [d["content"] for d in clean[:400]]
    mb = sum(len(d) for d in documents) / 1e6

    def timed(fn) -> float:
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    naive = timed(lambda: [naive_check(texts, d, config) for d in documents])
    automaton = timed(lambda: [checker.exact_matches(normalize(d)) for d in documents])
    both = timed(lambda: [checker.check(d) for d in documents])
    print(
        f"exact test, naive loop of `pattern in text`: {len(documents) / naive:8.1f} docs/s ({mb / naive:6.2f} MB/s)"
    )
    print(
        f"exact test, Aho-Corasick automaton:          {len(documents) / automaton:8.1f} docs/s ({mb / automaton:6.2f} MB/s)"
    )
    print(f"  ratio automaton / naive: {naive / automaton:.1f}x")
    print(
        f"full check (exact + {config.ngram_n}-gram overlap):    {len(documents) / both:8.1f} docs/s ({mb / both:6.2f} MB/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="documents of the demo corpus for part 1 (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (the median is reported)")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1 or 2,3")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}
    if "1" in parts:
        bench_signals(demo_corpus(args.limit), args.repeats)
    if "2" in parts:
        bench_pii()
    if "3" in parts:
        bench_decontamination(args.repeats)


if __name__ == "__main__":
    main()
