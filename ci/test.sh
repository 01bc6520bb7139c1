#!/bin/sh
# README command 2: set up this machine and run the whole test suite (unit, integration,
# and the end-to-end `builder vm` runs). Extra arguments go to pytest, e.g. `-m "not slow"`.
set -eu
cd "$(dirname "$0")/.."
ci/setup.sh
# gitlab-ci-local (npm) runs the project's own pipelines locally in the tests
GCL_VERSION=4.60.1  # 4.75 needs Node 22; this one runs on Node 20
if [ ! -x .tools/node_modules/.bin/gitlab-ci-local ]; then
  command -v npm >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm; }
  mkdir -p .tools
  npm install --prefix .tools --silent --no-audit --no-fund "gitlab-ci-local@$GCL_VERSION"
fi
# libvirtd without systemd, for the runner tests
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exit 5 means no test ran: that is a failure, not a pass
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$rc"
