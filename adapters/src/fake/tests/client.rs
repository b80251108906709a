//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`, for the
//! fake server's tests: it sees exactly what went over the wire (chunk
//! boundaries, a missing last chunk, a connection closed without answer).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Status and headers (names lower-cased).
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding") == Some("chunked")
    }
}

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects with a 5 s read timeout.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::with_timeout(addr, Duration::from_secs(5))
    }

    pub fn with_timeout(addr: SocketAddr, timeout: Duration) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
        stream.set_read_timeout(Some(timeout)).expect("timeout");
        stream.set_write_timeout(Some(timeout)).expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes one request (keep-alive).
    pub fn send(&mut self, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: fake\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream
            .write_all(req.as_bytes())
            .expect("write request");
    }

    /// Reads more bytes; 0 at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 8192];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn take_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads the status line and headers.
    pub fn head(&mut self) -> io::Result<Head> {
        let status_line = self.take_line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.take_line()?;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').expect("header line");
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        Ok(Head { status, headers })
    }

    /// The next chunk of a chunked body; `None` after the last (empty) one.
    pub fn chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let size_line = self.take_line()?;
        let size = usize::from_str_radix(size_line.trim(), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size_line:?}")))?;
        let data = self.take(size)?;
        self.take_line()?;
        Ok(if size == 0 { None } else { Some(data) })
    }

    /// The whole body (by Content-Length, chunks, or up to EOF).
    pub fn body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        if head.chunked() {
            let mut out = Vec::new();
            while let Some(c) = self.chunk()? {
                out.extend_from_slice(&c);
            }
            return Ok(out);
        }
        match head.header("content-length") {
            Some(n) => self.take(n.parse().map_err(io::Error::other)?),
            None => {
                while self.fill()? > 0 {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }

    /// Reads until EOF or error; true when the peer closed (EOF or reset).
    pub fn closed(&mut self) -> bool {
        loop {
            match self.fill() {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    );
                }
            }
        }
    }
}

/// One request on a new connection: status, headers and whole body.
pub fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (Head, Vec<u8>) {
    call_with(addr, method, path, body, &[])
}

pub fn call_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (Head, Vec<u8>) {
    let mut c = Client::connect(addr);
    c.send(method, path, body, headers);
    let head = c.head().expect("response head");
    let body = c.body(&head).expect("response body");
    (head, body)
}

/// A JSON body.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}
