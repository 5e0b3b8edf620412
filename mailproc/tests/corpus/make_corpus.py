#!/usr/bin/env python3
"""Writes the render test corpus: real-world-shaped messages, one file per
message (msgs/NNN.eml), deterministic (no randomness, no clock).

Shapes covered: plain text, encoded words in many charsets, raw 8-bit
headers, multipart/alternative, multipart/mixed with attachments, nested
message/rfc822, multipart/digest, broken MIME (missing/unused/unterminated
boundaries), long folded headers, group and route addresses, comments,
missing Date/Subject, CRLF and bare-LF line endings, RFC 2231 parameters,
Content-Language/Location/MD5/ID/Description, and a threaded conversation
for SORT/THREAD."""
import base64, os, sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "msgs")
msgs = []

def add(text, crlf=False):
    if isinstance(text, str):
        data = text.encode("utf-8")
    else:
        data = text
    if crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    msgs.append(data)

def ew(charset, text, enc="B"):
    raw = text.encode(charset)
    if enc == "B":
        return "=?%s?B?%s?=" % (charset, base64.b64encode(raw).decode())
    out = ""
    for b in raw:
        c = chr(b)
        if b < 128 and (c.isalnum()):
            out += c
        elif c == " ":
            out += "_"
        else:
            out += "=%02X" % b
    return "=?%s?Q?%s?=" % (charset, out)

def hdr(subject="Hello", frm="Alice <alice@example.com>", to="Bob <bob@example.org>",
        date="Mon, 2 Nov 2026 10:00:00 +0100", extra=""):
    h = ""
    if date is not None:
        h += "Date: %s\n" % date
    if frm is not None:
        h += "From: %s\n" % frm
    if to is not None:
        h += "To: %s\n" % to
    if subject is not None:
        h += "Subject: %s\n" % subject
    h += "Message-ID: <m%03d@example.com>\n" % (len(msgs) + 1)
    return h + extra

# --- 1..10: simple shapes -------------------------------------------------
add(hdr() + "\nHello Bob,\nhow are you?\n")
add(hdr(subject=None, date=None) + "\nno date, no subject\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n") + "\nGrüße aus Köln\nÄÖÜ\n")
add(hdr(), crlf=False)  # header only, no body separator
add(hdr() + "\n")  # empty body
add(hdr() + "\nno trailing newline")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n") + "\r\nCRLF body\r\nline two\r\n", crlf=True)
add("Subject: only a subject\n\nbody\n")
add("From: nobody\n\n")
add(hdr(extra="Cc: carol@example.net, dave@example.net\nBcc: eve@example.net\nReply-To: list@example.com\nSender: bounce@example.com\nIn-Reply-To: <parent@example.com>\n") + "\nall envelope fields\n")

# --- encoded words in many charsets --------------------------------------
for cs, text in [("utf-8", "Grüße — ☃ snowman"), ("iso-8859-1", "Café crème"),
                 ("iso-8859-2", "Zażółć gęślą jaźń"), ("iso-8859-15", "Prix: 10€"),
                 ("windows-1252", "“Smart quotes” – dash"), ("koi8-r", "Привет мир"),
                 ("shift_jis", "こんにちは世界"), ("iso-2022-jp", "日本語の件名"),
                 ("gb2312", "你好世界"), ("big5", "繁體中文"), ("euc-kr", "안녕하세요"),
                 ("utf-8", "Emoji 🎉 party")]:
    for enc in ("B", "Q"):
        add(hdr(subject=ew(cs, text, enc), frm="%s <sender@example.com>" % ew(cs, "Näme", enc) if cs not in ("shift_jis", "iso-2022-jp", "gb2312", "big5", "euc-kr", "koi8-r") else "%s <sender@example.com>" % ew(cs, text[:3], enc),
                extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=%s\nContent-Transfer-Encoding: base64\n" % cs)
            + "\n" + base64.encodebytes(("Body: " + text + "\n").encode(cs)).decode())

# multiple adjacent encoded words, and malformed ones
add(hdr(subject="=?utf-8?q?first?= =?utf-8?q?_second?= plain =?bogus?x?zz?= =?utf-8?b?!!!?="))
add(hdr(subject="Re: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>"))

# --- raw 8-bit headers ---------------------------------------------------
add(hdr(subject="Raw UTF-8: Grüße ☃", frm="Jürgen Müller <juergen@example.de>") + "\nbody\n")
add(b"From: Fran\xe7ois <f@example.fr>\nSubject: Latin-1 raw: caf\xe9\nDate: Tue, 3 Nov 2026 08:00:00 -0500\n\nbody \xe9\n")
add(hdr(subject='quotes "inside" and \\backslash\\') + "\nbody\n")
add(hdr(subject='many "q" "u" "o" "t" "e" "s"') + "\nbody\n")
add(hdr(subject="tabs\tand  double  spaces ") + "\nbody\n")

# --- long folded headers -------------------------------------------------
add(hdr(subject="This is a very long subject line that goes on and on\n and is folded onto a second line\n\tand a third with a tab",
        to="one@example.com,\n two@example.com,\n \"Three, Person\" <three@example.com>,\n\tfour@example.com") + "\nfolded\n")
add(hdr(to=",\n ".join("user%d@example.com" % i for i in range(40))) + "\nmany recipients\n")
add(hdr(extra="References: <a@x>\n <b@x>\n <c@x>\nIn-Reply-To:\n <c@x>\n") + "\nfolded refs\n")

# --- address forms -------------------------------------------------------
for to in ["undisclosed-recipients:;", "Friends: a@example.com, \"B\" <b@example.com>;, c@example.com",
           "<@route1.example,@route2.example:user@example.com>", "user@example.com (Comment Name)",
           '"Doe, \\"J\\"" <j.doe@example.com>', "justuser", "<>", "Name Only", "broken <user@", "a@b, , c@d",
           "=?utf-8?q?J=C3=B6rg?= <joerg@example.de>", "\"=?utf-8?q?quoted?=\" <q@example.com>",
           "user@[192.168.0.1]", "Empty Group:;", "a@b (nested (comment) here)", "\"\" <empty@name>",
           "first.last @ example.com", "x@y, Group: ; z@w", "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
           "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", "\"quoted.local\"@example.com",
           "no-at-sign <local>", "dot.@example.com", "user@example.com <second@example.com>"]:
    add(hdr(to=to, subject="addr: " + to[:40].replace("\n", " ")) + "\nbody\n")

# --- MIME: multipart/alternative ----------------------------------------
ALT = """MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-1"

This is a multi-part message in MIME format.
--alt-1
Content-Type: text/plain; charset="utf-8"; format=flowed
Content-Transfer-Encoding: quoted-printable

Hello =E2=98=83 world
--alt-1
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Hello =E2=98=83 <b>world</b></p></body></html>
--alt-1--
"""
add(hdr(extra=ALT.split("\n\n", 1)[0] + "\n") + "\n" + ALT.split("\n\n", 1)[1])
add(hdr(extra=ALT.split("\n\n", 1)[0] + "\n") + "\n" + ALT.split("\n\n", 1)[1], crlf=True)

PDF = base64.encodebytes(bytes(range(256)) * 3).decode()
MIXED = """MIME-Version: 1.0
Content-Type: multipart/mixed;
 boundary="----=_Part_123_456.789"

------=_Part_123_456.789
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: 7bit

See attached.
--inner
Content-Type: text/html; charset=ISO-8859-1

<p>See attached.</p>
--inner--

------=_Part_123_456.789
Content-Type: application/pdf; name="report.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report.pdf"; size=768
Content-Description: Quarterly report

%s
------=_Part_123_456.789
Content-Type: image/png; name=pixel.png
Content-Transfer-Encoding: base64
Content-ID: <pixel@example.com>
Content-Disposition: inline; filename=pixel.png
Content-Language: en, de-CH
Content-Location: http://example.com/pixel.png
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==
------=_Part_123_456.789--
epilogue text
""" % PDF
add(hdr(subject="Report attached", extra=MIXED.split("\n\n", 1)[0] + "\n") + "\n" + MIXED.split("\n\n", 1)[1])

# RFC 2231 parameters
add(hdr(extra="""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b2231
""") + """
--b2231
Content-Type: text/plain

body
--b2231
Content-Type: application/octet-stream;
 name*=utf-8''%E2%82%AC%20rates.bin
Content-Disposition: attachment;
 filename*0*=utf-8''%E2%82%AC%20ra;
 filename*1="tes.bin"

AAAA
--b2231
Content-Type: application/x-thing; title*0="part one "; title*2="three"; title*1="two "
Content-Disposition: attachment; filename*1="b"; filename*3="d"

BBBB
--b2231--
""")

# nested message/rfc822
INNER = hdr(subject="Inner message", frm="Inner Sender <inner@example.com>", date="Sun, 1 Nov 2026 09:00:00 +0000") + """MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=innerb

--innerb
Content-Type: text/plain

inner text
--innerb
Content-Type: text/html

<p>inner html</p>
--innerb--
"""
add(hdr(subject="Fwd: Inner message", extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n") + """
--outer
Content-Type: text/plain; charset=us-ascii

Forwarding this.

--outer
Content-Type: message/rfc822
Content-Disposition: inline

""" + INNER + """
--outer--
""")
add(hdr(subject="Bare rfc822", extra="MIME-Version: 1.0\nContent-Type: message/rfc822\n") + "\n" + INNER)
add(hdr(subject="Double nested", extra="MIME-Version: 1.0\nContent-Type: message/rfc822\n") + "\n"
    + hdr(subject="level 2", extra="MIME-Version: 1.0\nContent-Type: message/rfc822\n") + "\n" + INNER)
add(hdr(subject="rfc822 with no body", extra="MIME-Version: 1.0\nContent-Type: message/rfc822\n") + "\n")

# digest
add(hdr(subject="Digest", extra="MIME-Version: 1.0\nContent-Type: multipart/digest; boundary=dig\n") + """
--dig

From: a@example.com
Subject: digest one

first
--dig
Content-Type: message/rfc822

From: b@example.com
Subject: digest two

second
--dig
Content-Type: text/plain

not a message
--dig--
""")

# --- broken MIME -------------------------------------------------------------
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed\n") + "\n--x\n\nno boundary param\n--x--\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=never\n") + "\nthe boundary never appears\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=unterm\n") + "\n--unterm\nContent-Type: text/plain\n\nunterminated part\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"sp\"\n") + "\n--sp   \nContent-Type: text/plain\n\ntrailing spaces after boundary\n--sp--   \n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outerx\n") + "\n--outerx\nContent-Type: multipart/alternative; boundary=innerx\n\n--innerx\n\ninner not closed\n--outerx\n\nsecond outer part\n--outerx--\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text\n") + "\nno subtype\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: /plain\n") + "\nno type\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text/plain; charset\n") + "\nbroken param\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=\"unterminated\n") + "\nbroken quote\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: TEXT/HTML; CHARSET=UTF-8; Format=Flowed\nContent-Transfer-Encoding: QUOTED-PRINTABLE\n") + "\n<b>upper</b>\n")
add(hdr(extra="Content-Type: multipart/mixed; boundary=nomime\n") + "\n--nomime\n\nno mime-version header\n--nomime--\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=empty\n") + "\n--empty--\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: x-uuencode junk\n") + "\nbinary-ish\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text/plain (comment) ; (c2) charset = \"utf-8\" (c3)\n") + "\ncomments in content-type\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_weird=\"\n") + "\n--=_weird=\nContent-Type: text/plain; name==?utf-8?b?w6Q=?=\n\nencoded param workaround\n--=_weird=--\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text/plain\nContent-Type: text/html\nContent-Disposition: inline\nContent-Disposition: attachment; filename=x\n") + "\nduplicate content headers\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=crlfb\n") + "\r\n--crlfb\r\nContent-Type: text/plain\r\n\r\nmixed line endings\n--crlfb--\r\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Description: A\n description\n folded\nContent-ID:   <spaced@id>  \n") + "\nfolded description\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=aa\n") + "\n--aa\nContent-Type: message/rfc822\n\n--aa\nContent-Type: text/plain\n\nafter empty rfc822\n--aa--\n")
add(b"Subject: NUL\x00byte\nFrom: a@b\n\nbody with \x00 nul\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/related; type=\"text/html\"; boundary=rel; start=\"<root>\"\n") + "\n--rel\nContent-Type: text/html\nContent-ID: <root>\n\n<img src=cid:img>\n--rel\nContent-Type: image/gif\nContent-ID: <img>\nContent-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAACw=\n--rel--\n")
add("Header-Without-Colon\nSubject: odd header\n\nbody\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: message/partial; id=\"abc@host\"; number=1; total=2\n") + "\npartial\n")
add(hdr(extra="MIME-Version: 1.0\nContent-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=sig\n") + "\n--sig\nContent-Type: text/plain\n\nsigned text\n--sig\nContent-Type: application/pgp-signature; name=signature.asc\n\n-----BEGIN PGP SIGNATURE-----\nAAAA\n-----END PGP SIGNATURE-----\n--sig--\n")
add(hdr(extra="Mime-Version: 1.0\nContent-Type: text/calendar; method=REQUEST; charset=UTF-8\nContent-Transfer-Encoding: 7bit\n") + "\nBEGIN:VCALENDAR\nEND:VCALENDAR\n")

# --- dates for SORT -------------------------------------------------------
for d in ["Tue, 10 Nov 2026 23:59:59 -1200", "10 Nov 2026 12:00 +0000", "Wed, 11 Nov 2026 01:00:00 GMT",
          "garbage date", "Thu, 31 Dec 1998 23:59:60 +0000", "Fri, 1 Jan 2027 00:00:00 +1400"]:
    add(hdr(date=d, subject="date test", frm="Zed <zed@example.com>") + "\ndate\n")

# --- a threaded conversation (SORT/THREAD) -------------------------------
T = [("t1", None, "Project kickoff", "Mon, 16 Nov 2026 09:00:00 +0000", "Anna <anna@corp.example>"),
     ("t2", ["t1"], "Re: Project kickoff", "Mon, 16 Nov 2026 10:00:00 +0000", "Ben <ben@corp.example>"),
     ("t3", ["t1", "t2"], "Re: Re: Project kickoff", "Mon, 16 Nov 2026 11:00:00 +0000", "anna@corp.example"),
     ("t4", ["t1"], "RE: [proj] Project kickoff", "Mon, 16 Nov 2026 09:30:00 +0000", "Cleo <cleo@corp.example>"),
     ("t5", None, "Fwd: Budget", "Tue, 17 Nov 2026 09:00:00 +0000", "Dan <dan@corp.example>"),
     ("t6", ["t5"], "Re: Fwd: Budget", "Tue, 17 Nov 2026 08:00:00 +0000", "Anna <anna@corp.example>"),
     ("t7", ["missing-parent"], "Re: Orphan", "Wed, 18 Nov 2026 09:00:00 +0000", "Ben <ben@corp.example>"),
     ("t8", ["missing-parent"], "Re: Orphan", "Wed, 18 Nov 2026 09:05:00 +0000", "Cleo <cleo@corp.example>"),
     ("t9", None, "Budget", "Wed, 18 Nov 2026 10:00:00 +0000", "Eve <eve@corp.example>"),
     ("t10", ["t3"], "[Fwd: Re: Project kickoff]", "Thu, 19 Nov 2026 09:00:00 +0000", "Finn <finn@corp.example>"),
     ("t11", None, "Re: Budget (fwd)", "Thu, 19 Nov 2026 10:00:00 +0000", "Gus <gus@corp.example>"),
     ("t12", ["t12"], "Self reference", "Fri, 20 Nov 2026 09:00:00 +0000", "Hal <hal@corp.example>"),
     ("t13", None, "  ", "Fri, 20 Nov 2026 10:00:00 +0000", "Ivy <ivy@corp.example>"),
     ("t14", None, "Re:", "Fri, 20 Nov 2026 11:00:00 +0000", "Jon <jon@corp.example>"),
     ("t15", ["t2", "t9"], "Re: mixed refs", "Sat, 21 Nov 2026 09:00:00 +0000", "Kim <kim@corp.example>")]
for mid, refs, subj, date, frm in T:
    extra = ""
    if refs:
        extra += "In-Reply-To: <%s@corp.example>\nReferences: %s\n" % (refs[-1], " ".join("<%s@corp.example>" % r for r in refs))
    add("Date: %s\nFrom: %s\nTo: team@corp.example\nCc: %s\nSubject: %s\nMessage-ID: <%s@corp.example>\n%s\nthread body %s\n"
        % (date, frm, "zoe@corp.example" if len(mid) % 2 else "abe@corp.example", subj, mid, extra, mid))
# duplicate message-id
add("Date: Sat, 21 Nov 2026 10:00:00 +0000\nFrom: dup@corp.example\nSubject: Project kickoff\nMessage-ID: <t1@corp.example>\n\nduplicate id\n")

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.unlink(os.path.join(OUT, f))
for i, m in enumerate(msgs, 1):
    with open(os.path.join(OUT, "%03d.eml" % i), "wb") as fh:
        fh.write(m)
print(len(msgs), "messages")
