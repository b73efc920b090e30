//! The first exchange inside a circuit's end-to-end session: which service the source wants (or
//! that the circuit carries IP packets, [`crate::ip_plane`]), and whether the destination takes
//! it. Everything after it is the session layer's (or the IP plane's).
//!
//! Request: magic `HUBS`, version 1, the service name's length (1 byte) and the name; or magic
//! `HUBP`, version 1: packets between the hubs' TUN interfaces. Reply: 0
//! (accepted), or 1 then the refusal's label length (1 byte) and the label. Both are read from
//! an authenticated hub, but are still bounded and checked: a peer hub can be compromised.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::grant::ServiceName;

const MAGIC: &[u8; 4] = b"HUBS";
const PACKETS_MAGIC: &[u8; 4] = b"HUBP";
const VERSION: u8 = 1;
const ACCEPTED: u8 = 0;
const REFUSED: u8 = 1;
/// Longest service name (and refusal label) on the wire.
pub const MAX_NAME: usize = 63;

/// Why a request or reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The stream failed or ended.
    #[error("the circuit failed while the service request was exchanged: {0}")]
    Io(#[from] std::io::Error),
    /// Not a request of this version.
    #[error("not a service request of version 1")]
    NotARequest,
    /// The name or label is empty, too long or not a service name.
    #[error("the service name is malformed")]
    BadName,
    /// The reply byte is neither accepted nor refused.
    #[error("the reply is malformed")]
    BadReply,
}

impl RequestError {
    /// A short label for the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::NotARequest => "not_a_request",
            Self::BadName => "bad_name",
            Self::BadReply => "bad_reply",
        }
    }
}

/// Sends the request for `service`.
pub async fn write_request<W: AsyncWrite + Unpin>(
    out: &mut W,
    service: &ServiceName,
) -> std::io::Result<()> {
    let name = service.as_str().as_bytes();
    let mut bytes = Vec::with_capacity(6 + name.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(VERSION);
    bytes.push(u8::try_from(name.len()).expect("service names are at most 63 bytes"));
    bytes.extend_from_slice(name);
    out.write_all(&bytes).await?;
    out.flush().await
}

/// Sends the request for a circuit of IP packets.
pub async fn write_packets_request<W: AsyncWrite + Unpin>(out: &mut W) -> std::io::Result<()> {
    let mut bytes = PACKETS_MAGIC.to_vec();
    bytes.push(VERSION);
    out.write_all(&bytes).await?;
    out.flush().await
}

/// What a circuit asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A TCP service published at the destination.
    Service(ServiceName),
    /// IP packets for the destination's TUN interface.
    Packets,
}

impl std::fmt::Display for Request {
    /// `service ledger` or `packets`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Service(name) => write!(f, "service {name}"),
            Self::Packets => f.write_str("packets"),
        }
    }
}

/// Sends `request`.
pub async fn write<W: AsyncWrite + Unpin>(out: &mut W, request: &Request) -> std::io::Result<()> {
    match request {
        Request::Service(name) => write_request(out, name).await,
        Request::Packets => write_packets_request(out).await,
    }
}

/// Reads a request: the service asked for, or packets.
pub async fn read_request<R: AsyncRead + Unpin>(input: &mut R) -> Result<Request, RequestError> {
    let mut head = [0u8; 5];
    input.read_exact(&mut head).await?;
    if head[4] != VERSION {
        return Err(RequestError::NotARequest);
    }
    match &head[..4] {
        magic if magic == PACKETS_MAGIC => Ok(Request::Packets),
        magic if magic == MAGIC => {
            let length = input.read_u8().await?;
            let text = read_short_text(input, length).await?;
            ServiceName::parse(&text)
                .map(Request::Service)
                .map_err(|_| RequestError::BadName)
        }
        _ => Err(RequestError::NotARequest),
    }
}

/// The destination's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceReply {
    /// The session is set up (or resumed); the session layer starts.
    Accepted,
    /// Refused, with a label (`unknown_service`, `not_granted`, `unreachable`, ...).
    Refused(String),
}

/// Sends the reply.
pub async fn write_reply<W: AsyncWrite + Unpin>(
    out: &mut W,
    reply: &ServiceReply,
) -> std::io::Result<()> {
    match reply {
        ServiceReply::Accepted => out.write_all(&[ACCEPTED]).await?,
        ServiceReply::Refused(label) => {
            let label = &label.as_bytes()[..label.len().min(MAX_NAME)];
            let mut bytes = vec![REFUSED, label.len() as u8];
            bytes.extend_from_slice(label);
            out.write_all(&bytes).await?;
        }
    }
    out.flush().await
}

/// Reads the reply.
pub async fn read_reply<R: AsyncRead + Unpin>(input: &mut R) -> Result<ServiceReply, RequestError> {
    match input.read_u8().await? {
        ACCEPTED => Ok(ServiceReply::Accepted),
        REFUSED => {
            let length = input.read_u8().await?;
            Ok(ServiceReply::Refused(read_short_text(input, length).await?))
        }
        _ => Err(RequestError::BadReply),
    }
}

async fn read_short_text<R: AsyncRead + Unpin>(
    input: &mut R,
    length: u8,
) -> Result<String, RequestError> {
    let length = usize::from(length);
    if length == 0 || length > MAX_NAME {
        return Err(RequestError::BadName);
    }
    let mut text = vec![0u8; length];
    input.read_exact(&mut text).await?;
    let text = String::from_utf8(text).map_err(|_| RequestError::BadName)?;
    if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(RequestError::BadName);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> ServiceName {
        ServiceName::parse(text).unwrap()
    }

    #[tokio::test]
    async fn requests_and_replies_round_trip() {
        let mut bytes = Vec::new();
        write_request(&mut bytes, &name("ledger")).await.unwrap();
        assert_eq!(&bytes[..6], b"HUBS\x01\x06");
        assert_eq!(
            read_request(&mut bytes.as_slice()).await.unwrap(),
            Request::Service(name("ledger"))
        );
        let mut bytes = Vec::new();
        write_packets_request(&mut bytes).await.unwrap();
        assert_eq!(bytes, b"HUBP\x01");
        assert_eq!(
            read_request(&mut bytes.as_slice()).await.unwrap(),
            Request::Packets
        );
        for reply in [
            ServiceReply::Accepted,
            ServiceReply::Refused("not_granted".into()),
        ] {
            let mut bytes = Vec::new();
            write_reply(&mut bytes, &reply).await.unwrap();
            assert_eq!(read_reply(&mut bytes.as_slice()).await.unwrap(), reply);
        }
    }

    #[tokio::test]
    async fn malformed_input_is_refused_by_kind() {
        let cases: [(&[u8], &str); 9] = [
            (b"HUBS\x02\x01a", "not_a_request"),
            (b"HUBP\x02", "not_a_request"),
            (b"HUBP", "io"),
            (b"HUBX\x01\x01a", "not_a_request"),
            (b"HUBS\x01\x00", "bad_name"),
            (b"HUBS\x01\x40", "bad_name"),
            (b"HUBS\x01\x03A B", "bad_name"),
            (b"HUBS\x01\x02\xff\xfe", "bad_name"),
            (b"HUBS\x01\x05abc", "io"),
        ];
        for (bytes, label) in cases {
            let error = read_request(&mut &bytes[..]).await.unwrap_err();
            assert_eq!(error.label(), label, "{bytes:?}: {error}");
        }
        for (bytes, label) in [
            (&b"\x07"[..], "bad_reply"),
            (b"\x01\x00", "bad_name"),
            (b"", "io"),
        ] {
            let error = read_reply(&mut &bytes[..]).await.unwrap_err();
            assert_eq!(error.label(), label, "{bytes:?}");
        }
    }
}
