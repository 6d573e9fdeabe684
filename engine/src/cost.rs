//! The cost model: per-second billing with a minimum charge, prices that change over time,
//! reserved capacity and savings plans that make some usage already paid for, egress between
//! regions and clouds, and a hard budget cap that placement respects.

use serde::{Deserialize, Serialize};

use crate::model::{Catalog, OfferId, Provider, RegionId};
use crate::time::{SimDuration, SimTime};

/// How instances are billed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Billing {
    /// Billing granularity: usage is rounded up to a whole number of these (AWS, GCP, Azure: 1 s).
    pub granularity: SimDuration,
    /// Minimum charge per instance (AWS Linux, GCP: 60 s).
    pub minimum: SimDuration,
}

impl Default for Billing {
    fn default() -> Self {
        Billing { granularity: SimDuration::from_secs(1), minimum: SimDuration::from_secs(60) }
    }
}

impl Billing {
    /// The billed duration for `used` time: rounded up to the granularity, at least the minimum.
    pub fn billed_duration(&self, used: SimDuration) -> SimDuration {
        let g = self.granularity.as_millis().max(1);
        let rounded = used.as_millis().div_ceil(g).saturating_mul(g);
        SimDuration(rounded.max(self.minimum.as_millis()))
    }
}

/// Capacity paid for in advance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Commitment {
    /// `count` instances of one offer, on demand, already paid at `fee_per_h` each whether used or not.
    Reserved {
        /// The offer reserved.
        offer: OfferId,
        /// How many instances.
        count: u32,
        /// What each reservation costs per hour, used or not.
        fee_per_h: f64,
    },
    /// A commitment to spend `committed_per_h` on a provider's on-demand usage at a discount:
    /// usage is covered (marginal cost zero) while the discounted rate of covered instances fits.
    SavingsPlan {
        /// The provider.
        provider: Provider,
        /// The hourly commitment, paid whether used or not.
        committed_per_h: f64,
        /// Discount off on-demand prices for covered usage, 0..1.
        discount: f64,
    },
}

impl Commitment {
    /// The fixed hourly fee of the commitment.
    pub fn fee_per_h(&self) -> f64 {
        match self {
            Commitment::Reserved { count, fee_per_h, .. } => *count as f64 * fee_per_h,
            Commitment::SavingsPlan { committed_per_h, .. } => *committed_per_h,
        }
    }
}

/// Data transfer prices in $/GiB.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressPrices {
    /// Between zones of one region.
    pub inter_zone_per_gib: f64,
    /// Between regions of one provider.
    pub inter_region_per_gib: f64,
    /// Between providers (out to the internet).
    pub inter_cloud_per_gib: f64,
}

impl Default for EgressPrices {
    fn default() -> Self {
        // Typical list prices: AWS 0.01 inter-AZ, 0.02 inter-region, 0.09 out to the internet.
        EgressPrices { inter_zone_per_gib: 0.01, inter_region_per_gib: 0.02, inter_cloud_per_gib: 0.09 }
    }
}

impl EgressPrices {
    /// Price per GiB to move data from `from` to `to`.
    pub fn per_gib(&self, catalog: &Catalog, from: RegionId, to: RegionId, same_zone: bool) -> f64 {
        let (a, b) = (&catalog.regions[from.idx()], &catalog.regions[to.idx()]);
        if a.provider != b.provider {
            self.inter_cloud_per_gib
        } else if from != to {
            self.inter_region_per_gib
        } else if !same_zone {
            self.inter_zone_per_gib
        } else {
            0.0
        }
    }
}

/// Everything about money the engine needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostModel {
    /// Billing rules.
    #[serde(default)]
    pub billing: Billing,
    /// Reservations and savings plans.
    #[serde(default)]
    pub commitments: Vec<Commitment>,
    /// Egress prices.
    #[serde(default)]
    pub egress: EgressPrices,
    /// Hard cap on the fleet's spend rate in $/h: placement never exceeds it.
    #[serde(default)]
    pub max_per_h: Option<f64>,
}

impl CostModel {
    /// The fixed hourly fees of all commitments.
    pub fn commitment_fees_per_h(&self) -> f64 {
        self.commitments.iter().map(Commitment::fee_per_h).fold(0.0, |a, b| a + b)
    }
}

/// The running integral of a piecewise-constant price, so that the cost of any interval is
/// two subtractions however often the price changed in between.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceIntegral {
    /// Current price, $/h.
    pub price_per_h: f64,
    since: SimTime,
    /// Dollars accrued by one unit from time zero to `since`.
    accrued: f64,
}

impl PriceIntegral {
    /// A price in force from time zero.
    pub fn new(price_per_h: f64) -> Self {
        PriceIntegral { price_per_h, since: SimTime::ZERO, accrued: 0.0 }
    }
    /// The accrued dollars for one unit at `now` (`now` must not be before the last change).
    pub fn at(&self, now: SimTime) -> f64 {
        self.accrued + self.price_per_h * now.since(self.since).as_hours_f64()
    }
    /// A new price from `now` on.
    pub fn set(&mut self, now: SimTime, price_per_h: f64) {
        self.accrued = self.at(now);
        self.since = now.max(self.since);
        self.price_per_h = price_per_h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_rounds_up_and_applies_minimum() {
        let b = Billing::default();
        // 10 s of use is billed as the 60 s minimum.
        assert_eq!(b.billed_duration(SimDuration::from_secs(10)), SimDuration::from_secs(60));
        // 90.2 s rounds up to 91 s.
        assert_eq!(b.billed_duration(SimDuration::from_millis(90_200)), SimDuration::from_secs(91));
        // Exactly 2 h stays 2 h.
        assert_eq!(b.billed_duration(SimDuration::from_secs(7200)), SimDuration::from_secs(7200));
    }

    #[test]
    fn price_integral_accrues_piecewise() {
        let mut p = PriceIntegral::new(1.0);
        // 1 h at $1, then 30 min at $4 = 1 + 2 = $3.
        p.set(SimTime(3_600_000), 4.0);
        let total = p.at(SimTime(5_400_000));
        assert!((total - 3.0).abs() < 1e-12, "{total}");
        // Cost of [30 min, 90 min) = 0.5 h * $1 + 0.5 h * $4 = $2.5.
        let part = p.at(SimTime(5_400_000)) - 0.5;
        assert!((part - 2.5).abs() < 1e-12, "{part}");
    }

    #[test]
    fn commitment_fees() {
        let r = Commitment::Reserved { offer: OfferId(0), count: 3, fee_per_h: 0.05 };
        let s = Commitment::SavingsPlan { provider: Provider::Aws, committed_per_h: 2.0, discount: 0.3 };
        let m = CostModel { commitments: vec![r, s], ..CostModel::default() };
        assert!((m.commitment_fees_per_h() - 2.15).abs() < 1e-12);
    }
}
