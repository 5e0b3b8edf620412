//! The S20 namespace: auto-created and subscribed special-use mailboxes on
//! first access, and `autoexpunge = 90d` on Junk.

use dovecote_config::var_expand::MailVars;
use dovecote_config::{parse_str, LoadOptions};
use dovecote_mailproc::storage::{ListOptions, NewMessage, User};

const CONF: &str = r#"
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
    autoexpunge = 90d
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox "Sent Messages" {
    special_use = \Sent
    auto = subscribe
  }
}
"#;

#[test]
fn s20_namespace_autocreates_and_autoexpunges() {
    let dir = tempfile::tempdir().unwrap();
    let config = parse_str("dovecot.conf", CONF, LoadOptions::default()).unwrap();
    let vars = MailVars {
        user: Some("jane".into()),
        home: Some(dir.path().display().to_string()),
        ..MailVars::default()
    };
    let user = User::from_config(&config, &vars).unwrap();
    let want = ["Drafts", "Junk", "Sent", "Sent Messages", "Trash"];
    assert_eq!(user.subscriptions().unwrap(), want);
    let special = user.list("*", ListOptions { special_use_only: true, ..ListOptions::default() }).unwrap();
    let names: Vec<&str> = special.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, want);
    assert!(special.iter().any(|e| e.name == "Junk" && e.attributes.contains(&"\\Junk".to_string())));
    assert!(dir.path().join("Maildir/.Sent Messages/cur").is_dir());

    let mut junk = user.open("Junk").unwrap();
    junk.save(&NewMessage { data: b"Subject: spam\n\nx\n".to_vec(), ..NewMessage::default() }).unwrap();
    drop(junk);
    let now = dovecote_mailproc::storage::fsutil::now();
    assert_eq!(user.autoexpunge(now).unwrap(), 0, "fresh mail stays");
    assert_eq!(user.autoexpunge(now + 91 * 86400).unwrap(), 1, "mail older than 90 days goes");
    assert_eq!(user.status("Junk").unwrap().messages, 0);
    // A second login finds everything in place and creates nothing twice.
    let again = User::from_config(&config, &vars).unwrap();
    assert_eq!(again.subscriptions().unwrap(), want);
}
