#!/bin/sh
# Put builder and its test dependencies into .venv (reused when the runner keeps the checkout).
set -eu
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]'
