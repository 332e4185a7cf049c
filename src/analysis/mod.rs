//! Analysis, the paper's MAPE-K loop on top of healing: what users feel of each container
//! (monitor), whether it misbehaves (detect), why (identify), and what to do (recover).
//!
//! - [`signals`]: one period's response time, workload and resources of a container, computed
//!   from two readings of its counters (pure), and how much of it a published record shows.
//! - [`series`]: the bounded per-container history the manager keeps and REST serves.
//! - [`anomaly`]: anomaly records, a manager's bounded book of them, and the controller's
//!   refinement across hosts (`neighbour`, `cluster`).
//! - [`deps`]: who depends on whom, from labels (`hms.depends_on`, Compose's `depends_on`).
//! - [`detect`]: whether a container misbehaves — method `seed` (the paper's Spearman
//!   dissociation) and method `hms` (a workload-conditioned robust baseline, k of n).
//! - [`identify`]: method `hms`'s level of an anomaly from ordered evidence (the decision table).
//! - [`stats`]: Spearman's rank correlation with ties, median/MAD, Wilson intervals.
//! - [`hmm`]: a discrete HMM — scaled forward–backward, Viterbi, Baum-Welch.

pub mod anomaly;
pub mod deps;
pub mod detect;
pub mod engine;
pub mod hhmm;
pub mod hmm;
pub mod identify;
pub mod score;
pub mod series;
pub mod signals;
pub mod stats;

use serde::{Deserialize, Serialize};

/// The root-cause level of a fault, as the analysis names it: `container` (it overloads itself),
/// `sibling` (another container of its host takes the resources), `neighbour` (a container it
/// depends on, on another host), `node` (its host), `cluster` (every host), `load` (more users:
/// not a fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Container,
    Sibling,
    Neighbour,
    Node,
    Cluster,
    Load,
}

impl Level {
    pub const ALL: [Level; 6] =
        [Level::Container, Level::Sibling, Level::Neighbour, Level::Node, Level::Cluster, Level::Load];

    /// The contract's name (as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Level::Container => "container",
            Level::Sibling => "sibling",
            Level::Neighbour => "neighbour",
            Level::Node => "node",
            Level::Cluster => "cluster",
            Level::Load => "load",
        }
    }
}

/// Who caused a fault: a host, and a container of it (`None`: the host itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Culprit {
    pub host: String,
    pub container: Option<String>,
}
