"""The one error base of swarmd and the exit code each kind of error maps to.

Every exception swarmd defines derives from :class:`SwarmdError` through one of the categories
below; ``exit_code`` is what ``swarmctl`` and ``swarmd`` exit with when such an error reaches
them (:func:`exit_code_for`; the message is printed, no traceback).  The rule, the same for
every command, is :data:`EXIT_RULE`: 0 ok; 1 no accepted answer (:data:`EXIT_UNRESOLVED`, the
base default); 2 bad input the user must fix, the message saying where and why
(:class:`BadInput`); 3 the daemon or its Redis unreachable (:class:`Unreachable`).

``class ConfigError(BadInput, ValueError)`` keeps ``except ValueError`` callers working.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNRESOLVED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3

#: The rule above in the words of ``swarmctl --help`` and ``swarmd --help`` (one rule for every command).
EXIT_RULE = """\
exit codes (the same rule for every command):
  0  ok
  1  no accepted answer: an input `ask` routed, or an objective `submit --wait` waited for or
     `show` showed, ended unresolved or failed, or the wait ended (--timeout, awaiting
     approval) before it finished
  2  bad input or usage: the message says where and why
  3  the daemon or its Redis cannot be reached (`status`: the daemon is not running)"""


class SwarmdError(Exception):
    """Base of every swarmd exception.  ``exit_code``: see the module docstring;
    ``label``: how the command line introduces the message (``"bad input: ..."``)."""

    exit_code: int = EXIT_UNRESOLVED
    label: str = "error"


class BadInput(SwarmdError):
    """Input the user must fix; the message says what and where (exit 2)."""

    exit_code = EXIT_BAD_INPUT
    label = "bad input"


class Unreachable(SwarmdError):
    """The daemon or its Redis cannot be reached (exit 3)."""

    exit_code = EXIT_UNREACHABLE
    label = "unreachable"


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for ``exc``: its ``exit_code`` when it is a
    :class:`SwarmdError`, 130 for ``KeyboardInterrupt``; raises ``TypeError``
    for anything else (a bug, which should surface with its traceback)."""
    if isinstance(exc, SwarmdError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    raise TypeError(f"no exit code for {type(exc).__name__}: not a SwarmdError") from exc
