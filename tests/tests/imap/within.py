"""WITHIN (RFC 5032) and I18NLEVEL=1 (RFC 5255: i;unicode-casemap for
SEARCH and SORT) on the wire; each expected answer is what Dovecot
2.3.19 sends for the same mailbox.
Usage: within.py PORT. Exits non-zero (with the transcript) on failure."""
import sys
from imapwire import Wire

w = Wire(int(sys.argv[1]))
caps = w.cmd(b'c', b'CAPABILITY').split(b'\r\n')[0].split()
w.check(b'WITHIN' in caps and b'I18NLEVEL=1' in caps, f'capability: {caps}')
msgs = [b'Subject: =?utf-8?q?=C3=89T=C3=89_news?=\r\n\r\nx\r\n', b'Subject: Ete plain\r\n\r\nx\r\n',
        b'Subject: =?utf-8?q?e=CC=81te=CC=81_decomposed?=\r\n\r\nx\r\n', b'Subject: =?utf-8?q?=C3=A0_b?=\r\n\r\nx\r\n',
        b'Subject: Z last\r\n\r\nx\r\n']
for i, m in enumerate(msgs):
    got = w.cmd(b'a%d' % i, b'APPEND INBOX {%d+}\r\n' % len(m) + m)
    w.check(b'OK [APPENDUID' in got, f'append: {got}')
old = b'Subject: old\r\n\r\nx\r\n'
w.cmd(b'a9', b'APPEND INBOX "01-Jan-2020 10:00:00 +0000" {%d+}\r\n' % len(old) + old)
w.cmd(b's', b'SELECT INBOX')


def ok(tag, text, lines, done=b'Search'):
    w.expect(tag, text, lines + tag + b' OK ' + done + b' completed.\r\n')


# Precomposed or decomposed, any case: the same text.
u = '\u00e9t\u00e9'.encode()
ok(b'f1', b'SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n' % len(u) + u, b'* SEARCH 1 3\r\n')
u = 'E\u0301TE\u0301'.encode()
ok(b'f2', b'SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n' % len(u) + u, b'* SEARCH 1 3\r\n')
ok(b'f3', b'SORT (SUBJECT) UTF-8 ALL', b'* SORT 4 2 3 1 6 5\r\n', b'Sort')
ok(b'f4', b'SEARCH YOUNGER 3600', b'* SEARCH 1 2 3 4 5\r\n')
ok(b'f5', b'SEARCH OLDER 3600', b'* SEARCH 6\r\n')
ok(b'f9', b'SEARCH NOT OLDER 86400 YOUNGER 4294967295', b'* SEARCH 1 2 3 4 5\r\n')
for tag, text in [(b'f6', b'SEARCH OLDER 0'), (b'f7', b'SEARCH YOUNGER x'), (b'f10', b'SEARCH YOUNGER 4294967296'),
                  (b'f11', b'SEARCH YOUNGER -5')]:
    w.expect(tag, text, tag + b' BAD Error in IMAP command SEARCH: Invalid search interval parameter.\r\n')
w.expect(b'f8', b'SEARCH YOUNGER',
         b'f8 BAD Error in IMAP command SEARCH: Missing parameter for search key (for search key: YOUNGER).\r\n')
w.cmd(b'q', b'LOGOUT')
print('ALL OK')
