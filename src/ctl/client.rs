//! A small blocking HTTP/1.1 client for `hmsctl`: plain `http://` URLs, one connection per
//! request, JSON bodies, bearer token, chunked responses and a streaming reader for `/events`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Why a request failed before an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid url {0:?}: use http://HOST:PORT")]
    Url(String),
    #[error("cannot reach {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connection to {addr} failed: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("malformed answer from {0}")]
    Malformed(String),
}

/// A parsed answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Where the API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    base: String,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// `url` is `http://HOST:PORT[/base]`.
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<Self, ClientError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| ClientError::Url(url.to_owned()))?;
        let (addr, base) = rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b));
        if addr.is_empty() || addr.contains(char::is_whitespace) {
            return Err(ClientError::Url(url.to_owned()));
        }
        let addr = if addr.contains(':') { addr.to_owned() } else { format!("{addr}:80") };
        let base = if base.is_empty() { String::new() } else { format!("/{}", base.trim_end_matches('/')) };
        Ok(Self { addr, base, token: token.filter(|t| !t.is_empty()), timeout })
    }

    /// One request; the whole answer.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<Answer, ClientError> {
        let mut reader = self.send(method, path, body, Some(self.timeout))?;
        let (status, chunked, length) = self.head(&mut reader)?;
        let mut raw = Vec::new();
        if chunked {
            while let Some(chunk) = self.chunk(&mut reader)? {
                raw.extend_from_slice(&chunk);
            }
        } else if let Some(n) = length {
            raw.resize(n, 0);
            reader.read_exact(&mut raw).map_err(|e| self.io(e))?;
        } else {
            reader.read_to_end(&mut raw).map_err(|e| self.io(e))?;
        }
        Ok(Answer { status, body: String::from_utf8_lossy(&raw).into_owned() })
    }

    /// Follows a server-sent event stream, calling `on_event(name, data)` for each event until the
    /// server ends the stream (or `on_event` returns false).
    pub fn follow(&self, path: &str, mut on_event: impl FnMut(&str, &str) -> bool) -> Result<Answer, ClientError> {
        let mut reader = self.send("GET", path, None, None)?;
        let (status, chunked, _) = self.head(&mut reader)?;
        if status != 200 {
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            return Ok(Answer { status, body: String::from_utf8_lossy(&rest).into_owned() });
        }
        let (mut pending, mut name, mut data) = (String::new(), String::new(), String::new());
        loop {
            let piece = if chunked {
                match self.chunk(&mut reader)? {
                    Some(c) => c,
                    None => break,
                }
            } else {
                let mut buf = vec![0; 4096];
                let n = reader.read(&mut buf).map_err(|e| self.io(e))?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                buf
            };
            pending.push_str(&String::from_utf8_lossy(&piece));
            while let Some((line, rest)) = pending.split_once('\n') {
                let line = line.trim_end_matches('\r').to_owned();
                pending = rest.to_owned();
                if line.is_empty() {
                    if !data.is_empty() && !on_event(if name.is_empty() { "message" } else { &name }, &data) {
                        return Ok(Answer { status, body: String::new() });
                    }
                    name.clear();
                    data.clear();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim_start().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
        }
        Ok(Answer { status, body: String::new() })
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io { addr: self.addr.clone(), source }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<BufReader<TcpStream>, ClientError> {
        let stream = TcpStream::connect(&self.addr)
            .map_err(|source| ClientError::Connect { addr: self.addr.clone(), source })?;
        stream.set_read_timeout(timeout).map_err(|e| self.io(e))?;
        let auth = self.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let (ctype, body) = match body {
            Some(b) => ("Content-Type: application/json\r\n", b),
            None => ("", ""),
        };
        let head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\n{auth}{ctype}Content-Length: {}\r\n\r\n",
            self.base,
            self.addr,
            body.len()
        );
        let mut w = &stream;
        w.write_all(head.as_bytes()).and_then(|()| w.write_all(body.as_bytes())).map_err(|e| self.io(e))?;
        Ok(BufReader::new(stream))
    }

    /// Status, chunked or not, content length.
    fn head(&self, r: &mut BufReader<TcpStream>) -> Result<(u16, bool, Option<usize>), ClientError> {
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| self.io(e))?;
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
        let status = status.ok_or_else(|| ClientError::Malformed(self.addr.clone()))?;
        let (mut chunked, mut length) = (false, None);
        loop {
            line.clear();
            if r.read_line(&mut line).map_err(|e| self.io(e))? == 0 {
                return Err(ClientError::Malformed(self.addr.clone()));
            }
            let l = line.trim_end();
            if l.is_empty() {
                return Ok((status, chunked, length));
            }
            let Some((k, v)) = l.split_once(':') else { continue };
            match k.trim().to_ascii_lowercase().as_str() {
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "content-length" => length = v.trim().parse().ok(),
                _ => {}
            }
        }
    }

    /// The next chunk of a chunked body; None at the end.
    fn chunk(&self, r: &mut BufReader<TcpStream>) -> Result<Option<Vec<u8>>, ClientError> {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| self.io(e))? == 0 {
            return Ok(None);
        }
        let size = line.trim().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(size, 16).map_err(|_| ClientError::Malformed(self.addr.clone()))?;
        if n == 0 {
            return Ok(None);
        }
        let mut buf = vec![0; n + 2];
        r.read_exact(&mut buf).map_err(|e| self.io(e))?;
        buf.truncate(n);
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_http_and_keep_a_base_path() {
        let c = Client::new("http://127.0.0.1:8080/", None, Duration::from_secs(1)).unwrap();
        assert_eq!((c.addr.as_str(), c.base.as_str()), ("127.0.0.1:8080", ""));
        let c = Client::new("http://example:9/api/", Some(String::new()), Duration::from_secs(1)).unwrap();
        assert_eq!((c.addr.as_str(), c.base.as_str(), c.token.is_none()), ("example:9", "/api", true));
        assert!(Client::new("https://x:1", None, Duration::from_secs(1)).is_err());
        assert!(Client::new("http://", None, Duration::from_secs(1)).is_err());
    }
}
