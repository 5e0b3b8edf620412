//! `pass_attrs` / `user_attrs` / `iterate_attrs`: which LDAP attributes to
//! fetch and how they become Dovecot fields, in 2.3's syntax —
//! comma-separated items of
//! * `ldapAttr=field` (value of `ldapAttr` as `field`), `ldapAttr` alone
//!   (same name both sides);
//! * `ldapAttr=field=template`: `template` expanded with `%$` = the
//!   attribute's value and the request's variables (a template without `%`
//!   gets `%$` appended, so `userPassword=password={CRYPT}` prefixes);
//!   skipped when the attribute is missing;
//! * `=field=template`: a field built only from the template, which may use
//!   `%{ldap:attr[:default]}`, `%{ldap_ptr:attr}` and `%{ldap_dn}`;
//! * `!ldapAttr`: fetch the attribute for templates but return no field.
//!
//! A field name containing `%` is expanded too. `@field=ldapAttr` DN
//! pointers (sub-searches) are not supported and rejected at setup.

use dovecote_config::var_expand::{self, FuncOutcome, Function, Variable};

use crate::db::{DbError, RequestVars};

/// One configured mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrField {
    /// LDAP attribute name ("" for template-only fields).
    pub ldap_attr: String,
    /// Dovecot field name (may contain `%` variables).
    pub name: String,
    /// Template, if any.
    pub template: Option<String>,
    /// `!ldapAttr`: fetched, not returned.
    pub skip: bool,
}

/// A parsed attribute list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrMap {
    /// Mappings in order.
    pub fields: Vec<AttrField>,
    /// Attribute names to ask the server for.
    pub request_attrs: Vec<String>,
    /// Items that were ignored (logged by Dovecot as "Invalid attrs entry").
    pub warnings: Vec<String>,
}

/// One search result entry: its DN and attributes (names as the server
/// sent them; looked up case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdapEntry {
    /// Entry DN.
    pub dn: String,
    /// Attribute values.
    pub attrs: Vec<(String, Vec<String>)>,
}

impl LdapEntry {
    /// Values of `attr` (case-insensitive), if the server returned it.
    pub fn get(&self, attr: &str) -> Option<&[String]> {
        self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).map(|(_, v)| v.as_slice())
    }

    fn first(&self, attr: &str) -> Option<&str> {
        self.get(attr).and_then(|v| v.first()).map(String::as_str)
    }
}

impl AttrMap {
    /// Parses an attribute list. `skip_field` drops mappings to that field
    /// (`password` with `auth_bind = yes`).
    pub fn parse(list: &str, skip_field: Option<&str>) -> Result<Self, DbError> {
        let mut out = AttrMap::default();
        for item in list.split(',').map(|i| i.trim_matches([' ', '\t'])).filter(|i| !i.is_empty()) {
            if item.starts_with('@') {
                return Err(DbError::Args {
                    driver: "ldap",
                    reason: format!("DN pointer attributes ({item}) are not supported"),
                });
            }
            let (ldap_attr, rest) = item.split_once('=').unwrap_or((item, item));
            let (name, template) = match rest.split_once('=') {
                Some((name, t)) if t.contains('%') => (name, Some(t.to_string())),
                Some((name, t)) => (name, Some(format!("{t}%$"))),
                None if ldap_attr.is_empty() => (rest, Some(String::new())),
                None => (rest, None),
            };
            if name.is_empty() {
                out.warnings.push(format!("Invalid attrs entry: {item}"));
                continue;
            }
            if skip_field == Some(name) {
                continue;
            }
            let skip = !item.contains('=') && ldap_attr.starts_with('!');
            let ldap_attr = if skip { &ldap_attr[1..] } else { ldap_attr };
            if let Some(t) = &template {
                for attr in template_attrs(t) {
                    push_unique(&mut out.request_attrs, attr);
                }
            }
            if !ldap_attr.is_empty() {
                push_unique(&mut out.request_attrs, ldap_attr);
            }
            out.fields.push(AttrField {
                ldap_attr: ldap_attr.to_string(),
                name: name.to_string(),
                template,
                skip,
            });
        }
        Ok(out)
    }

    /// The fields an entry yields, in order: `(name, values)`; empty values
    /// mean the attribute was missing (Dovecot's NULL field).
    pub fn apply(&self, entry: &LdapEntry, vars: &RequestVars) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::with_capacity(self.fields.len());
        for field in self.fields.iter().filter(|f| !f.skip) {
            let values: Vec<String> = if field.ldap_attr.is_empty() {
                Vec::new()
            } else {
                entry.get(&field.ldap_attr).unwrap_or(&[]).to_vec()
            };
            let values = match &field.template {
                None => values,
                Some(_) if !field.ldap_attr.is_empty() && values.is_empty() => values,
                Some(template) => vec![expand(template, entry, vars, values.first().map(String::as_str))],
            };
            let name = if field.name.contains('%') {
                expand(&field.name, entry, vars, None)
            } else {
                field.name.clone()
            };
            out.push((name, values));
        }
        out
    }
}

/// Expands a template with the request's variables, `%$` and the `ldap`
/// functions. Like Dovecot, a failed expansion keeps its partial output.
fn expand(template: &str, entry: &LdapEntry, vars: &RequestVars, dollar: Option<&str>) -> String {
    let mut table: Vec<Variable<'_>> = vars.variables(false);
    table.push(Variable { key: Some('$'), long: None, value: dollar.map(Into::into) });
    let ldap = |data: &str| {
        let (attr, default) = data.split_once(':').unwrap_or((data, ""));
        FuncOutcome::Value(entry.first(attr).unwrap_or(default).to_string())
    };
    let ldap_ptr = |data: &str| {
        let (attr, default) = data.split_once(':').unwrap_or((data, ""));
        match entry.first(attr) {
            Some(target) if !target.is_empty() => {
                FuncOutcome::Value(entry.first(target).unwrap_or(default).to_string())
            }
            _ => FuncOutcome::Value(String::new()),
        }
    };
    let ldap_dn = |_: &str| FuncOutcome::Value(entry.dn.clone());
    let funcs = [
        Function { name: "ldap", call: &ldap },
        Function { name: "ldap_ptr", call: &ldap_ptr },
        Function { name: "ldap_dn", call: &ldap_dn },
    ];
    match var_expand::expand_with_funcs(template, &table, &funcs) {
        Ok(v) => v,
        Err(e) => e.partial,
    }
}

/// Attribute names a template reads through `%{ldap:…}` / `%{ldap_ptr:…}`.
fn template_attrs(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for prefix in ["%{ldap:", "%{ldap_ptr:"] {
        let mut rest = template;
        while let Some(pos) = rest.find(prefix) {
            rest = &rest[pos + prefix.len()..];
            let end = rest.find('}').unwrap_or(rest.len());
            let attr = rest[..end].split(':').next().unwrap_or("");
            if !attr.is_empty() && !attr.contains('@') {
                out.push(attr);
            }
        }
    }
    out
}

fn push_unique(list: &mut Vec<String>, attr: &str) {
    if !list.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
        list.push(attr.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LdapEntry {
        LdapEntry {
            dn: "uid=tim,ou=People,dc=example,dc=com".into(),
            attrs: vec![
                ("uid".into(), vec!["tim".into()]),
                ("userPassword".into(), vec!["$6$salt$hash".into()]),
                ("homeDirectory".into(), vec!["/home/tim".into()]),
                ("gidNumber".into(), vec!["100".into(), "200".into()]),
                ("mailQuota".into(), vec!["2G".into()]),
            ],
        }
    }

    #[test]
    fn dovecot_forms() {
        let map = AttrMap::parse(
            "uid=user, userPassword=password={CRYPT}, homeDirectory=home, gidNumber=gid, \
             =quota_rule=*:storage=%{ldap:mailQuota}, =mail=maildir:%{ldap:homeDirectory}/%u, \
             !objectClass, missing=nothing, missing=tmpl=x%$, =proxy, =dn=%{ldap_dn}, =,",
            None,
        )
        .unwrap();
        assert_eq!(map.warnings, ["Invalid attrs entry: ="]);
        assert_eq!(
            map.request_attrs,
            ["uid", "userPassword", "homeDirectory", "gidNumber", "mailQuota", "objectClass", "missing"]
        );
        let vars = RequestVars::new("tim", "imap");
        let got = map.apply(&entry(), &vars);
        let got: Vec<(&str, Vec<&str>)> =
            got.iter().map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            got,
            [
                ("user", vec!["tim"]),
                ("password", vec!["{CRYPT}$6$salt$hash"]),
                ("home", vec!["/home/tim"]),
                ("gid", vec!["100", "200"]),
                ("quota_rule", vec!["*:storage=2G"]),
                ("mail", vec!["maildir:/home/tim/tim"]),
                ("nothing", vec![]),
                ("tmpl", vec![]),
                ("proxy", vec![""]),
                ("dn", vec!["uid=tim,ou=People,dc=example,dc=com"]),
            ]
        );
    }

    #[test]
    fn skip_and_errors() {
        let map = AttrMap::parse("uid=user,userPassword=password", Some("password")).unwrap();
        assert_eq!(map.fields.len(), 1);
        assert!(AttrMap::parse("@mail=mailRef", None).is_err());
        assert!(AttrMap::parse("", None).unwrap().fields.is_empty());
    }
}
