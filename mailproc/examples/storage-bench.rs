//! The dovecote side of `bench/storage`: one storage operation, timed,
//! printing `<seconds>` on stdout.
//!
//! ```text
//! storage-bench save  MAIL_LOCATION COUNT SIZE   # one fsynced save per message
//! storage-bench save-batch MAIL_LOCATION COUNT SIZE # one fsynced transaction
//! storage-bench fill  MAIL_LOCATION COUNT SIZE   # bulk load (batches, no fsync)
//! storage-bench open  MAIL_LOCATION              # open INBOX + sync + STATUS
//! storage-bench flags MAIL_LOCATION              # add \Flagged to every message
//! storage-bench search MAIL_LOCATION COUNT WORD  # open + SEARCH BODY WORD over the first COUNT
//! ```
//!
//! `search` evaluates the IMAP process's own search program
//! (`imap::search::SearchProgram`, the code `SEARCH BODY` runs) on each of the
//! first COUNT messages in UID order, reading each message from the store as
//! the imap process does; it prints the number of matches on stderr.

use std::time::Instant;

use dovecote_config::var_expand::MailVars;
use dovecote_mailproc::imap::args::Arg;
use dovecote_mailproc::imap::message::{SearchContext, SearchMessage};
use dovecote_mailproc::imap::search::SearchProgram;
use dovecote_mailproc::storage::mailbox::header_len;
use dovecote_mailproc::storage::{
    FlagOp, FlagUpdate, Flags, Keywords, MailLocation, Mailbox, MessageRecord, NewMessage, User,
};

/// One message as SEARCH sees it, read from the mailbox on first use (as
/// the imap process's `session::Message`).
struct Searched<'a> {
    mailbox: &'a mut Mailbox,
    record: MessageRecord,
    seq: u32,
    header: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
}

impl SearchMessage for Searched<'_> {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn uid(&self) -> u32 {
        self.record.uid
    }
    fn flags(&self) -> Flags {
        self.record.flags
    }
    fn keywords(&self) -> &Keywords {
        &self.record.keywords
    }
    fn recent(&self) -> bool {
        false
    }
    fn modseq(&self) -> u64 {
        self.record.modseq
    }
    fn internal_date(&self) -> (i64, i32) {
        (self.record.received, 0)
    }
    fn save_date(&self) -> Option<i64> {
        Some(self.record.saved)
    }
    fn size(&mut self) -> u64 {
        self.record.virtual_size
    }
    fn header(&mut self) -> &[u8] {
        if self.header.is_none() {
            let data = self.message().to_vec();
            self.header = Some(data[..header_len(&data)].to_vec());
        }
        self.header.as_deref().unwrap_or_default()
    }
    fn message(&mut self) -> &[u8] {
        if self.data.is_none() {
            self.data = Some(self.mailbox.read_message(self.record.uid).unwrap_or_default());
        }
        self.data.as_deref().unwrap_or_default()
    }
}

fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: bench{n}@example.org\nTo: user@example.org\nSubject: message {n}\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <{n}.bench@example.org>\n\n"
    )
    .into_bytes();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: storage-bench save|save-batch|fill|open|flags|search MAIL_LOCATION [COUNT SIZE|WORD]"
        );
        std::process::exit(64)
    };
    let (Some(op), Some(location)) = (args.get(1), args.get(2)) else { usage() };
    let count: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    let size: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10_240);
    let location = match MailLocation::parse(location, &MailVars::default(), None) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    let mut user = User::with_location("bench", location);
    let result = (|| -> Result<f64, dovecote_mailproc::storage::StorageError> {
        match op.as_str() {
            "save" => {
                let mut inbox = user.open("INBOX")?;
                let messages: Vec<NewMessage> = (0..count)
                    .map(|n| NewMessage { data: message(n, size), ..NewMessage::default() })
                    .collect();
                let start = Instant::now();
                for m in &messages {
                    inbox.save(m)?;
                }
                Ok(start.elapsed().as_secs_f64())
            }
            "save-batch" => {
                let mut inbox = user.open("INBOX")?;
                let messages: Vec<NewMessage> = (0..count)
                    .map(|n| NewMessage { data: message(n, size), ..NewMessage::default() })
                    .collect();
                let start = Instant::now();
                inbox.save_many(&messages)?;
                Ok(start.elapsed().as_secs_f64())
            }
            "fill" => {
                user.fsync = false;
                let mut inbox = user.open("INBOX")?;
                let start = Instant::now();
                for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
                    let batch: Vec<NewMessage> = chunk
                        .iter()
                        .map(|&n| NewMessage { data: message(n, size), ..NewMessage::default() })
                        .collect();
                    inbox.save_many(&batch)?;
                }
                Ok(start.elapsed().as_secs_f64())
            }
            "open" => {
                let start = Instant::now();
                let inbox = user.open("INBOX")?;
                let status = inbox.status();
                let elapsed = start.elapsed().as_secs_f64();
                eprintln!("messages={} uidnext={}", status.messages, status.uid_next);
                Ok(elapsed)
            }
            "flags" => {
                let start = Instant::now();
                let mut inbox = user.open("INBOX")?;
                let uids: Vec<u32> = inbox.messages().map(|m| m.uid).collect();
                let update = FlagUpdate {
                    op: FlagOp::Add,
                    flags: Flags::FLAGGED,
                    keywords: Default::default(),
                    unchanged_since: None,
                };
                inbox.store_flags(&uids, &update)?;
                // Closing writes what the format keeps lazily (sdbox's flags
                // file): part of the cost.
                inbox.flush()?;
                drop(inbox);
                Ok(start.elapsed().as_secs_f64())
            }
            "search" => {
                let word = args.get(4).cloned().unwrap_or_else(|| "zebra".into());
                let program = match SearchProgram::parse(
                    &[Arg::Atom("BODY".into()), Arg::Quoted(word.into_bytes())],
                    None,
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("search: {e}");
                        std::process::exit(1)
                    }
                };
                let start = Instant::now();
                let mut inbox = user.open("INBOX")?;
                let records: Vec<MessageRecord> = inbox.messages().take(count).cloned().collect();
                let ctx = SearchContext {
                    max_seq: records.len() as u32,
                    max_uid: records.last().map_or(0, |r| r.uid),
                    saved: None,
                    now: 0,
                };
                let mut hits = 0usize;
                for (i, record) in records.into_iter().enumerate() {
                    let mut msg =
                        Searched { mailbox: &mut inbox, record, seq: i as u32 + 1, header: None, data: None };
                    if program.matches(&mut msg, &ctx) {
                        hits += 1;
                    }
                }
                let elapsed = start.elapsed().as_secs_f64();
                eprintln!("matches={hits}");
                Ok(elapsed)
            }
            _ => usage(),
        }
    })();
    match result {
        Ok(seconds) => println!("{seconds:.6}"),
        Err(e) => {
            eprintln!("{op}: {e}");
            std::process::exit(1)
        }
    }
}
