"""The shipped allowlist names no host where anyone can publish (issue 21, deliverable 6).

A host where anyone can publish (code hosts, gists and raw user content, hosted docs built
from anyone's project, package registries, wikis, Q&A sites, pastebins, static-site hosts)
is a ready channel for payloads and for exfiltration through GET: such hosts must never be
``allow``; the shipped policy asks for them (``default.http_get``) or denies them."""

from __future__ import annotations

import pytest

#: one URL per kind of host where anyone can publish; the list is the threat model's,
#: not the policy's (a new allowlist entry of any of these kinds fails here)
PUBLISHING = [
    "https://github.com/someone/payload", "https://api.github.com/gists/1", "https://gist.github.com/someone/1",
    "https://gist.githubusercontent.com/someone/1/raw/x.sh", "https://raw.githubusercontent.com/someone/r/main/x.sh",
    "https://objects.githubusercontent.com/x", "https://someone.github.io/x", "https://gitlab.com/someone/r",
    "https://bitbucket.org/someone/r", "https://codeberg.org/someone/r", "https://anything.readthedocs.io/en/latest/",
    "https://readthedocs.org/projects/x", "https://docs.rs/anycrate", "https://pkg.go.dev/github.com/someone/x",
    "https://pypi.org/simple/x/", "https://files.pythonhosted.org/packages/x", "https://registry.npmjs.org/x",
    "https://www.npmjs.com/package/x", "https://crates.io/api/v1/crates/x", "https://huggingface.co/someone/x",
    "https://en.wikipedia.org/wiki/X", "https://stackoverflow.com/q/1", "https://unix.stackexchange.com/q/1",
    "https://pastebin.com/raw/x", "https://paste.ee/r/x", "https://x.netlify.app/", "https://x.vercel.app/",
    "https://x.pages.dev/", "https://x.herokuapp.com/", "https://medium.com/@x/y", "https://dev.to/x",
    "https://drive.google.com/uc?id=x", "https://docs.google.com/document/d/x", "https://www.dropbox.com/s/x",
    "https://x.blogspot.com/", "https://discuss.python.org/t/x", "https://wiki.python.org/moin/X",
]


@pytest.mark.parametrize("url", PUBLISHING)
def test_publishing_hosts_are_never_allowed(gov, url):
    d = gov.decide("http_get", {"url": url}, "/")
    assert d.decision != "allow", (url, d)


def test_single_publisher_documentation_is_allowed(gov):
    d = gov.decide("http_get", {"url": "https://docs.python.org/3/library/os.html"}, "/")
    assert (d.decision, d.rule) == ("allow", "http-allowlisted")
