# Source this (bash): `source scripts/env.sh`. Sets up a shell for deep_perception and solves the
# ROS-vs-conda/pyenv trap: Debian's ROS 1 is built for /usr/bin/python3, while `python3` on PATH may
# be pyenv's or conda's. We leave conda, drop any inherited PYTHONPATH, source the catkin workspace
# (which rewrites PYTHONPATH to Debian's and our generated messages) and activate the venv made from
# /usr/bin/python3 --system-site-packages, so `python`, nodes and tests share one interpreter.
_dp_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${CONDA_PREFIX:-}" ] && command -v conda >/dev/null 2>&1; then
  conda deactivate >/dev/null 2>&1 || true
fi
unset PYTHONPATH PYTHONHOME
if [ ! -f "$_dp_repo/build/catkin_ws/devel/setup.bash" ]; then
  echo "deep_perception: workspace not built; run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
# ROS's setup files read unset variables: source them without `set -u`.
case $- in *u*) _dp_had_u=1; set +u;; *) _dp_had_u=0;; esac
source "$_dp_repo/build/catkin_ws/devel/setup.bash"
source "$_dp_repo/.venv/bin/activate"
[ "$_dp_had_u" = 1 ] && set -u
export DEEP_PERCEPTION_ROOT="$_dp_repo"
unset _dp_repo _dp_had_u
