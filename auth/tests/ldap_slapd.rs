//! The ldap passdb/userdb against a real slapd started by this test (own
//! config, database, ports and test CA under /tmp; started once for this
//! binary), as seed procedure S10 sets it up: an `ou=People,dc=example,dc=com`
//! tree of posixAccount users, over ldaps:// with `tls_require_cert = hard`
//! and over ldap:// with `tls = yes`; dn/dnpass + pass_filter lookups with
//! and without `auth_bind`, `auth_bind_userdn`, `scope = onelevel`, a filter
//! matching two entries, filter injection, and slapd stop → temporary
//! failure → restart → recovery on the same driver. Installs slapd and
//! ldap-utils when missing (fails, never skips).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dovecote_auth::db::ldap::{LdapDb, LdapSettings};
use dovecote_auth::db::{DbError, RequestVars};
use dovecote_auth::mech::PassdbResult;
use dovecote_auth::scheme::{self, GenerateParams};

const BASE: &str = "ou=People,dc=example,dc=com";

#[test]
fn slapd_s10() {
    let mut server = Slapd::start();
    let ca = server.dir.join("ca.pem");
    let common = format!(
        "dn = cn=dovecot_LDAP,dc=example,dc=com\ndnpass = dovecotLDAPpw\n\
         base = {BASE}\nscope = onelevel\ntls_ca_cert_file = {}\ntls_require_cert = hard\n",
        ca.display()
    );
    let ldaps = format!("uris = ldaps://127.0.0.1:{}\n", server.ldaps_port);
    let starttls = format!("uris = ldap://127.0.0.1:{}\ntls = yes\n", server.ldap_port);
    let tim = RequestVars::new("tim", "imap");

    // 1. ldaps + hard certificate check, dn/dnpass search then bind as the
    //    user (S10's first form), written to a real args file.
    let args = server.dir.join("dovecot-ldap.conf.ext");
    std::fs::write(
        &args,
        format!("{ldaps}{common}auth_bind = yes\npass_filter = (&(objectClass=posixAccount)(uid=%n))\n"),
    )
    .unwrap();
    let mut bind = LdapDb::new(args.to_str().unwrap()).unwrap();
    let v = bind.verify_plain(&tim, b"timpw").unwrap();
    assert_eq!(v.result, PassdbResult::Ok);
    assert_eq!(v.entry.unwrap().user, "tim");
    assert_eq!(bind.verify_plain(&tim, b"wrong").unwrap().result, PassdbResult::PasswordMismatch);
    assert_eq!(bind.verify_plain(&tim, b"").unwrap().result, PassdbResult::PasswordMismatch);
    assert_eq!(
        bind.verify_plain(&RequestVars::new("ann", "imap"), b"annpw").unwrap().result,
        PassdbResult::Ok
    );
    assert_eq!(
        bind.verify_plain(&RequestVars::new("ghost", "imap"), b"x").unwrap().result,
        PassdbResult::UserUnknown
    );
    // scope = onelevel: a user one level deeper is not found...
    let deep = RequestVars::new("deep", "imap");
    assert_eq!(bind.verify_plain(&deep, b"deeppw").unwrap().result, PassdbResult::UserUnknown);
    // ...but is with the default subtree scope.
    let subtree = common.replace("scope = onelevel\n", "");
    let mut sub = settings(&format!("{ldaps}{subtree}auth_bind = yes\npass_filter = (uid=%u)\n"));
    assert_eq!(sub.verify_plain(&deep, b"deeppw").unwrap().result, PassdbResult::Ok);
    // Filter injection: `*` and `)(` in the name are escaped.
    for evil in ["*", "tim)(uid=*", "t*"] {
        let v = bind.verify_plain(&RequestVars::new(evil, "imap"), b"timpw").unwrap();
        assert_eq!(v.result, PassdbResult::UserUnknown, "{evil}");
    }

    // 2. A filter matching two entries fails as Dovecot does (internal
    //    failure, never a login).
    let mut twins = settings(&format!(
        "{ldaps}{common}auth_bind = yes\npass_filter = (&(objectClass=posixAccount)(|(uid=%u)(uid=ann)))\n"
    ));
    let err = twins.verify_plain(&tim, b"timpw").unwrap_err();
    assert!(matches!(err, DbError::Lookup { .. }) && err.to_string().contains("multiple"), "{err}");

    // 3. StartTLS, auth_bind_userdn template (S10's second form): no search.
    let mut userdn =
        settings(&format!("{starttls}{common}auth_bind = yes\nauth_bind_userdn = uid=%n,{BASE}\n"));
    assert_eq!(userdn.verify_plain(&tim, b"timpw").unwrap().result, PassdbResult::Ok);
    assert_eq!(userdn.verify_plain(&tim, b"nope").unwrap().result, PassdbResult::PasswordMismatch);
    let v = userdn.verify_plain(&RequestVars::new("tim,ou=x", "imap"), b"timpw").unwrap();
    assert_ne!(v.result, PassdbResult::Ok);

    // 4. StartTLS, no auth_bind: userPassword is read and verified here;
    //    userdb and iterate with the 2.3 defaults and S10's override style.
    let mut lookup = settings(&format!(
        "{starttls}{common}pass_attrs = uid=user,userPassword=password,homeDirectory=userdb_home\n\
         user_attrs = homeDirectory=home,uidNumber=uid,gidNumber=gid,=mail=maildir:~/Maildir\n\
         user_filter = (&(objectClass=posixAccount)(uid=%u))\npass_filter = (&(objectClass=posixAccount)(uid=%u))\n"
    ));
    let v = lookup.verify_plain(&tim, b"timpw").unwrap();
    assert_eq!(v.result, PassdbResult::Ok);
    assert_eq!(v.entry.as_ref().unwrap().userdb_fields.get("home"), Some("/home/tim"));
    assert!(v.entry.unwrap().password.unwrap().starts_with("{SSHA}"));
    assert_eq!(lookup.verify_plain(&tim, b"bad").unwrap().result, PassdbResult::PasswordMismatch);
    let user = lookup.userdb_lookup(&tim).unwrap().unwrap();
    assert_eq!(user.get("uid"), Some("1001"));
    assert_eq!(user.get("gid"), Some("1001"));
    assert_eq!(user.get("mail"), Some("maildir:~/Maildir"));
    assert!(lookup.userdb_lookup(&RequestVars::new("ghost", "imap")).unwrap().is_none());
    let mut users = lookup.iterate().unwrap();
    users.sort();
    assert_eq!(users, ["ann", "tim"], "onelevel iterate");

    // 5. tls_require_cert = hard really checks: a CA that did not sign the
    //    server's certificate is a (temporary) failure, on both transports.
    let other = common.replace(ca.to_str().unwrap(), server.dir.join("other-ca.pem").to_str().unwrap());
    for transport in [&ldaps, &starttls] {
        let mut untrusted = settings(&format!("{transport}{other}auth_bind = yes\n"));
        let err = untrusted.verify_plain(&tim, b"timpw").unwrap_err();
        assert!(err.is_temporary(), "{err}");
    }

    // 6. slapd stops: temporary failures; back up: the same drivers recover.
    server.stop();
    for db in [&mut bind, &mut userdn, &mut lookup] {
        let err = db.verify_plain(&tim, b"timpw").unwrap_err();
        assert!(err.is_temporary(), "{err}");
        assert!(!db.connected());
    }
    assert!(lookup.userdb_lookup(&tim).unwrap_err().is_temporary());
    server.run();
    for db in [&mut bind, &mut userdn, &mut lookup] {
        assert_eq!(db.verify_plain(&tim, b"timpw").unwrap().result, PassdbResult::Ok);
    }
}

fn settings(text: &str) -> LdapDb {
    LdapDb::with_settings(LdapSettings::parse(text, Path::new("inline")).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------

/// A private slapd with a slapd.conf-style configuration.
struct Slapd {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    ldap_port: u16,
    ldaps_port: u16,
    child: Option<Child>,
}

impl Slapd {
    fn start() -> Self {
        ensure_installed(&["slapd", "slapadd", "ldapsearch"], "slapd ldap-utils");
        let tmp = tempfile::Builder::new().prefix("dovecote-slapd-").tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        make_certs(&dir);
        std::fs::create_dir(dir.join("db")).unwrap();
        let d = dir.display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n\
             database mdb\nmaxsize 10485760\nsuffix \"dc=example,dc=com\"\n\
             rootdn \"cn=admin,dc=example,dc=com\"\nrootpw adminpw\ndirectory {d}/db\n\
             access to attrs=userPassword by self read by dn.exact=\"cn=dovecot_LDAP,dc=example,dc=com\" read by anonymous auth by * none\n\
             access to * by * read\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        let ssha =
            |pw: &str| scheme::generate_prefixed("SSHA", pw.as_bytes(), &GenerateParams::default()).unwrap();
        let mut ldif = format!(
            "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: cn=dovecot_LDAP,dc=example,dc=com\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
             cn: dovecot_LDAP\nuserPassword: {}\n\n\
             dn: {BASE}\nobjectClass: organizationalUnit\nou: People\n\n\
             dn: ou=Sub,{BASE}\nobjectClass: organizationalUnit\nou: Sub\n\n",
            ssha("dovecotLDAPpw")
        );
        for (uid, number, parent) in [
            ("tim", 1001, BASE.to_string()),
            ("ann", 1002, BASE.to_string()),
            ("deep", 1003, format!("ou=Sub,{BASE}")),
        ] {
            ldif.push_str(&format!(
                "dn: uid={uid},{parent}\nobjectClass: account\nobjectClass: posixAccount\nuid: {uid}\ncn: {uid}\n\
                 uidNumber: {number}\ngidNumber: {number}\nhomeDirectory: /home/{uid}\nuserPassword: {}\n\n",
                ssha(&format!("{uid}pw"))
            ));
        }
        std::fs::write(dir.join("data.ldif"), ldif).unwrap();
        let out = Command::new("slapadd")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(dir.join("data.ldif"))
            .output()
            .unwrap();
        assert!(out.status.success(), "slapadd: {}", String::from_utf8_lossy(&out.stderr));
        let mut s = Slapd { dir, _tmp: tmp, ldap_port: free_port(), ldaps_port: free_port(), child: None };
        s.run();
        s
    }

    fn run(&mut self) {
        let urls = format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/", self.ldap_port, self.ldaps_port);
        // `-d 0`: stay in the foreground as our child.
        let child = Command::new("slapd")
            .args(["-d", "0", "-h", &urls, "-f"])
            .arg(self.dir.join("slapd.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("slapd.log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [self.ldap_port, self.ldaps_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                    let log = std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default();
                    panic!("slapd exited: {status}: {log}");
                }
                assert!(Instant::now() < deadline, "slapd did not start");
                #[allow(clippy::disallowed_methods)] // a test waiting for a server, no event loop here
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Installs Debian packages when one of `bins` is missing.
fn ensure_installed(bins: &[&str], packages: &str) {
    let missing =
        |b: &&str| !["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(b).exists());
    if !bins.iter().any(missing) {
        return;
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {packages} >/dev/null"
        ))
        .status()
        .unwrap();
    assert!(status.success(), "could not install {packages}");
    assert!(!bins.iter().any(missing), "{packages} installed but {bins:?} still missing");
}

/// A test CA, a server certificate for 127.0.0.1/localhost signed by it,
/// and an unrelated CA.
fn make_certs(dir: &Path) {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=dovecote-test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other-ca.key -out other-ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
chmod 644 server.key
"#;
    let status = Command::new("sh").arg("-c").arg(script).current_dir(dir).status().unwrap();
    assert!(status.success(), "openssl failed");
}
