//! TLS test fixtures: a throw-away CA and certificates it issued, made with the `openssl`
//! command so that the TLS paths are tested against real PEM files as an operator has them,
//! and an HTTPS stand-in for auth-web's JWK Set.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use tonic::codegen::http;
use tonic::transport::{Identity, Server, ServerTlsConfig};

/// A throw-away CA with a server certificate for `127.0.0.1` and a client certificate,
/// made with the `openssl` command (EC P-256, valid one day), removed on drop.
pub struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    /// Makes the CA and its certificates in a new directory under the temporary one.
    pub fn new() -> Self {
        // Tests run in parallel threads of one process: the counter keeps their files apart.
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "doorward-rs-pki-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { dir };
        // Every argument is a plain word (the files are named relative to `dir`), so a
        // command is written as one string.
        const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        pki.openssl(&format!(
            "req -x509 {EC} -keyout ca-key.pem -out ca.pem -subj /CN=test-ca -days 1"
        ));
        for (name, extensions) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
            ),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            std::fs::write(
                pki.path(&format!("{name}.ext")),
                format!("basicConstraints=CA:FALSE\n{extensions}\n"),
            )
            .unwrap();
            pki.openssl(&format!(
                "req {EC} -keyout {name}-key.pem -out {name}.csr -subj /CN={name}"
            ));
            pki.openssl(&format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
                 -out {name}.pem -days 1 -extfile {name}.ext"
            ));
        }
        pki
    }

    fn openssl(&self, command: &str) {
        let output = std::process::Command::new("openssl")
            .args(command.split_whitespace())
            .current_dir(&self.dir)
            .output()
            .expect("the openssl command runs");
        assert!(
            output.status.success(),
            "openssl {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The path of `file` (`ca.pem`, `server.pem`, `server-key.pem`, `client.pem`,
    /// `client-key.pem`, ...).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The contents of `file`.
    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A JWK Set with one Ed25519 signing key, `kid` `ed`.
const ONE_KEY: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed","use":"sig","alg":"EdDSA"}]}"#;

/// Answers every path under `/oauth/` with [`ONE_KEY`]. tonic's server routes by the
/// first path segment, so this stands in for auth-web's HTTPS port without another
/// server crate.
#[derive(Clone)]
struct KeysOverHttps;

impl tonic::server::NamedService for KeysOverHttps {
    const NAME: &'static str = "oauth";
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for KeysOverHttps {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
        let mut response = http::Response::new(tonic::body::Body::new(ONE_KEY.to_owned()));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        std::future::ready(Ok(response))
    }
}

/// An HTTPS server with `pki`'s server certificate whose `/oauth/...` paths answer
/// [`ONE_KEY`].
pub async fn keys_over_https(pki: &TestPki) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(
        pki.read("server.pem"),
        pki.read("server-key.pem"),
    ));
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .accept_http1(true)
            .add_service(KeysOverHttps)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}
