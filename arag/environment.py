"""The environment variables that keep the app offline and quiet, defined once.

Hugging Face, tokenizers, Chroma and the OpenMP runtime read these variables, most of them
when they are first imported, so entry points (the CLI, the web app, benchmarks) apply them
before importing anything heavy, and code that loads a model applies them again in case it
is used as a library. A value the user has set always wins: they are defaults, never
overrides.

Example:
    >>> from arag.environment import OFFLINE_ENVIRONMENT, apply_offline_environment, offline_environment
    >>> env = {"HF_HUB_OFFLINE": "0"}
    >>> apply_offline_environment(env)
    >>> env["HF_HUB_OFFLINE"], env["TOKENIZERS_PARALLELISM"], env["GOMP_SPINCOUNT"]
    ('0', 'false', '500')
    >>> active = {"OMP_WAIT_POLICY": "ACTIVE"}
    >>> apply_offline_environment(active)
    >>> "GOMP_SPINCOUNT" in active
    False
    >>> child = offline_environment({"PATH": "/usr/bin"}, PYTHONUNBUFFERED="1")
    >>> sorted(child) == sorted([*OFFLINE_ENVIRONMENT, "PATH", "PYTHONUNBUFFERED"])
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

#: Defaults for the variables below; each says why it is set.
OFFLINE_ENVIRONMENT: Mapping[str, str] = {
    # Every model is a local directory or a packaged file: a Hub lookup could only stall or leak.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # The tokenizers' thread pool warns (and can deadlock) once the process forks a child.
    "TOKENIZERS_PARALLELISM": "false",
    # Transformers' info and warning lines would interleave with the command's own output.
    "TRANSFORMERS_VERBOSITY": "error",
    # Chroma's usage telemetry is a network call.
    "ANONYMIZED_TELEMETRY": "False",
    # llama.cpp's and torch's OpenMP threads spin-wait by default, which starves the other on 2 cores.
    "OMP_WAIT_POLICY": "PASSIVE",
    # ...but a thread that sleeps at once wakes too late for a generated token's many short steps: a
    # brief spin first generates 1.7 times as fast on an idle machine and 0.89 times beside a busy
    # process (bench/omp_wait.py, 2 cores; without end, 1.9 and 0.74).
    "GOMP_SPINCOUNT": "500",
}


def apply_offline_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Fill in the defaults of :data:`OFFLINE_ENVIRONMENT` that ``environ`` (``os.environ``) lacks."""
    target = os.environ if environ is None else environ
    for key, value in OFFLINE_ENVIRONMENT.items():
        if key == "GOMP_SPINCOUNT" and target.get("OMP_WAIT_POLICY", "PASSIVE").upper() != "PASSIVE":
            continue  # a wait policy of the user's own: its spin count is libgomp's for that policy
        target.setdefault(key, value)


def offline_environment(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A child process's environment: ``base`` (``os.environ``) with the defaults filled in.

    ``extra`` values are set as given, over ``base``: they are what the caller needs the child
    to have (e.g. ``PYTHONUNBUFFERED="1"``), not defaults.
    """
    env = dict(os.environ if base is None else base)
    apply_offline_environment(env)
    env.update(extra)
    return env


__all__ = ["OFFLINE_ENVIRONMENT", "apply_offline_environment", "offline_environment"]
