//! A discrete hidden Markov model with the three algorithms the paper's identification needs:
//! the forward–backward pass (scaled: each step's probabilities are normalised and the scale
//! factors kept, so long sequences neither underflow nor lose precision), Viterbi decoding (in
//! log space) and Baum-Welch re-estimation over several sequences. No maintained crate does
//! this; it is small enough to write and test against hand-computed models.
//!
//! The paper's hierarchical HMM (cluster → node → container, hidden load states) is used
//! flattened: one such chain per component, decoded level by level (`analysis::seed`).
#![allow(clippy::needless_range_loop, reason = "the loops follow the formulas' indices over several matrices at once")]

/// A model of `n` hidden states emitting one of `m` symbols.
#[derive(Debug, Clone, PartialEq)]
pub struct Hmm {
    /// Start probabilities, `n`.
    pub start: Vec<f64>,
    /// `trans[i][j]`: from state `i` to `j`, each row summing to 1.
    pub trans: Vec<Vec<f64>>,
    /// `emit[i][k]`: state `i` emits symbol `k`, each row summing to 1.
    pub emit: Vec<Vec<f64>>,
}

/// Why a model or a sequence was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HmmError {
    #[error("a model needs at least one state and one symbol, with rows of matching sizes")]
    Shape,
    #[error("{0} is not a probability distribution (each entry in 0..=1, summing to 1)")]
    NotStochastic(&'static str),
    #[error("symbol {0} is outside the model's alphabet")]
    Symbol(usize),
    #[error("the sequence is impossible under the model")]
    Impossible,
    #[error("no sequence to train on")]
    Empty,
}

/// The scaled forward–backward pass of one sequence.
#[derive(Debug, Clone)]
pub struct Pass {
    /// `alpha[t][i]`, normalised so that each step sums to 1.
    pub alpha: Vec<Vec<f64>>,
    /// `beta[t][i]`, scaled by the same factors.
    pub beta: Vec<Vec<f64>>,
    /// `scale[t]` = P(o_t | o_1..o_{t−1}); their product is the sequence's likelihood.
    pub scale: Vec<f64>,
}

impl Pass {
    /// ln P(observations | model).
    pub fn log_likelihood(&self) -> f64 {
        self.scale.iter().map(|c| c.ln()).sum()
    }

    /// γ_t(i): the probability of being in state `i` at `t` given the whole sequence.
    pub fn gamma(&self, t: usize) -> Vec<f64> {
        self.alpha[t].iter().zip(&self.beta[t]).map(|(a, b)| a * b).collect()
    }
}

fn stochastic(row: &[f64]) -> bool {
    row.iter().all(|p| (0.0..=1.0).contains(p)) && (row.iter().sum::<f64>() - 1.0).abs() < 1e-6
}

impl Hmm {
    /// A model, checked: rows of the right sizes, each a distribution.
    pub fn new(start: Vec<f64>, trans: Vec<Vec<f64>>, emit: Vec<Vec<f64>>) -> Result<Self, HmmError> {
        let n = start.len();
        let m = emit.first().map_or(0, Vec::len);
        if n == 0 || m == 0 || trans.len() != n || emit.len() != n {
            return Err(HmmError::Shape);
        }
        if trans.iter().any(|r| r.len() != n) || emit.iter().any(|r| r.len() != m) {
            return Err(HmmError::Shape);
        }
        if !stochastic(&start) {
            return Err(HmmError::NotStochastic("start"));
        }
        if !trans.iter().all(|r| stochastic(r)) {
            return Err(HmmError::NotStochastic("a transition row"));
        }
        if !emit.iter().all(|r| stochastic(r)) {
            return Err(HmmError::NotStochastic("an emission row"));
        }
        Ok(Self { start, trans, emit })
    }

    pub fn states(&self) -> usize {
        self.start.len()
    }

    pub fn symbols(&self) -> usize {
        self.emit[0].len()
    }

    fn check(&self, obs: &[usize]) -> Result<(), HmmError> {
        match obs.iter().find(|&&o| o >= self.symbols()) {
            Some(&o) => Err(HmmError::Symbol(o)),
            None if obs.is_empty() => Err(HmmError::Empty),
            None => Ok(()),
        }
    }

    /// The scaled forward and backward variables of `obs`.
    pub fn forward_backward(&self, obs: &[usize]) -> Result<Pass, HmmError> {
        self.check(obs)?;
        let (n, t_len) = (self.states(), obs.len());
        let mut alpha = vec![vec![0.0; n]; t_len];
        let mut scale = vec![0.0; t_len];
        for t in 0..t_len {
            for j in 0..n {
                let into =
                    if t == 0 { self.start[j] } else { (0..n).map(|i| alpha[t - 1][i] * self.trans[i][j]).sum() };
                alpha[t][j] = into * self.emit[j][obs[t]];
            }
            let c: f64 = alpha[t].iter().sum();
            if c <= 0.0 || !c.is_finite() {
                return Err(HmmError::Impossible);
            }
            alpha[t].iter_mut().for_each(|a| *a /= c);
            scale[t] = c;
        }
        let mut beta = vec![vec![1.0; n]; t_len];
        for t in (0..t_len - 1).rev() {
            for i in 0..n {
                let s: f64 = (0..n).map(|j| self.trans[i][j] * self.emit[j][obs[t + 1]] * beta[t + 1][j]).sum();
                beta[t][i] = s / scale[t + 1];
            }
        }
        Ok(Pass { alpha, beta, scale })
    }

    /// ln P(obs | model).
    pub fn log_likelihood(&self, obs: &[usize]) -> Result<f64, HmmError> {
        Ok(self.forward_backward(obs)?.log_likelihood())
    }

    /// The most probable state path of `obs` and its log probability (log space throughout; ties
    /// go to the lower state index).
    pub fn viterbi(&self, obs: &[usize]) -> Result<(Vec<usize>, f64), HmmError> {
        self.check(obs)?;
        let n = self.states();
        let ln = |p: f64| if p > 0.0 { p.ln() } else { f64::NEG_INFINITY };
        let mut delta: Vec<f64> = (0..n).map(|i| ln(self.start[i]) + ln(self.emit[i][obs[0]])).collect();
        let mut back: Vec<Vec<usize>> = Vec::with_capacity(obs.len());
        for &o in &obs[1..] {
            let mut next = vec![f64::NEG_INFINITY; n];
            let mut from = vec![0; n];
            for j in 0..n {
                for i in 0..n {
                    let v = delta[i] + ln(self.trans[i][j]);
                    if v > next[j] {
                        next[j] = v;
                        from[j] = i;
                    }
                }
                next[j] += ln(self.emit[j][o]);
            }
            back.push(from);
            delta = next;
        }
        let (mut last, best) = delta
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) });
        if best == f64::NEG_INFINITY {
            return Err(HmmError::Impossible);
        }
        let mut path = vec![last];
        for from in back.iter().rev() {
            last = from[last];
            path.push(last);
        }
        path.reverse();
        Ok((path, best))
    }

    /// One Baum-Welch re-estimation over `sequences`: the new model and the total log likelihood
    /// of the sequences under the *old* one. A state or symbol never seen keeps its old row (so a
    /// step never divides by zero); otherwise this is plain EM, which never lowers the likelihood.
    pub fn baum_welch_step(&self, sequences: &[Vec<usize>]) -> Result<(Hmm, f64), HmmError> {
        let (n, m) = (self.states(), self.symbols());
        let mut start = vec![0.0; n];
        let mut trans_num = vec![vec![0.0; n]; n];
        let mut trans_den = vec![0.0; n];
        let mut emit_num = vec![vec![0.0; m]; n];
        let mut emit_den = vec![0.0; n];
        let mut total = 0.0;
        let mut used = 0;
        for obs in sequences.iter().filter(|s| !s.is_empty()) {
            let pass = self.forward_backward(obs)?;
            total += pass.log_likelihood();
            used += 1;
            for t in 0..obs.len() {
                let g = pass.gamma(t);
                for i in 0..n {
                    if t == 0 {
                        start[i] += g[i];
                    }
                    emit_num[i][obs[t]] += g[i];
                    emit_den[i] += g[i];
                    if t + 1 < obs.len() {
                        trans_den[i] += g[i];
                        for j in 0..n {
                            trans_num[i][j] +=
                                pass.alpha[t][i] * self.trans[i][j] * self.emit[j][obs[t + 1]] * pass.beta[t + 1][j]
                                    / pass.scale[t + 1];
                        }
                    }
                }
            }
        }
        if used == 0 {
            return Err(HmmError::Empty);
        }
        let start: Vec<f64> = start.iter().map(|s| s / used as f64).collect();
        let row = |num: &[f64], den: f64, old: &[f64]| -> Vec<f64> {
            if den > 1e-300 {
                let r: Vec<f64> = num.iter().map(|x| x / den).collect();
                let s: f64 = r.iter().sum();
                r.iter().map(|x| x / s).collect()
            } else {
                old.to_vec()
            }
        };
        let trans = (0..n).map(|i| row(&trans_num[i], trans_den[i], &self.trans[i])).collect();
        let emit = (0..n).map(|i| row(&emit_num[i], emit_den[i], &self.emit[i])).collect();
        Ok((Hmm { start, trans, emit }, total))
    }

    /// Baum-Welch until the log likelihood gains less than `tol` or after `max_iter` steps; the
    /// trained model and the log likelihood before each step (non-decreasing).
    pub fn train(&self, sequences: &[Vec<usize>], max_iter: usize, tol: f64) -> Result<(Hmm, Vec<f64>), HmmError> {
        let mut model = self.clone();
        let mut history = Vec::new();
        for _ in 0..max_iter {
            let (next, ll) = model.baum_welch_step(sequences)?;
            let converged = history.last().is_some_and(|prev: &f64| ll - prev < tol);
            history.push(ll);
            model = next;
            if converged {
                break;
            }
        }
        Ok((model, history))
    }

    /// The model with every probability at least `floor` (rows renormalised): after training on
    /// fault-free history, a symbol never seen there must stay possible, not make a sequence
    /// impossible.
    pub fn floored(&self, floor: f64) -> Hmm {
        let fix = |r: &Vec<f64>| {
            let r: Vec<f64> = r.iter().map(|p| p.max(floor)).collect();
            let s: f64 = r.iter().sum();
            r.iter().map(|p| p / s).collect::<Vec<f64>>()
        };
        Hmm {
            start: fix(&self.start),
            trans: self.trans.iter().map(fix).collect(),
            emit: self.emit.iter().map(fix).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook healthy/fever model: states H, F; symbols normal, cold, dizzy.
    fn fever() -> Hmm {
        Hmm::new(vec![0.6, 0.4], vec![vec![0.7, 0.3], vec![0.4, 0.6]], vec![vec![0.5, 0.4, 0.1], vec![0.1, 0.3, 0.6]])
            .unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn forward_and_backward_match_the_hand_computation() {
        // by hand, unscaled: α1 = (0.3, 0.04); α2 = (0.0904, 0.0342); α3 = (0.007696, 0.028584);
        // P = 0.03628; β2 = (0.25, 0.40); β1 = (0.106, 0.112); Σ π·b·β1 = 0.03628 too
        let pass = fever().forward_backward(&[0, 1, 2]).unwrap();
        assert!(close(pass.log_likelihood().exp(), 0.03628));
        let unscale = |t: usize| -> Vec<f64> {
            let c: f64 = pass.scale[..=t].iter().product();
            pass.alpha[t].iter().map(|a| a * c).collect()
        };
        let want = [[0.3, 0.04], [0.0904, 0.0342], [0.007696, 0.028584]];
        for (t, w) in want.iter().enumerate() {
            let got = unscale(t);
            assert!(close(got[0], w[0]) && close(got[1], w[1]), "α{} = {got:?}", t + 1);
        }
        let beta = |t: usize| -> Vec<f64> {
            let c: f64 = pass.scale[t + 1..].iter().product();
            pass.beta[t].iter().map(|b| b * c).collect()
        };
        let (b1, b2) = (beta(0), beta(1));
        assert!(close(b1[0], 0.106) && close(b1[1], 0.112), "β1 = {b1:?}");
        assert!(close(b2[0], 0.25) && close(b2[1], 0.40), "β2 = {b2:?}");
        for t in 0..3 {
            assert!(close(pass.gamma(t).iter().sum::<f64>(), 1.0), "γ{t} sums to 1");
        }
    }

    #[test]
    fn viterbi_matches_the_hand_computation() {
        // by hand: H, H, F with probability 0.3 · 0.7·0.4 · 0.3·0.6 = 0.01512
        let (path, lp) = fever().viterbi(&[0, 1, 2]).unwrap();
        assert_eq!(path, [0, 0, 1]);
        assert!(close(lp.exp(), 0.01512), "{}", lp.exp());
    }

    #[test]
    fn long_sequences_do_not_underflow() {
        let obs: Vec<usize> = (0..20_000).map(|t| (t * 7 + t / 3) % 3).collect();
        let ll = fever().log_likelihood(&obs).unwrap();
        assert!(ll.is_finite() && ll < -10_000.0, "{ll}");
        let (path, lp) = fever().viterbi(&obs).unwrap();
        assert_eq!(path.len(), obs.len());
        assert!(lp.is_finite() && lp <= ll);
    }

    #[test]
    fn bad_models_and_symbols_are_refused() {
        assert_eq!(Hmm::new(vec![], vec![], vec![]), Err(HmmError::Shape));
        assert_eq!(
            Hmm::new(vec![0.5, 0.6], vec![vec![1.0, 0.0]; 2], vec![vec![1.0]; 2]),
            Err(HmmError::NotStochastic("start"))
        );
        assert_eq!(fever().log_likelihood(&[0, 3]), Err(HmmError::Symbol(3)));
        assert_eq!(fever().viterbi(&[]), Err(HmmError::Empty));
        let never = Hmm::new(vec![1.0], vec![vec![1.0]], vec![vec![1.0, 0.0]]).unwrap();
        assert_eq!(never.log_likelihood(&[1]), Err(HmmError::Impossible));
        assert!(never.floored(1e-6).log_likelihood(&[1]).is_ok(), "a floored model keeps every symbol possible");
    }

    #[test]
    fn training_recovers_a_clearly_separated_model() {
        // two sticky states, each emitting mostly its own symbol: a long sample from it trains
        // a start from a vague guess to emissions close to the truth
        let truth =
            Hmm::new(vec![0.5, 0.5], vec![vec![0.95, 0.05], vec![0.05, 0.95]], vec![vec![0.9, 0.1], vec![0.1, 0.9]])
                .unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut draw = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut state, mut obs) = (0usize, Vec::new());
        for _ in 0..4000 {
            obs.push(if draw() < truth.emit[state][0] { 0 } else { 1 });
            state = if draw() < truth.trans[state][0] { 0 } else { 1 };
        }
        let guess =
            Hmm::new(vec![0.5, 0.5], vec![vec![0.6, 0.4], vec![0.4, 0.6]], vec![vec![0.6, 0.4], vec![0.4, 0.6]])
                .unwrap();
        let (model, history) = guess.train(&[obs], 200, 1e-9).unwrap();
        assert!(history.windows(2).all(|w| w[1] >= w[0] - 1e-9), "{history:?}");
        assert!((model.emit[0][0] - 0.9).abs() < 0.05 && (model.emit[1][1] - 0.9).abs() < 0.05, "{model:?}");
        assert!(model.trans[0][0] > 0.85 && model.trans[1][1] > 0.85, "{model:?}");
    }

    fn row(len: usize) -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(0.05..1.0f64, len).prop_map(|r| {
            let s: f64 = r.iter().sum();
            r.iter().map(|x| x / s).collect()
        })
    }

    fn model(n: usize, m: usize) -> impl Strategy<Value = Hmm> {
        (row(n), proptest::collection::vec(row(n), n), proptest::collection::vec(row(m), n))
            .prop_map(|(start, trans, emit)| Hmm::new(start, trans, emit).unwrap())
    }

    proptest! {
        #[test]
        fn baum_welch_never_lowers_the_likelihood(
            m in (2usize..4).prop_flat_map(|n| model(n, 3)),
            seqs in proptest::collection::vec(proptest::collection::vec(0usize..3, 1..30), 1..4),
        ) {
            let mut current = m;
            let mut last = f64::NEG_INFINITY;
            for _ in 0..8 {
                let (next, ll) = current.baum_welch_step(&seqs).unwrap();
                prop_assert!(ll >= last - 1e-9, "{ll} after {last}");
                last = ll;
                current = next;
            }
            let ll = current.log_likelihood(&seqs[0]);
            prop_assert!(ll.is_ok());
        }

        #[test]
        fn viterbi_is_never_more_likely_than_the_sequence(
            m in model(3, 4),
            obs in proptest::collection::vec(0usize..4, 1..40),
        ) {
            let (path, lp) = m.viterbi(&obs).unwrap();
            prop_assert_eq!(path.len(), obs.len());
            prop_assert!(lp <= m.log_likelihood(&obs).unwrap() + 1e-9);
        }
    }
}
