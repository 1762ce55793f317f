"""PII redaction: every kind is replaced, every false-positive guard holds, a rescan finds nothing."""

from __future__ import annotations

import ipaddress
import sysconfig
from pathlib import Path

import pytest

from quality.pii import PIIConfig, redact, scan, synthetic_ipv4, synthetic_ipv6

STDLIB = Path(sysconfig.get_paths()["stdlib"])

# (language, snippet, what must disappear, kind expected, placeholder expected)
POSITIVES = [
    (
        "python",
        "# Copyright (c) 2019 Jane Roe <jane.roe@acme-mail.com>\n",
        "jane.roe@acme-mail.com",
        "email",
        "<EMAIL>",
    ),
    ("python", 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\n', "AKIAIOSFODNN7EXAMPLE", "aws_key", "<KEY>"),
    (
        "python",
        'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n',
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_key",
        "<KEY>",
    ),
    (
        "python",
        'GH = "ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"\n',
        "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "github_token",
        "<KEY>",
    ),
    (
        "javascript",
        "const slack = 'xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx';\n",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "slack_token",
        "<KEY>",
    ),
    (
        "python",
        'KEY = """-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4h1\nk3Jd9Q==\n-----END RSA PRIVATE KEY-----"""\n',
        "MIIEowIBAAKCAQEAx4h1",
        "private_key",
        "<KEY>",
    ),
    (
        "python",
        'client_secret = "q8Zt3Lr9Vx2Kp7Wm4Nb6"\n',
        "q8Zt3Lr9Vx2Kp7Wm4Nb6",
        "secret_assignment",
        "<KEY>",
    ),
    ("yaml", "database:\n  password: hunter2-Prod\n", "hunter2-Prod", "password_assignment", "<PASSWORD>"),
    (
        "python",
        'db.connect(user="app", password="s3cr3t!Pa55")\n',
        "s3cr3t!Pa55",
        "password_assignment",
        "<PASSWORD>",
    ),
    (
        "python",
        'URL = "postgres://admin:S3cr3tP4ss@db.internal:5432/app"\n',
        "S3cr3tP4ss",
        "url_password",
        "<PASSWORD>",
    ),
    ("python", 'SERVER = "52.14.201.7"\n', "52.14.201.7", "ipv4", None),
    # Issue 13: the kinds an unseen labelled set caught the engine missing, and vendor formats.
    ("shell", "tar czf - build | ssh ops@3.121.90.14 'tar xzf - -C /srv'\n", "3.121.90.14", "ipv4", None),
    ("ini", "[redis]\nhost = 46.101.7.33\n", "46.101.7.33", "ipv4", None),
    (
        "python",
        'MAPS = "AIza' + "SyB1x2Y3z4A5b6C7d8E9f0G1h2I3j4K5l6m" + '"\n',
        "AIzaSyB1x2Y3z4A5b6C7d8E9f0G1h2I3j4K5l6m",
        "google_api_key",
        "<KEY>",
    ),
    (
        "shell",
        "curl -fsS -u bot:Wq8-x!m2z https://ci.example.net/api\n",
        "Wq8-x!m2z",
        "cli_password",
        "<PASSWORD>",
    ),
    ("shell", "mysqladmin -u root -pQz7vv9Lk status\n", "Qz7vv9Lk", "cli_password", "<PASSWORD>"),
    (
        "python",
        'PW = os.getenv("SMTP_PASSWORD", "mailPw-4417")\n',
        "mailPw-4417",
        "env_default_password",
        "<PASSWORD>",
    ),
    (
        "javascript",
        'const k = process.env.API_TOKEN || "tok-88ab12cd";\n',
        "tok-88ab12cd",
        "env_default_secret",
        "<KEY>",
    ),
    ("shell", "export REDIS_PASS=Zr9-kk21q\n", "Zr9-kk21q", "password_assignment", "<PASSWORD>"),
    (
        "python",
        'TRANSLATOR_KEY = "' + "9f3b2c1d8e7a6b5c4d3e2f1a0b9c8d7e" + '"\n',
        "9f3b2c1d8e7a6b5c4d3e2f1a0b9c8d7e",
        "secret_assignment",
        "<KEY>",
    ),
    (
        "yaml",
        "sp:\n  secret: Ab1" + "8Q~" + "cDeFgHiJkLmNoPqRsTuVwXyZ0123456789\n",
        "Ab18Q~cDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "azure_key",
        "<KEY>",
    ),
    (
        "python",
        'x = "sk-ant-' + "api03-" + ("aB3dE5gH7jK9mN1pQ3sT5vW7yZ-_" * 4)[:93] + 'AA"\n',
        "sk-ant-api03-" + ("aB3dE5gH7jK9mN1pQ3sT5vW7yZ-_" * 4)[:93] + "AA",
        "anthropic_key",
        "<KEY>",
    ),
    (
        "python",
        'c = Client("AC' + "0123456789abcdef0123456789abcdef" + '", tok)\n',
        "AC0123456789abcdef0123456789abcdef",
        "twilio_key",
        "<KEY>",
    ),
    ("java", 'ds.setPassword("Hq2!tt90");\n', "Hq2!tt90", "password_assignment", "<PASSWORD>"),
    ("cpp", 'auto addr = "2a00:1450:4001:81c::200e";\n', "2a00:1450:4001:81c::200e", "ipv6", None),
]

# Code that looks like PII and is not: must come out unchanged.
NEGATIVES = [
    ("python", 'sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"\n'),
    ("python", 'md5_digest = "d41d8cd98f00b204e9800998ecf8427e"\n'),
    (
        "python",
        'REQUEST_ID = "123e4567-e89b-12d3-a456-426614174000"\nsession_token = "9b2c8a9e-0c3f-4c7e-9a1d-3f2b7c6d5e4f"\n',
    ),
    (
        "c",
        "#define KEY_MASK 0xFFFFFFFFDEADBEEF\nstatic const unsigned long SECRET_SEED = 0x9E3779B97F4A7C15;\n",
    ),
    ("python", '__version__ = "1.2.3.4"\nrelease = "10.0.19.3"\nrequires = ["pkg==2.10.1.4"]\n'),
    (
        "python",
        'HOSTS = ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.4", "169.254.1.1", "192.0.2.10"]\n',
    ),
    ("python", 'RESOLVERS = ["8.8.8.8", "1.1.1.1"]\nOID = "1.3.6.1.4.1.311.21.7"\n'),
    ("python", 'LOCAL6 = ["::1", "fe80::1", "fd12:3456::1", "2001:db8::1"]\n'),
    ("cpp", 'std::vector<int> v; ab::cd x; dead::beef y; auto t = "12:30:45";\n'),
    (
        "python",
        'password = getpass.getpass()\npassword = os.environ["DB_PASSWORD"]\nPASSWORD_FIELD = "password"\n',
    ),
    (
        "python",
        'prompt = "Password:"\npasswd = "${DB_PASSWORD}"\npwd = "<your password>"\npassword = "****"\n',
    ),
    (
        "python",
        'token = tokenize.NAME\nTOKEN_TYPE = "bearer_token_type"\nsecret_name = "django.contrib.auth.tokens"\n',
    ),
    ("python", "y = X@W.shape\n@property\ndef f(self):\n    return self.a@self.b\n"),
    ("python", "Contact user@example.com or git@github.com:org/repo.git for access.\n"),
    ("shell", "ssh admin@192.0.2.15 uptime\nping 198.51.100.3\n"),  # RFC 5737 documentation ranges
    ("python", 'GROUP = "239.255.255.250"\nMIN_VER = "version 4.10.2.1"\n'),
    ("shell", 'mysql -u root -p appdb\ncurl -u "$USER:$PASS" https://x.org\n'),
    (
        "python",
        'DB_PASSWORD = os.getenv("DB_PASSWORD", "")\nHOST = os.getenv("DB_HOST", "db.internal.lan")\n',
    ),
    ("yaml", "password: ${DB_PASSWORD:-changeme}\ntoken: ghp_" + "x" * 36 + "\n"),
    ("python", "class Skip:\n    pass\n\nbypass = compass_key\nsort_key = 'name_v2_by_date'\n"),
    ("python", 'zf.extractall(pwd=None)\nsplitpasswd("user:pw")\n'),
    (
        "yaml",
        "image: registry.io/app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
    ),
]


@pytest.mark.parametrize(
    "lang,text,secret,kind,placeholder", POSITIVES, ids=[p[3] + str(i) for i, p in enumerate(POSITIVES)]
)
def test_each_kind_is_redacted(lang, text, secret, kind, placeholder):
    redacted, counts = redact(text, lang)
    assert secret not in redacted
    assert counts.get(kind) == 1, counts
    if placeholder:
        assert placeholder in redacted
    assert scan(redacted, lang) == []  # the output is clean: nothing left, placeholders are not findings


@pytest.mark.parametrize("lang,text", NEGATIVES, ids=[f"guard{i}" for i in range(len(NEGATIVES))])
def test_false_positive_guards_hold(lang, text):
    redacted, counts = redact(text, lang)
    assert counts == {} and redacted == text, scan(text, lang)


def test_addresses_become_synthetic_private_ones_of_the_same_family():
    v4 = synthetic_ipv4("52.14.201.7")
    v6 = synthetic_ipv6("2a00:1450:4001:81c::200e")
    assert ipaddress.ip_address(v4).is_private and ipaddress.ip_address(v4).version == 4
    assert ipaddress.ip_address(v6).is_private and ipaddress.ip_address(v6).version == 6
    assert v4 == synthetic_ipv4("52.14.201.7") and v4 != synthetic_ipv4("52.14.201.8")
    text = 'a = "52.14.201.7"\nb = "52.14.201.7"\n'
    redacted, _ = redact(text, "python")
    assert redacted.count(v4) == 2  # the same address maps to the same replacement


def test_config_switches_kinds_off():
    text = 'email = "jane.roe@acme-mail.com"\nhost = "52.14.201.7"\n'
    redacted, counts = redact(text, "python", PIIConfig(emails=False))
    assert "jane.roe@acme-mail.com" in redacted and counts == {"ipv4": 1}


def test_ordinary_stdlib_modules_have_nothing_to_redact():
    for name in ("os.py", "json/encoder.py", "functools.py", "shutil.py", "csv.py", "pathlib.py", "enum.py"):
        text = (STDLIB / name).read_text(encoding="utf-8")
        assert scan(text, "python") == [], name


def test_licence_header_emails_in_the_real_stdlib_are_found():
    text = (STDLIB / "http/cookies.py").read_text(encoding="utf-8")  # "Timothy O'Malley <timo@alum.mit.edu>"
    redacted, counts = redact(text, "python")
    assert (
        counts.get("email", 0) >= 1 and "timo@alum.mit.edu" not in redacted and scan(redacted, "python") == []
    )


@pytest.mark.parametrize(
    "text",
    [
        "x" * 3_000_000,  # one huge line
        ("AKIA" + "1" * 10 + " 8.8.8." + "curl -u a:" + "=" * 50 + "@") * 5_000,  # many half-triggers
        bytes(range(256)).decode("latin-1") * 2000,  # binary-looking text
        "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 100_000,  # unterminated key block
    ],
    ids=["huge_line", "many_triggers", "binary", "open_key_block"],
)
def test_bad_input_is_scanned_in_linear_time(text):
    import time

    started = time.perf_counter()
    redacted, _ = redact(text, "text")
    assert time.perf_counter() - started < 10 and isinstance(redacted, str)


def test_lowercasing_that_changes_length_keeps_positions():
    text = "İ" * 5 + ' password = "Vq8-hh31k"\n'  # "İ".lower() is two characters
    redacted, counts = redact(text, "python")
    assert counts == {"password_assignment": 1} and redacted.startswith("İ" * 5) and "<PASSWORD>" in redacted
