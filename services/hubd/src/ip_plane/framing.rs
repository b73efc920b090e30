//! Packets inside a packet circuit's end-to-end session, after the request: each as its length
//! (u16, big-endian, 1 to 65535) and its bytes. Several go out in one write, so a burst fills
//! TLS records instead of sending one record per packet.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Most packets gathered into one write.
pub const BATCH: usize = 64;

/// Appends `packet` as one frame to `out`.
pub fn put(out: &mut Vec<u8>, packet: &[u8]) {
    let length = u16::try_from(packet.len()).expect("an IP packet is at most 65535 bytes");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(packet);
}

/// Reads the next packet into `packet`; `false` at a clean end of the stream (between frames).
/// A frame of length 0, or a stream that ends inside a frame, is an error.
pub async fn read<R: AsyncRead + Unpin>(input: &mut R, packet: &mut Vec<u8>) -> io::Result<bool> {
    let mut length = [0u8; 2];
    match input.read_exact(&mut length[..1]).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(error) => return Err(error),
    }
    input.read_exact(&mut length[1..]).await?;
    let length = usize::from(u16::from_be_bytes(length));
    if length == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a packet frame of length 0",
        ));
    }
    packet.resize(length, 0);
    input.read_exact(packet).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_a_cut_frame_is_an_error() {
        let mut bytes = Vec::new();
        put(&mut bytes, b"first");
        put(&mut bytes, &[7; 1500]);
        let mut input = bytes.as_slice();
        let mut packet = Vec::new();
        assert!(read(&mut input, &mut packet).await.unwrap());
        assert_eq!(packet, b"first");
        assert!(read(&mut input, &mut packet).await.unwrap());
        assert_eq!(packet.len(), 1500);
        assert!(!read(&mut input, &mut packet).await.unwrap(), "clean end");
        let mut cut = &bytes[..5];
        assert!(read(&mut cut, &mut packet).await.is_err());
        let mut empty: &[u8] = &[0, 0];
        assert_eq!(
            read(&mut empty, &mut packet).await.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
