#!/usr/bin/env bash
# Idempotent, non-interactive set-up on Debian 12: ROS 1 from Debian, the venv, the catkin build.
# A second run only checks and takes seconds. Usage: scripts/setup.sh  (root or sudo available)
set -eo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
WS="$REPO/build/catkin_ws"
say() { printf '[setup] %s\n' "$*"; }

APT_PACKAGES=(python3-rospy python3-roslaunch python3-rostest python3-rostopic python3-rosnode
  python3-rosbag python3-rosmsg rosbash python3-std-msgs python3-sensor-msgs python3-geometry-msgs
  python3-diagnostic-msgs ros-std-msgs ros-sensor-msgs ros-geometry-msgs ros-diagnostic-msgs
  libstd-msgs-dev libsensor-msgs-dev libgeometry-msgs-dev libdiagnostic-msgs-dev catkin catkin-tools
  ros-message-generation ros-message-runtime librostest-dev python3-venv cmake g++ libusb-1.0-0)

# 1. Debian's ROS 1 set (only what is missing).
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian ROS packages present"
fi

# 2. The venv: Debian's interpreter (the one ROS is built for), seeing Debian's ROS modules.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; assert sys.base_prefix == "/usr"' 2>/dev/null; then
  say "creating $VENV from /usr/bin/python3 --system-site-packages"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
REQ_STAMP="$VENV/.requirements.sha256"
REQ_SUM="$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$REQ_SUM" ]; then
  say "installing pinned Python requirements (first time: a few minutes)"
  rm -f "$REQ_STAMP"
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO/requirements.txt" \
       > "$VENV/pip-install.log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$VENV/pip-install.log" | tail -n 40
    echo "[setup] pip install failed (log: $VENV/pip-install.log)" >&2
    exit 1
  fi
  echo "$REQ_SUM" > "$REQ_STAMP"
else
  say "Python requirements up to date"
fi

# The package itself, editable and without dependencies: gives the console scripts citygml2pc and
# dp-train in the venv (catkin_python_setup ignores entry points).
if [ ! -x "$VENV/bin/citygml2pc" ] || [ ! -x "$VENV/bin/dp-train" ] || [ "$REPO/setup.py" -nt "$VENV/bin/dp-train" ]; then
  say "installing deep_perception (editable) for its console scripts"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$REPO" \
    > "$VENV/pip-editable.log" 2>&1 || { tail -n 20 "$VENV/pip-editable.log"; exit 1; }
fi

# 3. ROS modules must be Debian's, never PyPI look-alikes (PyPI 'genpy' is another project; empy>=4
#    breaks message generation).
"$VENV/bin/python" - <<'PY'
import importlib, sys
bad = []
for name in ("rospy", "genpy", "catkin_pkg", "em", "rosgraph", "roslaunch"):
    mod = importlib.import_module(name)
    if not mod.__file__.startswith("/usr/lib/python3/dist-packages/"):
        bad.append(f"{name} -> {mod.__file__}")
if bad:
    sys.exit("[setup] ROS modules shadowed by non-Debian copies: " + "; ".join(bad))
print("[setup] rospy/genpy/catkin_pkg/em resolve to Debian's copies")
PY

# 4. The catkin workspace, outside the source tree, with the venv interpreter pinned.
# The source space is the repo itself (no symlink back into the repo: roslib and rosrun walk the
# package folder following links, and a link to an ancestor makes them loop). rosrun skips
# <pkg>/build/, so the workspace lives there.
mkdir -p "$WS"
cd "$WS"
unset PYTHONPATH
if [ ! -f "$WS/.catkin_tools/profiles/default/config.yaml" ] || \
   ! grep -q -- "-DPYTHON_EXECUTABLE=$VENV/bin/python3" "$WS/.catkin_tools/profiles/default/config.yaml" || \
   ! grep -q "source_space: $REPO\$" "$WS/.catkin_tools/profiles/default/config.yaml"; then
  say "configuring catkin workspace $WS"
  catkin init >/dev/null
  catkin config --no-extend --source-space "$REPO" --cmake-args -DPYTHON_EXECUTABLE="$VENV/bin/python3" \
    -DCMAKE_BUILD_TYPE=Release -DCATKIN_ENABLE_TESTING=ON >/dev/null
fi
say "catkin build"
catkin build --no-status --no-notify deep_perception > "$WS/build.log" 2>&1 || { tail -n 40 "$WS/build.log"; exit 1; }
grep -E "^\[build\] (Summary|Runtime)" "$WS/build.log" | tail -n 1
say "done: source scripts/env.sh to use it"
