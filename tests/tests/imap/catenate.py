"""CATENATE (RFC 4469) and URL-PARTIAL (RFC 5550) on the wire: messages
built from TEXT literals and URLs; the saved bytes and the errors are what
Dovecot 2.3.19 answers for the same commands.
Usage: catenate.py PORT. Exits non-zero (with the transcript) on failure."""
import re, sys
from imapwire import Wire

w = Wire(int(sys.argv[1]))
caps = w.cmd(b'c', b'CAPABILITY').split(b'\r\n')[0].split()
w.check(b'CATENATE' in caps and b'URL-PARTIAL' in caps, f'capability: {caps}')
src = (b'Subject: src\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\npart one\r\n'
       b'--x\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--x--\r\n')
w.cmd(b'a0', b'APPEND INBOX {%d+}\r\n' % len(src) + src)
w.cmd(b'a1', b'CREATE Other')
w.cmd(b'a2', b'APPEND Other {27+}\r\nSubject: other\r\n\r\nelsewhere')
sel = w.cmd(b's', b'SELECT INBOX')
validity = re.search(rb'UIDVALIDITY (\d+)', sel).group(1)


def appended(tag, text):
    got = w.cmd(tag, b'APPEND INBOX ' + text)
    w.check(re.search(tag + rb' OK \[APPENDUID \d+ \d+(:\d+)?\] Append completed\.\r\n$', got), f'{text!r}: {got!r}')


def body(seq):
    got = w.cmd(b'f', b'FETCH %d BODY.PEEK[]' % seq)
    return got.split(b'}\r\n', 1)[1].rsplit(b')\r\nf OK', 1)[0]


appended(b'c1', b'CATENATE (TEXT {20+}\r\nSubject: cat\r\n\r\nhi  URL "/INBOX/;UID=1/;SECTION=1")')
w.check(body(2) == b'Subject: cat\r\n\r\nhi  part one', f'c1: {body(2)!r}')
appended(b'c2', b'(\\Seen) CATENATE (URL "/INBOX;UIDVALIDITY=%s/;UID=1/;SECTION=HEADER" TEXT {4+}\r\nbody '
         b'URL "/INBOX/;UID=1/;SECTION=2/;PARTIAL=1.5" URL "/Other/;UID=1/;SECTION=TEXT")' % validity)
w.check(body(3) == b'Subject: src\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\nbodyp>twoelsewhere',
        f'c2: {body(3)!r}')
got = w.cmd(b'f', b'FETCH 3 FLAGS')
w.check(b'\\Seen' in got, f'flags: {got}')
# URL-PARTIAL on the whole message, past its end, relative to the
# selected mailbox; a missing section is empty; MULTIAPPEND with two.
appended(b'c3', b'CATENATE (URL "/INBOX/;UID=1/;PARTIAL=0.7")')
w.check(body(4) == b'Subject', f'c3: {body(4)!r}')
appended(b'c4', b'CATENATE (URL ";UID=2/;PARTIAL=16.2" URL "/IN%42OX/;UID=1/;SECTION=9" TEXT {1+}\r\n!)')
w.check(body(5) == b'hi!', f'c4: {body(5)!r}')
appended(b'c5', b'CATENATE (TEXT {3+}\r\nabc) CATENATE (TEXT {3+}\r\ndef)')
w.check(body(6) == b'abc' and body(7) == b'def', 'multiappend')

no = [(b'/INBOX/;UID=99', b'Message not found'),
      (b'/Nope/;UID=1', b"Mailbox doesn't exist: Nope"),
      (b'imap://other@host/INBOX/;UID=1', b'Invalid IMAP URL: Relative URL required'),
      (b'/INBOX;UIDVALIDITY=1/;UID=1', b'Invalid UIDVALIDITY'),
      (b'/INBOX/;UID=x', b"Invalid IMAP URL: Value 'x' is not a valid IMAP number"),
      (b'/INBOX/;UID=1/;FOO=1', b"Invalid IMAP URL: Unexpected IMAP URL path segment: `;FOO=1'"),
      (b'/INBOX/;UID=1/;SECTION=2;PARTIAL=1.5', b'Invalid IMAP URL: Unrecognized IMAP URL extension: ;PARTIAL=1.5'),
      (b'imap:/INBOX/;UID=1', b"Invalid IMAP URL: Absolute IMAP URL requires `//' after `imap:'")]
for i, (url, err) in enumerate(no):
    tag = b'n%d' % i
    w.expect(tag, b'APPEND INBOX CATENATE (TEXT {3+}\r\nabc URL "%s")' % url,
             tag + b' NO [BADURL ' + url + b'] ' + err + b'.\r\n')
w.expect(b'b1', b'APPEND INBOX CATENATE ()', b'b1 BAD Error in IMAP command APPEND: Empty CATENATE list.\r\n')
w.expect(b'b2', b'APPEND Nope CATENATE (TEXT {3+}\r\nabc)', b"b2 NO [TRYCREATE] Mailbox doesn't exist: Nope.\r\n")
got = w.cmd(b'x', b'STATUS INBOX (MESSAGES)')
w.check(b'MESSAGES 7' in got, f'failed APPENDs saved nothing: {got}')
w.cmd(b'q', b'LOGOUT')
print('ALL OK')
