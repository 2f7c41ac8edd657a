//! The pod state machine (filled in below) and the clock it runs on.
//!
//! # Layout
//! - [`clock`]: wall-clock time that moves with tokio's (paused) clock.

pub mod clock;
