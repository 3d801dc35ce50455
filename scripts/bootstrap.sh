#!/usr/bin/env bash
# Creates .venv from a lock file (what CI and a fresh machine get) and installs avctl into it.
#   bootstrap.sh [dev]    avctl and its developer tools (requirements.lock): ./scripts/test, CI
#   bootstrap.sh runtime  avctl's own dependencies only (requirements-runtime.lock): ./scripts/demo
# A dev install covers the runtime; a runtime .venv gets the dev tools added when asked for them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
KIND=${1:-dev}
case "$KIND" in
  dev) LOCK=requirements.lock ;;
  runtime) LOCK=requirements-runtime.lock ;;
  *) echo "usage: scripts/bootstrap.sh [dev|runtime]" >&2; exit 2 ;;
esac
fresh() {  # the stamp of a finished install of $1, newer than everything it was made from
  [ -f ".venv/.installed-$1" ] && [ ! "$LOCK" -nt ".venv/.installed-$1" ] \
    && [ ! pyproject.toml -nt ".venv/.installed-$1" ] && [ -x .venv/bin/python ]
}
if fresh "$KIND" || { [ "$KIND" = runtime ] && LOCK=requirements.lock fresh dev; }; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's output goes to a log (shown in full if it fails): a first run says one line, not hundreds
echo "setting up .venv from $LOCK (first run only, about a minute; pip's log: .venv/pip.log)" >&2
if ! { .venv/bin/python -m pip install --disable-pip-version-check -r "$LOCK" \
       && .venv/bin/python -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e .; } \
     > .venv/pip.log 2>&1; then
  cat .venv/pip.log >&2
  echo "scripts/bootstrap.sh: installing from $LOCK failed (pip's output above, also in .venv/pip.log)" >&2
  exit 1
fi
touch ".venv/.installed-$KIND"
