"""What this machine's CPU offers, as Linux lists it in ``/proc/cpuinfo`` (nothing elsewhere).

Example:
    >>> from arag.cpu import cpu_flags
    >>> isinstance(cpu_flags("/nonexistent"), frozenset) and not cpu_flags("/nonexistent")
    True
"""

from __future__ import annotations


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first CPU ``cpuinfo`` lists; empty where it cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()
