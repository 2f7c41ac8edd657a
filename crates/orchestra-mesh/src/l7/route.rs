//! [`RouteTimeouts`]: how long a request may take, chosen by its route (path prefix).
//!
//! The timeout covers the whole request as the application sees it: waiting for a ready
//! endpoint, every retry, and the response headers. It is applied with `tower::timeout`.

use std::time::Duration;

/// One route: requests whose path starts with `path_prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The path prefix (`/` matches everything).
    pub path_prefix: String,
    /// The timeout of the route's requests.
    pub timeout: Duration,
}

/// A service's route timeouts: the longest matching prefix wins, else the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// The timeout of requests no route matches (default 10 s).
    pub default: Duration,
    /// The routes, in any order.
    pub routes: Vec<Route>,
}

impl Default for RouteTimeouts {
    fn default() -> Self {
        RouteTimeouts {
            default: Duration::from_secs(10),
            routes: Vec::new(),
        }
    }
}

impl RouteTimeouts {
    /// The timeout of a request for `path`.
    pub fn timeout_for(&self, path: &str) -> Duration {
        self.routes
            .iter()
            .filter(|route| path.starts_with(route.path_prefix.as_str()))
            .max_by_key(|route| route.path_prefix.len())
            .map_or(self.default, |route| route.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        let routes = RouteTimeouts {
            default: Duration::from_secs(10),
            routes: vec![
                Route {
                    path_prefix: "/api/slow".into(),
                    timeout: Duration::from_secs(60),
                },
                Route {
                    path_prefix: "/api".into(),
                    timeout: Duration::from_secs(2),
                },
            ],
        };
        assert_eq!(
            routes.timeout_for("/api/slow/report"),
            Duration::from_secs(60)
        );
        assert_eq!(routes.timeout_for("/api/users"), Duration::from_secs(2));
        assert_eq!(routes.timeout_for("/index.html"), Duration::from_secs(10));
    }
}
