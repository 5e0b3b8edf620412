"""A raw IMAP connection for the extension scripts: literal-aware reads
(`{n}` and BINARY's `~{n}`), responses compared as bytes with Dovecot's
timing suffix removed."""
import re, socket, sys

TIMING = re.compile(rb' \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.')
LITERAL = re.compile(rb'~?\{(\d+)\}$')


class Wire:
    def __init__(self, port, user='alice', password='Secr3t'):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.buf = b''
        self.transcript = []
        self.line()
        got = self.cmd(b'L', b'LOGIN %s %s' % (user.encode(), password.encode()))
        self.check(got.startswith(b'L OK'), f'login: {got}')

    def more(self):
        data = self.sock.recv(65536)
        if not data:
            self.fail('connection closed')
        self.buf += data

    def line(self):
        """One response line, literals included (CRLF kept)."""
        out = b''
        while True:
            while b'\r\n' not in self.buf:
                self.more()
            text, self.buf = self.buf.split(b'\r\n', 1)
            out += text + b'\r\n'
            m = LITERAL.search(text)
            if not m:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                self.more()
            out += self.buf[:size]
            self.buf = self.buf[size:]

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, tag, text):
        """Sends `tag text`; everything up to the tagged reply, timing removed."""
        self.send(tag + b' ' + text + b'\r\n')
        return self.until(tag)

    def until(self, tag):
        out = b''
        while True:
            line = self.line()
            out += line
            if line.startswith(tag + b' '):
                out = TIMING.sub(b'.', out)
                self.transcript.append(out)
                return out

    def fail(self, msg):
        for entry in self.transcript:
            print(entry)
        print('FAIL:', msg)
        sys.exit(1)

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)

    def expect(self, tag, text, want):
        got = self.cmd(tag, text)
        self.check(got == want, f'{text!r}:\n got  {got!r}\n want {want!r}')
        return got
