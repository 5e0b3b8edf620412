//! Local delivery: recipients are looked up with a userdb `USER` request
//! over auth-userdb (auth-master protocol), and each copy is saved into the
//! recipient's storage through `dovecote_mailproc::storage` while this
//! process runs with the recipient's uid/gid as its *effective* ids.
//!
//! Privilege choice: lmtp runs as root and serves recipients of different
//! uids in one transaction, so it cannot drop privileges for good. Around
//! each delivery it sets the supplementary groups, the effective gid and
//! the effective uid to the recipient's (checked against
//! `first_valid_uid` & co. by the shared [`Privileges`]), and restores
//! root afterwards ([`EffectiveIds`] does both, restoring on drop). Files
//! are therefore created by the kernel as the recipient (e.g. vmail),
//! exactly as Dovecot's lmtp does with seteuid. The process is
//! single-threaded, so the switch cannot leak into other work.
//!
//! Durability: `Mailbox::save` writes, fsyncs the file, renames it into
//! place, fsyncs the directory and appends to the index before returning;
//! only then does [`LocalDelivery::deliver`] report success.
//!
//! Open mailboxes are kept between deliveries ([`OpenMailboxes`]): opening
//! reads the whole change log and syncs with the files, which made every
//! delivery cost O(mailbox size); a kept handle only reads the log records
//! written since its last save.
//!
//! The recipients after the first of one message get a hard link to the
//! first copy where the message is the same (no per-recipient headers), the
//! recipient has the same uid and the format allows it, as Dovecot's lmtp
//! does: no second write and fsync of the same bytes. The link is published
//! (and its directory fsynced) like any save before its 250.

use std::path::PathBuf;
use std::time::Duration;

use dovecote_auth::protocol::master_conn::{AuthMasterConnection, Lookup as AuthLookup};
use dovecote_auth::protocol::Fields;
use dovecote_config::var_expand::MailVars;
use dovecote_config::Config;
use dovecote_mailproc::postlogin::privileges::Privileges;
use dovecote_mailproc::storage::{MailLocation, Mailbox, NewMessage, User};
use nix::unistd::{Gid, Uid};
use thiserror::Error;

use crate::session::{Backend, DeliverError, DeliveryRequest, Lookup, RecipientUser};

/// How long a userdb lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Failures of the effective-id switch.
#[derive(Debug, Error)]
pub enum IdError {
    #[error("{step}({id}) failed: {err}")]
    Switch { step: &'static str, id: u32, err: nix::Error },
    #[error("Can't deliver as uid {want}: running as uid {have} (not root)")]
    NotRoot { want: u32, have: u32 },
}

/// While alive, the process' effective uid/gid and groups are the
/// recipient's; dropping it restores root.
pub struct EffectiveIds {
    restore: Option<Vec<Gid>>,
}

impl EffectiveIds {
    /// Switches to `privs` (a no-op when already running as that uid
    /// without root).
    pub fn switch(privs: &Privileges) -> Result<EffectiveIds, IdError> {
        let euid = Uid::effective();
        if !euid.is_root() {
            if euid.as_raw() == privs.uid {
                return Ok(EffectiveIds { restore: None });
            }
            return Err(IdError::NotRoot { want: privs.uid, have: euid.as_raw() });
        }
        if privs.uid == 0 {
            return Ok(EffectiveIds { restore: None });
        }
        let original = nix::unistd::getgroups().unwrap_or_default();
        let mut groups = vec![Gid::from_raw(privs.gid)];
        groups.extend(privs.extra_groups.iter().map(|g| Gid::from_raw(*g)));
        let guard = EffectiveIds { restore: Some(original) };
        nix::unistd::setgroups(&groups).map_err(|err| IdError::Switch {
            step: "setgroups",
            id: privs.gid,
            err,
        })?;
        nix::unistd::setegid(Gid::from_raw(privs.gid)).map_err(|err| IdError::Switch {
            step: "setegid",
            id: privs.gid,
            err,
        })?;
        nix::unistd::seteuid(Uid::from_raw(privs.uid)).map_err(|err| IdError::Switch {
            step: "seteuid",
            id: privs.uid,
            err,
        })?;
        Ok(guard)
    }
}

impl Drop for EffectiveIds {
    fn drop(&mut self) {
        if let Some(groups) = self.restore.take() {
            // Back to root: euid first (it grants the rest).
            let ok = nix::unistd::seteuid(Uid::from_raw(0)).is_ok()
                && nix::unistd::setegid(Gid::from_raw(0)).is_ok()
                && nix::unistd::setgroups(&groups).is_ok();
            if !ok {
                // Running on with a recipient's ids would deliver the next
                // recipient's mail as the wrong user: stop the process.
                eprintln!("FATAL\tlmtp: restoring root privileges after a delivery failed");
                std::process::exit(dovecote_master::contract::EXIT_FATAL);
            }
        }
    }
}

/// How many mailbox handles one process keeps open.
const OPEN_MAILBOXES: usize = 16;

/// Mailbox handles kept from earlier deliveries, keyed by everything that
/// decides which files they write and as whom (privileges, the resolved
/// storage settings, the mailbox name).
///
/// Handles are only ever used for saves without flags, so dropping one
/// writes nothing (no lazily kept flags to flush) whatever ids the process
/// runs with at that moment.
#[derive(Default)]
struct OpenMailboxes {
    entries: Vec<(String, Mailbox)>,
}

impl OpenMailboxes {
    fn take(&mut self, key: &str) -> Option<Mailbox> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(i).1)
    }

    /// Makes room for one more (called as root, before the id switch).
    fn make_room(&mut self) {
        if self.entries.len() >= OPEN_MAILBOXES {
            self.entries.clear();
        }
    }

    /// Only INBOX is kept: a kept handle of a folder deleted meanwhile
    /// would recreate its directory when it locks.
    fn put(&mut self, key: String, mailbox: Mailbox) {
        if mailbox.name() == "INBOX" && self.entries.len() < OPEN_MAILBOXES {
            self.entries.push((key, mailbox));
        }
    }
}

/// The copy the later recipients of the same message may link to.
#[derive(Debug, Clone)]
struct FirstSaved {
    /// The recipient's uid: a link is only made for the same uid, whose
    /// files it can read.
    unix_uid: u32,
    /// Its handle's key in [`OpenMailboxes`].
    key: String,
    /// The message's UID there.
    uid: u32,
}

/// Delivery into local storage.
pub struct LocalDelivery {
    config: Config,
    auth_path: PathBuf,
    auth: Option<AuthMasterConnection>,
    /// `lmtp` or `lda`: the `service=` of lookups and `%s` in mail_location.
    service: &'static str,
    open: OpenMailboxes,
    first_saved: Option<FirstSaved>,
}

impl LocalDelivery {
    /// `auth_path` is the auth-userdb socket (`base_dir/auth-userdb`).
    pub fn new(config: &Config, auth_path: PathBuf, service: &'static str) -> LocalDelivery {
        LocalDelivery {
            config: config.clone(),
            auth_path,
            auth: None,
            service,
            open: OpenMailboxes::default(),
            first_saved: None,
        }
    }

    fn user_lookup(&mut self, user: &str) -> Result<AuthLookup, String> {
        // One retry: a cached connection may have been closed by auth.
        for attempt in 0..2 {
            if self.auth.is_none() {
                let conn = AuthMasterConnection::connect(&self.auth_path).map_err(|e| e.to_string())?;
                let _ = conn.set_timeout(Some(LOOKUP_TIMEOUT));
                self.auth = Some(conn);
            }
            let Some(conn) = self.auth.as_mut() else { continue };
            match conn.user(user, Fields::new().with("service", self.service)) {
                Ok(l) => return Ok(l),
                Err(e) => {
                    self.auth = None;
                    if attempt == 1 {
                        return Err(e.to_string());
                    }
                }
            }
        }
        Err("userdb lookup failed".into())
    }

    /// Opens the recipient's storage (already running as them).
    fn open_user(
        &self,
        user: &RecipientUser,
        fields: &Fields,
        privs: &Privileges,
        session: &str,
    ) -> Result<User, String> {
        let home = fields.get("home").filter(|h| !h.is_empty()).map(str::to_string);
        let vars = MailVars {
            user: Some(user.name.clone()),
            service: Some(self.service.to_string()),
            home: home.clone(),
            uid: Some(privs.uid.to_string()),
            gid: Some(privs.gid.to_string()),
            session: Some(session.to_string()),
            userdb_fields: fields
                .0
                .iter()
                .map(|f| (f.key.clone(), f.value.clone().unwrap_or_default()))
                .collect(),
            ..MailVars::default()
        };
        match fields.get("mail").filter(|m| !m.is_empty()) {
            Some(mail) => {
                let location =
                    MailLocation::parse(mail, &vars, home.as_deref()).map_err(|e| e.to_string())?;
                Ok(User::with_location(&user.name, location))
            }
            None => User::from_config(&self.config, &vars).map_err(|e| e.to_string()),
        }
    }
}

impl Backend for LocalDelivery {
    fn lookup(&mut self, user: &str, _session_id: &str) -> Lookup {
        match self.user_lookup(user) {
            Ok(AuthLookup::Found { user, fields }) => match Privileges::resolve(&self.config, &fields) {
                Ok(_) => Lookup::Found(RecipientUser {
                    name: user,
                    fields: fields.0.iter().map(|f| f.to_text()).collect(),
                }),
                Err(e) => Lookup::TempFail(e.to_string()),
            },
            Ok(AuthLookup::NotFound) => Lookup::NotFound,
            Ok(AuthLookup::Failed(reason)) => {
                Lookup::TempFail(reason.unwrap_or_else(|| "userdb lookup failed".to_string()))
            }
            Err(e) => Lookup::TempFail(e),
        }
    }

    fn deliver(&mut self, request: &DeliveryRequest<'_>) -> Result<String, DeliverError> {
        let fields = Fields::parse(&request.user.fields);
        let privs =
            Privileges::resolve(&self.config, &fields).map_err(|e| DeliverError::Temporary(e.to_string()))?;
        self.open.make_room();
        let _ids = EffectiveIds::switch(&privs).map_err(|e| DeliverError::Temporary(e.to_string()))?;
        let user = self
            .open_user(request.user, &fields, &privs, request.session_id)
            .map_err(DeliverError::Temporary)?;
        let key = format!("{privs:?}\n{user:?}\n{}", request.mailbox);
        let first = if request.same_as_previous { self.first_saved.clone() } else { None };
        if !request.same_as_previous {
            self.first_saved = None;
        }
        if let Some(first) = first.filter(|f| f.unix_uid == privs.uid && f.key != key) {
            if let Some(name) = self.link_from(&first, &key, &user, request.mailbox) {
                return Ok(name);
            }
        }
        let message = NewMessage { data: request.message.to_vec(), ..NewMessage::default() };
        if let Some(mut mailbox) = self.open.take(&key) {
            // A failure here may only mean the mailbox was deleted or
            // recreated behind the kept handle: a fresh open decides.
            if let Ok(saved) = mailbox.save(&message) {
                return Ok(self.keep(key, mailbox, privs.uid, saved.uid));
            }
        }
        let mut mailbox = self.open_mailbox(&user, request.mailbox)?;
        let saved = mailbox.save(&message).map_err(|e| DeliverError::Temporary(e.to_string()))?;
        Ok(self.keep(key, mailbox, privs.uid, saved.uid))
    }
}

impl LocalDelivery {
    /// Keeps the handle a copy was saved into, remembering the copy as the
    /// one later recipients link to; returns the mailbox name.
    fn keep(&mut self, key: String, mailbox: Mailbox, unix_uid: u32, uid: u32) -> String {
        let name = mailbox.name().to_string();
        if self.first_saved.is_none() {
            self.first_saved = Some(FirstSaved { unix_uid, key: key.clone(), uid });
        }
        self.open.put(key, mailbox);
        name
    }

    /// Links the first recipient's copy into this recipient's mailbox;
    /// `None` when that can't be done (the caller saves the bytes).
    fn link_from(&mut self, first: &FirstSaved, key: &str, user: &User, name: &str) -> Option<String> {
        let mut source = self.open.take(&first.key)?;
        let mut dest = match self.open.take(key) {
            Some(m) => m,
            None => match self.open_mailbox(user, name) {
                Ok(m) => m,
                Err(_) => {
                    self.open.put(first.key.clone(), source);
                    return None;
                }
            },
        };
        let linked = source.link_to(first.uid, &mut dest);
        self.open.put(first.key.clone(), source);
        let name = dest.name().to_string();
        self.open.put(key.to_string(), dest);
        match linked {
            Ok(Some(_)) => Some(name),
            _ => None,
        }
    }

    /// Opens the delivery mailbox, autocreating it if configured and
    /// falling back to INBOX when it is missing, as Dovecot does.
    fn open_mailbox(&self, user: &User, name: &str) -> Result<Mailbox, DeliverError> {
        match user.open(name) {
            Ok(m) => Ok(m),
            Err(_) if name != "INBOX" => {
                if self.config.root.bool("lda_mailbox_autocreate")
                    && user.create(name).is_ok()
                    && self.config.root.bool("lda_mailbox_autosubscribe")
                {
                    let _ = user.subscribe(name, true);
                }
                match user.open(name) {
                    Ok(m) => Ok(m),
                    Err(_) => user.open("INBOX").map_err(|e| DeliverError::Temporary(e.to_string())),
                }
            }
            Err(e) => Err(DeliverError::Temporary(e.to_string())),
        }
    }
}
