#!/usr/bin/env bash
# Installs Debian packages whose files tests/test_syntax.py parses as real Go, Java and TypeScript
# sources (Python, JavaScript and C/C++ come with the project's own site-packages):
#   golang-github-pkg-errors-dev  Go sources under /usr/share/gocode
#   node-clipboard                TypeScript declarations and tests under /usr/share/nodejs
#   openjdk-17-source             the JDK's src.zip, only when no JDK src.zip is on the machine
# Exits 0 when apt is not available or not permitted; the tests then fail naming what is missing.
set -u
PACKAGES=(golang-github-pkg-errors-dev node-clipboard)
if ! ls /usr/lib/jvm/*/lib/src.zip >/dev/null 2>&1 || ! unzip -l "$(ls /usr/lib/jvm/*/lib/src.zip | head -1)" >/dev/null 2>&1; then
    PACKAGES+=(openjdk-17-source)
fi
# shellcheck source=apt-packages.sh
. "$(dirname "$0")/apt-packages.sh"
apt_packages "syntax samples" optional "tests/test_syntax.py will name what is missing" "${PACKAGES[@]}"
