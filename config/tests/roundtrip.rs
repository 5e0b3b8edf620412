//! Property: a configuration the parser accepts, printed with `doveconf -n`
//! (secrets shown) and parsed again, has exactly the same settings, compared
//! through the complete `doveconf -a` rendering of both.

use dovecote_config::catalog::{Kind, SettingDef};
use dovecote_config::model::SectionKind;
use dovecote_config::print::{render, PrintOptions, Scope};
use dovecote_config::{parse_str, LoadOptions};
use proptest::prelude::*;

fn value_for(kind: Kind) -> BoxedStrategy<String> {
    match kind {
        Kind::Bool => prop_oneof![Just("yes".to_owned()), Just("no".to_owned())].boxed(),
        Kind::Uint => (0u32..100_000).prop_map(|n| n.to_string()).boxed(),
        Kind::Octal => (0u32..0o7777).prop_map(|n| format!("0{n:o}")).boxed(),
        Kind::Port => (0u16..=65535).prop_map(|n| n.to_string()).boxed(),
        Kind::Size => (0u64..5000, prop::sample::select(vec!["", "k", " M", "G", "B"]))
            .prop_map(|(n, u)| format!("{n}{u}"))
            .boxed(),
        Kind::Time => (0u64..5000, prop::sample::select(vec!["s", " mins", "h", "d", " weeks"]))
            .prop_map(|(n, u)| format!("{n}{u}"))
            .boxed(),
        Kind::TimeMsecs => (0u64..5000, prop::sample::select(vec!["s", " mins", "h", "ms"]))
            .prop_map(|(n, u)| format!("{n}{u}"))
            .boxed(),
        Kind::Enum(values) => prop::sample::select(values.to_vec()).prop_map(str::to_owned).boxed(),
        Kind::Str | Kind::StrVars => text().boxed(),
    }
}

/// Free text: spaces, `#`, `%` variables, paths; quoted on output as needed.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ./:%#_@=-]{0,24}".prop_map(|s| s)
}

fn setting(defs: &'static [SettingDef], skip: &'static [&'static str]) -> BoxedStrategy<(String, String)> {
    let usable: Vec<&'static SettingDef> = defs.iter().filter(|d| !skip.contains(&d.name)).collect();
    prop::sample::select(usable)
        .prop_flat_map(|d| value_for(d.kind).prop_map(move |v| (d.name.to_owned(), v)))
        .boxed()
}

/// Writes `key = value` with the value quoted when plain text would not
/// survive (leading/trailing space, `#`).
fn assignment(indent: &str, key: &str, value: &str) -> String {
    let needs_quotes =
        value.contains('#') || value.starts_with(' ') || value.ends_with(' ') || value.starts_with('<');
    if needs_quotes {
        format!("{indent}{key} = \"{}\"\n", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("{indent}{key} = {value}\n")
    }
}

fn block(
    kind: SectionKind,
    name: String,
    settings: Vec<(String, String)>,
    children: Vec<String>,
    indent: &str,
) -> String {
    let header = if name.is_empty() {
        format!("{indent}{} {{\n", kind.keyword())
    } else {
        format!("{indent}{} \"{name}\" {{\n", kind.keyword())
    };
    let inner = format!("{indent}  ");
    let mut out = header;
    for (k, v) in settings {
        out.push_str(&assignment(&inner, &k, &v));
    }
    for c in children {
        out.push_str(&c);
    }
    out.push_str(&format!("{indent}}}\n"));
    out
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}( [A-Z][a-z]{1,5})?"
}

fn service() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("imap".to_owned()), Just("lmtp".to_owned()), "[a-z]{3,8}"],
        prop::collection::vec(
            setting(
                dovecote_config::catalog::SERVICE,
                &["name", "type", "vsz_limit", "drop_priv_before_exec"],
            ),
            1..4,
        ),
        prop::collection::vec(
            (
                "[a-z/]{1,10}",
                prop::collection::vec(setting(dovecote_config::catalog::UNIX_LISTENER, &["path"]), 1..3),
            ),
            0..2,
        ),
        prop::collection::vec(
            (
                "[a-z]{1,6}",
                prop::collection::vec(setting(dovecote_config::catalog::INET_LISTENER, &["name"]), 1..3),
            ),
            0..2,
        ),
    )
        .prop_map(|(name, settings, unix, inet)| {
            let mut children: Vec<String> =
                unix.into_iter().map(|(p, s)| block(SectionKind::UnixListener, p, s, vec![], "  ")).collect();
            children
                .extend(inet.into_iter().map(|(n, s)| block(SectionKind::InetListener, n, s, vec![], "  ")));
            block(SectionKind::Service, name, settings, children, "")
        })
}

fn namespace() -> impl Strategy<Value = String> {
    (
        name(),
        prop::collection::vec(setting(dovecote_config::catalog::NAMESPACE, &["name", "separator"]), 0..4),
        prop::collection::vec(
            (name(), prop::collection::vec(setting(dovecote_config::catalog::MAILBOX, &["name"]), 1..3)),
            0..3,
        ),
    )
        .prop_map(|(name, settings, mailboxes)| {
            let children =
                mailboxes.into_iter().map(|(n, s)| block(SectionKind::Mailbox, n, s, vec![], "  ")).collect();
            block(SectionKind::Namespace, name, settings, children, "")
        })
}

fn database(kind: SectionKind, defs: &'static [SettingDef]) -> impl Strategy<Value = String> {
    ("[a-z-]{2,10}", prop::collection::vec(setting(defs, &["driver", "name"]), 0..3)).prop_map(
        move |(driver, mut s)| {
            // A database block that sets nothing but defaults is not printed by
            // `doveconf -n` (as in Dovecot), so give each a driver.
            s.insert(0, ("driver".to_owned(), driver));
            block(kind, String::new(), s, vec![], "")
        },
    )
}

/// Settings whose random values the checks reject (limits, protocol names).
const GLOBAL_SKIP: &[&str] = &["protocols", "default_vsz_limit", "first_valid_uid", "first_valid_gid"];

fn config_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(setting(dovecote_config::catalog::GLOBAL, GLOBAL_SKIP), 0..20),
        prop::collection::vec(service(), 0..3),
        prop::collection::vec(namespace(), 0..2),
        prop::collection::vec(database(SectionKind::Passdb, dovecote_config::catalog::PASSDB), 0..3),
        prop::collection::vec(database(SectionKind::Userdb, dovecote_config::catalog::USERDB), 0..2),
        prop::collection::vec(("[a-z_]{1,12}", text()), 0..5),
        prop::collection::vec(
            (
                prop::sample::select(vec!["imap", "pop3", "lmtp", "!imap"]),
                setting(dovecote_config::catalog::GLOBAL, &[]),
            ),
            0..3,
        ),
    )
        .prop_map(|(globals, services, namespaces, passdbs, userdbs, plugin, filters)| {
            let mut text = String::from("# generated\n");
            for (k, v) in globals {
                text.push_str(&assignment("", &k, &v));
            }
            for s in services.into_iter().chain(namespaces).chain(passdbs).chain(userdbs) {
                text.push_str(&s);
            }
            if !plugin.is_empty() {
                text.push_str("plugin {\n");
                for (k, v) in plugin {
                    text.push_str(&assignment("  ", &k, &v));
                }
                text.push_str("}\n");
            }
            for (protocol, (k, v)) in filters {
                text.push_str(&format!("protocol {protocol} {{\n"));
                text.push_str(&assignment("  ", &k, &v));
                text.push_str("}\n");
            }
            text
        })
}

fn everything(text: &str) -> Result<String, String> {
    let config = parse_str("roundtrip.conf", text, LoadOptions::default()).map_err(|e| e.to_string())?;
    Ok(render(&config, PrintOptions { scope: Scope::All, show_secrets: true }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn printed_configuration_parses_back_to_the_same_settings(text in config_text()) {
        let Ok(config) = parse_str("roundtrip.conf", &text, LoadOptions::default()) else {
            // Rejected input (a checked limit, an unknown protocol) is the
            // malformed tests' business; the generator keeps this rare.
            return Ok(());
        };
        let printed = render(&config, PrintOptions { scope: Scope::Changed, show_secrets: true });
        let before = render(&config, PrintOptions { scope: Scope::All, show_secrets: true });
        let after = everything(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n--- printed:\n{printed}")))?;
        prop_assert_eq!(before, after, "printed:\n{}", printed);
    }
}

/// The property above skips configurations the checks reject; make sure the
/// generator mostly produces accepted ones, so the property cannot pass by
/// testing nothing.
#[test]
fn generated_configurations_are_mostly_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = config_text();
    let total = 200;
    let mut accepted = 0;
    let mut last_error = String::new();
    for _ in 0..total {
        let text = strategy.new_tree(&mut runner).expect("generate").current();
        match parse_str("roundtrip.conf", &text, LoadOptions::default()) {
            Ok(_) => accepted += 1,
            Err(e) => last_error = e.to_string(),
        }
    }
    assert!(accepted * 10 >= total * 9, "only {accepted}/{total} accepted; e.g. {last_error}");
}
