#!/usr/bin/env bash
# Installs the Debian documentation packages the demo web pool is built from (see quality/webpool.py).
# Optional: without them the demo reads the committed sample in recipes/data/web_sample/.
# Exits 0 when apt is not available or not permitted, so `make demo` never fails because of it.
#
# Programming documentation (the code pages): python3.11-doc, debian-reference-en, maint-guide.
# The background, pages for people who use software rather than write it: an office suite's help
# (libreoffice-help-en-us, ~2,500 pages), an accounting program's guide and help in five languages
# (gnucash-docs), Debian's handbook, FAQ, project history, developer's reference and security manual.
set -u
PACKAGES=(
    python3.11-doc debian-handbook debian-reference-en maint-guide
    libreoffice-help-en-us gnucash-docs debian-faq debian-history developers-reference harden-doc
)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "web docs: ${PACKAGES[*]} already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "web docs: no apt-get here; the demo uses the committed sample (recipes/data/web_sample)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "web docs: not root and no password-less sudo; the demo uses the committed sample"
        exit 0
    fi
fi
echo "web docs: installing ${missing[*]}"
if ! $SUDO apt-get update -qq; then
    echo "web docs: apt-get update failed; the demo uses the committed sample"
    exit 0
fi
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    echo "web docs: apt-get install failed; the demo uses the committed sample"
    exit 0
fi
echo "web docs: installed ${missing[*]}"
