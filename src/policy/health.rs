//! Health verdicts: what a container needs, from what Docker and the probes report. Pure.

use crate::model::{DockerState, Health};

/// Why a container needs healing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Exited, dead or never started.
    Down,
    /// Docker's health check says `unhealthy`.
    Unhealthy,
    /// Loss above threshold in `confirm` consecutive windows; carries the last loss.
    PacketLoss(f64),
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Unhealthy => "unhealthy",
            Self::PacketLoss(_) => "packet_loss",
        }
    }
}

/// What a container needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Need {
    Nothing,
    /// Start a stopped container.
    Start(Reason),
    /// Restart a running container.
    Restart(Reason),
}

/// Whether one window's loss breaks the threshold: strictly above it.
pub fn over_threshold(loss: f64, threshold: u8) -> bool {
    loss > f64::from(threshold)
}

/// The number of consecutive windows over threshold after a new window.
pub fn next_streak(streak: u32, loss: f64, threshold: u8) -> u32 {
    if over_threshold(loss, threshold) { streak.saturating_add(1) } else { 0 }
}

/// Decides what a container needs. `streak` counts consecutive windows over threshold.
pub fn verdict(state: DockerState, health: Health, streak: u32, confirm: u32, last_loss: f64) -> Need {
    if state.is_down() {
        return Need::Start(Reason::Down);
    }
    if state != DockerState::Running {
        return Need::Nothing;
    }
    if health == Health::Unhealthy {
        return Need::Restart(Reason::Unhealthy);
    }
    if streak >= confirm.max(1) {
        return Need::Restart(Reason::PacketLoss(last_loss));
    }
    Need::Nothing
}

/// Smallest change of the measured loss, in points, that the published record follows.
pub const LOSS_DEADBAND: f64 = 10.0;

/// The loss the published record shows after a window measured `measured`: the new value when it
/// moved at least [`LOSS_DEADBAND`] points from what is `shown`, crossed the threshold either way,
/// or came back to a clean link (0 %); otherwise what is shown stays. Under a steady 80 % loss a
/// 20-echo window measures 65–95 % from one second to the next: publishing each of those would
/// keep the controller's view permanently pending and cost bandwidth without telling anyone more.
pub fn published_loss(shown: Option<f64>, measured: f64, threshold: u8) -> f64 {
    let Some(shown) = shown else { return measured };
    let crossed = over_threshold(shown, threshold) != over_threshold(measured, threshold);
    let clean_again = measured == 0.0 && shown != 0.0;
    if crossed || clean_again || (measured - shown).abs() >= LOSS_DEADBAND { measured } else { shown }
}

/// Fewest probed containers for [`loss_is_host_wide`] to judge: on a small host a few lossy
/// containers can be a real, shared fault (one attack on several of them).
pub const HOST_WIDE_MIN: usize = 20;

/// Loss over the threshold on more than half of a host's probed containers at once is the
/// prober's or the host's (an overloaded node, a full neighbour table), not theirs: restarting
/// them all would cure nothing and bury the engine (a 1,000-container run lost its Docker daemon
/// to 1,000 restarts at once). Loss restarts wait until the loss is local again.
pub fn loss_is_host_wide(lossy: usize, probed: usize) -> bool {
    probed >= HOST_WIDE_MIN && lossy * 2 > probed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn loss_at_threshold_exactly_is_not_over() {
        assert!(!over_threshold(30.0, 30));
        assert!(over_threshold(30.1, 30));
        assert_eq!(next_streak(3, 30.0, 30), 0);
    }

    #[test]
    fn stopped_container_is_started() {
        for s in [DockerState::Exited, DockerState::Dead, DockerState::Created] {
            assert_eq!(verdict(s, Health::None, 0, 2, 0.0), Need::Start(Reason::Down));
        }
    }

    #[test]
    fn paused_or_restarting_container_is_left_alone() {
        for s in [DockerState::Paused, DockerState::Restarting, DockerState::Removing] {
            assert_eq!(verdict(s, Health::Unhealthy, 9, 2, 100.0), Need::Nothing);
        }
    }

    #[test]
    fn unhealthy_running_container_is_restarted() {
        let v = verdict(DockerState::Running, Health::Unhealthy, 0, 2, 0.0);
        assert_eq!(v, Need::Restart(Reason::Unhealthy));
    }

    #[test]
    fn loss_needs_confirm_consecutive_windows() {
        let run = DockerState::Running;
        assert_eq!(verdict(run, Health::Healthy, 1, 2, 60.0), Need::Nothing);
        assert_eq!(verdict(run, Health::Healthy, 2, 2, 60.0), Need::Restart(Reason::PacketLoss(60.0)));
        assert_eq!(verdict(run, Health::None, 1, 1, 60.0), Need::Restart(Reason::PacketLoss(60.0)));
    }

    #[test]
    fn the_published_loss_follows_big_moves_crossings_and_a_clean_link() {
        assert_eq!(published_loss(None, 85.0, 30), 85.0);
        assert_eq!(published_loss(Some(80.0), 85.0, 30), 80.0, "inside the deadband");
        assert_eq!(published_loss(Some(80.0), 70.0, 30), 70.0, "10 points");
        assert_eq!(published_loss(Some(25.0), 35.0, 30), 35.0, "crossed upwards");
        assert_eq!(published_loss(Some(35.0), 30.0, 30), 30.0, "at the threshold is not over it");
        assert_eq!(published_loss(Some(5.0), 0.0, 30), 0.0, "clean again");
        assert_eq!(published_loss(Some(0.0), 5.0, 30), 0.0);
    }

    proptest! {
        /// What is shown is never on the other side of the threshold from the last measurement,
        /// and never further from it than the deadband.
        #[test]
        fn the_published_loss_stays_close_and_on_the_right_side(
            shown in proptest::option::of(0.0f64..=100.0),
            measured in 0.0f64..=100.0,
            threshold in 0u8..=100,
        ) {
            let p = published_loss(shown, measured, threshold);
            prop_assert_eq!(over_threshold(p, threshold), over_threshold(measured, threshold));
            prop_assert!((p - measured).abs() < LOSS_DEADBAND);
        }

        #[test]
        fn loss_at_or_below_threshold_never_restarts(
            losses in proptest::collection::vec(0u8..=100, 1..200), threshold in 0u8..=100, confirm in 1u32..4,
        ) {
            let mut streak = 0;
            for loss in losses.into_iter().map(|l| f64::from(l.min(threshold))) {
                streak = next_streak(streak, loss, threshold);
                prop_assert_eq!(verdict(DockerState::Running, Health::None, streak, confirm, loss), Need::Nothing);
            }
        }
    }

    #[test]
    fn loss_on_most_of_a_large_host_is_the_hosts() {
        assert!(loss_is_host_wide(11, 20));
        assert!(!loss_is_host_wide(10, 20), "half is not most");
        assert!(!loss_is_host_wide(19, 19), "too few containers to tell");
        assert!(!loss_is_host_wide(0, 0));
        assert!(loss_is_host_wide(1000, 1000));
    }
}
