//! Feeds arbitrary client bytes to the streaming IMAP command parser in
//! arbitrary read sizes: it must never panic, always consume its input,
//! and give the same commands however the bytes are split.
#![no_main]

use dovecote_mailproc::imap::args::SeqSet;
use dovecote_mailproc::imap::parser::{Event, Limits, Parser};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], chunk: usize) -> Vec<Event> {
    let mut parser = Parser::new(Limits { max_line: 4096, max_append_literal: 65536 });
    let mut events = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut input = piece.to_vec();
        while let Some(e) = parser.next(&mut input) {
            let fatal = matches!(e, Event::Fatal(_));
            events.push(e);
            if fatal {
                return events;
            }
        }
        assert!(input.is_empty(), "parser left input unconsumed");
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let whole = run(data, data.len());
    let split = run(data, split as usize % 16 + 1);
    assert_eq!(whole, split, "result depends on read boundaries");
    for e in &whole {
        if let Event::Command(c) = e {
            for a in &c.args {
                if let Some(t) = a.as_atom() {
                    if let Some(set) = SeqSet::parse(t) {
                        let _ = set.resolve(100);
                        let _ = set.to_string();
                    }
                }
            }
        }
    }
});
