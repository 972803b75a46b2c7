import sys

import pytest

from deep_perception.citygml.memory import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_sets_glibc_thresholds_once():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
