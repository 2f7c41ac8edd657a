//! [`AgentLogRequest`]: the node agent's log request, `GET
//! /containerLogs/{namespace}/{pod}/{container}?follow=true&tailLines=N&previous=true&limitBytes=N`
//! `&sinceSeconds=N|sinceTime=RFC3339&timestamps=true`
//! (kubelet's path), encoded by the caller and parsed by the agent with the same code; and
//! [`PodLogOptions`] as the query string of the API's `pods/{name}/log`.

use std::collections::BTreeMap;

use super::PodLogOptions;

/// The path prefix of the agent's log endpoint.
pub const CONTAINER_LOGS_PREFIX: &str = "/containerLogs/";

/// One container's log, asked of the node agent that runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentLogRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// Keep streaming until the container stops or the reader goes away.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// The previous instance of the container.
    pub previous: bool,
    /// At most this many bytes.
    pub limit_bytes: Option<u64>,
    /// Only the output of the last N seconds (Kubernetes' `sinceSeconds`; not with
    /// `since_time`).
    pub since_seconds: Option<u64>,
    /// Only the output written at or after this time (`sinceTime`; not with `since_seconds`).
    pub since_time: Option<jiff::Timestamp>,
    /// Start each line with the RFC 3339 time it was written at (`timestamps`).
    pub timestamps: bool,
}

/// Whether `segment` may be a namespace, pod or container name in a path: the characters of
/// DNS subdomains only, so that nothing needs escaping and nothing can climb out of the path.
fn is_name(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 253
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && segment != "."
        && segment != ".."
}

/// Splits a query string into its (undecoded) parameters: the names and values used here
/// never need decoding (booleans, numbers, DNS names).
fn params(query: Option<&str>) -> BTreeMap<&str, &str> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

fn boolean(params: &BTreeMap<&str, &str>, key: &str) -> Result<bool, String> {
    match params.get(key).copied() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(format!(
            "query parameter {key}={other:?} is not a boolean (true or false)"
        )),
    }
}

fn count(params: &BTreeMap<&str, &str>, key: &str) -> Result<Option<u64>, String> {
    params
        .get(key)
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                format!("query parameter {key}={text:?} is not a non-negative integer")
            })
        })
        .transpose()
}

/// `sinceSeconds` (a positive integer) and `sinceTime` (RFC 3339), at most one of them.
fn since(params: &BTreeMap<&str, &str>) -> Result<(Option<u64>, Option<jiff::Timestamp>), String> {
    let seconds = count(params, "sinceSeconds")?;
    if seconds == Some(0) {
        return Err("query parameter sinceSeconds must be greater than 0".into());
    }
    let time = params
        .get("sinceTime")
        .map(|text| {
            let decoded = text
                .replace("%3A", ":")
                .replace("%3a", ":")
                .replace("%2B", "+");
            decoded.parse::<jiff::Timestamp>().map_err(|e| {
                format!("query parameter sinceTime={text:?} is not an RFC 3339 time: {e}")
            })
        })
        .transpose()?;
    if seconds.is_some() && time.is_some() {
        return Err("at most one of sinceTime or sinceSeconds may be specified".into());
    }
    Ok((seconds, time))
}

impl AgentLogRequest {
    /// The request's path and query: `/containerLogs/NS/POD/CONTAINER?...`.
    pub fn path_and_query(&self) -> String {
        let mut text = format!(
            "{CONTAINER_LOGS_PREFIX}{}/{}/{}",
            self.namespace, self.pod, self.container
        );
        let mut query = Vec::new();
        if self.follow {
            query.push("follow=true".to_owned());
        }
        if let Some(n) = self.tail_lines {
            query.push(format!("tailLines={n}"));
        }
        if self.previous {
            query.push("previous=true".to_owned());
        }
        if let Some(n) = self.limit_bytes {
            query.push(format!("limitBytes={n}"));
        }
        if let Some(n) = self.since_seconds {
            query.push(format!("sinceSeconds={n}"));
        }
        if let Some(t) = self.since_time {
            // UTC with `Z`: nothing in it needs escaping in a query.
            query.push(format!("sinceTime={t}"));
        }
        if self.timestamps {
            query.push("timestamps=true".to_owned());
        }
        if !query.is_empty() {
            text.push('?');
            text.push_str(&query.join("&"));
        }
        text
    }

    /// Parses a path and query as [`path_and_query`](Self::path_and_query) writes them; the
    /// error says what is wrong. `Ok(None)`: the path is not a log path at all.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Option<Self>, String> {
        let Some(rest) = path.strip_prefix(CONTAINER_LOGS_PREFIX) else {
            return Ok(None);
        };
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let [namespace, pod, container] = segments.as_slice() else {
            return Err(format!(
                "{path:?} is not /containerLogs/NAMESPACE/POD/CONTAINER"
            ));
        };
        for (what, value) in [
            ("namespace", namespace),
            ("pod", pod),
            ("container", container),
        ] {
            if !is_name(value) {
                return Err(format!(
                    "{path:?}: the {what} {value:?} is not a valid name (lowercase letters, digits, '-' and '.')"
                ));
            }
        }
        let params = params(query);
        let (since_seconds, since_time) = since(&params)?;
        Ok(Some(AgentLogRequest {
            namespace: (*namespace).to_owned(),
            pod: (*pod).to_owned(),
            container: (*container).to_owned(),
            follow: boolean(&params, "follow")?,
            tail_lines: count(&params, "tailLines")?,
            previous: boolean(&params, "previous")?,
            limit_bytes: count(&params, "limitBytes")?,
            since_seconds,
            since_time,
            timestamps: boolean(&params, "timestamps")?,
        }))
    }
}

impl PodLogOptions {
    /// The options from the query of `GET .../pods/{name}/log` (`container`, `follow`,
    /// `tailLines`, `previous`, `limitBytes`, `sinceSeconds`, `sinceTime`, `timestamps`); the
    /// error names the bad parameter.
    pub fn from_query(query: &BTreeMap<String, String>) -> Result<Self, String> {
        let params: BTreeMap<&str, &str> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (since_seconds, since_time) = since(&params)?;
        Ok(PodLogOptions {
            container: query.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: boolean(&params, "follow")?,
            tail_lines: count(&params, "tailLines")?,
            previous: boolean(&params, "previous")?,
            limit_bytes: count(&params, "limitBytes")?,
            since_seconds,
            since_time,
            timestamps: boolean(&params, "timestamps")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_its_path() {
        let request = AgentLogRequest {
            namespace: "shop".into(),
            pod: "web-1".into(),
            container: "app".into(),
            follow: true,
            tail_lines: Some(10),
            previous: false,
            limit_bytes: Some(4096),
            ..AgentLogRequest::default()
        };
        let text = request.path_and_query();
        assert_eq!(
            text,
            "/containerLogs/shop/web-1/app?follow=true&tailLines=10&limitBytes=4096"
        );
        let (path, query) = text.split_once('?').unwrap();
        assert_eq!(
            AgentLogRequest::parse(path, Some(query)).unwrap(),
            Some(request.clone())
        );
        let request = AgentLogRequest {
            since_time: Some("2026-11-27T03:00:00.5+01:00".parse().unwrap()),
            timestamps: true,
            ..request
        };
        let text = request.path_and_query();
        assert!(
            text.ends_with("&sinceTime=2026-11-27T02:00:00.5Z&timestamps=true"),
            "{text}"
        );
        let (path, query) = text.split_once('?').unwrap();
        assert_eq!(
            AgentLogRequest::parse(path, Some(query)).unwrap(),
            Some(request)
        );
        assert_eq!(AgentLogRequest::parse("/healthz", None).unwrap(), None);
    }

    #[test]
    fn bad_paths_and_parameters_are_named() {
        for (path, query, needle) in [
            ("/containerLogs/a/b", None, "is not /containerLogs"),
            ("/containerLogs/a/b/c/d", None, "is not /containerLogs"),
            ("/containerLogs/a/../c", None, "the pod \"..\""),
            ("/containerLogs/a/B/c", None, "the pod \"B\""),
            ("/containerLogs/a/b/c", Some("tailLines=-1"), "tailLines"),
            ("/containerLogs/a/b/c", Some("follow=yes"), "follow"),
            (
                "/containerLogs/a/b/c",
                Some("sinceSeconds=0"),
                "sinceSeconds",
            ),
            (
                "/containerLogs/a/b/c",
                Some("sinceTime=yesterday"),
                "sinceTime",
            ),
            (
                "/containerLogs/a/b/c",
                Some("sinceSeconds=5&sinceTime=2026-11-27T03:00:00Z"),
                "at most one of sinceTime or sinceSeconds",
            ),
            (
                "/containerLogs/a/b/c",
                Some("timestamps=maybe"),
                "timestamps",
            ),
        ] {
            let err = AgentLogRequest::parse(path, query).unwrap_err();
            assert!(err.contains(needle), "{path}: {err}");
        }
    }

    #[test]
    fn api_query_parameters_become_options() {
        let query = BTreeMap::from([
            ("container".to_owned(), "app".to_owned()),
            ("follow".to_owned(), "true".to_owned()),
            ("tailLines".to_owned(), "3".to_owned()),
        ]);
        let options = PodLogOptions::from_query(&query).unwrap();
        assert_eq!(options.container.as_deref(), Some("app"));
        assert!(options.follow && !options.previous);
        assert_eq!(options.tail_lines, Some(3));
        let query = BTreeMap::from([
            ("sinceTime".to_owned(), "2026-11-27T03:00:00Z".to_owned()),
            ("timestamps".to_owned(), "true".to_owned()),
        ]);
        let options = PodLogOptions::from_query(&query).unwrap();
        assert_eq!(
            options.since_time,
            Some("2026-11-27T03:00:00Z".parse().unwrap())
        );
        assert!(options.timestamps);
        let seconds = BTreeMap::from([("sinceSeconds".to_owned(), "60".to_owned())]);
        assert_eq!(
            PodLogOptions::from_query(&seconds).unwrap().since_seconds,
            Some(60)
        );
        let bad = BTreeMap::from([("limitBytes".to_owned(), "x".to_owned())]);
        assert!(
            PodLogOptions::from_query(&bad)
                .unwrap_err()
                .contains("limitBytes")
        );
    }
}
