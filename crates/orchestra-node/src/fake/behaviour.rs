//! [`FakeBehaviour`]: what a fake container does, and how it is chosen from an image name
//! (`fake/exit:3?after=5s`) or a `FAKE_BEHAVIOUR` environment variable.

use std::time::Duration;

use crate::runtime::ContainerConfig;

/// The environment variable that, when set on a container, chooses its behaviour instead of
/// the image name (same syntax as the image: `fake/crash?after=2s`).
pub const BEHAVIOUR_ENV: &str = "FAKE_BEHAVIOUR";

/// What a fake container does, stage by stage, on tokio's clock.
///
/// A container is created, then `start_container` takes `start_latency` (or fails with
/// `fail_start`), then it runs for `run_for` (forever when `None`) and exits with `exit_code`.
/// While it runs, `exec_sync` (and so exec probes) answers exit code 1 before `ready_after` has
/// passed since the start and after `healthy_for` has, 0 otherwise. A container with
/// `ignore_term` does not exit on its stop signal: it is killed (exit code 137) when the grace
/// period ends; others exit at once with 143 (128 + TERM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeBehaviour {
    /// How long `start_container` takes.
    pub start_latency: Duration,
    /// `start_container` fails with this message (as a command that does not exist would).
    pub fail_start: Option<String>,
    /// `pull_image` fails with this message (an image that is not present).
    pub missing_image: Option<String>,
    /// How long the container runs before exiting on its own; `None`: until stopped.
    pub run_for: Option<Duration>,
    /// The exit code when it exits on its own.
    pub exit_code: i32,
    /// Exec answers 1 until the container has run this long.
    pub ready_after: Duration,
    /// Exec answers 1 once the container has run this long (`None`: healthy forever).
    pub healthy_for: Option<Duration>,
    /// The stop signal is ignored: the container dies only at the end of the grace period.
    pub ignore_term: bool,
}

impl Default for FakeBehaviour {
    /// Starts at once and runs, healthy and ready, until stopped.
    fn default() -> Self {
        FakeBehaviour {
            start_latency: Duration::ZERO,
            fail_start: None,
            missing_image: None,
            run_for: None,
            exit_code: 0,
            ready_after: Duration::ZERO,
            healthy_for: None,
            ignore_term: false,
        }
    }
}

/// An image name or `FAKE_BEHAVIOUR` value that does not describe a behaviour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fake behaviour {spec:?}: {message}")]
pub struct BehaviourError {
    /// The text that was given.
    pub spec: String,
    /// What is wrong with it.
    pub message: String,
}

impl FakeBehaviour {
    /// The behaviour a container's configuration asks for: the `FAKE_BEHAVIOUR` variable if
    /// set, else the image when it starts with `fake/`, else [`FakeBehaviour::default`] (so
    /// that ordinary manifests, `nginx:1.27`, simply run).
    pub fn for_container(config: &ContainerConfig) -> Result<Self, BehaviourError> {
        if let Some((_, spec)) = config.env.iter().find(|(name, _)| name == BEHAVIOUR_ENV) {
            return Self::parse(spec);
        }
        if config.image.starts_with("fake/") {
            return Self::parse(&config.image);
        }
        Ok(FakeBehaviour::default())
    }

    /// Parses `fake/<kind>[:<arg>][?<key>=<value>&...]`.
    ///
    /// Kinds: `run` (until stopped), `exit:<code>` (exits with `code`, after `after`, default
    /// 0 s), `crash` (`exit:1`), `complete` (`exit:0`), `fail-start`, `missing` (the image pull
    /// fails). Keys: `after` (run time before exiting), `latency` (start latency),
    /// `ready-after`, `healthy-for` (durations such as `500ms`, `5s`, `2m`), `ignore-term`
    /// (`true`/`false`).
    pub fn parse(spec: &str) -> Result<Self, BehaviourError> {
        let err = |message: String| BehaviourError {
            spec: spec.to_owned(),
            message,
        };
        let body = spec
            .strip_prefix("fake/")
            .ok_or_else(|| err("it must start with \"fake/\"".to_owned()))?;
        let (head, query) = body.split_once('?').unwrap_or((body, ""));
        let (kind, arg) = match head.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (head, None),
        };
        let mut behaviour = FakeBehaviour::default();
        match (kind, arg) {
            ("run", None) => {}
            ("exit", Some(code)) => {
                behaviour.exit_code = code
                    .parse()
                    .map_err(|_| err(format!("exit code {code:?} is not an integer")))?;
                behaviour.run_for = Some(Duration::ZERO);
            }
            ("crash", None) => {
                behaviour.exit_code = 1;
                behaviour.run_for = Some(Duration::ZERO);
            }
            ("complete", None) => behaviour.run_for = Some(Duration::ZERO),
            ("fail-start", None) => {
                behaviour.fail_start = Some(format!(
                    "exec: \"{spec}\": executable file not found in $PATH"
                ));
            }
            ("missing", None) => {
                behaviour.missing_image =
                    Some(format!("pull access denied: image {spec:?} not found"));
            }
            _ => {
                return Err(err(format!(
                    "unknown kind {head:?}; expected run, exit:<code>, crash, complete, fail-start or missing"
                )));
            }
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| err(format!("{pair:?} is not key=value")))?;
            let duration = || parse_duration(value).map_err(|m| err(format!("{key}: {m}")));
            match key {
                "after" => {
                    if behaviour.run_for.is_none() {
                        return Err(err("after= applies to exit, crash and complete".into()));
                    }
                    behaviour.run_for = Some(duration()?);
                }
                "latency" => behaviour.start_latency = duration()?,
                "ready-after" => behaviour.ready_after = duration()?,
                "healthy-for" => behaviour.healthy_for = Some(duration()?),
                "ignore-term" => {
                    behaviour.ignore_term = value
                        .parse()
                        .map_err(|_| err(format!("ignore-term: {value:?} is not true or false")))?;
                }
                _ => {
                    return Err(err(format!(
                        "unknown key {key:?}; expected after, latency, ready-after, healthy-for or ignore-term"
                    )));
                }
            }
        }
        Ok(behaviour)
    }
}

/// Parses `<integer><unit>` with unit `ms`, `s`, `m` or `h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "unknown unit {unit:?} in {text:?}; expected ms, s, m or h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_keys() {
        let b = FakeBehaviour::parse("fake/exit:3?after=5s&latency=100ms").unwrap();
        assert_eq!(b.exit_code, 3);
        assert_eq!(b.run_for, Some(Duration::from_secs(5)));
        assert_eq!(b.start_latency, Duration::from_millis(100));
        let b = FakeBehaviour::parse("fake/run?ignore-term=true&healthy-for=2m&ready-after=3s")
            .unwrap();
        assert!(b.ignore_term);
        assert_eq!(b.healthy_for, Some(Duration::from_secs(120)));
        assert_eq!(b.ready_after, Duration::from_secs(3));
        assert_eq!(b.run_for, None);
        assert_eq!(FakeBehaviour::parse("fake/crash").unwrap().exit_code, 1);
        assert!(
            FakeBehaviour::parse("fake/fail-start")
                .unwrap()
                .fail_start
                .is_some()
        );
        assert!(
            FakeBehaviour::parse("fake/missing")
                .unwrap()
                .missing_image
                .is_some()
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = FakeBehaviour::parse("fake/exit:x").unwrap_err();
        assert!(e.message.contains("not an integer"), "{e}");
        let e = FakeBehaviour::parse("fake/run?after=1s").unwrap_err();
        assert!(e.message.contains("after="), "{e}");
        let e = FakeBehaviour::parse("fake/run?latency=5").unwrap_err();
        assert!(e.message.contains("no unit"), "{e}");
        let e = FakeBehaviour::parse("fake/dance").unwrap_err();
        assert!(e.message.contains("unknown kind"), "{e}");
    }

    #[test]
    fn env_overrides_image_and_plain_images_run() {
        let mut config = ContainerConfig {
            image: "fake/crash".into(),
            ..ContainerConfig::default()
        };
        assert_eq!(FakeBehaviour::for_container(&config).unwrap().exit_code, 1);
        config
            .env
            .push((BEHAVIOUR_ENV.into(), "fake/exit:7".into()));
        assert_eq!(FakeBehaviour::for_container(&config).unwrap().exit_code, 7);
        let nginx = ContainerConfig {
            image: "nginx:1.27".into(),
            ..ContainerConfig::default()
        };
        assert_eq!(
            FakeBehaviour::for_container(&nginx).unwrap(),
            FakeBehaviour::default()
        );
    }
}
