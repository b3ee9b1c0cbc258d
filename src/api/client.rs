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

    /// Opens the daemon's event stream (`/v1/events`), resuming after
    /// `last_event_id`. Asks in HTTP/1.0 so the stream is the raw body, ended
    /// by the connection's close.
    pub fn events(&self, last_event_id: Option<&str>) -> Result<EventStream, ClientError> {
        let addr = self.addr;
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|source| ClientError::Unreachable { addr, source })?;
        let io = |source| ClientError::Io { addr, source };
        stream.set_read_timeout(Some(EVENT_TICK)).map_err(io)?;
        let mut head = format!("GET /v1/events HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id.filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(io)?;
        let mut reader = BufReader::new(stream);
        let (status, _, _) = read_head(&mut reader).map_err(|error| match error {
            ReadError::Io(source) => ClientError::Io { addr, source },
            ReadError::Malformed(reason) => ClientError::Malformed { addr, reason },
        })?;
        if status != 200 {
            return Err(ClientError::Refused { status, message: format!("the event stream answered {status}") });
        }
        let frame = StreamedEvent { id: String::new(), kind: String::new(), data: String::new() };
        Ok(EventStream { reader, addr, line: Vec::new(), frame, heard_at: std::time::Instant::now() })
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

/// Longest silence on an event stream before the connection counts as dead
/// (the daemon sends a keepalive every 10 s).
const EVENT_SILENCE: Duration = Duration::from_secs(30);
/// How long [`EventStream::next_event`] waits before it says nothing came.
pub const EVENT_TICK: Duration = Duration::from_millis(500);

/// One server-sent event: its id, its kind and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedEvent {
    pub id: String,
    pub kind: String,
    pub data: String,
}

/// The frames of an open event stream, one [`StreamedEvent`] at a time.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
    /// What was read of the current line and frame when a read timed out.
    line: Vec<u8>,
    frame: StreamedEvent,
    heard_at: std::time::Instant,
}

impl EventStream {
    /// The next event, or `None` after [`EVENT_TICK`] without one (so the
    /// caller can act on what it has); an error when the stream ended, broke,
    /// or was silent (not even a keepalive) for [`EVENT_SILENCE`].
    pub fn next_event(&mut self) -> Result<Option<StreamedEvent>, ClientError> {
        let (addr, io) = (self.addr, |source| ClientError::Io { addr: self.addr, source });
        loop {
            let limit = MAX_EVENT_LINE.saturating_sub(self.line.len() as u64);
            match self.reader.by_ref().take(limit).read_until(b'\n', &mut self.line) {
                Ok(0) => return Err(io(std::io::ErrorKind::UnexpectedEof.into())),
                Ok(_) if !self.line.ends_with(b"\n") => {
                    return Err(ClientError::Malformed { addr, reason: "an event line is too long".into() })
                }
                Ok(_) => {
                    self.heard_at = std::time::Instant::now();
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).trim_end().to_string();
                    if let Some(event) = take_frame(&mut self.frame, &line) {
                        return Ok(Some(event));
                    }
                }
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if self.heard_at.elapsed() >= EVENT_SILENCE {
                        return Err(io(error));
                    }
                    return Ok(None);
                }
                Err(error) => return Err(io(error)),
            }
        }
    }
}

/// Adds one line to `frame`; a blank line ends a frame, which is returned if it carries data.
fn take_frame(frame: &mut StreamedEvent, line: &str) -> Option<StreamedEvent> {
    if line.is_empty() {
        let done =
            std::mem::replace(frame, StreamedEvent { id: String::new(), kind: String::new(), data: String::new() });
        return (!done.data.is_empty()).then_some(done);
    }
    // Comments (`: keepalive`) have an empty field name and are skipped.
    let (field, value) = line.split_once(':').unwrap_or((line, ""));
    let value = value.strip_prefix(' ').unwrap_or(value);
    match field {
        "id" => frame.id = value.to_string(),
        "event" => frame.kind = value.to_string(),
        "data" => frame.data.push_str(value),
        _ => {}
    }
    None
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

/// An event's data line holds a whole batch's transfer ids or a proof's JSON.
const MAX_EVENT_LINE: u64 = 4 << 20;

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

    #[test]
    fn server_sent_events_are_read_frame_by_frame_and_keepalives_skipped() {
        let text = ": keepalive\n\nid: 9-1\nevent: view-changed\ndata: {\"view\":1}\n\nid: 9-2\nevent: x\ndata: 2\n\n";
        let mut frame = StreamedEvent { id: String::new(), kind: String::new(), data: String::new() };
        let events: Vec<StreamedEvent> = text.split('\n').filter_map(|line| take_frame(&mut frame, line)).collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!((events[0].id.as_str(), events[0].kind.as_str()), ("9-1", "view-changed"));
        assert_eq!(events[0].data, "{\"view\":1}");
        assert_eq!(events[1].id, "9-2");
    }
}
