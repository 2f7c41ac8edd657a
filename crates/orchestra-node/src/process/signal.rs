//! Stop signals by name (`TERM`, `SIGTERM`, `15`), as Kubernetes' `stopSignal` gives them.

use rustix::process::Signal;

use crate::runtime::RuntimeError;

/// Parses a signal name or number.
pub fn parse_signal(name: &str) -> Result<Signal, RuntimeError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let signal = match bare {
        "TERM" => Some(Signal::TERM),
        "KILL" => Some(Signal::KILL),
        "INT" => Some(Signal::INT),
        "QUIT" => Some(Signal::QUIT),
        "HUP" => Some(Signal::HUP),
        "USR1" => Some(Signal::USR1),
        "USR2" => Some(Signal::USR2),
        "WINCH" => Some(Signal::WINCH),
        number => number.parse::<i32>().ok().and_then(Signal::from_named_raw),
    };
    signal.ok_or_else(|| RuntimeError::InvalidConfig {
        what: "stopSignal".into(),
        message: format!("{name:?} is not a signal name (TERM, INT, QUIT, HUP, USR1...) or number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse_signal("TERM").expect("TERM"), Signal::TERM);
        assert_eq!(parse_signal("sigint").expect("sigint"), Signal::INT);
        assert_eq!(parse_signal("9").expect("9"), Signal::KILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
