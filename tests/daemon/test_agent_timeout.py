"""An unattended park times out to a deny: its own daemon (approval_timeout_s = 1)
on a real redis-server, the model being the loopback Anthropic fake.  Helpers
come from test_agent_governor.py (this file must not share a Redis with that
module's daemon, hence its own module)."""

from __future__ import annotations

import redis

from tests.daemon.helpers import wait_final
from tests.daemon.test_agent_governor import PerObjectiveModel, Swarm, done, step


def test_unattended_park_times_out_to_deny(redis_server, tmp_path, capsys):
    redis.Redis.from_url(redis_server).flushall()
    with PerObjectiveModel() as model:
        model.script("case-timeout", step("shell", command="git push"), done("pushed"))
        s = Swarm(tmp_path, redis_server, model, approval_timeout_s=1)
        try:
            s.submit(capsys, "agent-timeout", "case-timeout: publish")
            rec = wait_final(s.db, ["agent-timeout"])["agent-timeout"]
            assert rec["state"] == "failed"
            assert rec["reason"].startswith("denied: approval.timeout no decision within "
                                            "governor.approval_timeout_s=1s")
            rows = [(r["decision"], r["rule"]) for r in reversed(s.audit(capsys, "agent-timeout"))]
            assert rows == [("ask", "git-network"), ("deny", "approval.timeout")]
        finally:
            s.stop()
    log = (tmp_path / "data" / "daemon_hybrid.log").read_text()
    assert "objective agent-timeout approval timed out" in log
