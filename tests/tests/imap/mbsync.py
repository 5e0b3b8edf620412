"""The IMAP and Maildir halves of the mbsync round-trip test (imap_mbsync.rs).

  mbsync.py populate PORT FOLDERS OUT     fill the server: FOLDERS is a
                                          comma list of NAME=COUNT; OUT
                                          records what was written (JSON)
  mbsync.py mutate-server PORT ROUND OUT  change the server, write what was
                                          done to OUT (JSON)
  mbsync.py mutate-local MAILDIR ROUND OUT  the same on the local Maildir
  mbsync.py compare PORT MAILDIR [EXPECT...] [--content FILE...]
                                          both sides hold the same messages
                                          (Message-ID, body hash, flags) per
                                          folder, every EXPECT file's changes
                                          show, and every message any of
                                          these files recorded still has the
                                          bytes it was written with

Folder names use '/' as the hierarchy separator; the server's own separator
is looked up. Exits non-zero with a description of every difference."""
import hashlib, imaplib, json, os, random, re, socket, sys, time

USER, PASSWORD = 'alice', 'Secr3t'
FLAG_LETTERS = {'\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S', '\\Deleted': 'T'}
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}
MONTHS = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split()


def fail(msg):
    print('FAIL:', msg)
    sys.exit(1)


# ---------------------------------------------------------------- messages

def message(rng, tag, folder, i):
    """One message of a shape picked by `i`, CRLF line endings."""
    msgid = f'<{tag}.{folder.replace("/", "-")}.{i}@mbsync.test>'
    day = 1 + i % 28
    head = [
        f'From: Sender {i} <sender{i}@example.org>',
        'To: Alice <alice@example.com>',
        f'Date: {["Mon", "Tue", "Wed"][i % 3]}, {day} {MONTHS[i % 12]} 2024 10:{i % 60:02d}:00 +0100',
        f'Message-ID: {msgid}',
    ]
    shape = i % 7
    if shape == 0:  # plain ASCII, a few to a few hundred lines
        body = [f'line {n} of message {i} in {folder}' for n in range(rng.randint(1, 300))]
        head += [f'Subject: plain {i}']
    elif shape == 1:  # 8-bit body and an 8-bit (raw UTF-8) header
        head += [f'Subject: Grüße {i} – naïve café', 'MIME-Version: 1.0',
                 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit']
        body = ['Grüße aus Köln, ½ € — ☃ ✓ 日本語'] * rng.randint(1, 40)
    elif shape == 2:  # multipart/alternative
        head += [f'Subject: alternative {i}', 'MIME-Version: 1.0',
                 'Content-Type: multipart/alternative; boundary="alt-{}"'.format(i)]
        body = ['This is a multi-part message in MIME format.', '', f'--alt-{i}',
                'Content-Type: text/plain; charset=us-ascii', '', f'plain part {i}', '',
                f'--alt-{i}', 'Content-Type: text/html; charset=us-ascii', '',
                f'<html><body><p>html part {i}</p></body></html>', '', f'--alt-{i}--', '']
    elif shape == 3:  # multipart/mixed with a base64 attachment, 1-64 KB
        import base64
        blob = base64.encodebytes(rng.randbytes(rng.randint(1024, 65536))).decode().split('\n')
        head += [f'Subject: attachment {i}', 'MIME-Version: 1.0',
                 f'Content-Type: multipart/mixed; boundary="mix-{i}"']
        body = [f'--mix-{i}', 'Content-Type: text/plain', '', 'see attached', f'--mix-{i}',
                'Content-Type: application/octet-stream; name="data.bin"',
                'Content-Transfer-Encoding: base64',
                'Content-Disposition: attachment; filename="data.bin"', ''] + blob + [f'--mix-{i}--']
    elif shape == 4:  # folded headers and a nested message/rfc822
        head += [f'Subject: forwarded {i} with a subject long enough',
                 '\tto be folded onto a second line',
                 'References: <a@example.org>\r\n <b@example.org>\r\n <c@example.org>',
                 'MIME-Version: 1.0', f'Content-Type: multipart/mixed; boundary="fwd-{i}"']
        body = [f'--fwd-{i}', 'Content-Type: text/plain', '', 'forwarded below', f'--fwd-{i}',
                'Content-Type: message/rfc822', '', 'From: inner@example.net',
                'Subject: inner', '', 'inner body', f'--fwd-{i}--']
    elif shape == 5:  # big: 100-300 KB of text, every so often; else tiny
        if i % 35 == 5:
            body = ['x' * 76] * rng.randint(1300, 3900)
            head += [f'Subject: big {i}']
        else:
            body = [f'tiny {i}']
            head += [f'Subject: tiny {i}']
    else:  # no final newline, quoted-printable
        head += [f'Subject: qp {i}', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=iso-8859-1',
                 'Content-Transfer-Encoding: quoted-printable']
        body = ['Gr=FC=DFe =3D soft line=', 'break', 'From the start of a line', 'last line, no newline']
        return msgid, ('\r\n'.join(head) + '\r\n\r\n' + '\r\n'.join(body)).encode()
    return msgid, ('\r\n'.join(head) + '\r\n\r\n' + '\r\n'.join(body) + '\r\n').encode()


def random_flags(rng):
    flags = []
    if rng.random() < 0.6:
        flags.append('\\Seen')
    if rng.random() < 0.15:
        flags.append('\\Answered')
    if rng.random() < 0.1:
        flags.append('\\Flagged')
    if rng.random() < 0.03:
        flags.append('\\Draft')
    if rng.random() < 0.03:
        flags.append('\\Deleted')
    if rng.random() < 0.05:
        flags.append('$Label1')
    return flags


def internal_date(rng):
    return '"{:02d}-{}-20{:02d} {:02d}:{:02d}:{:02d} {}"'.format(
        rng.randint(1, 28), rng.choice(MONTHS), rng.randint(10, 24), rng.randint(0, 23),
        rng.randint(0, 59), rng.randint(0, 59), rng.choice(['+0000', '+0200', '-0500']))


# ---------------------------------------------------------------- server side

def connect(port):
    c = imaplib.IMAP4('127.0.0.1', port)
    c.login(USER, PASSWORD)
    return c


def separator(c):
    typ, data = c.list('""', '""')
    m = re.search(rb'\) "(.)" ', data[0])
    return m.group(1).decode() if m else '/'


def quote(name):
    return '"' + name.replace('\\', '\\\\').replace('"', '\\"') + '"'


def checked(res, what):
    typ, data = res
    if typ != 'OK':
        fail(f'{what}: {typ} {data}')
    return data


def populate(port, spec):
    """MULTIAPPEND batches of 50 messages with LITERAL+, all pipelined on
    one connection, then every tagged answer read back in order. Returns
    what was written (some carry \\Deleted, so mbsync's first pass
    expunges them: 'written', not 'added')."""
    written = []
    c = connect(port)
    sep = separator(c)
    c.logout()
    rng = random.Random(1)
    s = socket.create_connection(('127.0.0.1', port))
    s.settimeout(60)
    f = s.makefile('rb')
    f.readline()
    s.sendall(b'L LOGIN alice Secr3t\r\n')
    while not f.readline().startswith(b'L '):
        pass
    out, tags = [], []
    for item in spec.split(','):
        name, count = item.split('=')
        box = name.replace('/', sep)
        tags.append(('create', f'C{len(tags)}'))
        out.append(f'{tags[-1][1]} CREATE {quote(box)}\r\n'.encode())
        for start in range(0, int(count), 50):
            tag = f'A{len(tags)}'
            tags.append(('append', tag))
            cmd = [f'{tag} APPEND {quote(box)}'.encode()]
            for i in range(start, min(start + 50, int(count))):
                msgid, data = message(rng, 'pop', name, i)
                written.append([name, msgid, entry(data, '')[1]])
                flags = random_flags(rng)
                cmd.append(f' ({" ".join(flags)}) {internal_date(rng)} {{{len(data)}+}}\r\n'.encode() + data)
            out.append(b''.join(cmd) + b'\r\n')
    s.sendall(b''.join(out))
    for kind, tag in tags:
        while True:
            line = f.readline()
            if not line:
                fail(f'connection closed waiting for {tag}')
            if line.startswith(tag.encode() + b' '):
                break
        if kind == 'append' and not line.startswith(tag.encode() + b' OK [APPENDUID '):
            fail(f'APPEND: {line!r}')
        # CREATE of an auto-created special-use folder answers ALREADYEXISTS.
        if kind == 'create' and not (b' OK ' in line or b'ALREADYEXISTS' in line):
            fail(f'CREATE: {line!r}')
    s.sendall(b'Z LOGOUT\r\n')
    s.close()
    return {'written': written, 'added': [], 'deleted': [], 'flags': []}


def list_server(c):
    """Selectable mailboxes as '/'-separated names."""
    sep = separator(c)
    names = []
    typ, data = c.list('""', '*')
    items = iter(data)
    for item in items:
        if isinstance(item, tuple):  # name sent as a literal
            attrs, name = item[0], item[1]
        else:
            m = re.match(rb'\(([^)]*)\) (?:"(?:\\.|[^"])*"|NIL) (.*)$', item)
            if not m:
                fail(f'LIST line {item!r}')
            attrs, name = m.group(1), m.group(2)
            if name.startswith(b'"'):
                name = re.sub(rb'\\(.)', rb'\1', name[1:-1])
        if re.search(rb'\\Noselect|\\NonExistent', attrs, re.I):
            continue
        names.append(name.decode().replace(sep, '/'))
    return sorted(names), sep


def server_snapshot(port):
    c = connect(port)
    names, sep = list_server(c)
    snap, dates = {}, {}
    for name in names:
        dates[name] = {}
        typ, data = c.select(quote(name.replace('/', sep)), readonly=True)
        if typ != 'OK':
            fail(f'EXAMINE {name}: {data}')
        msgs = []
        if int(data[0]) > 0:
            data = checked(c.uid('FETCH', '1:*', '(FLAGS INTERNALDATE BODY.PEEK[])'), f'FETCH {name}')
            for item in data:
                if not isinstance(item, tuple):
                    continue
                m = re.search(rb'FLAGS \(([^)]*)\)', item[0])
                if not m:
                    fail(f'FETCH without FLAGS in {name}: {item[0]!r}')
                letters = ''.join(sorted(FLAG_LETTERS.get(f, '') for f in m.group(1).decode().split()))
                msgs.append(entry(item[1], letters))
                date = imaplib.Internaldate2tuple(item[0])
                if date is None:
                    fail(f'FETCH without INTERNALDATE in {name}: {item[0]!r}')
                dates[name][msgs[-1][0]] = int(time.mktime(date))
        snap[name] = sorted(msgs)
        c.close()
    c.logout()
    return snap, dates


def mutate_server(port, rnd):
    """New messages in three folders and in a new folder, flag changes,
    and expunges; returns what was done."""
    rng = random.Random(100 + rnd)
    c = connect(port)
    names, sep = list_server(c)
    done = {'added': [], 'deleted': [], 'flags': []}
    new_folder = f'Projects{rnd}'
    checked(c.create(quote(new_folder)), 'CREATE')
    for folder, count in [('INBOX', 10), (names_with(names, 'Archive/2024'), 5), ('Sent', 3), (new_folder, 4)]:
        for i in range(count):
            msgid, data = message(rng, f'srv{rnd}', folder, i)
            flags = rng.choice(['', '\\Seen', '\\Seen \\Flagged', '\\Answered \\Seen'])
            checked(c.append(quote(folder.replace('/', sep)), f'({flags})', None, data), 'APPEND')
            done['added'].append([folder, msgid, entry(data, '')[1]])
    # Flag changes in INBOX, expunges in Archive/2023.
    checked(c.select('INBOX'), 'SELECT INBOX')
    uids = uid_msgids(c)
    picks = rng.sample(sorted(u for u in uids if parity(uids[u]) == 1), 20)
    for uid in picks[:8]:
        checked(c.uid('STORE', str(uid), '+FLAGS', '(\\Flagged)'), 'STORE')
    for uid in picks[8:16]:
        checked(c.uid('STORE', str(uid), '-FLAGS', '(\\Seen)'), 'STORE')
    for uid in picks[16:]:
        checked(c.uid('STORE', str(uid), '+FLAGS', '(\\Answered \\Seen)'), 'STORE')
    typ, data = c.uid('FETCH', ','.join(map(str, picks)), '(FLAGS)')
    for line in data:
        m = re.search(rb'UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)', line)
        uid = int(m.group(1) or m.group(4))
        flags = (m.group(2) if m.group(1) else m.group(3)).decode().split()
        done['flags'].append(['INBOX', uids[uid], ''.join(sorted(FLAG_LETTERS.get(f, '') for f in flags))])
    c.close()
    folder = 'Archive/2023'
    checked(c.select(quote(folder.replace('/', sep))), 'SELECT')
    uids = uid_msgids(c)
    for uid in rng.sample(sorted(uids), 6):
        checked(c.uid('STORE', str(uid), '+FLAGS.SILENT', '(\\Deleted)'), 'STORE')
        done['deleted'].append([folder, uids[uid]])
    checked(c.expunge(), 'EXPUNGE')
    c.close()
    c.logout()
    return done


def parity(msgid):
    """Each side changes the flags of its own half of the populated
    messages (even numbers locally, odd on the server), so both sides'
    changes have one expected outcome."""
    m = re.match(r'<pop\.[^>]*\.(\d+)@', msgid or '')
    return int(m.group(1)) % 2 if m else None


def file_msgid(path):
    with open(path, 'rb') as fh:
        return msgid_of(fh.read())


def names_with(names, name):
    if name not in names:
        fail(f'no folder {name} in {names}')
    return name


def uid_msgids(c):
    """UID -> Message-ID of the selected mailbox's undeleted messages."""
    data = checked(c.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])'), 'FETCH ids')
    out = {}
    for item in data:
        if isinstance(item, tuple) and b'\\Deleted' not in item[0]:
            uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
            out[uid] = re.search(rb'<[^>]*>', item[1]).group(0).decode()
    return out


# ---------------------------------------------------------------- local side

def local_folders(root):
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        if 'cur' in dirnames and 'new' in dirnames:
            rel = os.path.relpath(dirpath, root)
            out[rel] = dirpath
    return out


def local_messages(path):
    """(file path, letters) of every message of one Maildir folder, in
    Message-ID order (so that a seeded pick is the same on every run)."""
    out = []
    for sub in ('cur', 'new'):
        for f in os.listdir(os.path.join(path, sub)):
            letters = f.split(':2,', 1)[1] if ':2,' in f else ''
            out.append((os.path.join(path, sub, f), ''.join(sorted(letters))))
    return sorted(out, key=lambda m: (file_msgid(m[0]) or '', m[0]))


def local_snapshot(root):
    snap, dates = {}, {}
    for name, path in local_folders(root).items():
        msgs = []
        dates[name] = {}
        for file, letters in local_messages(path):
            with open(file, 'rb') as fh:
                msgs.append(entry(fh.read(), ''.join(l for l in letters if l in LETTER_FLAGS)))
            # CopyArrivalDate: the file's mtime is the INTERNALDATE.
            dates[name][msgs[-1][0]] = int(os.stat(file).st_mtime)
        snap[name] = sorted(msgs)
    return snap, dates


def msgid_of(data):
    head = data.split(b'\n\n', 1)[0].replace(b'\r\n', b'\n')
    m = re.search(rb'(?im)^message-id:\s*(<[^>]*>)', head)
    return m.group(1).decode() if m else None


def entry(data, letters):
    """What must match on both sides: the message's own bytes (line ends
    normalised to LF, as mbsync's Maildir stores them; without the X-TUID
    header mbsync adds to every message it copies, to find it again; with
    a final newline, which an mbox adds to a message that lacks one, as
    Dovecot's does) and the flags."""
    norm = data.replace(b'\r\n', b'\n')
    if not norm.endswith(b'\n'):
        norm += b'\n'
    head, sep, body = norm.partition(b'\n\n')
    head = re.sub(rb'(?im)^X-TUID: [^\n]*\n', b'', head + b'\n')[:-1]
    norm = head + sep + body
    return (msgid_of(data), hashlib.sha1(norm).hexdigest()[:16], letters)


def write_local(path, sub, data, letters=''):
    name = f'{time.time_ns()}.M{random.getrandbits(32)}P{os.getpid()}.mbsynctest'
    if sub == 'cur':
        name += ':2,' + letters
    with open(os.path.join(path, 'tmp', name), 'wb') as fh:
        fh.write(data)
    os.rename(os.path.join(path, 'tmp', name), os.path.join(path, sub, name))


def mutate_local(root, rnd):
    rng = random.Random(200 + rnd)
    folders = local_folders(root)
    done = {'added': [], 'deleted': [], 'flags': []}
    # Flag changes and deletions first, so they touch only messages mbsync
    # already knows; flags of the even-numbered INBOX messages (the server
    # side changes odd ones).
    msgs = [m for m in local_messages(folders['INBOX']) if '/cur/' in m[0] and parity(file_msgid(m[0])) == 0]
    for file, letters in rng.sample(msgs, 12):
        flags = set(letters) ^ {rng.choice('FSR')}
        flags.discard('T')
        base = file.split(':2,', 1)[0]
        new_name = base + ':2,' + ''.join(sorted(flags))
        os.rename(file, new_name)
        with open(new_name, 'rb') as fh:
            done['flags'].append(['INBOX', msgid_of(fh.read()), ''.join(sorted(flags))])
    # Deletions: trashed (T, expunged by mbsync) in Archive/2024, removed
    # files in Sent.
    for folder, how in [('Archive/2024', 'trash'), ('Sent', 'remove')]:
        msgs = [m for m in local_messages(folders[folder]) if '/cur/' in m[0]]
        for file, letters in rng.sample(msgs, 4):
            with open(file, 'rb') as fh:
                done['deleted'].append([folder, msgid_of(fh.read())])
            if how == 'trash':
                os.rename(file, file.split(':2,', 1)[0] + ':2,' + ''.join(sorted(set(letters) | {'T'})))
            else:
                os.remove(file)
    # New messages, LF line endings as a local MUA writes them.
    for folder, count in [('INBOX', 5), ('Archive/2024', 3), ('Lists/dev', 2)]:
        for i in range(count):
            msgid, data = message(rng, f'loc{rnd}', folder, i)
            write_local(folders[folder], rng.choice(['new', 'cur']), data.replace(b'\r\n', b'\n'),
                        rng.choice(['', 'S', 'FS']))
            done['added'].append([folder, msgid, entry(data, '')[1]])
    # A new folder.
    new = os.path.join(root, f'Local{rnd}')
    for sub in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(new, sub))
    for i in range(3):
        msgid, data = message(rng, f'loc{rnd}', f'Local{rnd}', i)
        write_local(new, 'new', data.replace(b'\r\n', b'\n'))
        done['added'].append([f'Local{rnd}', msgid, entry(data, '')[1]])
    return done


# ---------------------------------------------------------------- compare

def compare(port, root, expects, contents):
    server, server_dates = server_snapshot(port)
    local, local_dates = local_snapshot(root)
    problems = []
    for name in sorted(set(server_dates) & set(local_dates)):
        for msgid, date in server_dates[name].items():
            theirs = local_dates[name].get(msgid)
            if theirs is not None and theirs != date:
                problems.append(f'{name} {msgid}: INTERNALDATE {date}, local mtime {theirs}')
    if sorted(server) != sorted(local):
        problems.append(f'folders differ: server {sorted(server)} local {sorted(local)}')
    for name in sorted(set(server) | set(local)):
        s, l = server.get(name, []), local.get(name, [])
        if s != l:
            only_s = sorted(set(s) - set(l))
            only_l = sorted(set(l) - set(s))
            problems.append(f'{name}: server {len(s)} local {len(l)} messages; '
                            f'only on server {only_s[:5]}, only local {only_l[:5]}')
        dups = [e for e in set(s) if s.count(e) > 1]
        if dups:
            problems.append(f'{name}: duplicates {dups[:5]}')
    for path in expects + contents:
        with open(path) as fh:
            done = json.load(fh)
        for folder, msgid, digest in done['added'] + done.get('written', []):
            got = [e[1] for e in server.get(folder, []) if e[0] == msgid]
            if any(g != digest for g in got):
                problems.append(f'{path}: {folder} {msgid} changed: {got}, written as {digest}')
            if path in contents:
                continue
            if not got:
                problems.append(f'{path}: added {msgid} missing in server {folder}')
        if path in contents:
            continue
        for folder, msgid in done['deleted']:
            if any(e[0] == msgid for e in server.get(folder, [])):
                problems.append(f'{path}: deleted {msgid} still in server {folder}')
        for folder, msgid, letters in done['flags']:
            got = [e[2] for e in server.get(folder, []) if e[0] == msgid]
            if got != [letters]:
                problems.append(f'{path}: {folder} {msgid} flags {got}, want {letters}')
    if problems:
        for p in problems:
            print(p)
        fail(f'{len(problems)} differences')
    total = sum(len(v) for v in server.values())
    print(f'SAME {len(server)} folders {total} messages')
    for name in sorted(server):
        print(f'  {name}: {len(server[name])}')


def main():
    cmd = sys.argv[1]
    if cmd == 'populate':
        with open(sys.argv[4], 'w') as fh:
            json.dump(populate(int(sys.argv[2]), sys.argv[3]), fh)
        print('POPULATED')
    elif cmd == 'mutate-server':
        with open(sys.argv[4], 'w') as fh:
            json.dump(mutate_server(int(sys.argv[2]), int(sys.argv[3])), fh)
        print('MUTATED')
    elif cmd == 'mutate-local':
        with open(sys.argv[4], 'w') as fh:
            json.dump(mutate_local(sys.argv[2], int(sys.argv[3])), fh)
        print('MUTATED')
    elif cmd == 'compare':
        args = sys.argv[4:]
        split = args.index('--content') if '--content' in args else len(args)
        compare(int(sys.argv[2]), sys.argv[3], args[:split], args[split + 1:])
    else:
        fail(f'unknown command {cmd}')


main()
