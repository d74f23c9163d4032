"""Every exception swarmd defines derives from ``swarmd.errors.SwarmdError``,
so one mapping turns any of them into an exit code (0 ok, 1 unresolved,
2 bad input, 3 unreachable)."""

from __future__ import annotations

import importlib
import inspect

from swarmd.errors import BadInput, SwarmdError, Unreachable
from tests.test_imports import source_modules


def _exception_classes() -> dict[str, type]:
    found = {}
    for name in source_modules():
        if name.rsplit(".", 1)[-1] == "__main__":          # importing it would run the command
            continue
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name:
                found[f"{name}.{attr}"] = obj
    return found


def test_every_swarmd_exception_derives_from_swarmd_error():
    classes = _exception_classes()
    assert "swarmd.config.ConfigError" in classes and "swarmd.jsonl.JsonlError" in classes   # the walk sees them
    assert [name for name, cls in classes.items() if not issubclass(cls, SwarmdError)] == []


def test_input_and_connection_errors_have_their_exit_codes():
    classes = _exception_classes()
    for name in ("swarmd.config.ConfigError", "swarmd.governor.policy.PolicyError", "swarmd.objectives.ObjectiveError",
                 "swarmd.costs.profile.ProfileError", "swarmd.router.router.RequestError",
                 "swarmd.agent.approvals.NotParked", "swarmd.jsonl.JsonlError"):
        assert issubclass(classes[name], BadInput) and classes[name].exit_code == 2, name
    assert issubclass(classes["swarmd.daemon.redis_server.RedisUnavailable"], Unreachable)
    assert classes["swarmd.daemon.redis_server.RedisUnavailable"].exit_code == 3
