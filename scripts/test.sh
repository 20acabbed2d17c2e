#!/usr/bin/env bash
# Run every check edgeagent has: set-up, lint, format, types, the test suite.
#
#   bash scripts/test.sh              # everything (this is what CI runs)
#   bash scripts/test.sh -k pki -x    # extra arguments go to pytest
#
# Every step runs even when an earlier one failed, so one run shows all
# problems; the exit status is non-zero if any step failed. pytest finding
# no tests at all (its exit status 5) counts as a failure.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGEAGENT_VENV:-$repo/.venv}"
cd "$repo"

bash scripts/setup.sh || { echo "test.sh: setup failed" >&2; exit 1; }

export PATH="$venv/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

failed=()
step() {
    local name="$1"
    shift
    printf '\n==> %s: %s\n' "$name" "$*"
    "$@"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        [ "$name" = pytest ] && [ "$rc" -eq 5 ] && echo "test.sh: pytest collected no tests" >&2
        failed+=("$name (exit $rc)")
    fi
}

step ruff-check ruff check .
step ruff-format ruff format --check .
step mypy mypy
step pytest python -m pytest "$@"

echo
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "all checks passed"
