//! Response bodies written by blocking code a piece at a time: a recording decrypted to WAV,
//! or an archive of several, is never whole in memory (a 1-hour recording is a 115 MB WAV).

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

/// The size of the pieces handed to the HTTP server.
const PIECE: usize = 64 * 1024;

/// What the blocking producer writes the body into.
pub(crate) struct BodyWriter {
    /// Pieces to the response.
    tx: mpsc::Sender<io::Result<Bytes>>,
    /// The piece being filled.
    buf: Vec<u8>,
}

impl BodyWriter {
    /// Hands the filled part of the piece to the response; fails when the client went away.
    fn send_piece(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send_piece()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_piece()
    }
}

/// A body that `produce` writes on a blocking thread while the response is sent. An error
/// midway (after the headers went out) is logged under `what` and cuts the body short, so the
/// client sees a broken transfer rather than a complete-looking one.
pub(crate) fn blocking_body(
    what: &'static str,
    produce: impl FnOnce(&mut BodyWriter) -> io::Result<()> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut writer = BodyWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIECE),
        };
        let result = produce(&mut writer).and_then(|()| writer.send_piece());
        if let Err(error) = result {
            if error.kind() != io::ErrorKind::BrokenPipe {
                tracing::error!(%error, what, "a streamed response failed midway");
                let _ = tx.blocking_send(Err(error));
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn the_body_is_what_was_written_in_pieces() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let body = blocking_body("test", move |w| {
            for chunk in data.chunks(7_777) {
                w.write_all(chunk)?;
            }
            Ok(())
        });
        let got = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected);
    }

    #[tokio::test]
    async fn an_error_midway_breaks_the_body() {
        let body = blocking_body("test", |w| {
            w.write_all(&[1; 100_000])?;
            Err(io::Error::other("the recording changed"))
        });
        assert!(axum::body::to_bytes(body, usize::MAX).await.is_err());
    }
}
