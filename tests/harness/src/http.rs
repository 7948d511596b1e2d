//! Answers to bare HTTP/1.1 requests on a kept-alive connection, for timing a proxy without a client
//! library's own work in the measurement (the router's e2e suite and `bench exec`).

use anyhow::{Context, ensure};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;

/// Reads a response head: its status and `Content-Length` (which the answers measured always carry).
pub async fn read_head(stream: &mut BufReader<TcpStream>) -> anyhow::Result<(u16, usize)> {
    let mut status = None;
    let mut length = None;
    loop {
        let mut line = String::new();
        ensure!(
            stream.read_line(&mut line).await? > 0,
            "connection closed mid-answer"
        );
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if status.is_none() {
            status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        } else if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok();
        }
    }
    Ok((
        status.context("no status line")?,
        length.context("an answer without Content-Length")?,
    ))
}

/// Reads a whole response: its status and body.
pub async fn read_answer(stream: &mut BufReader<TcpStream>) -> anyhow::Result<(u16, Vec<u8>)> {
    let (status, length) = read_head(stream).await?;
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok((status, body))
}
