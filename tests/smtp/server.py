#!/usr/bin/env python3
"""Loopback SMTP server for the digest tests (aiosmtpd).

Binds 127.0.0.1 on a free port and prints "PORT <n>" on its first line of output. Every
accepted message is written to OUT as <n>.eml (the raw bytes) and <n>.json (envelope, headers
and decoded parts, parsed with Python's email module), the .json last and renamed into place,
so a reader that sees it sees a complete record.

Options make the server misbehave on purpose: --tempfail N answers the first N DATA commands
with 451, --reject ADDR answers RCPT TO:<ADDR> with 550, --tls/--starttls use CERT and KEY,
--auth USER:PASSWORD requires that login, --hold-first S records the first message and
then waits S seconds before answering (a crash window). With --control DIR the crash window is
opened on demand: when the file DIR/hold exists as a message arrives, the server records the
message, removes DIR/hold, writes DIR/held (the message's number) and keeps the client waiting
for --hold-seconds before answering; DIR/hold-rcpt does the same at RCPT TO, before any message. It stops by itself after --lifetime seconds.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys

try:
    from aiosmtpd.smtp import SMTP, AuthResult
except ImportError:
    print("ERROR aiosmtpd is not installed: python3 -m pip install aiosmtpd", flush=True)
    sys.exit(3)

import email
import email.policy


class Handler:
    def __init__(self, out, tempfail, reject, hold_first, control=None, hold_seconds=10.0):
        self.out = out
        self.hold_first = hold_first
        self.control = control
        self.hold_seconds = hold_seconds
        self.tempfail = tempfail
        self.reject = {a.lower() for a in reject}
        self.count = 0

    async def hold_if_asked(self, name, n):
        """With --control: when DIR/<name> exists, consume it, write DIR/held and wait."""
        if self.control is None:
            return
        flag = os.path.join(self.control, name)
        if os.path.exists(flag):
            os.remove(flag)
            held = os.path.join(self.control, "held")
            with open(held + ".tmp", "w") as f:
                f.write("%d\n" % n)
            os.replace(held + ".tmp", held)
            await asyncio.sleep(self.hold_seconds)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 Mailbox unavailable"
        # Before the message: a crash here leaves a digest the server never got.
        await self.hold_if_asked("hold-rcpt", self.count)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.tempfail > 0:
            self.tempfail -= 1
            return "451 4.3.0 Try again later"
        self.count += 1
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        headers = {}
        for k, v in msg.items():
            headers.setdefault(k.lower(), []).append(str(v))
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            parts.append({
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "transfer_encoding": part.get("Content-Transfer-Encoding"),
                "body": part.get_content(),
            })
        record = {
            "n": self.count,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content_type": msg.get_content_type(),
            "headers": headers,
            "parts": parts,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "raw_max_line": max((len(l) for l in raw.split(b"\n")), default=0),
        }
        base = os.path.join(self.out, "%04d" % self.count)
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(base + ".json.tmp", base + ".json")
        if self.count == 1 and self.hold_first > 0:
            # Keep the client waiting for the answer: the window a crash test kills it in.
            await asyncio.sleep(self.hold_first)
        else:
            # After the message: a crash here leaves a digest the sender cannot know arrived.
            await self.hold_if_asked("hold", self.count)
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--tempfail", type=int, default=0)
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--tls", action="store_true", help="implicit TLS")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth", help="USER:PASSWORD")
    p.add_argument("--hold-first", type=float, default=0.0,
                   help="record the first message, then wait this long before answering")
    p.add_argument("--control", help="folder for the on-demand crash window (hold, held)")
    p.add_argument("--hold-seconds", type=float, default=10.0)
    p.add_argument("--lifetime", type=float, default=120.0)
    a = p.parse_args()

    ctx = None
    if a.tls or a.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    authenticator = None
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode() == user and auth_data.password.decode() == password)
            return AuthResult(success=ok)

    handler = Handler(a.out, a.tempfail, a.reject, a.hold_first, a.control, a.hold_seconds)

    def factory():
        kwargs = dict(hostname="test.invalid", enable_SMTPUTF8=True)
        if a.starttls:
            kwargs.update(tls_context=ctx, require_starttls=True)
        if authenticator:
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=a.starttls)
        return SMTP(handler, **kwargs)

    async def run():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0,
                                          ssl=ctx if a.tls else None)
        port = server.sockets[0].getsockname()[1]
        print("PORT %d" % port, flush=True)
        await asyncio.sleep(a.lifetime)
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
