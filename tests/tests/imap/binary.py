"""BINARY (RFC 3516) on the wire: FETCH BINARY[…]<partial>, BINARY.PEEK,
BINARY.SIZE, literal8 responses and APPEND, the errors — each expected
response is what Dovecot 2.3.19 sends for the same message.
Usage: binary.py PORT. Exits non-zero (with the transcript) on failure."""
import sys
from imapwire import Wire

w = Wire(int(sys.argv[1]))
caps = w.cmd(b'c', b'CAPABILITY')
w.check(b' BINARY ' in caps, f'capability: {caps}')

mixed = (b'From: a@b\r\nSubject: bin\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
         b'--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=E9llo=\r\n world=3D\r\n'
         b'--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECA2hlbGxvAP8=\r\n'
         b'--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nplain 8bit\r\n'
         b'--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n'
         b'--b--\r\n')
unknown = (b'Subject: u\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b'--b\r\nContent-Type: text/plain\r\n\r\nfine\r\n'
           b'--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n'
           b'--b--\r\n')
broken = (b'Subject: c\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
          b'--b\r\nContent-Type: text/plain\r\n\r\nfine\r\n'
          b'--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64***\r\n'
          b'--b--\r\n')
single = b'Content-Transfer-Encoding: Base64\r\nSubject: first\r\nX: y\r\n\r\naGk=\r\n'
for i, m in enumerate([mixed, unknown, broken, single]):
    got = w.cmd(b'a%d' % i, b'APPEND INBOX {%d+}\r\n' % len(m) + m)
    w.check(b'OK [APPENDUID' in got, f'append: {got}')
# APPEND takes literal8 (synchronising or not), with a NUL in it.
nul = b'Subject: nul\r\n\r\na\x00b\r\n'
w.send(b'n1 APPEND INBOX ~{%d}\r\n' % len(nul))
w.check(w.line() == b'+ OK\r\n', 'literal8 continuation')
w.send(nul + b'\r\n')
got = w.until(b'n1')
w.check(b'n1 OK [APPENDUID' in got, f'append literal8: {got}')
got = w.cmd(b'n2', b'APPEND INBOX (\\Seen) ~{%d+}\r\n' % len(nul) + nul + b' ~{3+}\r\nabc')
w.check(b'n2 OK [APPENDUID' in got and b' 6:7]' in got, f'multiappend literal8: {got}')
w.cmd(b's', b'SELECT INBOX')

E = lambda tag, body: body + tag + b' OK Fetch completed.\r\n'
w.expect(b'f1', b'FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])',
         E(b'f1', b'* 1 FETCH (BINARY[1] ~{12}\r\nh\xe9llo world= BINARY.SIZE[1] 12)\r\n'))
w.expect(b'f2', b'FETCH 1 (BINARY.PEEK[2])', E(b'f2', b'* 1 FETCH (BINARY[2] ~{11}\r\n\x00\x01\x02\x03hello\x00\xff)\r\n'))
w.expect(b'f3', b'FETCH 1 (BINARY.PEEK[3] BINARY.SIZE[3])',
         E(b'f3', b'* 1 FETCH (BINARY[3] {10}\r\nplain 8bit BINARY.SIZE[3] 10)\r\n'))
w.expect(b'f4', b'FETCH 1 (BINARY.PEEK[4] BINARY.PEEK[4.1])',
         E(b'f4', b'* 1 FETCH (BINARY[4] ~{55}\r\nSubject: inner\r\nContent-Transfer-Encoding: binary\r\n\r\nhi'
                  b' BINARY[4.1] ~{2}\r\nhi)\r\n'))
w.expect(b'f5', b'FETCH 1 (BINARY.PEEK[2]<2.5> BINARY.PEEK[2]<20.5>)',
         E(b'f5', b'* 1 FETCH (BINARY[2]<2> ~{5}\r\n\x02\x03hel BINARY[2]<20> ~{0}\r\n)\r\n'))
w.expect(b'f6', b'FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9] BINARY.PEEK[1.MIME])',
         E(b'f6', b'* 1 FETCH (BINARY[9] {0}\r\n BINARY.SIZE[9] 0 BINARY[1.MIME] {73}\r\n'
                  b'Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n)\r\n'))
got = w.expect(b'f7', b'FETCH 1 (BINARY.SIZE[] BINARY.SIZE[TEXT])',
               E(b'f7', b'* 1 FETCH (BINARY.SIZE[] 447 BINARY.SIZE[TEXT] 356)\r\n'))
got = w.cmd(b'f8', b'FETCH 1 BINARY.PEEK[]')
w.check(got.startswith(b'* 1 FETCH (BINARY[] ~{447}\r\n') and
        b'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'
        b'\x00\x01\x02\x03hello\x00\xff\r\n--b\r\n' in got, f'BINARY[]: {got!r}')
w.expect(b'f9', b'FETCH 4 (BINARY.PEEK[] BINARY.PEEK[HEADER] BINARY.PEEK[TEXT])',
         E(b'f9', b'* 4 FETCH (BINARY[] ~{61}\r\nSubject: first\r\nX: y\r\nContent-Transfer-Encoding: binary\r\n\r\nhi'
                  b' BINARY[HEADER] {59}\r\nContent-Transfer-Encoding: Base64\r\nSubject: first\r\nX: y\r\n\r\n'
                  b' BINARY[TEXT] ~{2}\r\nhi)\r\n'))

# Errors: an unknown encoding, undecodable data. BINARY.SIZE fails for any
# bad part of the message; the FETCH stops at the first failure.
w.expect(b'e1', b'FETCH 2 (BINARY.PEEK[1])', E(b'e1', b'* 2 FETCH (BINARY[1] {4}\r\nfine)\r\n'))
w.expect(b'e2', b'FETCH 2 (BINARY.PEEK[2])',
         b'* 2 FETCH (UID 2)\r\ne2 NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n')
w.expect(b'e3', b'FETCH 2 (BINARY.SIZE[1])',
         b'* 2 FETCH (UID 2)\r\ne3 NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n')
w.expect(b'e4', b'FETCH 2:3 (BINARY.PEEK[1] BINARY.PEEK[])',
         b'* 2 FETCH (BINARY[1] {4}\r\nfine)\r\ne4 NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n')
w.expect(b'e5', b'FETCH 3 (BINARY.PEEK[2])', b'* 3 FETCH (UID 3)\r\ne5 NO [PARSE] Invalid data in MIME part.\r\n')
w.expect(b'e6', b'FETCH 3 (BINARY.SIZE[1])', b'* 3 FETCH (UID 3)\r\ne6 NO [PARSE] Invalid data in MIME part.\r\n')
bad = [(b'FETCH 1 BINARY.PEEK[1]<1', b"Invalid BINARY[..] parameter: Missing '>' in partial"),
       (b'FETCH 1 BINARY.PEEK[x]', b'Invalid BINARY[..] section'),
       (b'FETCH 1 BINARY.FOO[1]', b"Invalid BINARY[..] parameter: Missing '['"),
       (b'FETCH 1 BINARY.PEEK[1]<x>', b'Invalid BINARY[..] parameter: Too big partial start'),
       (b'FETCH 1 BINARY.PEEK[1]x', b"Invalid BINARY[..] parameter: Unexpected data after ']'")]
for i, (text, err) in enumerate(bad):
    tag = b'b%d' % i
    w.expect(tag, text, tag + b' BAD Error in IMAP command FETCH: ' + err + b'.\r\n')
# literal8 anywhere but APPEND: refused unread, its bytes are the next line.
w.send(b'l1 SEARCH TEXT ~{3+}\r\nabc\r\n')
got = w.until(b'abc')
w.check(got == b'l1 BAD Error in IMAP command SEARCH: literal8 not allowed here.\r\n'
        b'abc BAD Error in IMAP command: Invalid command name.\r\n', f'literal8: {got!r}')

# The NUL message: BODY[] sends it as 0x80, BINARY[] as it is.
w.expect(b'z1', b'FETCH 5:6 (BODY.PEEK[] BINARY.PEEK[])',
         E(b'z1', b'* 5 FETCH (BODY[] {21}\r\nSubject: nul\r\n\r\na\x80b\r\n BINARY[] ~{21}\r\nSubject: nul\r\n\r\na\x00b\r\n)\r\n'
                  b'* 6 FETCH (BODY[] {21}\r\nSubject: nul\r\n\r\na\x80b\r\n BINARY[] ~{21}\r\nSubject: nul\r\n\r\na\x00b\r\n)\r\n'))
w.expect(b'z2', b'FETCH 7 (BINARY.PEEK[] BINARY.SIZE[])', E(b'z2', b'* 7 FETCH (BINARY[] {3}\r\nabc BINARY.SIZE[] 3)\r\n'))
# Dovecot's item order: buffered items first (the implicit FLAGS of a
# non-PEEK fetch last among them), then the others as asked.
w.expect(b'z3', b'FETCH 5 (BINARY.SIZE[1] BODY.PEEK[TEXT] PREVIEW BINARY.PEEK[1] RFC822.SIZE)',
         E(b'z3', b'* 5 FETCH (PREVIEW "ab" RFC822.SIZE 21 BINARY.SIZE[1] 5 BODY[TEXT] {5}\r\na\x80b\r\n'
                  b' BINARY[1] ~{5}\r\na\x00b\r\n)\r\n'))
w.expect(b'z4', b'FETCH 5 (BINARY[1])', E(b'z4', b'* 5 FETCH (FLAGS (\\Seen \\Recent) BINARY[1] ~{5}\r\na\x00b\r\n)\r\n'))
w.cmd(b'q', b'LOGOUT')
print('ALL OK')
