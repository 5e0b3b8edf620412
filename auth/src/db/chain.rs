//! The passdb and userdb chains of Dovecot 2.3 (`auth-request.c`), as pure
//! state machines: the caller asks which database to consult next, runs the
//! lookup however it likes, and reports the result.
//!
//! passdb rules: a `deny = yes` passdb that finds the user fails the login
//! (user disabled); `skip` (never/authenticated/unauthenticated) and the
//! `mechanisms`/`username_filter` lists skip a passdb; `result_success`
//! (default return-ok), `result_failure` (continue) and
//! `result_internalfail` (continue) pick return/return-ok/return-fail/
//! continue/continue-ok/continue-fail; `pass = yes` means
//! `result_success = continue`. A continue after a verified password skips
//! password checks in later passdbs ("authenticated"). At the end, an
//! earlier `*-ok` wins, and an earlier internal failure turns a failure into
//! an internal failure (the failed backend might have had the right
//! password). Master passdbs (`master = yes`) are consulted first when a
//! master login is requested; on success the chain goes on with the normal
//! passdbs for the login user only if that master passdb has `pass = yes`.
//!
//! userdb rules: `skip` (never/found/notfound) and the same result rules.

use crate::mech::PassdbResult;
use dovecote_config::var_expand::wildcard_match;

/// One `result_*` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Stop with this result.
    Return,
    /// Stop; the login succeeds.
    ReturnOk,
    /// Stop; the login fails.
    ReturnFail,
    /// Go on to the next database.
    Continue,
    /// Go on, remembering success.
    ContinueOk,
    /// Go on, remembering failure.
    ContinueFail,
}

impl Rule {
    /// Parses `return`, `return-ok`, `return-fail`, `continue`,
    /// `continue-ok`, `continue-fail`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "return" => Rule::Return,
            "return-ok" => Rule::ReturnOk,
            "return-fail" => Rule::ReturnFail,
            "continue" => Rule::Continue,
            "continue-ok" => Rule::ContinueOk,
            "continue-fail" => Rule::ContinueFail,
            _ => return None,
        })
    }

    fn continues(self) -> bool {
        matches!(self, Rule::Continue | Rule::ContinueOk | Rule::ContinueFail)
    }
}

/// passdb `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassdbSkip {
    /// Always consulted.
    #[default]
    Never,
    /// Skipped once the password was verified.
    Authenticated,
    /// Skipped until the password was verified.
    Unauthenticated,
}

/// userdb `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserdbSkip {
    /// Always consulted.
    #[default]
    Never,
    /// Skipped once a userdb found the user.
    Found,
    /// Skipped until a userdb found the user.
    NotFound,
}

/// The chain-relevant settings of one `passdb { }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassdbRules {
    /// `deny = yes`.
    pub deny: bool,
    /// `master = yes`.
    pub master: bool,
    /// `pass = yes`.
    pub pass: bool,
    /// `skip`.
    pub skip: PassdbSkip,
    /// `mechanisms` (empty = all).
    pub mechanisms: Vec<String>,
    /// `username_filter` (empty = all; `!pattern` excludes; `*` wildcards).
    pub username_filter: Vec<String>,
    /// `result_success`.
    pub result_success: Rule,
    /// `result_failure`.
    pub result_failure: Rule,
    /// `result_internalfail`.
    pub result_internalfail: Rule,
}

impl Default for PassdbRules {
    fn default() -> Self {
        PassdbRules {
            deny: false,
            master: false,
            pass: false,
            skip: PassdbSkip::Never,
            mechanisms: Vec::new(),
            username_filter: Vec::new(),
            result_success: Rule::ReturnOk,
            result_failure: Rule::Continue,
            result_internalfail: Rule::Continue,
        }
    }
}

/// The chain-relevant settings of one `userdb { }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserdbRules {
    /// `skip`.
    pub skip: UserdbSkip,
    /// `result_success`.
    pub result_success: Rule,
    /// `result_failure`.
    pub result_failure: Rule,
    /// `result_internalfail`.
    pub result_internalfail: Rule,
}

impl Default for UserdbRules {
    fn default() -> Self {
        UserdbRules {
            skip: UserdbSkip::Never,
            result_success: Rule::ReturnOk,
            result_failure: Rule::Continue,
            result_internalfail: Rule::Continue,
        }
    }
}

/// What to do after a passdb result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassdbStep {
    /// Consult passdb `index` (into the list given to [`PassdbChain::new`]);
    /// check the password only if `verify_password`.
    Lookup {
        /// Index of the passdb.
        index: usize,
        /// False once an earlier passdb verified the password.
        verify_password: bool,
        /// True while looking up the master user.
        master: bool,
    },
    /// Finished with this result.
    Done(PassdbResult),
}

/// Walks a passdb list for one authentication.
#[derive(Debug, Clone)]
pub struct PassdbChain<'a> {
    passdbs: &'a [PassdbRules],
    mech: Option<String>,
    user: String,
    current: Option<usize>,
    master_phase: bool,
    authenticated: bool,
    success: bool,
    seen_user_unknown: bool,
    seen_internal_failure: bool,
}

impl<'a> PassdbChain<'a> {
    /// Starts a chain. `master_login` is true when the client asked to log in
    /// as another user (authzid): master passdbs go first then.
    pub fn new(passdbs: &'a [PassdbRules], mech: Option<&str>, user: &str, master_login: bool) -> Self {
        PassdbChain {
            passdbs,
            mech: mech.map(str::to_ascii_uppercase),
            user: user.to_string(),
            current: None,
            master_phase: master_login,
            authenticated: false,
            success: false,
            seen_user_unknown: false,
            seen_internal_failure: false,
        }
    }

    /// The first lookup (or `Done` when every passdb is skipped: Dovecot's
    /// "All password databases were skipped", or no master passdb exists for
    /// a master login).
    pub fn start(&mut self) -> PassdbStep {
        match self.next_from(0) {
            Some(index) => self.lookup(index),
            None if self.master_phase => PassdbStep::Done(PassdbResult::UserUnknown),
            None => PassdbStep::Done(PassdbResult::InternalFailure),
        }
    }

    /// Index of the passdb whose result is awaited.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// After a master login succeeded, lookups are for this user.
    pub fn set_user(&mut self, user: &str) {
        self.user = user.to_string();
    }

    fn lookup(&mut self, index: usize) -> PassdbStep {
        self.current = Some(index);
        PassdbStep::Lookup { index, verify_password: !self.authenticated, master: self.master_phase }
    }

    fn skip(&self, p: &PassdbRules) -> bool {
        if p.master != self.master_phase {
            return true;
        }
        if let Some(mech) = &self.mech {
            if !p.mechanisms.is_empty() && !p.mechanisms.iter().any(|m| m.eq_ignore_ascii_case(mech)) {
                return true;
            }
        }
        if !p.username_filter.is_empty() && !username_accepted(&p.username_filter, &self.user) {
            return true;
        }
        match p.skip {
            PassdbSkip::Never => false,
            PassdbSkip::Authenticated => self.authenticated,
            PassdbSkip::Unauthenticated => !self.authenticated,
        }
    }

    fn next_from(&self, start: usize) -> Option<usize> {
        (start..self.passdbs.len()).find(|&i| !self.skip(&self.passdbs[i]))
    }

    /// Reports the current passdb's result (after verification, if any).
    pub fn result(&mut self, mut result: PassdbResult) -> PassdbStep {
        let Some(index) = self.current else { return PassdbStep::Done(PassdbResult::InternalFailure) };
        let rules = &self.passdbs[index];
        if rules.deny && result != PassdbResult::UserUnknown {
            if result != PassdbResult::InternalFailure {
                result = PassdbResult::UserDisabled;
            }
            return PassdbStep::Done(result);
        }
        let rule = match result {
            PassdbResult::UserDisabled | PassdbResult::PassExpired => return PassdbStep::Done(result),
            PassdbResult::Ok if rules.pass => Rule::Continue,
            PassdbResult::Ok => rules.result_success,
            PassdbResult::InternalFailure => rules.result_internalfail,
            PassdbResult::Next => Rule::Continue,
            _ => rules.result_failure,
        };
        match rule {
            Rule::Return | Rule::Continue => {
                if rule == Rule::Continue && result == PassdbResult::Ok {
                    self.authenticated = true;
                }
            }
            Rule::ReturnOk => self.success = true,
            Rule::ReturnFail => self.success = false,
            Rule::ContinueOk => {
                self.success = true;
                self.authenticated = true;
            }
            Rule::ContinueFail => self.success = false,
        }
        let mut next_start = index + 1;
        let mut go_on = rule.continues();
        if self.master_phase && result == PassdbResult::Ok {
            // Master user verified: continue with the normal passdbs for the
            // login user only when the master passdb says `pass = yes`.
            self.master_phase = false;
            self.authenticated = true;
            next_start = 0;
            go_on = rules.pass;
            if !go_on {
                return PassdbStep::Done(PassdbResult::Ok);
            }
        }
        let next = self.next_from(next_start);
        if go_on {
            if let Some(next) = next {
                match result {
                    PassdbResult::UserUnknown => self.seen_user_unknown = true,
                    PassdbResult::InternalFailure => self.seen_internal_failure = true,
                    _ => {}
                }
                return self.lookup(next);
            }
        }
        PassdbStep::Done(if result == PassdbResult::Next {
            // "Last passdb had noauthenticate field, cannot authenticate user"
            PassdbResult::InternalFailure
        } else if self.success {
            PassdbResult::Ok
        } else if self.seen_internal_failure && result != PassdbResult::Ok {
            PassdbResult::InternalFailure
        } else if result == PassdbResult::SchemeNotAvailable && self.seen_user_unknown {
            PassdbResult::UserUnknown
        } else {
            result
        })
    }
}

/// `username_filter`: `!pattern` rejects, otherwise at least one pattern
/// must match; `*` and `?` are wildcards.
pub fn username_accepted(filter: &[String], user: &str) -> bool {
    let mut have_positive = false;
    let mut matched = false;
    for pattern in filter {
        if let Some(neg) = pattern.strip_prefix('!') {
            if wildcard_match(user, neg) {
                return false;
            }
        } else {
            have_positive = true;
            matched |= wildcard_match(user, pattern);
        }
    }
    !have_positive || matched
}

/// Outcome of a userdb lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserdbResult {
    /// Found.
    Ok,
    /// Not found.
    UserUnknown,
    /// Backend failure.
    InternalFailure,
}

/// What to do after a userdb result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserdbStep {
    /// Consult userdb `index`.
    Lookup(usize),
    /// Finished.
    Done(UserdbResult),
}

/// Walks a userdb list for one lookup.
#[derive(Debug, Clone)]
pub struct UserdbChain<'a> {
    userdbs: &'a [UserdbRules],
    current: Option<usize>,
    success: bool,
    seen_internal_failure: bool,
}

impl<'a> UserdbChain<'a> {
    /// Starts a chain.
    pub fn new(userdbs: &'a [UserdbRules]) -> Self {
        UserdbChain { userdbs, current: None, success: false, seen_internal_failure: false }
    }

    /// The first lookup.
    pub fn start(&mut self) -> UserdbStep {
        match self.next_from(0) {
            Some(i) => {
                self.current = Some(i);
                UserdbStep::Lookup(i)
            }
            None => UserdbStep::Done(UserdbResult::InternalFailure),
        }
    }

    fn next_from(&self, start: usize) -> Option<usize> {
        (start..self.userdbs.len()).find(|&i| match self.userdbs[i].skip {
            UserdbSkip::Never => true,
            UserdbSkip::Found => !self.success,
            UserdbSkip::NotFound => self.success,
        })
    }

    /// Index of the userdb whose result is awaited.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// Reports the current userdb's result.
    pub fn result(&mut self, result: UserdbResult) -> UserdbStep {
        let Some(index) = self.current else { return UserdbStep::Done(UserdbResult::InternalFailure) };
        let rules = &self.userdbs[index];
        let rule = match result {
            UserdbResult::Ok => rules.result_success,
            UserdbResult::UserUnknown => rules.result_failure,
            UserdbResult::InternalFailure => rules.result_internalfail,
        };
        match rule {
            Rule::ReturnOk | Rule::ContinueOk => self.success = true,
            Rule::ReturnFail | Rule::ContinueFail => self.success = false,
            Rule::Return | Rule::Continue => {
                if result == UserdbResult::Ok {
                    self.success = true;
                }
            }
        }
        if result == UserdbResult::InternalFailure {
            self.seen_internal_failure = true;
        }
        if rule.continues() {
            if let Some(next) = self.next_from(index + 1) {
                self.current = Some(next);
                return UserdbStep::Lookup(next);
            }
        }
        UserdbStep::Done(if self.success && rule != Rule::ReturnFail {
            UserdbResult::Ok
        } else if self.seen_internal_failure {
            UserdbResult::InternalFailure
        } else if result == UserdbResult::Ok {
            // return-fail / continue-fail on a found user.
            UserdbResult::UserUnknown
        } else {
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PassdbResult as R;

    fn run(
        passdbs: &[PassdbRules],
        results: &[PassdbResult],
        master: bool,
    ) -> (Vec<(usize, bool)>, PassdbResult) {
        let mut chain = PassdbChain::new(passdbs, Some("PLAIN"), "tim", master);
        let mut seen = Vec::new();
        let mut step = chain.start();
        let mut results = results.iter();
        loop {
            match step {
                PassdbStep::Lookup { index, verify_password, .. } => {
                    seen.push((index, verify_password));
                    step = chain.result(*results.next().expect("more lookups than results"));
                }
                PassdbStep::Done(r) => return (seen, r),
            }
        }
    }

    #[test]
    fn defaults_try_next_on_failure() {
        let dbs = vec![PassdbRules::default(), PassdbRules::default()];
        assert_eq!(run(&dbs, &[R::Ok], false), (vec![(0, true)], R::Ok));
        assert_eq!(run(&dbs, &[R::UserUnknown, R::Ok], false), (vec![(0, true), (1, true)], R::Ok));
        assert_eq!(run(&dbs, &[R::PasswordMismatch, R::UserUnknown], false).1, R::UserUnknown);
        // An internal failure earlier makes a later failure internal.
        assert_eq!(run(&dbs, &[R::InternalFailure, R::PasswordMismatch], false).1, R::InternalFailure);
        // Disabled users never continue.
        assert_eq!(run(&dbs, &[R::UserDisabled], false), (vec![(0, true)], R::UserDisabled));
    }

    #[test]
    fn deny_passdb() {
        let deny = PassdbRules { deny: true, ..Default::default() };
        let dbs = vec![deny, PassdbRules::default()];
        assert_eq!(run(&dbs, &[R::Ok], false).1, R::UserDisabled);
        assert_eq!(run(&dbs, &[R::UserUnknown, R::Ok], false).1, R::Ok);
        assert_eq!(run(&dbs, &[R::InternalFailure], false).1, R::InternalFailure);
    }

    #[test]
    fn continue_rules_and_skip() {
        let first = PassdbRules { result_success: Rule::ContinueOk, ..Default::default() };
        let extra = PassdbRules { skip: PassdbSkip::Unauthenticated, ..Default::default() };
        let dbs = vec![first, extra];
        // Second passdb only adds fields: no password check, its unknown user
        // does not undo continue-ok.
        assert_eq!(run(&dbs, &[R::Ok, R::UserUnknown], false), (vec![(0, true), (1, false)], R::Ok));
        // Unauthenticated: the second is skipped.
        assert_eq!(run(&dbs, &[R::PasswordMismatch], false), (vec![(0, true)], R::PasswordMismatch));
        // pass = yes: continue without remembering success.
        let dbs = vec![PassdbRules { pass: true, ..Default::default() }, PassdbRules::default()];
        assert_eq!(run(&dbs, &[R::Ok, R::UserUnknown], false).1, R::UserUnknown);
        // return-fail only forgets an earlier *-ok; the current result
        // stands, as in 2.3's auth_request_handle_passdb_callback().
        let dbs = vec![PassdbRules { result_success: Rule::ReturnFail, ..Default::default() }];
        assert_eq!(run(&dbs, &[R::Ok], false).1, R::Ok);
        // result_failure = return stops at the first failure.
        let dbs =
            vec![PassdbRules { result_failure: Rule::Return, ..Default::default() }, PassdbRules::default()];
        assert_eq!(run(&dbs, &[R::PasswordMismatch], false), (vec![(0, true)], R::PasswordMismatch));
        // Everything skipped.
        let dbs = vec![PassdbRules { mechanisms: vec!["CRAM-MD5".into()], ..Default::default() }];
        assert_eq!(run(&dbs, &[], false), (vec![], R::InternalFailure));
        let dbs = vec![PassdbRules { username_filter: vec!["*@example.com".into()], ..Default::default() }];
        assert_eq!(run(&dbs, &[], false).1, R::InternalFailure);
    }

    #[test]
    fn master_users() {
        let master = PassdbRules { master: true, ..Default::default() };
        let master_pass = PassdbRules { master: true, pass: true, ..Default::default() };
        let normal = PassdbRules::default();
        // Master passdbs are ignored for normal logins.
        assert_eq!(run(&[master.clone(), normal.clone()], &[R::Ok], false), (vec![(1, true)], R::Ok));
        // Master login without pass: done after the master check.
        assert_eq!(run(&[master.clone(), normal.clone()], &[R::Ok], true), (vec![(0, true)], R::Ok));
        // With pass = yes the login user must exist in a normal passdb.
        assert_eq!(
            run(&[master_pass.clone(), normal.clone()], &[R::Ok, R::UserUnknown], true),
            (vec![(0, true), (1, false)], R::UserUnknown)
        );
        // No master passdb: a master login is refused.
        assert_eq!(run(&[normal], &[], true).1, R::UserUnknown);
    }

    #[test]
    fn userdb_chain() {
        let run = |dbs: &[UserdbRules], results: &[UserdbResult]| {
            let mut chain = UserdbChain::new(dbs);
            let mut step = chain.start();
            let mut seen = Vec::new();
            let mut results = results.iter();
            loop {
                match step {
                    UserdbStep::Lookup(i) => {
                        seen.push(i);
                        step = chain.result(*results.next().unwrap());
                    }
                    UserdbStep::Done(r) => return (seen, r),
                }
            }
        };
        let d = UserdbRules::default();
        assert_eq!(run(&[d.clone(), d.clone()], &[UserdbResult::Ok]), (vec![0], UserdbResult::Ok));
        assert_eq!(
            run(&[d.clone(), d.clone()], &[UserdbResult::UserUnknown, UserdbResult::Ok]),
            (vec![0, 1], UserdbResult::Ok)
        );
        let cont = UserdbRules { result_success: Rule::Continue, ..Default::default() };
        let only_found = UserdbRules { skip: UserdbSkip::NotFound, ..Default::default() };
        assert_eq!(
            run(&[cont.clone(), only_found.clone()], &[UserdbResult::Ok, UserdbResult::UserUnknown]),
            (vec![0, 1], UserdbResult::Ok)
        );
        assert_eq!(
            run(&[cont, only_found], &[UserdbResult::UserUnknown]),
            (vec![0], UserdbResult::UserUnknown)
        );
        assert_eq!(
            run(&[d.clone(), d], &[UserdbResult::InternalFailure, UserdbResult::UserUnknown]).1,
            UserdbResult::InternalFailure
        );
        assert!(username_accepted(&["*@example.com".into(), "!bad@*".into()], "tim@example.com"));
        assert!(!username_accepted(&["*@example.com".into(), "!bad@*".into()], "bad@example.com"));
        assert!(!username_accepted(&["*@example.com".into()], "tim@other"));
    }
}
