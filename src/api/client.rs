//! The CLI's client of the control API: one blocking HTTP/1.1 request per
//! connection (`Connection: close`) to a loopback address.
//!
//! Why not `awc`: every CLI command sends one or a few requests and exits;
//! a blocking socket needs no async runtime to start (the query commands'
//! latency target is 50 ms end to end), and the protocol subset the daemon
//! speaks — JSON bodies with a `Content-Length` or chunked — is small enough
//! to read carefully here. Every answer is bounded in size and time, and a
//! malformed one is an error, never a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response read: the biggest answer is a memory value (1 MiB of JSON) or an agent list.
const MAX_RESPONSE_BYTES: u64 = 16 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no swarm daemon answers at {addr} ({source}); start one with `bftswarm swarm init` or `bftswarm swarm start`"
    )]
    Unreachable { addr: SocketAddr, source: std::io::Error },
    #[error("the connection to the daemon at {addr} failed ({source}); the daemon may have stopped")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error("the daemon at {addr} sent a malformed answer: {reason}")]
    Malformed { addr: SocketAddr, reason: String },
    /// The daemon refused the request and said why.
    #[error("{message}")]
    Refused { status: u16, message: String },
}

impl ClientError {
    /// 2 for what the user can fix in their command (bad input, a wrong token,
    /// an unknown agent, a state that does not allow it), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused { status: 400 | 401 | 404 | 409, .. } => 2,
            _ => 1,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiClient {
    addr: SocketAddr,
    token: Option<String>,
    timeout: Duration,
}

impl ApiClient {
    pub fn new(addr: SocketAddr, token: Option<String>) -> ApiClient {
        ApiClient { addr, token, timeout: Duration::from_secs(60) }
    }

    /// How long to wait for an answer (a forced view change waits for the quorum).
    pub fn with_timeout(mut self, timeout: Duration) -> ApiClient {
        self.timeout = timeout;
        self
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.decode(self.request("GET", path, None)?)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| self.malformed(e.to_string()))?;
        self.decode(self.request("POST", path, Some(&body))?)
    }

    fn decode<T: DeserializeOwned>(&self, (status, body): (u16, Vec<u8>)) -> Result<T, ClientError> {
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body)
                .map_err(|e| self.malformed(format!("body is not the JSON expected: {e}")));
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("the daemon answered {status}: {}", String::from_utf8_lossy(&body).trim()));
        Err(ClientError::Refused { status, message: message.replace('\n', " ") })
    }

    fn malformed(&self, reason: String) -> ClientError {
        ClientError::Malformed { addr: self.addr, reason }
    }

    /// Sends one request and returns the status and body.
    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), ClientError> {
        let addr = self.addr;
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|source| ClientError::Unreachable { addr, source })?;
        let io = |source| ClientError::Io { addr, source };
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let _ = stream.set_nodelay(true);
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or_default();
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()));
        let mut message = head.into_bytes();
        message.extend_from_slice(body);
        stream.write_all(&message).map_err(io)?;
        let mut reader = BufReader::new(stream.take(MAX_RESPONSE_BYTES));
        let failed = |error| match error {
            ReadError::Io(source) => ClientError::Io { addr, source },
            ReadError::Malformed(reason) => ClientError::Malformed { addr, reason },
        };
        let (status, length, chunked) = read_head(&mut reader).map_err(failed)?;
        let body = if chunked {
            read_chunked(&mut reader).map_err(failed)?
        } else {
            let mut body = Vec::new();
            match length {
                Some(length) => reader.take(length).read_to_end(&mut body),
                None => reader.read_to_end(&mut body),
            }
            .map_err(io)?;
            body
        };
        Ok((status, body))
    }
}

/// Why an answer could not be read.
#[derive(Debug)]
enum ReadError {
    Io(std::io::Error),
    Malformed(String),
}

impl From<String> for ReadError {
    fn from(reason: String) -> ReadError {
        ReadError::Malformed(reason)
    }
}

/// The status line and headers: status, Content-Length, chunked or not.
fn read_head(reader: &mut impl BufRead) -> Result<(u16, Option<u64>, bool), ReadError> {
    let status_line = read_line(reader)?;
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status.filter(|_| version.starts_with("HTTP/1.")) else {
        return Err(format!("bad status line {status_line:?}").into());
    };
    let (mut length, mut chunked) = (None, false);
    for _ in 0..100 {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok((status, length, chunked));
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = Some(value.parse().map_err(|_| format!("bad Content-Length {value:?}"))?);
        } else if name == "transfer-encoding" {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    Err(ReadError::Malformed("more than 100 header lines".into()))
}

fn read_line(reader: &mut impl BufRead) -> Result<String, ReadError> {
    let mut line = Vec::new();
    reader.by_ref().take(8192).read_until(b'\n', &mut line).map_err(ReadError::Io)?;
    if !line.ends_with(b"\n") {
        return Err(ReadError::Malformed("the connection closed in the middle of a line".into()));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_RESPONSE_BYTES {
            return Err(ReadError::Malformed("the answer is too large".into()));
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        reader.read_exact(&mut body[start..]).map_err(ReadError::Io)?;
        read_line(reader)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_chunked_bodies_are_parsed() {
        let mut input: &[u8] = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 12\r\nX: y\r\n\r\n";
        assert_eq!(read_head(&mut input).unwrap(), (401, Some(12), false));
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (_, _, chunked) = read_head(&mut input).unwrap();
        assert!(chunked);
        assert_eq!(read_chunked(&mut input).unwrap(), b"abcde");
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for bad in [
            &b"SSH-2.0\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 200",
        ] {
            let mut input = bad;
            assert!(read_head(&mut input).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut input: &[u8] = b"zz\r\n";
        assert!(read_chunked(&mut input).is_err());
    }
}
