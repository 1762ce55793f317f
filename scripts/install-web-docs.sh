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

# shellcheck source=apt-packages.sh
. "$(dirname "$0")/apt-packages.sh"
apt_packages "web docs" optional "the demo uses the committed sample (recipes/data/web_sample)" "${PACKAGES[@]}"
