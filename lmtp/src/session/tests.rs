//! Session scenarios against a fake backend, asserting exact wire bytes.

use super::*;

#[derive(Default)]
struct Fake {
    delivered: Vec<(String, String, Vec<u8>)>,
    fail_delivery: bool,
}

impl Backend for Fake {
    fn lookup(&mut self, user: &str, _session_id: &str) -> Lookup {
        match user {
            "alice" | "bob" | "alice@example.org" => {
                Lookup::Found(RecipientUser { name: user.to_string(), fields: Vec::new() })
            }
            "broken" => Lookup::TempFail("db down".into()),
            _ => Lookup::NotFound,
        }
    }
    fn deliver(&mut self, r: &DeliveryRequest<'_>) -> Result<String, DeliverError> {
        if self.fail_delivery {
            return Err(DeliverError::Temporary("disk on fire".into()));
        }
        self.delivered.push((r.user.name.clone(), r.mailbox.to_string(), r.message.to_vec()));
        Ok(r.mailbox.to_string())
    }
}

fn settings() -> LmtpSettings {
    LmtpSettings {
        hostname: "mx.test".into(),
        recipient_delimiter: "+".into(),
        save_to_detail_mailbox: false,
        add_received_header: true,
        hdr_delivery_address: HdrDeliveryAddress::Final,
        max_mail_size: None,
        starttls: false,
        postmaster_address: "postmaster@mx.test".into(),
    }
}

fn session() -> Session {
    Session::new(settings(), "SID".into(), Some("127.0.0.1".parse().unwrap()), false)
}

fn say(s: &mut Session, b: &mut Fake, input: &str) -> String {
    String::from_utf8(s.input(input.as_bytes(), b).reply).unwrap()
}

#[test]
fn greeting_and_lhlo_as_dovecot_23() {
    let mut b = Fake::default();
    let mut s = session();
    assert_eq!(s.greeting(), b"220 mx.test Dovecot ready.\r\n");
    assert_eq!(
        say(&mut s, &mut b, "LHLO client.example\r\n"),
        "250-mx.test\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n"
    );
    assert_eq!(say(&mut s, &mut b, "LHLO\r\n"), "501 Missing hostname\r\n");
    let mut tls = settings();
    tls.starttls = true;
    let mut s = Session::new(tls, "SID".into(), None, false);
    assert!(say(&mut s, &mut b, "LHLO x\r\n").ends_with("250-PIPELINING\r\n250 STARTTLS\r\n"));
    let out = s.input(b"STARTTLS\r\nNOOP\r\n", &mut b);
    assert_eq!(out.reply, b"220 2.0.0 Begin TLS negotiation now.\r\n", "pipelined NOOP must be dropped");
    assert!(out.start_tls);
    s.tls_started();
    assert!(!say(&mut s, &mut b, "LHLO x\r\n").contains("STARTTLS"));
    assert_eq!(say(&mut s, &mut b, "STARTTLS\r\n"), "502 5.5.1 TLS is already active.\r\n");
}

#[test]
fn two_recipients_one_unknown_get_per_recipient_replies() {
    let mut b = Fake::default();
    let mut s = session();
    let r = say(
        &mut s,
        &mut b,
        "LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<nobody>\r\nRCPT TO:<bob>\r\nDATA\r\n",
    );
    assert_eq!(
        r,
        "250-mx.test\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n\
         250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 <nobody> User doesn't exist: nobody\r\n250 2.1.5 OK\r\n354 OK\r\n"
    );
    let r = say(&mut s, &mut b, "Subject: hi\r\n\r\n..body\r\n.\r\n");
    assert_eq!(r, "250 2.0.0 <alice> SID Saved\r\n250 2.0.0 <bob> SID:R3 Saved\r\n");
    assert_eq!(b.delivered.len(), 2);
    let msg = String::from_utf8(b.delivered[0].2.clone()).unwrap();
    assert!(msg.starts_with("Return-Path: <s@x>\nReceived: from c ([127.0.0.1])\n\tby mx.test with LMTP\n\tid SID\n\t(envelope-from <s@x>); "), "{msg}");
    assert!(msg.ends_with("\nSubject: hi\n\n.body\n"), "{msg}");
    assert!(!msg.contains("Delivered-To"), "no Delivered-To with several recipients");
    // The next transaction has its own id; a single recipient gets Delivered-To and `for`.
    let r = say(&mut s, &mut b, "MAIL FROM:<>\r\nRCPT TO:<alice+box>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(r, "250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 OK\r\n250 2.0.0 <alice+box> SID:T2 Saved\r\n");
    let msg = String::from_utf8(b.delivered[2].2.clone()).unwrap();
    assert!(msg.starts_with("Return-Path: <>\nDelivered-To: alice+box\nReceived: "), "{msg}");
    assert!(msg.contains("\n\t(envelope-from <>)\n\tfor <alice+box>; "), "{msg}");
    assert_eq!(b.delivered[2].1, "INBOX");
    assert_eq!(say(&mut s, &mut b, "QUIT\r\n"), "221 2.0.0 Bye\r\n");
}

#[test]
fn sequence_errors_and_garbage() {
    let mut b = Fake::default();
    let mut s = session();
    let r = say(
        &mut s,
        &mut b,
        "DATA\r\nRCPT TO:<alice>\r\nFOO\r\nEHLO x\r\nAUTH PLAIN\r\nVRFY alice\r\nNOOP\r\n",
    );
    assert_eq!(
        r,
        "503 5.5.0 MAIL needed first\r\n503 5.5.0 MAIL needed first\r\n500 5.5.1 Unknown command\r\n\
         500 5.5.1 Unknown command\r\n502 5.5.1 Unsupported command\r\n252 2.3.3 Try RCPT instead\r\n250 2.0.0 OK\r\n"
    );
    let r = say(
        &mut s,
        &mut b,
        "MAIL FROM:garbage\r\nMAIL  FROM:<a>\r\nMAIL FROM: <a>\r\nMAIL FROM:<a> SMTPUTF8\r\n",
    );
    assert_eq!(
        r,
        "501 5.5.4 Invalid FROM: Missing '<' at beginning of path\r\n500 5.5.2 Invalid command syntax\r\n\
         501 5.5.4 Invalid FROM: Unexpected whitespace before path\r\n555 5.5.4 Unsupported parameters\r\n"
    );
    let r = say(
        &mut s,
        &mut b,
        "MAIL FROM:<a> BODY=BINARYMIME\r\nMAIL FROM:<a> BODY=8BITMIME\r\nMAIL FROM:<a>\r\n",
    );
    assert_eq!(r, "555 5.5.4 Unsupported mail BODY type\r\n250 2.1.0 OK\r\n503 5.5.0 MAIL already given\r\n");
    let r = say(&mut s, &mut b, "DATA\r\nRCPT TO:alice\r\nRCPT TO:<>\r\nRCPT TO:<broken>\r\nRSET\r\n");
    assert_eq!(
        r,
        "503 5.5.0 No valid recipients\r\n501 5.5.4 Invalid TO: Missing '<' at beginning of path\r\n\
         501 5.5.4 Invalid TO: Null path not allowed\r\n451 4.3.0 <broken> Temporary internal error\r\n250 2.0.0 OK\r\n"
    );
    assert!(b.delivered.is_empty());
    // A binary line does not break the session.
    assert_eq!(
        say(&mut s, &mut b, "\0\u{1}\u{7f}\r\nNOOP\r\n"),
        "500 5.5.1 Unknown command\r\n250 2.0.0 OK\r\n"
    );
}

#[test]
fn bdat_chunks_and_data_split_anywhere() {
    let mut b = Fake::default();
    let mut s = session();
    let r = say(
        &mut s,
        &mut b,
        "MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nBDAT 3\r\nabcDATA\r\nBDAT 4 LAST\r\nd\r\ne",
    );
    assert_eq!(
        r,
        "250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.0.0 Added 3 octets\r\n503 5.5.0 Bad sequence of commands\r\n250 2.0.0 <alice> SID Saved\r\n"
    );
    assert!(b.delivered[0].2.ends_with(b"abcd\ne"));
    // BDAT without MAIL: the chunk is read and discarded.
    assert_eq!(
        say(&mut s, &mut b, "BDAT 5 LAST\r\nhelloNOOP\r\n"),
        "503 5.5.0 MAIL needed first\r\n250 2.0.0 OK\r\n"
    );
    // DATA fed one byte at a time.
    let whole = "MAIL FROM:<a@b>\r\nRCPT TO:<bob>\r\nDATA\r\nline1\nbare\0nul\r\n.\r\nNOOP\r\n";
    let mut r = String::new();
    for c in whole.bytes() {
        r.push_str(&String::from_utf8(s.input(&[c], &mut b).reply).unwrap());
    }
    assert_eq!(
        r,
        "250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 OK\r\n250 2.0.0 <bob> SID:T2 Saved\r\n250 2.0.0 OK\r\n"
    );
    assert!(b.delivered[1].2.ends_with(b"line1\nbare\0nul\n"));
}

#[test]
fn size_limit_detail_mailbox_and_failures() {
    let mut b = Fake::default();
    let mut st = settings();
    st.max_mail_size = Some(10);
    st.save_to_detail_mailbox = true;
    let mut s = Session::new(st, "SID".into(), None, false);
    assert!(say(&mut s, &mut b, "LHLO x\r\n").contains("250-PIPELINING\r\n250 SIZE 10\r\n"));
    assert_eq!(
        say(&mut s, &mut b, "MAIL FROM:<a> SIZE=11\r\n"),
        "552 5.3.4 Message size exceeds administrative limit\r\n"
    );
    let r =
        say(&mut s, &mut b, "MAIL FROM:<a> SIZE=5\r\nRCPT TO:<alice>\r\nDATA\r\n0123456789abcdef\r\n.\r\n");
    assert!(r.ends_with("552 5.2.3 <alice> Message size exceeds administrative limit\r\n"), "{r}");
    assert!(b.delivered.is_empty());
    let r = say(&mut s, &mut b, "MAIL FROM:<a>\r\nRCPT TO:<alice+Lists>\r\nDATA\r\nok\r\n.\r\n");
    assert!(r.ends_with("250 2.0.0 <alice+Lists> SID:T2 Saved\r\n"), "{r}");
    assert_eq!(b.delivered[0].1, "Lists");
    b.fail_delivery = true;
    let out = s.input(b"MAIL FROM:<a>\r\nRCPT TO:<alice>\r\nDATA\r\nok\r\n.\r\n", &mut b);
    let r = String::from_utf8(out.reply).unwrap();
    assert!(
        r.contains("451 4.2.0 <alice> Internal error occurred. Refer to server log for more information. ["),
        "{r}"
    );
    assert!(out.logs.iter().any(|l| l.level == LogLevel::Error && l.text.contains("disk on fire")));
}

#[test]
fn long_lines_close_the_session() {
    let mut b = Fake::default();
    let mut s = session();
    let out = s.input(&vec![b'A'; MAX_LINE + 10], &mut b);
    assert_eq!(out.reply, b"500 5.5.2 Line too long\r\n");
    assert!(out.close);
}

#[test]
fn message_id_for_the_log() {
    assert_eq!(message_id(b"Subject: x\nMessage-ID:\n <a@b>\n\nbody"), "<a@b>");
    assert_eq!(message_id(b"Subject: x\n\nMessage-ID: <no>\n"), "unspecified");
}
