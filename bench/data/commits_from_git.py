"""Build a labelled commit-message data set from a git repository's history.

    python bench/data/commits_from_git.py GIT_DIR OWNER/NAME -o bench/data/commits-NAME.jsonl [--max-chars 600]

Every non-merge commit whose subject follows Conventional Commits
(``type(scope)!: description`` with one of the ten types of
``examples/commits-commitizen.jsonl``) becomes one line in the same format as
that file: ``{"id", "repo", "sha", "text", "label", "scope", "breaking"}``,
newest first.  ``text`` is the message with the ``type(scope)!:`` prefix
removed and ``Signed-off-by:`` / ``Co-authored-by:`` trailers dropped, cut to
``--max-chars`` characters (600, as the commitizen file's longest text);
``label`` is the type its authors wrote.  Commits whose subject does not
follow the convention are skipped (counted on stderr).

Used for ``bench/data/commits-psr.jsonl``: python-semantic-release
(github.com/python-semantic-release/python-semantic-release, MIT licence),
another repository's commits, so that numbers fitted on commitizen's can be
reported on data of another distribution (house rule 5).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

TYPES = ("build", "chore", "ci", "docs", "feat", "fix", "perf", "refactor", "style", "test")
SUBJECT = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?: (?P<desc>.+)$")
TRAILER = re.compile(r"^(signed-off-by|co-authored-by):", re.I)


def parse(message: str) -> dict | None:
    """``{"text", "label", "scope", "breaking"}`` of one commit message, or ``None``
    when its subject is not a Conventional Commit of one of :data:`TYPES`."""
    subject, _, body = message.partition("\n")
    m = SUBJECT.match(subject.strip())
    if not m or m["type"] not in TYPES:
        return None
    body = "\n".join(line for line in body.strip("\n").splitlines() if not TRAILER.match(line.strip())).strip()
    text = m["desc"].strip() + (f"\n\n{body}" if body else "")
    return {"text": text, "label": m["type"], "scope": m["scope"] or "",
            "breaking": bool(m["bang"]) or "BREAKING CHANGE" in body}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("git_dir", help="a repository's git directory (a bare clone works)")
    ap.add_argument("repo", help="OWNER/NAME, written into each line")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--max-chars", type=int, default=600)
    args = ap.parse_args(argv)
    log = subprocess.run(["git", "--git-dir", args.git_dir, "log", "--no-merges", "--format=%H%x00%B%x01"],
                         check=True, capture_output=True, text=True).stdout
    kept = skipped = 0
    name = args.repo.split("/")[-1]
    with open(args.output, "w") as out:
        for entry in log.split("\x01"):
            sha, sep, message = entry.strip("\n").partition("\x00")
            if not sep:
                continue
            item = parse(message)
            if item is None:
                skipped += 1
                continue
            item["text"] = item["text"][:args.max_chars]
            out.write(json.dumps({"id": f"{name}-{kept:04d}", "repo": args.repo, "sha": sha, **item}) + "\n")
            kept += 1
    print(f"{kept} commits written to {args.output}; {skipped} skipped (subject not a Conventional Commit "
          f"of {', '.join(TYPES)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
