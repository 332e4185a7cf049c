//! Method `seed`'s identification: the paper's hierarchical HMM over cluster → node → container
//! (section VII-B-b), flattened into one 3-state chain per component of the hierarchy.
//!
//! Every component — each container, each host (node) and the cluster — has hidden load states
//! underload, normal and overload ([`UL`], [`NL`], [`OL`]) and emits one symbol a period: its
//! response time over its own fault-free reference, binned ([`symbol`]). A node's response is
//! the median ratio of its containers, the cluster's the median of its nodes'; a container's
//! workload has a chain of its own, which is how the hierarchy tells more users from a fault.
//! Each chain starts from a prior in which overload emits high ratios, is trained by Baum-Welch
//! on its fault-free history (the periods while nothing was open: they teach the normal state's
//! emissions and the transitions; underload and overload keep the prior's emissions, which
//! fault-free data cannot show) and decoded by Viterbi over the last window. The hierarchy is then read top-down as the paper's decoding returns control
//! from the cluster down: the highest overloaded level names the cause.
//!
//! Flattening: the paper's HHMM activates a node's children from the node; the product chain
//! that is equivalent to it has 3^(components) states, which no host could decode every period.
//! Independent chains read top-down keep the part that decides the level — which components are
//! in overload now — and drop the vertical transition probabilities, which the paper does not
//! publish either.

use std::collections::VecDeque;

use super::hmm::Hmm;
use super::stats;

/// Hidden states.
pub const UL: usize = 0;
pub const NL: usize = 1;
pub const OL: usize = 2;
/// Symbols: the ratio to the reference in five bins.
pub const SYMBOLS: usize = 5;
/// Upper bounds of the first four bins (the fifth is everything above).
const BINS: [f64; 4] = [0.8, 1.25, 2.0, 4.0];
/// Fault-free symbols kept for training, and the fewest that train.
const HISTORY: usize = 600;
const MIN_TRAIN: usize = 30;
/// New fault-free symbols between two trainings.
const RETRAIN: usize = 120;
/// Baum-Welch steps at most, and the gain under which it stops.
const TRAIN_STEPS: usize = 20;
const TRAIN_TOL: f64 = 1e-4;
/// Every probability stays at least this after training (a symbol never seen stays possible).
const FLOOR: f64 = 1e-3;

/// The bin of a ratio to the reference (`NaN` counts as normal).
pub fn symbol(ratio: f64) -> usize {
    if ratio.is_nan() {
        return 1;
    }
    BINS.iter().position(|b| ratio < *b).unwrap_or(BINS.len())
}

/// The untrained chain: sticky states; underload emits low ratios, normal ratios near 1,
/// overload ratios of ×2 and more.
pub fn prior() -> Hmm {
    let trans = vec![vec![0.90, 0.08, 0.02], vec![0.05, 0.90, 0.05], vec![0.02, 0.08, 0.90]];
    let emit = vec![
        vec![0.60, 0.30, 0.05, 0.03, 0.02],
        vec![0.10, 0.75, 0.10, 0.03, 0.02],
        vec![0.02, 0.05, 0.23, 0.35, 0.35],
    ];
    Hmm::new(vec![0.1, 0.8, 0.1], trans, emit).unwrap_or_else(|_| unreachable!("the prior is a valid model"))
}

/// One component's chain: its reference, its fault-free history, its recent symbols, its model.
#[derive(Debug, Clone)]
pub struct Chain {
    window: usize,
    first: Vec<f64>,
    reference: Option<f64>,
    history: VecDeque<usize>,
    recent: VecDeque<usize>,
    model: Hmm,
    since_training: usize,
}

impl Chain {
    /// A chain decoding the last `window` periods; its reference is the median of its first
    /// `window` values.
    pub fn new(window: usize) -> Self {
        let window = window.max(3);
        Self {
            window,
            first: Vec::with_capacity(window),
            reference: None,
            history: VecDeque::new(),
            recent: VecDeque::with_capacity(window),
            model: prior(),
            since_training: 0,
        }
    }

    /// The reference, once set.
    pub fn reference(&self) -> Option<f64> {
        self.reference
    }

    /// Notes one period's value; `normal`: nothing is open, so it may train the model.
    pub fn push(&mut self, value: f64, normal: bool) {
        if !value.is_finite() {
            return;
        }
        let Some(reference) = self.reference else {
            self.first.push(value);
            if self.first.len() >= self.window {
                self.reference = stats::median(&self.first).filter(|r| *r > 0.0);
                self.first.clear();
            }
            return;
        };
        let s = symbol(value / reference);
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(s);
        if normal {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(s);
            self.since_training += 1;
        }
    }

    /// Trains on the fault-free history when enough is new (Baum-Welch from the prior).
    fn train(&mut self) {
        if self.history.len() < MIN_TRAIN || (self.since_training < RETRAIN && self.since_training < self.history.len())
        {
            return;
        }
        let seq: Vec<usize> = self.history.iter().copied().collect();
        let prior = prior();
        if let Ok((mut trained, _)) = prior.train(&[seq], TRAIN_STEPS, TRAIN_TOL) {
            // fault-free history shows what normal looks like and how long states last, not what
            // overload or underload emit: those keep the prior's emissions
            trained.emit[UL] = prior.emit[UL].clone();
            trained.emit[OL] = prior.emit[OL].clone();
            self.model = trained.floored(FLOOR);
        }
        self.since_training = 0;
    }

    /// The decoded state of the last period (Viterbi over the window); `None` before the
    /// reference is set.
    pub fn state(&mut self) -> Option<usize> {
        if self.recent.is_empty() {
            return None;
        }
        self.train();
        let obs: Vec<usize> = self.recent.iter().copied().collect();
        self.model.viterbi(&obs).ok().and_then(|(path, _)| path.last().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_bin_into_five_symbols() {
        assert_eq!(symbol(0.5), 0);
        assert_eq!(symbol(1.0), 1);
        assert_eq!(symbol(1.5), 2);
        assert_eq!(symbol(3.0), 3);
        assert_eq!(symbol(9.0), 4);
        assert_eq!(symbol(f64::NAN), 1);
    }

    #[test]
    fn a_chain_reads_normal_then_overload_after_training_on_normal() {
        let mut c = Chain::new(10);
        assert_eq!(c.state(), None);
        for i in 0..200 {
            c.push(10.0 + (i % 3) as f64, true);
        }
        assert_eq!(c.reference(), Some(11.0));
        assert_eq!(c.state(), Some(NL));
        for _ in 0..6 {
            c.push(40.0, false);
        }
        assert_eq!(c.state(), Some(OL), "six periods at ×3.6 are overload");
        for _ in 0..10 {
            c.push(4.0, false);
        }
        assert_eq!(c.state(), Some(UL));
    }

    #[test]
    fn a_single_spike_is_not_overload() {
        let mut c = Chain::new(10);
        for _ in 0..100 {
            c.push(10.0, true);
        }
        c.push(50.0, false);
        c.push(10.0, false);
        assert_eq!(c.state(), Some(NL));
    }
}
