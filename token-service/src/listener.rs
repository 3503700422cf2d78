//! What token-service accepts gRPC connections on: its TCP address (plaintext, or TLS only
//! when `[grpc_tls]` is set), and optionally a Unix socket for an auth-web on the same host
//! (the all-in-one binary uses one). Each connection carries a [`Peer`]: what the transport
//! proves about the caller, which `grpc::caller` reads before any handler runs.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::transport::server::{Connected, TcpIncoming};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes under way at once: beyond it a new connection is closed at once, so a
/// flood of silent connections costs at most this many sockets for `HANDSHAKE_TIMEOUT`.
const MAX_HANDSHAKES: usize = 512;
/// The pause after a failed accept (out of file descriptors, say): without it the loop
/// would spin on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// One accepted connection.
pub enum Conn {
    /// From the TCP listener (`TCP_NODELAY` set).
    Tcp(TcpStream),
    /// From the TCP listener, after a TLS handshake.
    Tls(Box<TlsStream<TcpStream>>),
    /// From the Unix socket; `same_user` when the peer runs as the socket's owner.
    Unix { stream: UnixStream, same_user: bool },
}

/// What the connection proves about the caller (the `ConnectInfo` of every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The peer's address (TCP and TLS).
    pub remote_addr: Option<SocketAddr>,
    /// How it connected.
    pub transport: Transport,
}

/// How a caller connected, and what that proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP: proves nothing.
    Tcp,
    /// TLS; `client_certificate` when the peer presented a certificate that
    /// `grpc_tls.client_ca_file` issued (the handshake fails for any other).
    Tls {
        /// A verified client certificate was presented.
        client_certificate: bool,
    },
    /// The Unix socket; `same_user` when `SO_PEERCRED` says the peer runs as the user that
    /// owns the socket (token-service's own user).
    Unix {
        /// The peer's uid is the socket owner's.
        same_user: bool,
    },
}

/// A Unix socket listener and the uid that owns its file.
#[derive(Debug)]
pub struct UnixSocket {
    listener: UnixListener,
    owner: u32,
}

/// Binds `path` as a Unix socket only its owner may connect to. A socket file left by an
/// earlier run is replaced; one that a running process still answers on (a second start of
/// the same configuration) is an error, and is left to its owner; any other file at that
/// path is an error.
pub fn bind_unix(path: &Path) -> io::Result<UnixSocket> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use by a running process (another Doorward?): stop it, or set another token_service_socket",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    // This process's own user (`/proc/self` belongs to it), read without libc; not the
    // file's owner, which someone able to write the folder could swap.
    let owner = std::fs::metadata("/proc/self")?.uid();
    Ok(UnixSocket { listener, owner })
}

/// The connections of `tcp` (through TLS when `tls` is given) and, if given, of `unix`, as
/// one stream for tonic.
pub fn incoming(
    tcp: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    unix: Option<UnixSocket>,
) -> Pin<Box<dyn Stream<Item = io::Result<Conn>> + Send>> {
    // TCP_NODELAY on every accepted connection: without it a response written in several
    // frames waits for the peer's delayed ACK (~40 ms per request).
    let tcp = TcpIncoming::from(tcp).with_nodelay(Some(true));
    let tcp: Pin<Box<dyn Stream<Item = io::Result<Conn>> + Send>> = match tls {
        Some(config) => Box::pin(tls_handshakes(tcp, TlsAcceptor::from(config))),
        None => Box::pin(tcp.map(|accepted| accepted.map(Conn::Tcp))),
    };
    match unix {
        Some(UnixSocket { listener, owner }) => {
            let unix = UnixListenerStream::new(listener).map(move |accepted| {
                accepted.map(|stream| {
                    let same_user = stream.peer_cred().is_ok_and(|cred| cred.uid() == owner);
                    Conn::Unix { stream, same_user }
                })
            });
            Box::pin(tcp.merge(unix))
        }
        None => tcp,
    }
}

/// TLS connections of `tcp`. Each handshake runs in a task of its own, so a slow or silent
/// client holds up no other, and at most `MAX_HANDSHAKES` run at once; one that fails
/// (plaintext, an unknown client certificate, a timeout) is closed and never reaches gRPC.
/// The accepting task ends, and the port closes, when the server drops the stream.
fn tls_handshakes(
    mut tcp: TcpIncoming,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = io::Result<Conn>> + Send {
    let (ready, handshaken) = tokio::sync::mpsc::channel::<io::Result<Conn>>(64);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = tcp.next() => accepted,
                () = ready.closed() => break,
            };
            let stream = match accepted {
                Some(Ok(stream)) => stream,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "could not accept a gRPC connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
                None => break,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!("too many TLS handshakes under way; a connection was closed");
                continue;
            };
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                let peer = stream.peer_addr().ok();
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                let outcome = handshake.await;
                drop(slot);
                match outcome {
                    Ok(Ok(tls)) => {
                        let _ = ready.send(Ok(Conn::Tls(Box::new(tls)))).await;
                    }
                    // Debug, not warn: anyone can make these, and each would be a log line.
                    Ok(Err(err)) => tracing::debug!(?peer, error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(handshaken)
}

/// Removes the socket file when the service stops, if it is still the one this process
/// created (another process may have replaced it since: that one is not ours to remove).
pub struct SocketFile {
    path: PathBuf,
    inode: Option<u64>,
}

impl SocketFile {
    /// The socket file just bound at `path`.
    pub fn created(path: PathBuf) -> Self {
        Self {
            inode: inode(&path),
            path,
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|meta| meta.ino())
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.inode.is_some() && inode(&self.path) == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        match self {
            Conn::Tcp(stream) => Peer {
                remote_addr: stream.peer_addr().ok(),
                transport: Transport::Tcp,
            },
            Conn::Tls(stream) => {
                let (tcp, session) = stream.get_ref();
                Peer {
                    remote_addr: tcp.peer_addr().ok(),
                    transport: Transport::Tls {
                        // Only a certificate the client CA verified gets this far.
                        client_certificate: session
                            .peer_certificates()
                            .is_some_and(|certs| !certs.is_empty()),
                    },
                }
            }
            Conn::Unix { same_user, .. } => Peer {
                remote_addr: None,
                transport: Transport::Unix {
                    same_user: *same_user,
                },
            },
        }
    }
}

/// The stream under any connection, for the I/O traits.
macro_rules! io_of {
    ($conn:expr, $s:ident => $body:expr) => {
        match $conn {
            Conn::Tcp($s) => $body,
            Conn::Tls($s) => $body,
            Conn::Unix { stream: $s, .. } => $body,
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        io_of!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        io_of!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        io_of!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        io_of!(self, s => s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io_of!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io_of!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "doorward-listener-{}",
            doorward_shared::secret::random_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_socket_left_by_an_earlier_run_is_replaced_and_removed_on_stop() {
        let dir = scratch_dir();
        let path = dir.join("token-service.sock");
        let first = bind_unix(&path).unwrap();
        drop(first); // a crash leaves the file behind
        assert!(path.exists());
        let second = bind_unix(&path).expect("the stale socket is replaced");
        let file = SocketFile::created(path.clone());
        let client = UnixStream::connect(&path).await.expect("it accepts");
        drop((client, second));
        drop(file);
        assert!(!path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_socket_a_running_process_answers_on_is_neither_taken_nor_removed() {
        let dir = scratch_dir();
        let path = dir.join("token-service.sock");
        let running = bind_unix(&path).unwrap();
        let running_file = SocketFile::created(path.clone());
        let err = bind_unix(&path).expect_err("a second start is refused");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(
            err.to_string().contains("in use by a running process"),
            "{err}"
        );
        UnixStream::connect(&path)
            .await
            .expect("the running one still answers");
        // A process whose socket was replaced by another's leaves the new one alone.
        let stale = SocketFile {
            path: path.clone(),
            inode: Some(u64::MAX),
        };
        drop(stale);
        assert!(path.exists());
        drop((running, running_file));
        assert!(!path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn any_other_file_at_the_path_is_left_alone() {
        let dir = scratch_dir();
        let path = dir.join("token-service.sock");
        std::fs::write(&path, "not a socket").unwrap();
        let err = bind_unix(&path).expect_err("a regular file is refused");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
