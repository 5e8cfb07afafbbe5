//! Two setups measured in alternating rounds, compared by their medians. One run of each
//! is decided by this machine's drift (±15% between minutes, disk and CPU alike); rounds
//! that alternate put the drift on both sides, and the median drops the odd round out.

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

    /// The second setup's median as a share of the first's.
    pub fn ratio(&self) -> f64 {
        Self::median(&self.second) / Self::median(&self.first).max(f64::MIN_POSITIVE)
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
    fn the_ratio_is_of_the_medians_so_one_odd_round_does_not_decide_it() {
        let rates = Alternating {
            first: vec![1000.0, 400.0, 1010.0],
            second: vec![990.0, 1020.0, 2000.0],
        };
        assert_eq!(Alternating::median(&rates.first), 1000.0);
        assert_eq!(Alternating::median(&rates.second), 1020.0);
        assert!((rates.ratio() - 1.02).abs() < 1e-9);
        assert_eq!(Alternating::list(&rates.first), "1000, 400, 1010");
    }
}
