#!/bin/sh
# README command 2: set up this machine and run the whole test suite (unit, integration,
# and the end-to-end `builder vm` runs). Extra arguments go to pytest, e.g. `-m "not slow"`.
set -eu
cd "$(dirname "$0")/.."
ci/setup.sh
# gitlab-ci-local (npm) runs the project's own pipelines locally in the tests. Its re2 dependency
# compiles for minutes, so the install is kept per version in the user's cache, like the stage cache.
GCL_VERSION=4.60.1  # 4.75 needs Node 22; this one runs on Node 20
GCL_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/builder-tools/gitlab-ci-local-$GCL_VERSION"
if [ ! -x "$GCL_DIR/node_modules/.bin/gitlab-ci-local" ]; then
  command -v npm >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm; }
  mkdir -p "$GCL_DIR.partial"
  npm install --prefix "$GCL_DIR.partial" --silent --no-audit --no-fund "gitlab-ci-local@$GCL_VERSION"
  rm -rf "$GCL_DIR" && mv "$GCL_DIR.partial" "$GCL_DIR"
fi
export GITLAB_CI_LOCAL="$GCL_DIR/node_modules/.bin/gitlab-ci-local"
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
