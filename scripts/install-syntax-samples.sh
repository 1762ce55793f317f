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
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "syntax samples: ${PACKAGES[*]} already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "syntax samples: no apt-get here; missing ${missing[*]}"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "syntax samples: not root and no sudo; missing ${missing[*]}"
        exit 0
    fi
fi
$SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
    || echo "syntax samples: apt-get could not install ${missing[*]}"
exit 0
