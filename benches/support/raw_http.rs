//! The load generators' HTTP client, shared by the benchmarks.

/// A minimal HTTP/1.1 keep-alive client, so that the load generator, which
/// shares the machine's two cores with the server, costs as little as possible.
pub struct RawHttp {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
    pub token: Option<String>,
}

impl RawHttp {
    pub async fn connect(addr: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, writer) = stream.into_split();
        Self {
            reader: tokio::io::BufReader::new(read),
            writer,
            request: Vec::new(),
            line: String::new(),
            body: Vec::new(),
            token: None,
        }
    }

    pub async fn get(&mut self, path: &str) -> u16 {
        self.get_body(path).await.0
    }

    pub async fn get_body(&mut self, path: &str) -> (u16, String) {
        use std::io::Write;
        self.request.clear();
        write!(self.request, "GET {path} HTTP/1.1\r\nHost: bench\r\n").unwrap();
        self.finish_headers();
        let status = self.exchange().await;
        (status, String::from_utf8_lossy(&self.body).into_owned())
    }

    pub async fn post_json(&mut self, path: &str, body: &str) -> u16 {
        self.post_json_body(path, body).await.0
    }

    /// [`RawHttp::post_json`], with the answer's body.
    pub async fn post_json_body(&mut self, path: &str, body: &str) -> (u16, String) {
        use std::io::Write;
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
        .unwrap();
        self.finish_headers();
        self.request.extend_from_slice(body.as_bytes());
        let status = self.exchange().await;
        (status, String::from_utf8_lossy(&self.body).into_owned())
    }

    fn finish_headers(&mut self) {
        use std::io::Write;
        if let Some(token) = &self.token {
            write!(self.request, "Authorization: Bearer {token}\r\n").unwrap();
        }
        self.request.extend_from_slice(b"\r\n");
    }

    pub async fn exchange(&mut self) -> u16 {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        self.writer.write_all(&self.request).await.unwrap();
        let mut status = 0;
        let mut length = 0usize;
        loop {
            self.line.clear();
            self.reader.read_line(&mut self.line).await.unwrap();
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
                status = rest[..3].parse().unwrap();
            } else if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).await.unwrap();
        status
    }
}
