"""ESORT (RFC 5267) and the ESEARCH return options on the wire: each
expected answer is what Dovecot 2.3.19 sends for the same mailbox.
Usage: esort.py PORT. Exits non-zero (with the transcript) on failure."""
import sys
from imapwire import Wire

w = Wire(int(sys.argv[1]))
caps = w.cmd(b'c', b'CAPABILITY')
w.check(b' ESORT ' in caps and b'CONTEXT=SEARCH' not in caps, f'capability: {caps}')
for i, s in enumerate([b'c', b'a', b'e', b'b', b'd', b'a2']):
    m = b'Subject: %s\r\nFrom: x%d@y\r\n\r\nbody %d\r\n' % (s, 9 - i, i)
    got = w.cmd(b'a%d' % i, b'APPEND INBOX {%d+}\r\n' % len(m) + m)
    w.check(b'OK [APPENDUID' in got, f'append: {got}')
w.cmd(b's', b'SELECT INBOX')


def ok(tag, text, lines, done=b'Sort'):
    w.expect(tag, text, lines + tag + b' OK ' + done + b' completed.\r\n')


def bad(tag, text, err):
    w.expect(tag, text, tag + b' BAD Error in IMAP command ' + text.split(b' RETURN')[0] + b': ' + err + b'.\r\n')


ok(b'o1', b'SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL',
   b'* ESEARCH (TAG "o1") MIN 2 MAX 3 ALL 2,6,4,1,5,3 COUNT 6\r\n')
ok(b'o2', b'UID SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL',
   b'* ESEARCH (TAG "o2") UID MIN 2 MAX 3 ALL 2,6,4,1,5,3 COUNT 6\r\n')
ok(b'o3', b'SORT RETURN () (SUBJECT) UTF-8 ALL', b'* ESEARCH (TAG "o3") ALL 2,6,4,1,5,3\r\n')
ok(b'o4', b'SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT zzz', b'* ESEARCH (TAG "o4") COUNT 0\r\n')
ok(b'o5', b'SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 SUBJECT zzz', b'* ESEARCH (TAG "o5") COUNT 0\r\n')
ok(b'o6', b'SORT RETURN (SAVE) (REVERSE ARRIVAL) UTF-8 2:4', b'')
ok(b'o6b', b'SEARCH $', b'* SEARCH 2 3 4\r\n', b'Search')
ok(b'o8', b'SORT RETURN (PARTIAL 1:2) (SUBJECT) UTF-8 ALL', b'* ESEARCH (TAG "o8") PARTIAL (1:2 2,6)\r\n')
ok(b'o9', b'SEARCH RETURN (PARTIAL 2:4) ALL', b'* ESEARCH (TAG "o9") PARTIAL (2:4 2:4)\r\n', b'Search')
ok(b'o11', b'SEARCH RETURN (PARTIAL 10:20) ALL', b'* ESEARCH (TAG "o11") PARTIAL (10:20 NIL)\r\n', b'Search')
ok(b'o14', b'SORT RETURN (MIN MAX) (SUBJECT) UTF-8 1:3', b'* ESEARCH (TAG "o14") MIN 2 MAX 3\r\n')
ok(b'o15', b'SORT RETURN (ALL) (FROM) UTF-8 ALL', b'* ESEARCH (TAG "o15") ALL 6,5,4,3,2,1\r\n')
ok(b'o16', b'SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL', b'* ESEARCH (TAG "o16") ALL 1:6\r\n')
ok(b'o18', b'SEARCH RETURN (PARTIAL 3:1 COUNT) ALL', b'* ESEARCH (TAG "o18") PARTIAL (1:3 1:3) COUNT 6\r\n', b'Search')
ok(b'o19', b'SEARCH RETURN (CONTEXT) ALL', b'* ESEARCH (TAG "o19") ALL 1:6\r\n', b'Search')
# Items in Dovecot's order whatever the request's.
ok(b'o20', b'SEARCH RETURN (COUNT ALL MAX MIN) 2:5', b'* ESEARCH (TAG "o20") MIN 2 MAX 5 ALL 2:5 COUNT 4\r\n', b'Search')
ok(b'o21', b'SORT (SUBJECT) UTF-8 ALL', b'* SORT 2 6 4 1 5 3\r\n')
bad(b'e1', b'SORT RETURN (FOO) (SUBJECT) UTF-8 ALL', b'Unknown SEARCH return option')
bad(b'e2', b'SEARCH RETURN (PARTIAL -1:-2) ALL', b'PARTIAL range broken')
bad(b'e3', b'SEARCH RETURN (PARTIAL 0:2) ALL', b'PARTIAL range broken')
bad(b'e4', b'SORT RETURN (PARTIAL 1:2 ALL) (SUBJECT) UTF-8 ALL', b'PARTIAL conflicts with ALL')
bad(b'e5', b'SORT RETURN MIN (SUBJECT) UTF-8 ALL', b'Invalid sort argument')
w.cmd(b'q', b'LOGOUT')
print('ALL OK')
