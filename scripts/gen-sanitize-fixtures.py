#!/usr/bin/env python3
"""Extracts the raw HTML inputs of the sanitising and relative-URI conformance cases.

For every case of `conformance/cases/feedparser.jsonl` under `wellformed/sanitize/` or
`wellformed/base/` with an HTML-compared check on an HTML-typed field, this reads the case's feed
with feedparser 6.0.14 with sanitising and URL resolution switched OFF, and records the field's
raw HTML and its base URL. The sanitiser's unit test feeds that HTML to `sanitize_html` and
compares the result with the case's own expectation (read from the case file, not from here).
Needs `pip install feedparser==6.0.14`. Run from the repository root:
    python3 scripts/gen-sanitize-fixtures.py [path/to/shared]
"""
import base64
import json
import sys

import feedparser

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"
OUT = "fixtures/sanitize_conformance.jsonl"
CATEGORIES = ("tests/wellformed/sanitize/", "tests/wellformed/base/")


def walk(obj, path):
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or key >= len(obj):
                return None
            obj = obj[key]
        else:
            if not isinstance(obj, dict) or key not in obj:
                return None
            obj = dict.get(obj, key)
    return obj


def detail_of(result, fp_path):
    """The feedparser *_detail (type, base) of the value at fp_path."""
    if fp_path[-1] == "value":  # content[i].value: the content dict is its own detail
        return walk(result, fp_path[:-1])
    parent = walk(result, fp_path[:-1])
    if not isinstance(parent, dict):
        return None
    name = fp_path[-1]
    aliases = {"description": "summary", "tagline": "subtitle", "copyright": "rights",
               "info": "subtitle"}
    for key in (name + "_detail", aliases.get(name, name) + "_detail"):
        if key in parent:
            return dict.get(parent, key)
    if name == "summary" and parent.get("content"):
        return parent["content"][0]
    return None


def main():
    rows = 0
    with open(f"{SHARED}/conformance/cases/feedparser.jsonl", encoding="utf-8") as cases, \
            open(OUT, "w", encoding="utf-8") as out:
        for line in cases:
            case = json.loads(line)
            if not case["path"].startswith(CATEGORIES):
                continue
            http = case.get("http") or {}
            headers = {k.lower(): v for k, v in (http.get("headers") or {}).items()}
            if http.get("url"):
                # The document URL is the base unless Content-Location says otherwise.
                headers["content-location"] = feedparser.urls._urljoin(
                    http["url"], headers.get("content-location", ""))
            result = feedparser.parse(
                base64.b64decode(case["feed_b64"]),
                sanitize_html=False,
                resolve_relative_uris=False,
                response_headers=headers or None,
            )
            for index, check in enumerate(case["translation"]["checks"]):
                if check.get("cmp") != "html" or not check.get("path"):
                    continue
                raw = walk(result, check["fp_path"])
                detail = detail_of(result, check["fp_path"]) or {}
                kind = detail.get("type") or "text/html"
                if not isinstance(raw, str) or kind not in ("text/html", "application/xhtml+xml"):
                    continue
                out.write(json.dumps({
                    "path": case["path"],
                    "check": index,
                    "type": kind,
                    "base": detail.get("base") or None,
                    "html": raw,
                }, ensure_ascii=False) + "\n")
                rows += 1
    print(f"{rows} fixtures written to {OUT}")


if __name__ == "__main__":
    main()
