"""COMPRESS=DEFLATE (RFC 4978) on a raw socket: imaplib has no COMPRESS.
Usage: compress.py PORT [--tls]. With --tls the port is imaps (the login
process proxies TLS; compression sits inside it).
Exits non-zero (with the transcript) on failure."""
import socket, ssl, sys, time, zlib

port = int(sys.argv[1])
tls = '--tls' in sys.argv[2:]


def connect():
    sock = socket.create_connection(('127.0.0.1', port), timeout=10)
    if not tls:
        return sock
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock)


s = connect()
transcript = []


def fail(msg):
    for line in transcript:
        print(line)
    print('FAIL:', msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Plain:
    """Reads lines from the socket as they are."""
    def __init__(self):
        self.buf = b''

    def more(self):
        data = s.recv(65536)
        if not data:
            fail('connection closed')
        self.buf += data

    def until(self, tag):
        """Everything up to and including the line starting with tag."""
        while True:
            lines = self.buf.split(b'\r\n')
            for i, line in enumerate(lines[:-1]):
                if line.startswith(tag.encode()):
                    got = b'\r\n'.join(lines[:i + 1]) + b'\r\n'
                    self.buf = b'\r\n'.join(lines[i + 1:])
                    transcript.append(got)
                    return got.decode('utf-8', 'replace')
            self.more()


class Compressed(Plain):
    def __init__(self, leftover):
        super().__init__()
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(wbits=-15)
        self.buf = self.inflate.decompress(leftover)

    def more(self):
        data = s.recv(65536)
        if not data:
            fail('connection closed')
        self.buf += self.inflate.decompress(data)

    def send(self, data):
        s.sendall(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))


r = Plain()
r.until('* OK')
s.sendall(b'L LOGIN alice Secr3t\r\n')
got = r.until('L ')
check('COMPRESS=DEFLATE' in got, f'login capability: {got}')
s.sendall(b'c CAPABILITY\r\n')
got = r.until('c ')
caps = got.split('\r\n')[0].split()
check(caps[-1] == 'COMPRESS=DEFLATE', f'capability order: {got}')
# Errors, as Dovecot's imap_zlib plugin words them.
for cmd, want in [(b'e1 COMPRESS\r\n', 'e1 BAD Error in IMAP command COMPRESS: Invalid arguments'),
                  (b'e2 COMPRESS DEFLATE X\r\n', 'e2 BAD Error in IMAP command COMPRESS: Invalid arguments'),
                  (b'e3 COMPRESS GZIP\r\n', 'e3 NO Unknown compression mechanism')]:
    s.sendall(cmd)
    got = r.until(cmd.split()[0].decode() + ' ')
    check(got.startswith(want), f'{cmd}: {got}')

# Pipelined: the NOOP after COMPRESS is already compressed in the same
# write, and must be read as such.
z = zlib.compressobj(wbits=-15)
s.sendall(b'z COMPRESS deflate\r\n' + z.compress(b'n NOOP\r\n') + z.flush(zlib.Z_SYNC_FLUSH))
while b'\r\n' not in r.buf or not r.buf.startswith(b'z '):
    r.more()
line, rest = r.buf.split(b'\r\n', 1)
transcript.append(line)
check(line.startswith(b'z OK Begin compression'), f'begin: {line}')
c = Compressed(rest)
c.deflate = z
got = c.until('n ')
check('n OK NOOP completed' in got, f'noop after compress: {got}')

c.send(b'y COMPRESS DEFLATE\r\n')
got = c.until('y ')
check(got.startswith('y NO [COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled'), f'twice: {got}')

# Real traffic through the layer: a message bigger than the buffers, both
# ways, and back byte for byte.
body = b''.join(b'line %06d of a compressible message body\r\n' % i for i in range(20000))
msg = b'From: a@example.com\r\nSubject: big\r\n\r\n' + body
c.send(b'a APPEND INBOX {%d+}\r\n' % len(msg) + msg + b'\r\n')
got = c.until('a ')
check('a OK [APPENDUID' in got, f'append: {got}')
c.send(b's SELECT INBOX\r\n')
c.until('s ')
c.send(b'f FETCH 1 BODY.PEEK[]\r\n')
got = c.until('f ')
head = b'* 1 FETCH (BODY[] {%d}\r\n' % len(msg)
raw = got.encode('utf-8', 'replace')
check(raw.startswith(head) and raw[len(head):len(head) + len(msg)] == msg, f'fetch: {got[:200]}')

# IDLE through the compressed stream: updates are flushed at once.
c.send(b'i IDLE\r\n')
c.until('+ idling')
other = connect()
o = Plain()
saved = s
s = other
o.until('* OK')
s.sendall(b'L LOGIN alice Secr3t\r\nA APPEND INBOX {8+}\r\nx: y\r\n\r\n\r\nQ LOGOUT\r\n')
o.until('Q ')
s = saved
started = time.time()
got = c.until('* 2 EXISTS')
check(time.time() - started < 5, f'idle update late: {got}')
c.send(b'DONE\r\n')
got = c.until('i ')
check('i OK Idle completed' in got, f'idle done: {got}')
c.send(b'q LOGOUT\r\n')
got = c.until('q ')
check('* BYE Logging out' in got and 'q OK Logout completed' in got, f'logout: {got}')
print('ALL OK')
