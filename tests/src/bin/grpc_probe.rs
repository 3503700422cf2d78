//! `grpc_probe`: one gRPC call to token-service as an arbitrary client would make it, for the
//! boundary tests (an outsider on another host, another local user, a caller with a foreign
//! certificate). It sends an empty message to `/SERVICE/METHOD` (every proto3 request has
//! one) and prints one line: `OK`, `STATUS <code> <message>` or `TRANSPORT <error>`.
//!
//! ```text
//! grpc_probe URL SERVICE/METHOD [--ca FILE] [--cert FILE --key FILE] [--bearer TOKEN] [--basic ID:SECRET]
//! ```
//! URL is `http://HOST:PORT`, `https://HOST:PORT` or `unix:PATH`.

use std::time::Duration;

use base64::Engine;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

#[derive(Default)]
struct Args {
    url: String,
    method: String,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    authorization: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args::default();
    let mut rest = std::env::args().skip(1);
    args.url = rest.next().ok_or("URL missing")?;
    args.method = rest.next().ok_or("SERVICE/METHOD missing")?;
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ca" => args.ca = Some(value),
            "--cert" => args.cert = Some(value),
            "--key" => args.key = Some(value),
            "--bearer" => args.authorization = Some(format!("Bearer {value}")),
            "--basic" => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                args.authorization = Some(format!("Basic {encoded}"));
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

async fn channel(args: &Args) -> Result<tonic::transport::Channel, String> {
    let show = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    };
    if let Some(path) = args.url.strip_prefix("unix:") {
        let path = path.to_owned();
        return Endpoint::from_static("http://token-service")
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| show(&e));
    }
    let mut endpoint = Endpoint::from_shared(args.url.clone())
        .map_err(|e| show(&e))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5));
    if args.url.starts_with("https://") {
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &args.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| show(&e))?;
    }
    endpoint.connect().await.map_err(|e| show(&e))
}

async fn call(args: &Args) -> String {
    let channel = match channel(args).await {
        Ok(channel) => channel,
        Err(e) => return format!("TRANSPORT {e}"),
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        return format!("TRANSPORT {e}");
    }
    let mut request = tonic::Request::new(());
    if let Some(value) = &args.authorization
        && let Ok(value) = value.parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    let path = match PathAndQuery::try_from(format!("/{}", args.method)) {
        Ok(path) => path,
        Err(e) => return format!("TRANSPORT bad method: {e}"),
    };
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(request, path, codec).await {
        Ok(_) => "OK".to_owned(),
        Err(status) => format!("STATUS {:?} {}", status.code(), status.message()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "usage: grpc_probe URL SERVICE/METHOD [--ca F] [--cert F --key F] [--bearer T] [--basic ID:SECRET]: {e}"
            );
            return std::process::ExitCode::from(2);
        }
    };
    println!("{}", call(&args).await);
    std::process::ExitCode::SUCCESS
}
