"""SNIPPET=FUZZY / PREVIEW (RFC 8970) on the wire; each expected answer is
what Dovecot 2.3.19 sends for the same mailbox.
Usage: preview.py PORT. Exits non-zero (with the transcript) on failure."""
import sys
from imapwire import Wire

w = Wire(int(sys.argv[1]))
caps = w.cmd(b'c', b'CAPABILITY').split(b'\r\n')[0].split()
w.check(b'SNIPPET=FUZZY' in caps and b'PREVIEW=FUZZY' in caps and b'PREVIEW' in caps, f'capability: {caps}')
msgs = [b'Subject: a\r\n\r\nHello   world,\r\n\r\n> quoted line\r\nthis is   the body.\r\n-- \r\nsig\r\n',
        b'Subject: b\r\nContent-Type: text/html\r\n\r\n<html><head><style>x{}</style></head><body><p>Hi &amp; <b>there</b></p>&lt;ok&gt; &eacute;&#233;</body></html>\r\n',
        b'Subject: c\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 =\r\nau lait\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--x--\r\n',
        b'Subject: d\r\nContent-Type: application/pdf\r\n\r\nxxxx\r\n',
        b'Subject: e\r\n\r\n' + b'word ' * 100 + b'\r\n',
        b'Subject: f\r\n\r\n> only quoted\r\n>  more\r\n',
        b'Subject: g\r\n\r\n\xef\xbb\xbfbom x\x00y "q" back\\s\r\n']
for i, m in enumerate(msgs):
    got = w.cmd(b'a%d' % i, b'APPEND INBOX {%d+}\r\n' % len(m) + m)
    w.check(b'OK [APPENDUID' in got, f'append: {got}')
w.cmd(b's', b'SELECT INBOX')
done = lambda tag: tag + b' OK Fetch completed.\r\n'
w.expect(b'f1', b'FETCH 1:* (SNIPPET (FUZZY))',
         b'* 1 FETCH (SNIPPET (FUZZY "Hello world, this is the body. -- sig"))\r\n'
         b'* 2 FETCH (SNIPPET (FUZZY {20}\r\nHi & there <ok> \xc3\xa9\xc3\xa9))\r\n'
         b'* 3 FETCH (SNIPPET (FUZZY {13}\r\nCaf\xc3\xa9 au lait))\r\n'
         b'* 4 FETCH (SNIPPET (FUZZY ""))\r\n'
         b'* 5 FETCH (SNIPPET (FUZZY "' + b' '.join([b'word'] * 40) + b'"))\r\n'
         b'* 6 FETCH (SNIPPET (FUZZY ">only quoted more"))\r\n'
         b'* 7 FETCH (SNIPPET (FUZZY "bom xy \\"q\\" back\\\\s"))\r\n' + done(b'f1'))
hello = b'"Hello world, this is the body. -- sig"'
w.expect(b'f2', b'FETCH 1 (PREVIEW)', b'* 1 FETCH (PREVIEW ' + hello + b')\r\n' + done(b'f2'))
w.expect(b'f3', b'FETCH 1 (PREVIEW (LAZY))', b'* 1 FETCH (PREVIEW ' + hello + b')\r\n' + done(b'f3'))
w.expect(b'f4', b'FETCH 1 (PREVIEW (FUZZY))', b'* 1 FETCH (PREVIEW (FUZZY ' + hello + b'))\r\n' + done(b'f4'))
w.expect(b'f5', b'FETCH 1 SNIPPET', b'* 1 FETCH (SNIPPET (FUZZY ' + hello + b'))\r\n' + done(b'f5'))
w.expect(b'f8', b'FETCH 1 (PREVIEW (LAZY=FUZZY))', b'* 1 FETCH (PREVIEW (FUZZY ' + hello + b'))\r\n' + done(b'f8'))
w.expect(b'f6', b'FETCH 1 (SNIPPET (FOO))',
         b"f6 BAD Error in IMAP command FETCH: 'FOO' is not a supported PREVIEW modifier.\r\n")
w.expect(b'f7', b'FETCH 1 (SNIPPET ())', b'f7 BAD Error in IMAP command FETCH: FETCH list contains non-atoms.\r\n')
w.cmd(b'q', b'LOGOUT')
print('ALL OK')
