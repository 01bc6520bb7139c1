#!/bin/sh
# README command 1: set up this machine and run the main job on embedded defaults:
# `builder vm ceph-training`, published to ./artifacts. Extra arguments go to `builder vm`.
set -eu
cd "$(dirname "$0")/.."
ci/setup.sh
[ "$#" -gt 0 ] || set -- ceph-training
exec .venv/bin/builder vm "$@"
