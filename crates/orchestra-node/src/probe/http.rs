//! The httpGet probe's client: one `GET` per connection over HTTP or HTTPS, redirects handled
//! as kubelet's prober does.
//!
//! Kubelet's rules, which this follows:
//! - A status from 200 to 399 is success, anything else fails with "HTTP probe failed with
//!   statuscode: N".
//! - Redirects (301, 302, 303, 307, 308 with a `Location`) are followed while they stay on the
//!   original host name (the port and the scheme may change), until 10 requests have been made
//!   ("stopped after 10 redirects" fails the attempt).
//! - A redirect to another host is not followed: the 3xx answer itself is the result, a success
//!   with a warning ("Probe terminated redirects, Response body: ..."), which the agent records
//!   as a `ProbeWarning` event. Any other final 3xx answer is such a warning too.
//! - HTTPS does not verify the server's certificate (see [`super::tls`]).
//! - `User-Agent` and `Accept: */*` are sent unless the probe sets them; a `Host` header in the
//!   probe replaces the request's host.
//!
//! Written by hand rather than with hyper's client: a probe needs a request line, a few headers,
//! the status, `Location` and a bounded body, and hyper's client would add the hyper-util
//! client stack to the node agent for that.

use std::fmt;
use std::net::IpAddr;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Outcome;
use super::tls;

/// Requests in one attempt after which a further redirect fails it (Go's and kubelet's limit).
const MAX_REDIRECTS: usize = 10;
/// The most of a body kept for the warning message (kubelet's `maxRespBodyLength`).
const MAX_BODY: usize = 10 * 1024;
/// The most of a response head read before giving up on it.
const MAX_HEAD: usize = 64 * 1024;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS, the server's certificate not verified.
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// An absolute http(s) URL, split into the parts a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// The scheme.
    pub scheme: Scheme,
    /// The host name or IP address, without brackets.
    pub host: String,
    /// The port (the scheme's default when the URL has none).
    pub port: u16,
    /// The path and query, starting with `/`; no fragment.
    pub path: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority(), self.path)
    }
}

impl Url {
    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parses an absolute `http://` or `https://` URL.
    pub fn parse(text: &str) -> Result<Url, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not an absolute URL"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("unsupported protocol scheme {other:?}")),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (host, port) = parse_authority(authority, scheme)
            .map_err(|why| format!("invalid URL {text:?}: {why}"))?;
        Ok(Url {
            scheme,
            host,
            port,
            path: normalise_path(path),
        })
    }

    /// The URL a `Location` header points to, resolved against this one (absolute URLs,
    /// `//host/...`, `/path` and paths relative to this one's directory).
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let location = location.trim();
        if location.contains("://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme));
        }
        let path = if location.starts_with('/') {
            location.to_owned()
        } else {
            let current = self.path.split(['?', '#']).next().unwrap_or("/");
            let directory = &current[..current.rfind('/').map_or(0, |at| at + 1)];
            if location.starts_with('?') {
                format!("{current}{location}")
            } else {
                format!("{directory}{location}")
            }
        };
        Ok(Url {
            path: remove_dot_segments(&normalise_path(&path)),
            ..self.clone()
        })
    }
}

/// The path with its fragment dropped and a leading `/` ensured (`/` for an empty one).
pub(super) fn normalise_path(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// `path` (absolute) with its `.` and `..` segments resolved, as a redirect's target is.
fn remove_dot_segments(path: &str) -> String {
    let (path, query) = match path.find('?') {
        Some(at) => path.split_at(at),
        None => (path, ""),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                // A trailing dot segment leaves a directory: keep the slash.
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}{query}", out.join("/"))
}

fn parse_authority(authority: &str, scheme: Scheme) -> Result<(String, u16), String> {
    // Credentials in a URL mean nothing to a probe.
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address without its closing ']'")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None | Some("") => scheme.default_port(),
        Some(port) => port
            .parse()
            .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

/// What came back from one request.
#[derive(Debug)]
struct Response {
    status: u16,
    location: Option<String>,
    /// The start of the body, at most [`MAX_BODY`] bytes.
    body: Vec<u8>,
}

/// One httpGet probe attempt against `url`, following redirects as kubelet does.
pub async fn probe(url: Url, headers: &[(String, String)]) -> Outcome {
    let original = url.host.clone();
    let mut url = url;
    let mut redirects = 0;
    loop {
        let response = match get(&url, headers).await {
            Ok(response) => response,
            Err(why) => return Outcome::Failure(format!("Get \"{url}\": {why}")),
        };
        let redirect = matches!(response.status, 301 | 302 | 303 | 307 | 308);
        if let (true, Some(location)) = (redirect, &response.location) {
            let next = match url.join(location) {
                Ok(next) => next,
                Err(why) => {
                    return Outcome::Failure(format!(
                        "Get \"{url}\": failed to parse Location header {location:?}: {why}"
                    ));
                }
            };
            if !next.host.eq_ignore_ascii_case(&original) {
                // Kubelet does not follow a redirect off the pod: the 3xx answer stands.
                return verdict(&response);
            }
            // Go's client (kubelet's) refuses the redirect that would make the tenth request
            // after the first.
            redirects += 1;
            if redirects >= MAX_REDIRECTS {
                return Outcome::Failure(format!(
                    "Get \"{next}\": stopped after {MAX_REDIRECTS} redirects"
                ));
            }
            url = next;
            continue;
        }
        return verdict(&response);
    }
}

fn verdict(response: &Response) -> Outcome {
    match response.status {
        200..=299 => Outcome::Success,
        300..=399 => Outcome::Warning(format!(
            "Probe terminated redirects, Response body: {}",
            String::from_utf8_lossy(&response.body)
        )),
        code => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

/// One `GET` of `url` over a fresh connection.
async fn get(url: &Url, headers: &[(String, String)]) -> Result<Response, String> {
    let authority = url.authority();
    let tcp = TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("dial tcp {authority}: {e}"))?;
    let request = request(url, headers);
    match url.scheme {
        Scheme::Http => exchange(tcp, &request).await,
        Scheme::Https => {
            let name = match url.host.parse::<IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(url.host.clone())
                    .map_err(|e| format!("invalid TLS server name {:?}: {e}", url.host))?,
            };
            let tls = tls::connector()?
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {authority}: {e}"))?;
            exchange(tls, &request).await
        }
    }
}

/// The request's bytes: kubelet's default headers unless the probe sets them.
fn request(url: &Url, headers: &[(String, String)]) -> String {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or_else(|| url.authority(), |(_, v)| v.clone());
    let mut request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", url.path);
    if !has("user-agent") {
        request.push_str(concat!(
            "User-Agent: orchestra-probe/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !has("accept") {
        request.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    request
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<Response, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("writing the request: {e}"))?;
    let mut data = Vec::with_capacity(512);
    let mut buf = [0u8; 2048];
    let head_end = loop {
        if let Some(at) = find(&data, b"\r\n\r\n") {
            break at + 4;
        }
        if data.len() > MAX_HEAD {
            return Err(format!("the response head is over {MAX_HEAD} bytes"));
        }
        let n = read(&mut stream, &mut buf).await?;
        if n == 0 {
            return Err(format!(
                "the server closed the connection before a full response head: {:?}",
                String::from_utf8_lossy(&data)
            ));
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .filter(|_| status_line.starts_with("HTTP/"))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let location = header("location").map(str::to_owned);
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut body = data.split_off(head_end);
    // Only a 3xx answer's body is shown (in the warning), so only then is more read.
    if (300..400).contains(&status) {
        let want = length.unwrap_or(usize::MAX).min(MAX_BODY * 2);
        while body.len() < want {
            match read(&mut stream, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
        if chunked {
            body = dechunk(&body);
        }
        if let Some(length) = length {
            body.truncate(length);
        }
        body.truncate(MAX_BODY);
    }
    Ok(Response {
        status,
        location,
        body,
    })
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<usize, String> {
    stream
        .read(buf)
        .await
        .map_err(|e| format!("reading the response: {e}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The data of a chunked body, as much as `raw` holds.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(line_end) = find(rest, b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..line_end]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        if take < size || rest.len() < take + 2 {
            break;
        }
        rest = &rest[take + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_locations_resolve() {
        let url = Url::parse("https://[::1]:8443/a/b?x=1#frag").unwrap();
        assert_eq!(
            url,
            Url {
                scheme: Scheme::Https,
                host: "::1".into(),
                port: 8443,
                path: "/a/b?x=1".into()
            }
        );
        assert_eq!(url.to_string(), "https://[::1]:8443/a/b?x=1");
        let base = Url::parse("http://10.0.0.1:8080/app/health").unwrap();
        assert_eq!(
            base.join("/ready").unwrap().to_string(),
            "http://10.0.0.1:8080/ready"
        );
        assert_eq!(
            base.join("live").unwrap().to_string(),
            "http://10.0.0.1:8080/app/live"
        );
        assert_eq!(base.join("../x/./y").unwrap().path, "/x/y");
        assert_eq!(base.join("/a/b/..").unwrap().path, "/a/");
        assert_eq!(base.join("/../../z?q=..").unwrap().path, "/z?q=..");
        assert_eq!(
            base.join("?full=1").unwrap().to_string(),
            "http://10.0.0.1:8080/app/health?full=1"
        );
        assert_eq!(
            base.join("https://10.0.0.1:8443").unwrap().to_string(),
            "https://10.0.0.1:8443/"
        );
        assert_eq!(
            base.join("//example.com/x").unwrap().to_string(),
            "http://example.com:80/x"
        );
        assert_eq!(
            base.join("ftp://example.com/").unwrap_err(),
            "unsupported protocol scheme \"ftp\""
        );
        assert!(
            Url::parse("http://host:99999/")
                .unwrap_err()
                .contains("port \"99999\"")
        );
        assert!(Url::parse("http:///x").unwrap_err().contains("no host"));
    }

    #[test]
    fn requests_carry_kubelets_default_headers_unless_overridden() {
        let url = Url::parse("http://10.0.0.1:80/h").unwrap();
        let plain = request(&url, &[]);
        assert!(
            plain.starts_with("GET /h HTTP/1.1\r\nHost: 10.0.0.1:80\r\n"),
            "{plain}"
        );
        assert!(plain.contains("\r\nAccept: */*\r\n"), "{plain}");
        assert!(
            plain.contains("\r\nUser-Agent: orchestra-probe/"),
            "{plain}"
        );
        let custom = request(
            &url,
            &[
                ("Host".into(), "app.example".into()),
                ("accept".into(), "application/json".into()),
            ],
        );
        assert!(custom.contains("\r\nHost: app.example\r\n"), "{custom}");
        assert!(!custom.contains("10.0.0.1"), "{custom}");
        assert!(!custom.contains("*/*"), "{custom}");
        assert!(
            custom.contains("\r\naccept: application/json\r\n"),
            "{custom}"
        );
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"5\r\nhel"), b"hel");
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }
}
