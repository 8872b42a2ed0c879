//! Sans-IO HTTP/1.x for the metrics listener: parsing a request head (with `httparse`) within
//! limits, and writing a whole response. The listener only serves small GETs, so a request is
//! its head (a body is never read) and every answer closes the connection.

/// Largest request head accepted; larger heads are answered 431. Prometheus and browsers send
/// well under 2 KiB.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// Most header lines accepted (also answered 431 past it).
const HEADERS_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path without the query string.
    pub path: String,
    /// The scraper asked for OpenMetrics (`Accept: application/openmetrics-text`).
    pub openmetrics: bool,
}

/// What the bytes read so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet; read more.
    Partial,
    Done(Request),
    /// Refuse with this status and close.
    Refuse(Status),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadersTooLarge,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::HeadersTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > HEAD_BYTES_MAX => {
            Parsed::Refuse(Status::HeadersTooLarge)
        }
        Ok(httparse::Status::Complete(_)) => {
            let method = match req.method {
                Some("GET") => Method::Get,
                Some("HEAD") => Method::Head,
                _ => Method::Other,
            };
            let target = req.path.unwrap_or("/");
            let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
            let openmetrics = req.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("accept")
                    && std::str::from_utf8(h.value)
                        .is_ok_and(|v| v.contains("application/openmetrics-text"))
            });
            Parsed::Done(Request {
                method,
                path,
                openmetrics,
            })
        }
        Ok(httparse::Status::Partial) if buf.len() > HEAD_BYTES_MAX => {
            Parsed::Refuse(Status::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Refuse(Status::HeadersTooLarge),
        Err(_) => Parsed::Refuse(Status::BadRequest),
    }
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: Status, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }

    pub fn text(status: Status, body: impl Into<String>) -> Self {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    /// The bytes on the wire; `head_only` for a HEAD request (same headers, no body).
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status.code(),
            self.status.reason(),
            self.content_type,
            self.body.len()
        );
        if self.status == Status::MethodNotAllowed {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_is_parsed_with_its_accept_header() {
        let head = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";
        assert_eq!(
            parse(head),
            Parsed::Done(Request {
                method: Method::Get,
                path: "/metrics".into(),
                openmetrics: true
            })
        );
        assert_eq!(parse(&head[..20]), Parsed::Partial);
    }

    #[test]
    fn bad_heads_are_refused() {
        assert_eq!(
            parse(b"\x16\x03\x01garbage\r\n\r\n"),
            Parsed::Refuse(Status::BadRequest)
        );
        let mut long = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', HEAD_BYTES_MAX));
        assert_eq!(parse(&long), Parsed::Refuse(Status::HeadersTooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(HEADERS_MAX + 1) {
            many.extend(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(parse(&many), Parsed::Refuse(Status::HeadersTooLarge));
        match parse(b"POST /metrics HTTP/1.1\r\n\r\n") {
            Parsed::Done(r) => assert_eq!(r.method, Method::Other),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r = Response::text(Status::MethodNotAllowed, "no");
        let wire = String::from_utf8(r.encode(false)).expect("utf-8");
        assert!(wire.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(wire.contains("Content-Length: 3\r\n"));
        assert!(wire.contains("Allow: GET, HEAD\r\n"));
        assert!(wire.ends_with("\r\n\r\nno\n"));
        let head = String::from_utf8(Response::text(Status::Ok, "ok").encode(true)).expect("utf-8");
        assert!(head.ends_with("Connection: close\r\n\r\n"));
    }
}
