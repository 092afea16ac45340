#!/usr/bin/env bash
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Create (or update) the project's two Python environments:
#   .venv      Python 3.12: the package with LeRobot 0.6.1, torch, rosbags, OpenCV, test tools
#   .venv-sim  Python 3.11: gym-aloha on MuJoCo 2.3.7 (numpy<2), rosbags, rclpy
# Both get the ROS 2 Kilted wheels from PyPI unless SNAPFLOW_USE_SYSTEM_ROS=1 (a machine with a
# sourced ROS 2 install, whose rclpy is then used through --system-site-packages).
# Reruns are cheap: an environment is only reinstalled when setup.py changed.
#
# Usage: scripts/setup_env.sh [policy|sim|all]   (default: all)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
WHAT="${1:-all}"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Find an interpreter of the wanted minor version: an explicit override, PATH, pyenv, /usr/bin.
find_python() {
    local minor="$1" override="$2" candidate
    local candidates=()
    [ -n "$override" ] && candidates+=("$override")
    candidates+=("python${minor}")
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in "$(pyenv root)"/versions/${minor}.*/bin/python${minor}; do
            candidates+=("$candidate")
        done
    fi
    candidates+=("/usr/bin/python${minor}" "/usr/bin/python3" "python3")
    for candidate in "${candidates[@]}"; do
        if command -v "$candidate" >/dev/null 2>&1 || [ -x "$candidate" ]; then
            if "$candidate" -c "import sys; sys.exit(0 if sys.version_info[:2] == tuple(map(int, '${minor}'.split('.'))) else 1)" 2>/dev/null; then
                command -v "$candidate" 2>/dev/null || echo "$candidate"
                return 0
            fi
        fi
    done
    return 1
}

# Rendering libraries MuJoCo needs for headless EGL rendering (Debian / Ubuntu package names).
ensure_render_libs() {
    if ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' && ldconfig -p 2>/dev/null | grep -q 'libGLESv2.so.2'; then
        return 0
    fi
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        log "installing EGL rendering libraries (libegl1 libgles2)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgles2 >/dev/null
    else
        log "WARNING: libEGL / libGLESv2 not found; install libegl1 and libgles2 for simulator rendering"
    fi
}

ROS_EXTRA="ros,"
SITE_FLAG=()
if [ "${SNAPFLOW_USE_SYSTEM_ROS:-0}" = "1" ]; then
    ROS_EXTRA=""
    SITE_FLAG=(--system-site-packages)
fi

# make_env DIR PYTHON EXTRAS: create DIR with PYTHON and install the package with EXTRAS.
make_env() {
    local dir="$1" python="$2" extras="$3"
    local stamp="$dir/.snapflow-setup-stamp"
    local want
    want="$(cat setup.py | sha256sum | cut -c1-16)-${extras}"
    if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "$dir is up to date"
        return 0
    fi
    if [ ! -x "$dir/bin/python" ]; then
        log "creating $dir with $("$python" --version 2>&1) ($python)"
        "$python" -m venv "${SITE_FLAG[@]}" "$dir"
    fi
    "$dir/bin/python" -m pip install -q --upgrade pip
    log "installing snapflow_ros[$extras] into $dir (first time: a few minutes)"
    "$dir/bin/python" -m pip install -q --progress-bar off -e ".[${extras}]"
    echo "$want" > "$stamp"
}

if [ "$WHAT" = "policy" ] || [ "$WHAT" = "all" ]; then
    PY312="$(find_python 3.12 "${SNAPFLOW_PYTHON312:-}")" || die "Python 3.12 not found. The policy environment needs Python 3.12 (the Python of ROS 2 Jazzy/Kilted on Ubuntu 24.04). Install it (apt install python3.12 python3.12-venv, or pyenv install 3.12) or point SNAPFLOW_PYTHON312 at it."
    make_env "$ROOT/.venv" "$PY312" "policy,onnx,openvino,${ROS_EXTRA}test"
fi
if [ "$WHAT" = "sim" ] || [ "$WHAT" = "all" ]; then
    PY311="$(find_python 3.11 "${SNAPFLOW_PYTHON311:-}")" || die "Python 3.11 not found. The simulator environment needs Python 3.11 (MuJoCo 2.3.7 has no 3.12 build). Install it or point SNAPFLOW_PYTHON311 at it."
    ensure_render_libs
    make_env "$ROOT/.venv-sim" "$PY311" "sim,${ROS_EXTRA}test"
fi
log "done"
