#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver, which tests/test_ui_browser.py
# drives through selenium (the Dagster and MLflow UIs in a real browser). Called by `make test`.
# Unlike the web docs this is not optional for the test suite: when it cannot install, it says why
# and exits 1, so a missing browser is a setup error rather than a skipped test.
set -u
PACKAGES=(chromium chromium-driver)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "browser: ${PACKAGES[*]} already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: no apt-get here; install Chromium and chromedriver yourself (the UI browser test needs them)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "browser: not root and no password-less sudo; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
echo "browser: installing ${missing[*]}"
if ! $SUDO apt-get update -qq; then
    echo "browser: apt-get update failed" >&2
    exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    echo "browser: apt-get install ${missing[*]} failed" >&2
    exit 1
fi
echo "browser: installed ${missing[*]}"
