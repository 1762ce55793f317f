#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver, which tests/test_ui_browser.py
# drives through selenium (the Dagster and MLflow UIs in a real browser). Called by `make test`.
# Unlike the web docs this is not optional for the test suite: when it cannot install, it says why
# and exits 1, so a missing browser is a setup error rather than a skipped test.
set -u
PACKAGES=(chromium chromium-driver)

# shellcheck source=apt-packages.sh
. "$(dirname "$0")/apt-packages.sh"
apt_packages browser required "install chromium and chromium-driver yourself (the UI browser test needs them)" "${PACKAGES[@]}"
