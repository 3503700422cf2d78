//! Test certificates made with the `openssl` command, as an operator would make them (EC
//! P-256, an IP SAN of 127.0.0.1): a CA with a server and a client certificate, and a
//! foreign CA with a client certificate of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder of PEM files; removed on drop.
pub struct TestPki {
    /// The folder.
    pub dir: PathBuf,
}

impl TestPki {
    /// Makes every file (about 0.1 s of openssl).
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "doorward-pki-{}",
            doorward_shared::secret::random_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { dir };
        pki.ca("ca");
        pki.ca("foreign-ca");
        pki.renew_server();
        pki.leaf("client", "ca", "auth-web", "clientAuth", "DNS:auth-web");
        pki.leaf(
            "foreign-client",
            "foreign-ca",
            "auth-web",
            "clientAuth",
            "DNS:auth-web",
        );
        pki
    }

    /// `NAME.pem` in the folder.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// `NAME-key.pem` in the folder.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-key.pem"))
    }

    /// base64(SHA-256(SubjectPublicKeyInfo)) of `NAME.pem`: the pin Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub fn spki_sha256(&self, name: &str) -> String {
        let pipeline = format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | openssl base64 -A",
            path(&self.cert(name))
        );
        let output = Command::new("sh").args(["-c", &pipeline]).output().unwrap();
        assert!(output.status.success(), "{pipeline}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Issues `server.pem` (again): for 127.0.0.1 and localhost, from `ca`.
    pub fn renew_server(&self) {
        self.leaf(
            "server",
            "ca",
            "127.0.0.1",
            "serverAuth",
            "IP:127.0.0.1,DNS:localhost",
        );
    }

    /// Issues `NAME.pem` (again) from the CA `issuer`: a new key and a new certificate.
    pub fn leaf(&self, name: &str, issuer: &str, cn: &str, usage: &str, san: &str) {
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!("subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        let csr = self.dir.join(format!("{name}.csr"));
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            path(&self.key(name)),
            "-out",
            path(&csr),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&self.cert(issuer)),
            "-CAkey",
            path(&self.key(issuer)),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            path(&self.cert(name)),
            "-extfile",
            path(&ext),
        ]);
    }

    fn ca(&self, name: &str) {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            path(&self.key(name)),
            "-out",
            path(&self.cert(name)),
            "-subj",
            &format!("/CN=Test {name}"),
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
