#!/usr/bin/env bash
# All tests: set-up (idempotent), then pytest (library, no ROS master), then every rostest launch file
# (real master, real topics). Exits non-zero if anything fails. Extra args go to pytest.
#   DP_SLOW=1 scripts/test.sh     also runs the slow tests (full NRW conversion, long trainings)
set -eo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
cd "$REPO"
export MPLBACKEND=Agg PYTHONUNBUFFERED=1

status=0
echo "== pytest"
python -m pytest "$@" || status=$?

echo "== rostest"
rostest_failed=()
for t in test/*.test; do
  [ -e "$t" ] || continue
  name="$(basename "$t")"
  echo "-- rostest deep_perception $name"
  # Not --text: only the XML mode turns a failing test inside the launch file into a non-zero exit.
  if ! timeout 600 rostest deep_perception "$name"; then
    rostest_failed+=("$name")
    find "${ROS_HOME:-$HOME/.ros}/test_results/deep_perception" -name "*${name%.test}*.xml" -newer "$t" \
      -exec sh -c 'echo "--- $1"; cat "$1"' _ {} \; 2>/dev/null | head -c 20000 || true
  fi
done
n_ros=$(ls test/*.test 2>/dev/null | wc -l)
if [ ${#rostest_failed[@]} -gt 0 ]; then
  echo "rostest failed: ${rostest_failed[*]}"
  status=1
fi
echo "rostest: $((n_ros - ${#rostest_failed[@]})) passed, ${#rostest_failed[@]} failed"
exit $status
