//! Analysis, the paper's MAPE-K loop on top of healing: what users feel of each container
//! (monitor), whether it misbehaves (detect), why (identify), and what to do (recover).
//!
//! - [`signals`]: one period's response time, workload and resources of a container, computed
//!   from two readings of its counters (pure), and how much of it a published record shows.
//! - [`series`]: the bounded per-container history the manager keeps and REST serves.

pub mod series;
pub mod signals;
