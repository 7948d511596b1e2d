//! The bytes between a started process and its callers: its output as the `Start` stream's
//! events, and what `WriteStdin` sends as its input. The same code serves pipes and a PTY's master.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::proto::{StartResponse, start_response::Event};

/// Size of one output chunk on the stream.
const CHUNK: usize = 32 * 1024;

/// Bytes to write, or `None` for end of input, and where to report how it went.
pub(super) type StdinMessage = (Option<Vec<u8>>, oneshot::Sender<std::io::Result<()>>);

/// Writes what WriteStdin sends to the process's input. End of input writes `eof` (nothing for a
/// pipe, `^D` for a terminal) and drops `input`, which closes a pipe.
pub(super) async fn feed_stdin<W: AsyncWrite + Unpin>(
    mut input: W,
    eof: &'static [u8],
    mut rx: mpsc::Receiver<StdinMessage>,
) {
    while let Some((data, ack)) = rx.recv().await {
        let end = data.is_none();
        let result = async {
            input.write_all(data.as_deref().unwrap_or(eof)).await?;
            input.flush().await
        }
        .await;
        let failed = result.is_err();
        let _ = ack.send(result);
        if end || failed {
            return;
        }
    }
}

/// Sends a pipe's (or a PTY's) output as events until its end or until the client is gone. The
/// channel is bounded: a slow client stops the reading, the pipe fills and the writer waits.
pub(super) async fn forward<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    tx: mpsc::Sender<Result<StartResponse, Status>>,
    event: fn(Vec<u8>) -> Event,
) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let item = Ok(StartResponse {
                    event: Some(event(chunk[..n].to_vec())),
                });
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }
    }
}
