"""Every IMAP command through Python's imaplib against a running server.
Usage: commands.py PORT. Exits non-zero (with the transcript) on failure."""
import imaplib, sys, re, time

port = int(sys.argv[1])
c = imaplib.IMAP4('127.0.0.1', port)
c.login('alice', 'Secr3t')
log = []

def ok(res, what):
    typ, data = res
    log.append((what, typ, data))
    if typ != 'OK':
        fail(f'{what}: {typ} {data}')
    return data

def fail(msg):
    for entry in log:
        print(entry)
    print('FAIL:', msg)
    sys.exit(1)

def bad(fn, *args):
    """Runs a command expected to fail; imaplib raises on BAD."""
    try:
        return fn(*args)
    except imaplib.IMAP4.error as e:
        return 'BAD', [str(e).encode()]

def check(cond, msg):
    if not cond:
        fail(msg)

caps = ok(c.capability(), 'CAPABILITY')[0].decode()
for cap in ['IMAP4rev1', 'IDLE', 'UIDPLUS', 'MOVE', 'CONDSTORE', 'QRESYNC', 'ESEARCH', 'LITERAL+', 'NAMESPACE']:
    check(cap in caps.split(), f'capability {cap} missing: {caps}')
# As Dovecot: SPECIAL-USE only when a configured mailbox has special_use
# (this server's config has none).
check('SPECIAL-USE' not in caps.split(), f'SPECIAL-USE without special_use mailboxes: {caps}')
ok(c.noop(), 'NOOP')
ns = ok(c.namespace(), 'NAMESPACE')[0]
check(ns.startswith(b'(("'), f'namespace {ns}')

# Mailbox management.
root = ok(c.list('""', '""'), 'LIST sep')[0]
sep = re.search(rb'\) "(.)" ', root).group(1).decode()
ok(c.create('Top'), 'CREATE')
ok(c.create(f'Work{sep}Sub'), 'CREATE child')
typ, data = c.create('Top')
check(typ == 'NO' and b'ALREADYEXISTS' in data[0], f'create twice: {typ} {data}')
names = ok(c.list('""', '*'), 'LIST')
text = b'\n'.join(names)
check(b'INBOX' in text and f'Work{sep}Sub'.encode() in text, f'list: {text}')
check(b'\\HasChildren' in [n for n in names if n.endswith(b' Work')][0], f'children: {names}')
ok(c.subscribe('Top'), 'SUBSCRIBE')
lsub = ok(c.lsub('""', '*'), 'LSUB')
check(any(l.endswith(b' Top') for l in lsub), f'lsub: {lsub}')
ok(c.unsubscribe('Top'), 'UNSUBSCRIBE')
lsub = ok(c.lsub('""', '*'), 'LSUB after')
check(not any(l is not None and l.endswith(b' Top') for l in lsub), f'lsub after: {lsub}')
ok(c.rename(f'Work{sep}Sub', 'Other'), 'RENAME')
names = b'\n'.join(ok(c.list('""', '*'), 'LIST after rename'))
check(b'Other' in names and f'Work{sep}Sub'.encode() not in names, f'rename: {names}')
ok(c.delete('Other'), 'DELETE')
typ, data = c.delete('Nope')
check(typ == 'NO' and b'NONEXISTENT' in data[0], f'delete nonexistent: {data}')

# APPEND (with flags and date), STATUS.
msg1 = b'From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: hello one\r\nMessage-ID: <1@x>\r\n\r\nfirst body\r\n'
msg2 = (b'From: bob@example.com\r\nSubject: second\r\nMIME-Version: 1.0\r\n'
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n'
        b'--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b--\r\n')
r = ok(c.append('INBOX', '(\\Flagged)', '"01-Jan-2020 10:00:00 +0000"', msg1), 'APPEND')
check(re.search(rb'\[APPENDUID \d+ 1\]', r[0]), f'appenduid: {r}')
ok(c.append('INBOX', None, None, msg2), 'APPEND 2')
typ, data = c.append('Nope', None, None, msg1)
check(typ == 'NO' and b'TRYCREATE' in data[0], f'append trycreate: {data}')
st = ok(c.status('INBOX', '(MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ)'), 'STATUS')[0]
check(b'MESSAGES 2' in st and b'UIDNEXT 3' in st and b'UNSEEN 2' in st, f'status: {st}')

# SELECT, FETCH.
ok(c.select('INBOX'), 'SELECT')
check(c.untagged_responses.get('EXISTS') == [b'2'], f'exists: {c.untagged_responses}')
# The first SELECT after delivery takes \Recent for both messages.
check(c.untagged_responses.get('RECENT') == [b'2'], f'recent: {c.untagged_responses}')
d = ok(c.fetch('1', '(FLAGS UID RFC822.SIZE INTERNALDATE)'), 'FETCH')[0]
check(b'\\Flagged' in d and b'UID 1' in d and b'RFC822.SIZE %d' % len(msg1) in d and b'01-Jan-2020 10:00:00 +0000' in d, f'fetch: {d}')
d = ok(c.fetch('1', '(BODY.PEEK[])'), 'FETCH BODY.PEEK[]')
check(d[0][1] == msg1, f'body: {d}')
d = ok(c.fetch('1', '(FLAGS)'), 'FETCH FLAGS')
check(b'\\Seen' not in d[0], f'peek set seen: {d}')
d = ok(c.fetch('1', '(BODY.PEEK[HEADER.FIELDS (Subject)])'), 'FETCH HEADER.FIELDS')
check(d[0][1] == b'Subject: hello one\r\n\r\n', f'header fields: {d}')
d = ok(c.fetch('1', '(BODY.PEEK[TEXT]<0.5>)'), 'FETCH partial')
check(d[0][1] == b'first' and b'BODY[TEXT]<0>' in d[0][0], f'partial: {d}')
d = ok(c.fetch('2', '(BODY.PEEK[2] BODY.PEEK[1.MIME])'), 'FETCH parts')
check(d[0][1] == b'<p>two</p>', f'part 2: {d}')
d = ok(c.fetch('1', '(ENVELOPE BODYSTRUCTURE)'), 'FETCH ENVELOPE')[0]
check(b'"hello one"' in d and b'"alice" "example.com"' in d and b'"text" "plain"' in d, f'envelope: {d}')
# Byte for byte what Dovecot 2.3.19 answers for the multipart message.
d = ok(c.fetch('2', '(ENVELOPE BODYSTRUCTURE BODY)'), 'FETCH multipart ENVELOPE/BODYSTRUCTURE')[0]
expected = (b'2 (ENVELOPE (NIL "second" ((NIL NIL "bob" "example.com")) ((NIL NIL "bob" "example.com")) '
            b'((NIL NIL "bob" "example.com")) NIL NIL NIL NIL NIL) BODYSTRUCTURE (("text" "plain" '
            b'("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") '
            b'NIL NIL "7bit" 10 0 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL) BODY (("text" "plain" '
            b'("charset" "us-ascii") NIL NIL "7bit" 8 0)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 10 0) '
            b'"mixed"))')
check(d == expected, f'multipart structure: {d}')
d = ok(c.fetch('1', '(BODY[TEXT])'), 'FETCH sets seen')
# As Dovecot: the implicit FLAGS comes before the body literal.
check(d[0][0].startswith(b'1 (FLAGS (\\Flagged \\Seen \\Recent) BODY[TEXT] {'), f'seen: {d}')
d = ok(c.fetch('1', '(FLAGS)'), 'FETCH after seen')
check(b'\\Seen' in d[0], f'seen kept: {d}')
d = ok(c.fetch('1', 'RFC822.HEADER'), 'RFC822.HEADER')
check(d[0][1].endswith(b'\r\n\r\n'), f'rfc822.header: {d}')
d = ok(c.uid('FETCH', '2', '(FLAGS)'), 'UID FETCH')
check(b'UID 2' in d[0], f'uid fetch: {d}')
typ, data = bad(c.fetch, '5', '(FLAGS)')
check(typ == 'BAD' and b'Invalid messageset' in data[0], f'fetch 5: {typ} {data}')

# STORE.
d = ok(c.store('1', '+FLAGS', '(\\Answered $Label1)'), 'STORE')
check(b'\\Answered' in d[0] and b'$Label1' in d[0], f'store: {d}')
d = ok(c.store('1', '-FLAGS.SILENT', '($Label1)'), 'STORE silent')
check(d == [None], f'silent: {d}')
d = ok(c.fetch('1', '(FLAGS)'), 'FETCH after store')
check(b'$Label1' not in d[0] and b'\\Answered' in d[0], f'store result: {d}')
typ, data = bad(c.store, '1', 'FOO', '(\\Seen)')
check(typ == 'BAD', f'store bad: {data}')

# SEARCH.
d = ok(c.search(None, 'SUBJECT', '"hello"'), 'SEARCH')
check(d[0] == b'1', f'search: {d}')
d = ok(c.search(None, 'UNSEEN'), 'SEARCH UNSEEN')
check(d[0] == b'2', f'unseen: {d}')
d = ok(c.search(None, 'RECENT'), 'SEARCH RECENT')
check(d[0] == b'1 2', f'search recent: {d}')
d = ok(c.fetch('2', '(FLAGS)'), 'FETCH FLAGS recent')
check(b'\\Recent' in d[0], f'fetch recent: {d}')
d = ok(c.uid('SEARCH', 'ALL'), 'UID SEARCH')
check(d[0] == b'1 2', f'uid search: {d}')
d = ok(c.search(None, 'BODY', 'two'), 'SEARCH BODY')
check(d[0] == b'2', f'search body: {d}')
d = ok(c.search(None, 'OR', 'FLAGGED', 'FROM', 'bob'), 'SEARCH OR')
check(d[0] == b'1 2', f'search or: {d}')
typ, data = c._simple_command('SEARCH', 'RETURN', '(MIN MAX COUNT)', 'ALL')
d = c._untagged_response(typ, data, 'ESEARCH')[1]
check(b'MIN 1 MAX 2 COUNT 2' in d[0], f'esearch: {d}')
typ, data = bad(c.search, None, 'FOO')
check(typ == 'BAD' and b'Unknown argument' in data[0], f'search bad: {data}')
c.literal = 'h\u00e9llo'.encode()
d = ok(c.search('UTF-8', 'SUBJECT'), 'SEARCH CHARSET UTF-8 non-ASCII')
check(d == [b''], f'search utf-8: {d}')
typ, data = c.search('X-NOPE', 'ALL')
check(typ == 'NO' and b'[BADCHARSET' in data[0], f'badcharset: {typ} {data}')

# SORT / THREAD.
for cap in ['SORT', 'SORT=DISPLAY', 'THREAD=REFERENCES', 'THREAD=REFS', 'THREAD=ORDEREDSUBJECT']:
    check(cap in caps.split(), f'capability {cap} missing: {caps}')
d = ok(c.sort('(SUBJECT)', 'UTF-8', 'ALL'), 'SORT SUBJECT')
check(d == [b'1 2'], f'sort subject: {d}')
d = ok(c.sort('(REVERSE FROM)', 'UTF-8', 'ALL'), 'SORT REVERSE FROM')
check(d == [b'2 1'], f'sort reverse from: {d}')
d = ok(c.uid('SORT', '(REVERSE ARRIVAL)', 'UTF-8', 'ALL'), 'UID SORT')
check(d == [b'2 1'], f'uid sort: {d}')
d = ok(c.sort('(SIZE)', 'UTF-8', 'SUBJECT', 'second'), 'SORT with search')
check(d == [b'2'], f'sort search: {d}')
typ, data = bad(c.sort, '(FOO)', 'UTF-8', 'ALL')
check(typ == 'BAD' and b'Unknown sort argument' in data[0], f'sort bad: {data}')
for alg in ['REFERENCES', 'REFS', 'ORDEREDSUBJECT']:
    d = ok(c.thread(alg, 'UTF-8', 'ALL'), f'THREAD {alg}')
    check(d == [b'(1)(2)'], f'thread {alg}: {d}')
d = ok(c.uid('THREAD', 'REFERENCES', 'UTF-8', 'ALL'), 'UID THREAD')
check(d == [b'(1)(2)'], f'uid thread: {d}')

# COPY / MOVE.
ok(c.create('Archive'), 'CREATE Archive')
d = ok(c.copy('1', 'Archive'), 'COPY')
check(re.search(rb'\[COPYUID \d+ 1 1\]', d[-1]), f'copyuid: {d}')
typ, data = c.copy('1', 'Nope')
check(typ == 'NO' and b'TRYCREATE' in data[0], f'copy trycreate: {data}')
typ, data = c.xatom('MOVE', '2', 'Archive')
check(typ == 'OK', f'move: {typ} {data}')
check(c.untagged_responses.get('EXPUNGE') == [b'2'], f'move expunge: {c.untagged_responses}')
st = ok(c.status('Archive', '(MESSAGES)'), 'STATUS Archive')[0]
check(b'MESSAGES 2' in st, f'archive: {st}')

# EXPUNGE / CLOSE / UNSELECT / EXAMINE / CHECK.
ok(c.select('Archive'), 'SELECT Archive')
# Dovecot announces the end of the previous selection to every client.
check(c.untagged_responses.pop('CLOSED', None) == [b''], f'closed: {c.untagged_responses}')
check(c.untagged_responses.pop('RECENT', None) == [b'2'], f'select recent: {c.untagged_responses}')
ok(c.store('1', '+FLAGS', '\\Deleted'), 'STORE deleted')
d = ok(c.expunge(), 'EXPUNGE')
check(d == [b'1'], f'expunge: {d}')
# Expunging a \Recent message lowers the count, and Dovecot says so.
check(c.untagged_responses.pop('RECENT', None) == [b'1'], f'recent after expunge: {c.untagged_responses}')
# MOVE into the selected mailbox itself (mbsync does it when its Trash is
# a synced folder): a new UID, the old one expunged, as Dovecot; the
# \Recent count stays 1, so no RECENT.
c.untagged_responses.clear()
typ, data = c.xatom('MOVE', '1', 'Archive')
check(typ == 'OK' and b'Move completed' in data[-1], f'move to itself: {typ} {data}')
check(re.match(rb'\d+ 2 3$', c.untagged_responses.get('COPYUID', [b''])[0]), f'move to itself: {c.untagged_responses}')
check(c.untagged_responses.get('EXPUNGE') == [b'1'] and c.untagged_responses.get('EXISTS') == [b'1'],
      f'move to itself: {c.untagged_responses}')
check('RECENT' not in c.untagged_responses, f'move to itself, recent: {c.untagged_responses}')
typ, data = c._simple_command('STATUS', 'Archive', '(MESSAGES)')
check(typ == 'OK' and data[-1].startswith(b'[CLIENTBUG] Status on selected mailbox completed'), f'status selected: {data}')
c.untagged_responses.clear()
ok(c.check(), 'CHECK')
ok(c.xatom('UNSELECT'), 'UNSELECT')
ok(c.select('Archive', readonly=True), 'EXAMINE')
typ, data = c.store('1', '+FLAGS', '\\Deleted')
check(typ == 'NO', f'store read-only: {typ} {data}')
ok(c.close(), 'CLOSE')
c.state = 'SELECTED'  # imaplib would refuse to send it
typ, data = bad(c.fetch, '1', 'FLAGS')
c.state = 'AUTH'
check(typ == 'BAD' and b'No mailbox selected' in data[0], f'after close: {data}')

# LIST extended.
d = ok(c._simple_command('LIST', '""', '%', 'RETURN', '(STATUS (MESSAGES))'), 'LIST-STATUS')
d = c.untagged_responses.pop('STATUS', [])
check(any(b'Archive (MESSAGES 1)' in x for x in d), f'list-status: {d}')
typ, data = c.xatom('ID', 'NIL')
check(typ == 'OK', f'id: {typ}')
check(c.untagged_responses.pop('ID', [None])[0] == b'("name" "Dovecot")', 'ID reply')
typ, data = c.xatom('ENABLE', 'CONDSTORE')
check(typ == 'OK' and c.untagged_responses.pop('ENABLED', [b''])[0] == b'CONDSTORE', f'enable: {data}')
typ, data = bad(c.xatom, 'FOO')
check(typ == 'BAD' and b'Unknown command' in data[0], f'unknown: {data}')
print(c.logout()[0])
print('ALL OK')
