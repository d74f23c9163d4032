"""A scripted Ollama on ``127.0.0.1:PORT`` for agent objectives, run as a process.

    python tests/systemd/fake_agent_model.py PORT

The systemd end-to-end test starts it inside the container's network
namespace (``nsenter --net``), where the shipped config's ``LOCAL_QUALITY``
tier (the ``plan`` and ``agent`` actions' tier) expects Ollama on port 11434.
It answers a plan request with a one-step plan; for an objective whose input
holds ``RUN<command>`` it answers the first step with
``{"tool": "shell", "args": {"command": command}}`` and every later step with
``{"done": "ran: <the step line>"}``.  Prints ``ready`` once listening; stops
on SIGTERM.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes import Answer  # noqa: E402
from tests.fakes.ollama_server import FakeOllama  # noqa: E402


class AgentModel(FakeOllama):
    """FakeOllama answering each request from the objective in its prompt."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def handle(self, req):
        self._local.req = req
        return super().handle(req)

    def next_reply(self):
        prompt = json.dumps(self._local.req.json)
        tail = prompt.rsplit("Objective:", 1)[-1]     # the few-shot examples come before it
        wanted = re.search(r"RUN<([^>]*)>", tail)
        if "Next step:" not in tail:                         # the planner (actions.plan) asks first
            text = json.dumps(["run the command"])
        elif "Steps so far: none" in tail and wanted:
            text = json.dumps({"tool": "shell", "args": {"command": wanted.group(1)}})
        else:
            step = tail.split("Steps so far:", 1)[-1][:200]
            text = json.dumps({"done": f"ran: {step}"})
        return Answer(text, logprobs=[-0.001] * 4)


def main() -> None:
    fake = AgentModel().start(int(sys.argv[1]))
    signal.signal(signal.SIGTERM, lambda *_: (fake.stop(), sys.exit(0)))
    print("ready", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
