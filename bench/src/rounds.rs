//! Two setups measured in alternating rounds, compared by the median of each round's
//! ratio. One run of each is decided by this machine's drift (±15% between minutes, disk
//! and CPU alike); within a round the drift falls on both sides alike, and the median
//! drops the odd round out.

/// Rates (messages per second) of each round of the two setups.
#[derive(Debug, Clone, Default)]
pub struct Alternating {
    /// The setup measured first in every round (the baseline).
    pub first: Vec<f64>,
    /// The setup measured second (compared with the baseline).
    pub second: Vec<f64>,
}

impl Alternating {
    /// Runs `rounds` rounds of `first` then `second`.
    pub fn measure(
        rounds: usize,
        mut first: impl FnMut() -> anyhow::Result<f64>,
        mut second: impl FnMut() -> anyhow::Result<f64>,
    ) -> anyhow::Result<Alternating> {
        let mut rates = Alternating::default();
        for round in 1..=rounds {
            rates.first.push(first()?);
            rates.second.push(second()?);
            eprintln!(
                "  round {round}: {:.0} then {:.0} msgs/s",
                rates.first[round - 1],
                rates.second[round - 1]
            );
        }
        Ok(rates)
    }

    /// The median of `rates` (the upper one of an even count).
    pub fn median(rates: &[f64]) -> f64 {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
    }

    /// The second setup against the first: the median of the rounds' own ratios. The two
    /// runs of a round are a minute apart at most, so a drift that moves both cancels in
    /// their ratio, where the ratio of the two medians can pair a fast minute of one with
    /// a slow minute of the other.
    pub fn ratio(&self) -> f64 {
        let ratios: Vec<f64> = self
            .first
            .iter()
            .zip(&self.second)
            .map(|(first, second)| second / first.max(f64::MIN_POSITIVE))
            .collect();
        Self::median(&ratios)
    }

    /// `rates` for a report, in the order measured.
    pub fn list(rates: &[f64]) -> String {
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::Alternating;

    #[test]
    fn the_ratio_pairs_each_round_so_a_drift_that_moves_both_cancels() {
        // The machine slows by half from the middle of the third round on: the second
        // setup is 10% faster in every round but that one, yet its median is far below.
        let rates = Alternating {
            first: vec![1000.0, 1000.0, 1000.0, 500.0, 500.0],
            second: vec![1100.0, 1100.0, 550.0, 550.0, 550.0],
        };
        assert_eq!(Alternating::median(&rates.first), 1000.0);
        assert_eq!(Alternating::median(&rates.second), 550.0);
        assert!((rates.ratio() - 1.1).abs() < 1e-9);
        assert_eq!(
            Alternating::list(&rates.first),
            "1000, 1000, 1000, 500, 500"
        );
    }

    #[test]
    fn one_odd_round_does_not_decide_the_ratio() {
        let rates = Alternating {
            first: vec![1000.0, 1000.0, 1000.0],
            second: vec![900.0, 1050.0, 1100.0],
        };
        assert!((rates.ratio() - 1.05).abs() < 1e-9);
    }
}
