#!/usr/bin/env python3
"""Produces the expected IMAP renderings of the corpus with Debian's real
Dovecot 2.3 (/usr/lib/dovecot/imap in PREAUTH mode, run as `nobody` on a
throw-away Maildir). Run as root: `python3 generate.py` (after
make_corpus.py). Writes:

  expected/NNN.fetch   ENVELOPE, BODY and BODYSTRUCTURE of message NNN, each
                       as "NAME <len>\\n<exact bytes>\\n"
  expected/now         the Unix time of the run (YOUNGER/OLDER results
                       depend on it)
  expected/commands    "C <cmd>\\n" then "R <len>\\n<untagged+tagged reply>\\n"
                       for SEARCH/SORT/THREAD commands over the mailbox

Mailbox facts the Rust test reproduces (flags, INTERNALDATE) follow the
rules in meta(): keep them in sync with tests/imap_render.rs."""
import os, re, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
MSGS = os.path.join(HERE, "msgs")
EXP = os.path.join(HERE, "expected")

def meta(i):
    """(maildir flag letters, internal date) of message i (1-based)."""
    flags = ""
    if i % 13 == 0: flags += "D"
    if i % 5 == 0: flags += "F"
    if i % 7 == 0: flags += "R"
    if i % 3 == 0: flags += "S"
    if i % 11 == 0: flags += "T"
    return flags, 1794000000 + i * 25000

SEARCHES = [
    "SEARCH ALL", "SEARCH SEEN", "SEARCH UNSEEN", "SEARCH FLAGGED", "SEARCH ANSWERED DELETED",
    "SEARCH DRAFT", "SEARCH NEW", "SEARCH OLD", "SEARCH RECENT", "SEARCH UNANSWERED UNDELETED UNDRAFT UNFLAGGED",
    "SEARCH SUBJECT kickoff", "SEARCH SUBJECT \"project KICKOFF\"", "SEARCH FROM anna", "SEARCH TO user1",
    "SEARCH CC zoe", "SEARCH BCC eve", "SEARCH HEADER Message-ID t1@", "SEARCH HEADER X-Nothing \"\"",
    "SEARCH HEADER Content-Type multipart", "SEARCH HEADER subject \"\"",
    "SEARCH BODY \"thread body\"", "SEARCH TEXT report", "SEARCH TEXT Quarterly", "SEARCH BODY attached",
    "SEARCH CHARSET UTF-8 SUBJECT \"Grüße\"", "SEARCH CHARSET UTF-8 BODY \"crème\"", "SEARCH CHARSET UTF-8 SUBJECT \"Привет\"",
    "SEARCH CHARSET UTF-8 BODY \"Привет\"", "SEARCH CHARSET UTF-8 SUBJECT \"żółć\"", "SEARCH CHARSET UTF-8 FROM \"Jörg\"",
    "SEARCH CHARSET UTF-8 TO \"jörg\"", "SEARCH CHARSET UTF-8 BODY \"☃\"", "SEARCH CHARSET UTF-8 SUBJECT \"🎉\"",
    "SEARCH CHARSET ISO-8859-1 SUBJECT \"caf\xe9\"", "SEARCH CHARSET US-ASCII SUBJECT Hello",
    "SEARCH SUBJECT \"smart quotes\"", "SEARCH TEXT \"inner html\"", "SEARCH BODY \"hello \"",
    "SEARCH LARGER 1000", "SEARCH SMALLER 300", "SEARCH NOT SEEN", "SEARCH OR SEEN FLAGGED",
    "SEARCH (SEEN FLAGGED)", "SEARCH NOT (SEEN OR FLAGGED ANSWERED)", "SEARCH 1:10", "SEARCH 5,7:9,120:*",
    "SEARCH UID 5:20", "SEARCH UID 100:*", "SEARCH * ", "SEARCH SINCE 20-Nov-2026", "SEARCH BEFORE 10-Nov-2026",
    "SEARCH ON 15-Nov-2026", "SEARCH SENTSINCE 16-Nov-2026", "SEARCH SENTBEFORE 3-Nov-2026",
    "SEARCH SENTON 2-Nov-2026", "SEARCH SENTON 10-Nov-2026", "SEARCH KEYWORD foo", "SEARCH UNKEYWORD foo",
    "SEARCH SUBJECT re", "SEARCH FROM \"corp.example\" SINCE 1-Jan-2000", "SEARCH OR OR SEEN FLAGGED DRAFT",
    "SEARCH HEADER References t1", "SEARCH TEXT zzzznotthere", "SEARCH SUBJECT \"\"", "SEARCH FROM \"\"",
    "SEARCH TEXT \"Content-Type\"", "SEARCH BODY \"Content-Type\"", "SEARCH TO \"undisclosed\"",
    "SEARCH TO MISSING_DOMAIN", "SEARCH BODY AAAA", "SEARCH TEXT \"part one\"", "SEARCH CHARSET UTF-8 BODY \"\u20ac\"",
    "SEARCH BODY \"nul\"", "SEARCH SUBJECT byte", "SEARCH LARGER 0", "SEARCH SMALLER 1",
    "SEARCH YOUNGER 1", "SEARCH OLDER 1", "SEARCH CHARSET UTF-8 SUBJECT Gr\u00fc\u00dfe",
    "SEARCH CHARSET utf-8 TEXT \"GR\u00dc\u00dfE\"", "SEARCH CHARSET KOI8-R BODY \"\xf0\xd2\xc9\"",
    "SEARCH CHARSET ISO-8859-2 SUBJECT \"\xbf\xf3\xb3\"", "SEARCH SUBJECT \"  \"", "SEARCH HEADER Subject \"DATE  TEST\"",
    "SEARCH OR SUBJECT hello FROM zed", "SEARCH 2:4 UID 3:5", "SEARCH NOT NOT SEEN", "SEARCH SAVEDATESUPPORTED",
    "SEARCH MODSEQ 1", "SEARCH TEXT \"\"", "SEARCH CHARSET UTF-8 BODY \"\u65e5\u672c\"",
    "SEARCH CHARSET UTF-8 SUBJECT \"\u65e5\u672c\u8a9e\"", "SEARCH CHARSET UTF-8 SUBJECT \"\u4f60\u597d\"",
    "SEARCH CHARSET UTF-8 SUBJECT \"Caf\u00e9\"", "SEARCH CHARSET UTF-8 SUBJECT \"10\u20ac\"",
    "SEARCH CHARSET UTF-8 SUBJECT \"\u201csmart\"", "SEARCH CHARSET UTF-8 SUBJECT \"\u30b3\u30f3\u30cb\u30c1\u30cf\"",
    "SEARCH FOO", "SEARCH CHARSET X-FOO BODY x", "SEARCH BEFORE notadate", "SEARCH (SEEN",
    "SEARCH OR SEEN", "SEARCH HEADER Subject", "SEARCH 0", "SEARCH UID", "SEARCH KEYWORD",
    "SEARCH LARGER x", "SEARCH NOT", "SEARCH", "SEARCH SINCE 31-Feb-2026", "SEARCH SEEN)",
    "SORT (SUBJECT) UTF-8 ALL", "SORT (DATE) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL",
    "SORT (FROM) UTF-8 ALL", "SORT (TO) UTF-8 ALL", "SORT (CC) UTF-8 ALL", "SORT (SIZE) UTF-8 ALL",
    "SORT (ARRIVAL) UTF-8 ALL", "SORT (DISPLAYFROM) UTF-8 ALL", "SORT (DISPLAYTO) UTF-8 ALL",
    "SORT (REVERSE SUBJECT DATE) UTF-8 ALL", "SORT (SUBJECT REVERSE ARRIVAL) UTF-8 SEEN",
    "SORT (FROM SUBJECT) UTF-8 FROM corp.example", "SORT (REVERSE SIZE) US-ASCII UNSEEN",
    "SORT (FOO) UTF-8 ALL", "SORT (SUBJECT) X-FOO ALL", "SORT SUBJECT UTF-8 ALL", "SORT () UTF-8 ALL",
    "SORT (REVERSE) UTF-8 ALL",
    "THREAD REFERENCES UTF-8 ALL", "THREAD REFS UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "THREAD REFERENCES UTF-8 FROM corp.example", "THREAD ORDEREDSUBJECT UTF-8 SUBJECT budget",
    "THREAD REFS UTF-8 FROM corp.example", "THREAD FOO UTF-8 ALL",
    "UID SEARCH SEEN", "UID SORT (SUBJECT) UTF-8 FROM corp.example", "UID THREAD REFERENCES UTF-8 FROM corp.example",
]

def encode_cmd(c):
    """Commands naming a legacy charset carry their search string in it."""
    for cs in ("ISO-8859-1", "ISO-8859-2", "KOI8-R"):
        if "CHARSET " + cs in c:
            return c.encode("latin-1")
    return c.encode("utf-8")

def read_response(stream):
    """Reads one response line, with any {n} literals inside it."""
    out = b""
    while True:
        line = stream.readline()
        if not line:
            sys.exit("imap exited early: %r" % out)
        out += line
        m = re.search(rb"\{(\d+)\}\r\n$", line)
        if not m:
            return out
        out += stream.read(int(m.group(1)))

def main():
    names = sorted(os.listdir(MSGS))
    tmp = tempfile.mkdtemp(prefix="dovecote-corpus-")
    md = os.path.join(tmp, "Maildir")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d))
    for i, name in enumerate(names, 1):
        flags, idate = meta(i)
        fn = os.path.join(md, "cur", "%d.M%dP1.corpus:2,%s" % (1700000000 + i, i, flags))
        shutil.copy(os.path.join(MSGS, name), fn)
        os.utime(fn, (idate, idate))
    subprocess.run(["chown", "-R", "nobody:nogroup", tmp], check=True)
    cmds = [b"s SELECT INBOX"]
    for i in range(1, len(names) + 1):
        cmds.append(b"f%d FETCH %d (ENVELOPE)" % (i, i))
        cmds.append(b"g%d FETCH %d (BODY)" % (i, i))
        cmds.append(b"h%d FETCH %d (BODYSTRUCTURE)" % (i, i))
        cmds.append(b"k%d FETCH %d (UID BODY.PEEK[])" % (i, i))
    for j, c in enumerate(SEARCHES):
        cmds.append(b"q%d " % j + encode_cmd(c))
    cmds.append(b"z LOGOUT")
    env = dict(os.environ, USER="corpus", HOME=tmp, TZ="UTC")
    started = int(time.time())
    proc = subprocess.Popen(["/usr/lib/dovecot/imap", "-o", "mail_uid=nobody", "-o", "mail_gid=nogroup",
                             "-o", "mail_location=maildir:" + md],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    greeting = proc.stdout.readline()
    assert greeting.startswith(b"* PREAUTH"), greeting
    by_tag = {}
    for c in cmds:
        # one command at a time: Dovecot runs pipelined commands
        # concurrently and may reorder their untagged replies
        tag = c.split(b" ", 1)[0]
        proc.stdin.write(c + b"\r\n")
        proc.stdin.flush()
        untagged = []
        while True:
            line = read_response(proc.stdout)
            if line.startswith(tag + b" "):
                by_tag[tag.decode()] = (untagged, line)
                break
            untagged.append(line)
    proc.wait(timeout=30)
    if os.path.isdir(EXP):
        shutil.rmtree(EXP)
    os.makedirs(EXP)
    for i, name in enumerate(names, 1):
        # the message Dovecot numbered i must be our file i
        if not by_tag["k%d" % i][0]:
            sys.exit("no FETCH for %d: %r" % (i, [by_tag[t + str(i)] for t in "fghk"]))
        body = by_tag["k%d" % i][0][0]
        stored = open(os.path.join(MSGS, name), "rb").read()
        crlf = stored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if b"\0" not in stored and crlf not in body and stored not in body:
            sys.exit("message %d is not %s" % (i, name))
        rec = b""
        for tag, item in (("f", b"ENVELOPE"), ("g", b"BODY"), ("h", b"BODYSTRUCTURE")):
            untagged, done = by_tag["%s%d" % (tag, i)]
            assert b" OK " in done, done
            line = untagged[0]
            prefix = b"* %d FETCH (%s " % (i, item)
            assert line.startswith(prefix) and line.endswith(b")\r\n"), line
            value = line[len(prefix):-3]
            rec += b"%s %d\n%s\n" % (item, len(value), value)
        open(os.path.join(EXP, name.replace(".eml", ".fetch")), "wb").write(rec)
    out = b""
    for j, c in enumerate(SEARCHES):
        untagged, done = by_tag["q%d" % j]
        reply = b"".join(untagged) + done[len(b"q%d " % j):]
        # drop Dovecot's timing suffix " (0.001 + 0.000 secs)."
        reply = re.sub(rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.", b".", reply)
        cmd = encode_cmd(c)
        out += b"C %s\nR %d\n%s\n" % (cmd, len(reply), reply)
    open(os.path.join(EXP, "commands"), "wb").write(out)
    open(os.path.join(EXP, "now"), "w").write("%d\n" % started)
    shutil.rmtree(tmp)
    print("wrote", len(names), "fetch records and", len(SEARCHES), "command replies")

if __name__ == "__main__":
    main()
