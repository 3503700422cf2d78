//! What token-service accepts gRPC connections on: its TCP address, and optionally a Unix
//! socket for an auth-web on the same host (the all-in-one binary uses one). Both serve the
//! same services with the same checks; the socket only skips the loopback TCP stack, which
//! costs a share of every token request's CPU on two cores.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// One accepted connection.
pub enum Conn {
    /// From the TCP listener (`TCP_NODELAY` set).
    Tcp(TcpStream),
    /// From the Unix socket.
    Unix(UnixStream),
}

/// Binds `path` as a Unix socket only its owner may connect to. A socket file left by an
/// earlier run is replaced; any other file at that path is an error.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
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
    Ok(listener)
}

/// The connections of `tcp` and, if given, of `unix`, as one stream for tonic.
pub fn incoming(
    tcp: tokio::net::TcpListener,
    unix: Option<UnixListener>,
) -> Pin<Box<dyn Stream<Item = io::Result<Conn>> + Send>> {
    // TCP_NODELAY on every accepted connection: without it a response written in several
    // frames waits for the peer's delayed ACK (~40 ms per request).
    let tcp = TcpIncoming::from(tcp)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(Conn::Tcp));
    match unix {
        Some(unix) => Box::pin(tcp.merge(UnixListenerStream::new(unix).map(|a| a.map(Conn::Unix)))),
        None => Box::pin(tcp),
    }
}

/// Removes the socket file when the service stops.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    /// The peer's address for TCP (what `Request::remote_addr` reads); none for the socket.
    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Conn::Tcp(stream) => stream.connect_info(),
            Conn::Unix(_) => TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
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
        let client = UnixStream::connect(&path).await.expect("it accepts");
        drop((client, second));
        drop(SocketFile(path.clone()));
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
