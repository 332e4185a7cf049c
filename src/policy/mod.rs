//! Pure decisions shared by both sides of the wire: no I/O, no clock reads (time is passed in).
//!
//! - [`restart`]: the restart policy (back-off, intensity, quarantine) over a container's history;
//! - [`health`]: what a container needs, from its state, health and probe windows;
//! - [`backoff`]: the one validated exponential back-off every retry uses;
//! - [`aggregation`]: the controller's aggregation window bookkeeping.
//!
//! Each side's own state machine lives beside its actor (`actors::host::state`,
//! `actors::controller::fleet_view`) and calls into these.

pub mod aggregation;
pub mod backoff;
pub mod health;
pub mod restart;

pub use backoff::{Backoff, BackoffError};
pub use restart::{Decision, PolicyError, PolicyParams, RestartPolicy, RestartTracker};
