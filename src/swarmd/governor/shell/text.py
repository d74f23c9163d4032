"""Text and file tools: option tables with arity (grep, rg), pattern/option-value positions, awk and sed program checks, symlink-following options."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..paths import is_secret
from ..policy import Decision
from .ir import BUILTIN_URL_POLICY, verdict, gtfobins_deny


_GREP = frozenset({"grep", "egrep", "fgrep", "rg"})

_AWK = frozenset({"awk", "gawk", "mawk", "nawk"})

#: option -> how many following words are values that are not paths
_NOT_PATH_VALUES: dict[str, dict[str, int]] = {
    "grep": {o: 1 for o in ("-e", "--regexp", "-m", "--max-count", "-A", "-B", "-C", "--include", "--exclude",
                            "--exclude-dir", "--color", "--label", "--context", "--after-context",
                            "--before-context")},
    "rg": {o: 1 for o in ("-e", "--regexp", "-g", "--glob", "--iglob", "-t", "--type", "-T", "--type-not", "-m",
                          "--max-count", "-A", "-B", "-C", "-M", "-j", "-d", "--max-depth", "--type-add",
                          "--color", "--colors", "-r", "--replace")},
    "sed": {"-e": 1, "--expression": 1, "-l": 1},
    "awk": {"-F": 1, "-v": 1, "--field-separator": 1, "--assign": 1},
    "jq": {"--arg": 2, "--argjson": 2, "--indent": 1},
    "sort": {"-t": 1, "-k": 1, "-S": 1, "--field-separator": 1, "--key": 1, "--buffer-size": 1},
    "cut": {"-d": 1, "-f": 1, "-c": 1, "-b": 1},
    "head": {"-n": 1, "-c": 1}, "tail": {"-n": 1, "-c": 1},
    "column": {"-s": 1, "-t": 0, "-o": 1}, "paste": {"-d": 1}, "tr": {},
    "git": {"--format": 1, "--pretty": 1, "--author": 1, "--grep": 1, "-e": 1, "--since": 1, "--until": 1},
}

for _n in ("egrep", "fgrep"):
    _NOT_PATH_VALUES[_n] = _NOT_PATH_VALUES["grep"]

for _n in ("gawk", "mawk", "nawk"):
    _NOT_PATH_VALUES[_n] = _NOT_PATH_VALUES["awk"]

_PATTERN_GIVEN_BY = {"grep": ("-e", "--regexp", "-f", "--file"), "rg": ("-e", "--regexp", "-f", "--file"),
                     "sed": ("-e", "--expression", "-f", "--file"), "awk": ("-f", "--file", "-e", "--source"),
                     "jq": ("-f", "--from-file")}

_FIND_PATH_VALUES = ("-newer", "-anewer", "-cnewer", "-samefile", "-files0-from")

@dataclass(frozen=True, slots=True)
class OptionTable:
    """How a program reads its options: ``short``: short options that take a
    value (glued ``-efoo``, separate ``-e foo``, or last of a cluster
    ``-rie foo``); ``long``: long option -> ``"value"``, ``"pattern"``,
    ``"path"`` or ``""`` (no value), matched by unique prefix like getopt
    (``--reg`` is ``--regexp``); ``short_kind``: value kind of each short
    option (default ``"value"``); ``pattern_operand``: the first operand is a
    pattern unless a pattern option was given."""

    short: str
    long: dict[str, str]
    short_kind: dict[str, str]
    pattern_operand: bool = True

_GREP_TABLE = OptionTable(
    short="efmABCdDX", short_kind={"e": "pattern", "f": "path"},
    long={"regexp": "pattern", "file": "path", "max-count": "value", "after-context": "value",
          "before-context": "value", "context": "value", "directories": "value", "devices": "value",
          "include": "value", "exclude": "value", "exclude-from": "path", "exclude-dir": "value", "label": "value",
          "color": "", "colour": "", "binary-files": "value", "group-separator": "value", "recursive": "",
          "dereference-recursive": "", "ignore-case": "", "line-number": "", "files-with-matches": "",
          "count": "", "only-matching": "", "quiet": "", "silent": "", "invert-match": "", "word-regexp": "",
          "line-regexp": "", "extended-regexp": "", "fixed-strings": "", "basic-regexp": "", "perl-regexp": "",
          "no-filename": "", "with-filename": "", "null": "", "text": "", "no-messages": "",
          "files-without-match": "", "byte-offset": "", "initial-tab": "", "null-data": "", "help": "",
          "version": "", "no-ignore-case": "", "line-buffered": "", "max-depth": "value"})

_RG_TABLE = OptionTable(
    short="efgtTmABCMjdrEl", short_kind={"e": "pattern", "f": "path"},
    long={"regexp": "pattern", "file": "path", "glob": "value", "iglob": "value", "type": "value",
          "type-not": "value", "max-count": "value", "after-context": "value", "before-context": "value",
          "context": "value", "max-columns": "value", "threads": "value", "max-depth": "value", "replace": "value",
          "encoding": "value", "type-add": "value", "type-clear": "value", "colors": "value", "color": "value",
          "sort": "value", "sortr": "value", "pre-glob": "value", "ignore-file": "path", "max-filesize": "value",
          "path-separator": "value", "context-separator": "value", "field-match-separator": "value",
          "engine": "value", "dfa-size-limit": "value", "regex-size-limit": "value", "pre": "value",
          "follow": "", "hidden": "", "no-ignore": "", "ignore-case": "", "smart-case": "", "line-number": "",
          "files-with-matches": "", "count": "", "only-matching": "", "quiet": "", "invert-match": "",
          "word-regexp": "", "fixed-strings": "", "files": "", "json": "", "no-heading": "", "heading": "",
          "vimgrep": "", "multiline": "", "pcre2": "", "unrestricted": "", "help": "", "version": ""})

OPTION_TABLES: dict[str, OptionTable] = {"grep": _GREP_TABLE, "egrep": _GREP_TABLE, "fgrep": _GREP_TABLE,
                                         "rg": _RG_TABLE}

def _long_option(table: OptionTable, name: str) -> str | None:
    """The full long option ``name`` abbreviates (unique prefix), or None."""
    if name in table.long:
        return name
    hits = [k for k in table.long if k.startswith(name)]
    return hits[0] if len(hits) == 1 else None

def secret_filter(base: str, args: list[str]) -> Decision | None:
    """grep/rg ``--include``/``--glob`` patterns that select secret files by name."""
    if base not in OPTION_TABLES:
        return None
    for k, a in enumerate(args):
        opt, eq, val = a.partition("=")
        if not eq and k + 1 < len(args) and opt in ("--include", "-g", "--glob", "--iglob"):
            val = args[k + 1]
        elif not eq and opt.startswith("-g") and len(opt) > 2:
            val = opt[2:]
        elif not (eq and opt in ("--include", "--glob", "--iglob")):
            continue
        name = val.lstrip("!").replace("*", "x").replace("?", "x")
        if name and is_secret(BUILTIN_URL_POLICY, "/w/" + name.lstrip("/")):
            return verdict("deny", "files.secret", f"{base} {opt} {val!r} selects secret files")
    return None

def _take_value(skip: set[int], i: int, glued: bool, kind: str) -> int:
    """An option at ``i`` takes a value of ``kind``: glued to it, or the next
    word. Adds the value's index to ``skip`` unless it is a path (paths are
    judged); returns the index of the last word used."""
    if kind != "path":
        skip.add(i if glued else i + 1)
    return i if glued else i + 1

def _table_skip(table: OptionTable, args: list[str]) -> set[int]:
    """Indices of ``args`` that are patterns or option values other than paths
    under ``table`` (getopt rules: clusters, glued values, abbreviations, ``--``).
    An option the table does not know makes its glued text a path candidate
    (judged), never a skipped value."""
    skip: set[int] = set()
    pattern_given = False
    operands: list[int] = []
    i = 0
    end_of_options = False
    while i < len(args):
        a = args[i]
        if end_of_options or a == "-" or not a.startswith("-"):
            operands.append(i)
            i += 1
            continue
        if a == "--":
            end_of_options = True
            i += 1
            continue
        if a.startswith("--"):
            name, eq, _val = a[2:].partition("=")
            full = _long_option(table, name)
            kind = table.long.get(full, "") if full else ""
            if kind:
                pattern_given |= full in ("regexp", "file")
                i = _take_value(skip, i, bool(eq), kind)
            i += 1
            continue
        # a short cluster: the first option taking a value takes the rest of the word, or the next word
        j = 1
        while j < len(a):
            c = a[j]
            if c in table.short:
                pattern_given |= c in "ef"
                i = _take_value(skip, i, j + 1 < len(a), table.short_kind.get(c, "value"))
                break
            j += 1
        i += 1
    if table.pattern_operand and not pattern_given and operands:
        skip.add(operands[0])
    return skip

def not_path_indices(base: str, args: list[str]) -> set[int]:
    """Indices of arguments that are patterns/option values, never file names
    (grep/sed/awk/jq patterns, find expressions, ``-n 5``...)."""
    skip: set[int] = set()
    table = OPTION_TABLES.get(base)
    if table is not None:
        return _table_skip(table, args)
    if base == "find":
        in_expr = False
        for i, a in enumerate(args):
            if a.startswith(("-", "(", ")", "!")) and a != "-":
                in_expr = True
            if in_expr and not (i > 0 and args[i - 1].startswith(_FIND_PATH_VALUES)):
                skip.add(i)
        return skip
    values = _NOT_PATH_VALUES.get(base)
    if values is None:
        return skip
    family = "grep" if base in _GREP and base != "rg" else ("awk" if base in _AWK else base)
    pattern_given = any(a.split("=", 1)[0] in _PATTERN_GIVEN_BY.get(family, ()) for a in args)
    pattern_first = family in _PATTERN_GIVEN_BY and not pattern_given
    i = 0
    while i < len(args):
        a = args[i]
        opt = a.split("=", 1)[0]
        if opt in values and "=" not in a:
            skip.update(range(i + 1, i + 1 + values[opt]))
            i += 1 + values[opt]
            continue
        if opt in values:
            skip.add(i)
        elif a.startswith("-") and a != "-":
            pass  # other options: judged like any argument (e.g. git --output=FILE)
        elif pattern_first:
            skip.add(i)
            pattern_first = False
        i += 1
    return skip

_AWK_DENY = re.compile(r"system|getline|\||ENVIRON|PROCINFO|@|/inet|close\s*\(|fflush|ARGV|ARGC")

def check_awk(args: list[str]) -> Decision | None:
    """awk programs that run commands or read outside their input (``system``, ``getline``,
    ``|``, ``ENVIRON``, ``@load``, ``-l``...): ``shell.gtfobins`` deny or ask, else None."""
    for i, a in enumerate(args):
        if a in ("-l", "--load") or a.startswith("--load="):
            return gtfobins_deny("awk -l loads a shared library")
        if a in ("-f", "--file", "-i", "--include", "-E", "--exec") or a.startswith(("--file=", "--include=")):
            return verdict("ask", "shell.awk-program-file", "awk program from a file cannot be judged")
        if _AWK_DENY.search(a):
            return gtfobins_deny("awk program runs commands, reads commands' output or the environment")
        if re.search(r"\bprintf?\b[^;}]*>", a) and not (i > 0 and args[i - 1] in ("-F", "-v")):
            return verdict("ask", "shell.awk-redirect", "awk program may redirect output to a file")
    return None

_SED_SIMPLE = frozenset("pPdDnNgGhHxlz=qQF{}")

def _sed_script(script: str) -> Decision | None:
    """Judge a sed script: None if every command is known-harmless."""
    i, n = 0, len(script)

    def skip_regex(j: int, delim: str) -> int:
        while j < n and script[j] != delim:
            if script[j] == "\\":
                j += 1
            elif script[j] == "\n":
                return -1
            j += 1
        return j if j < n else -1

    while i < n:
        c = script[i]
        if c in " \t\n;":
            i += 1
            continue
        # addresses
        for _ in range(2):
            if i < n and (script[i].isdigit() or script[i] == "$"):
                while i < n and (script[i].isdigit() or script[i] in "$~+"):
                    i += 1
            elif i < n and script[i] in "/\\":
                delim = "/"
                if script[i] == "\\":
                    if i + 1 >= n:
                        return verdict("ask", "shell.sed-script", "sed script not understood")
                    delim = script[i + 1]
                    i += 1
                j = skip_regex(i + 1, delim)
                if j < 0:
                    return verdict("ask", "shell.sed-script", "sed script not understood")
                i = j + 1
                while i < n and script[i] in "IM":
                    i += 1
            if i < n and script[i] == ",":
                i += 1
                continue
            break
        while i < n and script[i] in " \t!":
            i += 1
        if i >= n:
            break
        c = script[i]
        if c in "ewWrR":
            return gtfobins_deny(f"sed command {c!r} executes commands or reads/writes files")
        if c in "sy":
            if i + 1 >= n or script[i + 1] in "\\\n":
                return verdict("ask", "shell.sed-script", "sed script not understood")
            delim = script[i + 1]
            j = skip_regex(i + 2, delim)
            j = skip_regex(j + 1, delim) if j >= 0 else -1
            if j < 0:
                return verdict("ask", "shell.sed-script", "sed script not understood")
            i = j + 1
            if c == "s":
                while i < n and script[i] in "gpiImM0123456789ew":
                    if script[i] in "ew":
                        return gtfobins_deny("sed s///e or s///w executes commands or writes files")
                    i += 1
            continue
        if c in _SED_SIMPLE:
            i += 1
            while i < n and script[i].isdigit():
                i += 1
            continue
        if c in "aic":
            j = script.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c in ":btT#":
            while i < n and script[i] not in ";\n":
                i += 1
            continue
        return verdict("ask", "shell.sed-script", f"sed command {c!r} not understood")
    return None

def check_sed(args: list[str]) -> Decision | None:
    """sed scripts with ``e``, ``w``, ``r``, ``W``, ``R`` or ``s///e|w``: deny; a script the small
    parser does not understand: ask (``shell.sed-script``); else None."""
    scripts: list[str] = []
    i = 0
    explicit = False
    operand_seen = False
    while i < len(args):
        a = args[i]
        if a in ("-e", "--expression") and i + 1 < len(args):
            scripts.append(args[i + 1])
            explicit = True
            i += 2
            continue
        if a.startswith("--expression="):
            scripts.append(a.split("=", 1)[1])
            explicit = True
        elif a in ("-f", "--file") or a.startswith("--file="):
            return verdict("ask", "shell.sed-script", "sed script from a file cannot be judged")
        elif a.startswith("-i") or a.startswith("--in-place") or (a.startswith("-") and not a.startswith("--")
                                                                    and "i" in a[1:]):
            pass  # sed -i: its operands are judged as writes (see edits_in_place)
        elif a.startswith("-") and a != "-":
            if a not in ("-n", "-E", "-r", "-s", "-u", "-z", "--posix", "--debug", "--sandbox", "--quiet",
                         "--silent", "--regexp-extended", "--null-data", "--separate", "--unbuffered", "-nE",
                         "-En", "-rn", "-nr", "--"):
                return verdict("ask", "shell.sed-option", f"sed option {a!r} not understood")
        elif not explicit and not operand_seen:
            scripts.append(a)
            operand_seen = True
        i += 1
    for s in scripts:
        d = _sed_script(s)
        if d is not None:
            return d
    return None

def check_uniq(args: list[str]) -> Decision | None:
    """``uniq IN OUT`` writes OUT: ask (``shell.writes-file``), else None."""
    operands = [a for a in args if not a.startswith("-") or a == "-"]
    if len(operands) > 1:
        return verdict("ask", "shell.writes-file", "uniq INPUT OUTPUT writes its second operand")
    return None

def check_date(args: list[str]) -> Decision | None:
    """``date -s`` sets the clock: deny (``shell.system-change``), else None."""
    if any(a.startswith(("-s", "--set")) for a in args):
        return verdict("deny", "shell.system-change", "date -s sets the system clock")
    return None

#: options that make a program follow symbolic links while it walks directories, per program
_FOLLOW_LINKS = {"grep": ("-R", "--dereference-recursive"), "egrep": ("-R",), "fgrep": ("-R",),
                 "rg": ("-L", "--follow"), "find": ("-L", "-follow", "-H"), "cp": ("-L", "--dereference"),
                 "tar": ("-h", "--dereference"), "du": ("-L", "--dereference"), "zip": ("-L",),
                 "rsync": ("-L", "--copy-links"), "chmod": ("-L",), "chown": ("-L",), "tree": ("-l",)}

def follows_links(base: str, args: list[str]) -> bool:
    """True when program ``base`` with ``args`` follows symbolic links out of where it is pointed
    (``grep -R``, ``rg -L``, ``cp -L``, ``find -L``, ``tar -h``...)."""
    opts = _FOLLOW_LINKS.get(base)
    if not opts:
        return False
    for a in args:
        if a in opts or (a.startswith("-") and not a.startswith("--") and len(a) > 2
                         and any(o[1] in a[1:] for o in opts if len(o) == 2 and o != "-H")):
            return True
    return False

def edits_in_place(base: str, args: list[str]) -> bool:
    """``sed -i``: its file operands are written."""
    return base in ("sed", "gsed") and any(a.startswith(("-i", "--in-place")) or (
        a.startswith("-") and not a.startswith("--") and "i" in a[1:]) for a in args)
