#!/usr/bin/env bash
# The one way the project's setup scripts install Debian packages (sourced, not run):
#   apt_packages LABEL required|optional FALLBACK PACKAGE...
# Installs the missing PACKAGEs with apt-get (as root, or through password-less sudo). LABEL starts
# every line it prints. `optional`: any obstacle prints "LABEL: ...; FALLBACK" and returns 0, so a
# caller such as `make demo` never fails because of it. `required`: the same obstacle goes to stderr
# and returns 1, so a missing package is a setup error rather than a skipped test.
apt_packages() {
    local label=$1 mode=$2 fallback=$3
    shift 3
    local packages=("$@") missing=() package
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "$label: ${packages[*]} already installed"
        return 0
    fi
    _apt_give_up() {
        if [ "$mode" = required ]; then
            echo "$label: $1; $fallback" >&2
            return 1
        fi
        echo "$label: $1; $fallback"
        return 0
    }
    command -v apt-get >/dev/null 2>&1 || { _apt_give_up "no apt-get here (missing ${missing[*]})"; return; }
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            _apt_give_up "not root and no password-less sudo (missing ${missing[*]})"
            return
        fi
    fi
    echo "$label: installing ${missing[*]}"
    $sudo apt-get update -qq || { _apt_give_up "apt-get update failed"; return; }
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || { _apt_give_up "apt-get install ${missing[*]} failed"; return; }
    echo "$label: installed ${missing[*]}"
}
