"""Helpers for rostest scripts: wait for connections, collect messages, read diagnostics counters."""

import threading
import time

import rospy
from diagnostic_msgs.msg import DiagnosticArray


class Collector:
    """Subscribe and keep every message received on a topic."""

    def __init__(self, topic, msg_class):
        self.messages = []
        self._lock = threading.Lock()
        self.sub = rospy.Subscriber(topic, msg_class, self._cb, queue_size=100, buff_size=1 << 26)

    def _cb(self, msg):
        with self._lock:
            self.messages.append(msg)

    def wait_for(self, n, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline and not rospy.is_shutdown():
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.02)
        with self._lock:
            return list(self.messages)

    def clear(self):
        with self._lock:
            self.messages.clear()


def wait_for_subscribers(pub, n=1, timeout=20.0):
    deadline = time.time() + timeout
    while pub.get_num_connections() < n and time.time() < deadline:
        time.sleep(0.05)
    return pub.get_num_connections() >= n


class DiagnosticsWatcher:
    """Latest diagnostic key/values per status name (node name)."""

    def __init__(self):
        self.latest = {}
        self.sub = rospy.Subscriber("/diagnostics", DiagnosticArray, self._cb, queue_size=50)

    def _cb(self, msg):
        for st in msg.status:
            self.latest[st.name] = (st.level, st.message, {kv.key: kv.value for kv in st.values})

    def wait_value(self, node, key, predicate, timeout=15.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            entry = self.latest.get(node)
            if entry and key in entry[2] and predicate(int(float(entry[2][key]))):
                return entry
            time.sleep(0.05)
        return self.latest.get(node)
