//! `agora health --http URL`: the edge's HTTP probe for runtimes without one of their own
//! (docker-compose), so the image needs no shell or `wget`. One `GET`, HTTP/1.1, plain `http://`
//! only: the probe runs next to the server it asks.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
};

/// Asks `url` once; exits 0 only on a 2xx answer within `timeout`. Prints the status, or why
/// there was none.
///
/// # Errors
/// A URL that is not `http://host[:port]/path`.
pub(crate) async fn check(url: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let (authority, path) = url
        .strip_prefix("http://")
        .map(|rest| {
            rest.split_once('/')
                .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")))
        })
        .context("--http takes an http:// URL")?;
    anyhow::ensure!(!authority.is_empty(), "--http: the URL has no host");
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let answer = async {
        let mut stream = TcpStream::connect(&address).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: agora-health\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut status_line = String::new();
        BufReader::new(stream).read_line(&mut status_line).await?;
        // "HTTP/1.1 200 OK": the code is the second word.
        let code = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .with_context(|| format!("not an HTTP answer: {:?}", status_line.trim_end()))?;
        anyhow::Ok(code)
    };
    Ok(verdict(timeout, answer, |code| {
        (format!("HTTP {code}"), (200..300).contains(&code))
    })
    .await)
}

/// How a probe ends: `answer` within `timeout`, judged by `judge` into what to print and whether
/// it is healthy (exit 0), or `UNREACHABLE` and why (exit 1).
pub(crate) async fn verdict<T>(
    timeout: Duration,
    answer: impl Future<Output = anyhow::Result<T>>,
    judge: impl FnOnce(T) -> (String, bool),
) -> ExitCode {
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(answer)) => {
            let (said, healthy) = judge(answer);
            println!("{said}");
            if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Err(error)) => {
            println!("UNREACHABLE: {error:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("UNREACHABLE: no answer within {timeout:?}");
            ExitCode::FAILURE
        }
    }
}
