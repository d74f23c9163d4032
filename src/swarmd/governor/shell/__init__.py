"""Shell command lines: parsing (bashlex) and judging every simple command.

The package: :mod:`.ir` (words, commands, a parsed line), :mod:`.parse` (bashlex and
the walker) and :mod:`.fastlex` (the bashlex-free lexer it is fuzzed against), the
program tables one module per family (:mod:`.builtins` shell builtins and wrappers,
:mod:`.text` text tools with their option tables, :mod:`.git`, :mod:`.archivers`,
:mod:`.interpreters`, :mod:`.network`; :mod:`.checks` maps program -> check), and
:mod:`.judge` (judging a parsed line; :func:`judge_command` is the entry point).

Parsing (:func:`parse_command`, cached) turns a command line into a flat tuple of
:class:`Simple` commands — every command of every pipeline, ``;``/``&&``/``||``
chain, subshell, ``{ }`` group, loop body and command/process substitution —
plus structural findings. A line made only of ``[A-Za-z0-9_./:,+@%^=-]`` words
separated by blanks (no quotes, no shell metacharacters, first word not a
reserved word or assignment) is split on blanks without bashlex: for that
alphabet bash's own word splitting is exactly blank splitting, and the tests
check the two agree on the whole corpus.

Bashlex cannot parse some of what bash accepts (quoted here-document
delimiters, ``$((..))``, ``&&`` inside ``$(..)``): :func:`_prepare` rewrites
those without moving any position before bashlex sees the line.

Every command runs inside the bubblewrap sandbox (``sandbox.py``): the
judge's job is intent. It allows ordinary development (builds, tests,
workspace scripts, ``sed -i``, local git, ``find -exec`` and ``xargs`` with
judged commands, loops, here-documents, arithmetic), denies clear attacks even
where the sandbox would contain them (so that the audit log shows them), and
asks for what leaves the workspace. Judging (:func:`judge_command`) gives the
strictest decision over all parts. Built-in rule ids (code, not policy; they
cannot be switched off by a policy):

deny: ``shell.parse-error``, ``shell.unsupported-syntax`` (``(( ))``, ``case``,
``coproc``...), ``shell.control-characters``, ``shell.too-long``, ``shell.empty``,
``shell.function-definition`` (fork bombs), ``shell.dynamic-command``
(variable, substitution, glob or empty word in command position),
``shell.ifs`` (``$IFS``), ``shell.ansi-quoting`` (``$'\\x..'``),
``shell.brace-expansion``, ``shell.heredoc-expansion`` (``$(..)`` in an
unquoted here-document), ``shell.nested-expansion`` (``${x:-$(..)}``,
``${x@P}``), ``shell.indirect-expansion`` (``${!x}``), ``shell.arithmetic-eval``
(subscripts and arithmetic bash evaluates: ``test -v 'a[$(..)]'``,
``$((x))``, ``let``), ``shell.dangerous-assignment`` (``PATH=``,
``printf -v PATH``, ``export LD_PRELOAD=``, ``read CDPATH``...),
``shell.shell-builtin`` (``eval``, ``source``, ``exec``, ``alias``, ``trap``,
``declare -n``...), ``shell.privilege-escalation`` (``sudo``, ``su``, ``doas``,
``chroot``...), ``shell.wrapper-exec`` (``script``, ``parallel``, ``busybox``,
``toybox``, ``watch``, ``strace``...: they run command lines the judge cannot
see), ``shell.interpreter-inline-code`` (``sh -c``, ``python -c``,
``ts-node -e``...), ``shell.interpreter-stdin`` (an interpreter with no script
file: ``base64 -d | sh``), ``shell.gtfobins`` (options/scripts of otherwise
harmless programs that run commands or write elsewhere: ``awk system()``,
``sed e``, ``tar --checkpoint-action``, ``git -c``, ``git --git-dir``,
``git config include.path``, ``rg --pre``, ``chmod u+s``...),
``shell.download-exec``, ``shell.exfiltration``, ``shell.generated-script``
(line-level intent, :func:`_line_intent`), ``shell.mass-deletion``
(``rm -r`` of the workspace, ``*`` or ``.git``), ``shell.network-redirect``
(``curl --resolve``, proxies, ``wget -e``), ``shell.dev-tcp``,
``shell.file-url``, ``url.*`` (address arguments the URL rules refuse),
``shell.path-executable`` (a program outside the system bin dirs).

ask (floor): ``shell.background`` (``&``), ``shell.endless-loop``
(``while true``), ``shell.find-delete``, ``shell.redirect-only``,
``shell.too-many-matches``, ``shell.writes-file``, ``shell.sed-script``,
``shell.awk-program-file``. allow: ``shell.assignment``, ``shell.wrapper``
(transparent wrappers such as ``env``, ``xargs``, ``timeout``: the wrapped
command is judged as a command of its own), ``shell.workspace-program``.

Then per simple command: path operands (``files.*``, see ``paths.py``; words
computed at run time are left to the sandbox), redirect targets (judged as
writes, reads for ``<``) and policy ``rules`` (deny > ask > allow; none
matching -> ``default.shell`` ask). Options are read with per-program tables
(:data:`OPTION_TABLES`: clustered, glued and abbreviated forms) so that a file
is never taken for a pattern.
"""

from __future__ import annotations

from .fastlex import fast_parse
from .ir import Parsed, Redirect, Simple, Word
from .judge import HARMLESS, harmless, judge_command
from .parse import bashlex_parse, parse_command
from .text import OPTION_TABLES, OptionTable

__all__ = ["HARMLESS", "OPTION_TABLES", "OptionTable", "Parsed", "Redirect", "Simple", "Word", "bashlex_parse",
           "fast_parse", "harmless", "judge_command", "parse_command"]
