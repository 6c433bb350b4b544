#!/usr/bin/env python3
"""Synthetic ICMPD-like RSS feeds for the fetch benchmark and the soak test.

Each feed looks like the ICMPD news centre (TYPO3 tt_news): channel image and generator, items
with title, a link with its `//`, a description truncated with `...`, content:encoded with the
full text, a category and a pubDate with +0200, no guid. Texts are drawn from the bundled ICMPD
fixtures, recombined per feed and item so that no two items are the same story.

  feedgen.py write DIR N [--hosts H --port P]   N static feeds DIR/feeds/F.rss (for nginx),
                                               DIR/feeds.txt (one URL a line) and DIR/feeds.opml
  feedgen.py serve PORT N --period S            feeds generated per request; every S seconds
                                               each feed gains a newest item (ETag/304 served)
"""
import argparse
import email.utils
import html
import random
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
ITEMS_PER_FEED = 20
PLACES = ["Vienna", "Brussels", "Tunis", "Rabat", "Skopje", "Ankara", "Tbilisi", "Kabul",
          "Islamabad", "Dakar", "Abuja", "Amman", "Beirut", "Bogota", "Sarajevo", "Baku",
          "Chisinau", "Kyiv", "Tirana", "Belgrade", "Malta", "Valletta", "Lagos", "Accra"]


def load_pool():
    pool, paragraphs = [], []
    for name in ["news-centre.rss", "news-2021.rss"]:
        root = ET.parse(HERE / "fixtures" / "icmpd" / name).getroot()
        for it in root.iter("item"):
            full = it.findtext(CONTENT) or ""
            paras = [p for p in re.findall(r"<p>(.*?)</p>", full, re.S) if len(p) > 40]
            paragraphs.extend(paras)
            pool.append({
                "title": it.findtext("title") or "News",
                "link": it.findtext("link") or "https://www.icmpd.org//news-centre/",
                "category": it.findtext("category") or "News",
            })
    return pool, paragraphs


POOL, PARAGRAPHS = load_pool()
BASE_TIME = 1_700_000_000  # items are dated relative to this (no wall-clock dependence)
TZ = 2 * 3600


def rfc822(ts):
    # ICMPD dates carry +0200.
    s = email.utils.formatdate(ts + TZ, usegmt=True)
    return s.replace("GMT", "+0200")


def item_xml(feed, k):
    """Item number k of feed number `feed` (a higher k is newer)."""
    rng = random.Random(feed * 1_000_003 + k)
    p = POOL[(feed * 7 + k) % len(POOL)]
    place = PLACES[(feed + k) % len(PLACES)]
    title = f"{p['title']} ({place}, brief {feed}.{k})"
    link = p["link"].rstrip("/") + f"-{feed}-{k}/"
    paras = rng.sample(PARAGRAPHS, 4)
    lead = (f"ICMPD's office in {place} reports on activity {k} of partnership {feed}: "
            f"{rng.randint(2, 90)} participants from {rng.randint(2, 30)} countries met for "
            f"{rng.randint(1, 5)} days.")
    body = "".join(f"<p>{x}</p>" for x in [lead] + paras)
    desc = lead[:180].rsplit(" ", 1)[0] + "..."
    date = rfc822(BASE_TIME + k * 3600 + feed * 7)
    return (
        "<item>\n"
        f"<title>{html.escape(title, quote=False)}</title>\n"
        f"<link>{html.escape(link, quote=False)}</link>\n"
        f"<description>{html.escape(desc, quote=False)}</description>\n"
        f"<content:encoded><![CDATA[{body}]]></content:encoded>\n"
        f"<category>{html.escape(p['category'], quote=False)}</category>\n"
        f"<pubDate>{date}</pubDate>\n"
        "</item>\n"
    )


def feed_xml(feed, newest):
    """Feed `feed` with items newest, newest-1, ... (ITEMS_PER_FEED of them)."""
    items = "".join(item_xml(feed, k) for k in range(newest, newest - ITEMS_PER_FEED, -1))
    built = rfc822(BASE_TIME + newest * 3600 + feed * 7)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
        f"<title>ICMPD partner office {feed}</title>\n"
        "<link>https://www.icmpd.org/</link>\n"
        "<description>NEWS CENTRE</description>\n<language>en</language>\n"
        "<image><title>www.icmpd.org</title>"
        "<url>https://www.icmpd.org/typo3conf/ext/tt_news/ext_icon.gif</url>"
        "<link>https://www.icmpd.org/</link><width>18</width><height>16</height>"
        "<description>NEWS CENTRE</description></image>\n"
        "<generator>TYPO3 - get.content.right</generator>\n"
        "<docs>http://blogs.law.harvard.edu/tech/rss</docs>\n"
        f"<lastBuildDate>{built}</lastBuildDate>\n"
        f"{items}</channel>\n</rss>\n"
    )


def write(args):
    out = Path(args.dir)
    (out / "feeds").mkdir(parents=True, exist_ok=True)
    urls = []
    for f in range(args.n):
        (out / "feeds" / f"{f}.rss").write_text(feed_xml(f, ITEMS_PER_FEED - 1 + f % 5))
        host = f"127.0.0.{1 + f % args.hosts}"
        urls.append((f, f"http://{host}:{args.port}/feeds/{f}.rss"))
    (out / "feeds.txt").write_text("".join(u + "\n" for _, u in urls))
    with open(out / "feeds.opml", "w") as o:
        o.write('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0"><head>'
                "<title>bench</title></head><body>\n")
        for f, u in urls:
            o.write(f'<outline type="rss" text="feed-{f}" title="feed-{f}" xmlUrl="{u}"/>\n')
        o.write("</body></opml>\n")


class Served:
    requests = 0
    not_modified = 0
    lock = threading.Lock()


def serve(args):
    start = time.time()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            m = re.fullmatch(r"/feeds/(\d+)\.rss", self.path)
            if self.path == "/stats":
                body = f"{Served.requests} {Served.not_modified}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if not m or int(m.group(1)) >= args.n:
                self.send_error(404)
                return
            feed = int(m.group(1))
            cycle = int((time.time() - start) // args.period)
            etag = f'"{feed}-{cycle}"'
            modified = email.utils.formatdate(start + cycle * args.period, usegmt=True)
            with Served.lock:
                Served.requests += 1
            if self.headers.get("If-None-Match") == etag:
                with Served.lock:
                    Served.not_modified += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            body = feed_xml(feed, ITEMS_PER_FEED - 1 + cycle).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"serving {args.n} feeds on 127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("n", type=int)
    w.add_argument("--hosts", type=int, default=1, help="spread URLs over 127.0.0.1..H")
    w.add_argument("--port", type=int, default=8080)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("n", type=int)
    s.add_argument("--period", type=float, default=60.0)
    args = ap.parse_args()
    write(args) if args.cmd == "write" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
