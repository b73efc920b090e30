//! Frames on a link's control stream: a 4-byte big-endian length, then that many bytes.
//!
//! The length is checked before anything is read or allocated, so a peer cannot make this hub
//! buffer more than [`MAX_FRAME_LEN`] bytes for one frame; the largest thing a frame carries
//! today is an advertisement (at most 64 KiB).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame payload a link carries: a whole advertisement (64 KiB) and room to spare.
pub const MAX_FRAME_LEN: usize = 64 * 1024 + 1024;

/// Why a frame was not sent or not received.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame is longer than [`MAX_FRAME_LEN`]; on receipt, the link is closed.
    #[error("a frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The length given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended cleanly between frames.
    #[error("the link's control stream ended")]
    Ended,
    /// The stream ended or failed in the middle of a frame, or could not be written.
    #[error("the link's control stream failed")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// A short label for metrics: `too_large`, `ended`, `io`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Ended => "ended",
            Self::Io(_) => "io",
        }
    }
}

/// Writes one frame; refuses a payload over [`MAX_FRAME_LEN`] without writing anything.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    out: &mut W,
    payload: &[u8],
) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= MAX_FRAME_LEN)
        .ok_or(FrameError::TooLarge {
            len: payload.len(),
            max: MAX_FRAME_LEN,
        })?;
    out.write_all(&len.to_be_bytes()).await?;
    out.write_all(payload).await?;
    Ok(())
}

/// Reads one frame; refuses a length over [`MAX_FRAME_LEN`] before reading the payload.
pub async fn read_frame<R: AsyncRead + Unpin>(input: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; 4];
    let first = input.read(&mut header).await?;
    if first == 0 {
        return Err(FrameError::Ended);
    }
    input.read_exact(&mut header[first..]).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let mut payload = vec![0; len];
    input.read_exact(&mut payload).await?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_up_to_the_limit() {
        let (mut a, mut b) = tokio::io::duplex(256 * 1024);
        write_frame(&mut a, b"hello").await.unwrap();
        write_frame(&mut a, &[]).await.unwrap();
        write_frame(&mut a, &vec![7; MAX_FRAME_LEN]).await.unwrap();
        drop(a);
        assert_eq!(read_frame(&mut b).await.unwrap(), b"hello");
        assert_eq!(read_frame(&mut b).await.unwrap(), b"");
        assert_eq!(read_frame(&mut b).await.unwrap().len(), MAX_FRAME_LEN);
        assert!(matches!(read_frame(&mut b).await, Err(FrameError::Ended)));
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_on_both_sides() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let err = write_frame(&mut a, &vec![0; MAX_FRAME_LEN + 1])
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == MAX_FRAME_LEN + 1));
        // A hostile length header: refused before any payload is read or allocated.
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err = read_frame(&mut b).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max } if len == u32::MAX as usize && max == MAX_FRAME_LEN)
        );
        assert_eq!(err.label(), "too_large");
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_an_error_not_a_frame() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"abc").await.unwrap();
        drop(a);
        assert!(matches!(read_frame(&mut b).await, Err(FrameError::Io(_))));
    }
}
