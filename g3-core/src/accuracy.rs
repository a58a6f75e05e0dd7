//! Accuracy at distance thresholds: the yardstick of every geolocalization paper, G3's included.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Distance thresholds in km at which accuracy is reported, strictly increasing.
///
/// The default is the paper's: 1, 25, 200, 750 and 2500 km (street, city, region, country,
/// continent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub struct AccuracyThresholds {
    thresholds_km: Vec<f64>,
}

impl AccuracyThresholds {
    /// The thresholds of G3's tables, in km.
    pub const PAPER_KM: [f64; 5] = [1.0, 25.0, 200.0, 750.0, 2500.0];

    /// Validates thresholds in km: at least one, each finite and positive, strictly increasing.
    pub fn new(thresholds_km: Vec<f64>) -> Result<Self> {
        let reason = if thresholds_km.is_empty() {
            Some("at least one threshold is needed")
        } else if thresholds_km.iter().any(|t| !t.is_finite() || *t <= 0.0) {
            Some("each threshold must be a positive finite number of km")
        } else if thresholds_km.windows(2).any(|pair| pair[0] >= pair[1]) {
            Some("thresholds must be strictly increasing")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidThresholds {
                thresholds_km,
                reason,
            }),
            None => Ok(AccuracyThresholds { thresholds_km }),
        }
    }

    /// The thresholds in km, increasing.
    pub fn as_km(&self) -> &[f64] {
        &self.thresholds_km
    }
}

impl Default for AccuracyThresholds {
    fn default() -> Self {
        AccuracyThresholds {
            thresholds_km: Self::PAPER_KM.to_vec(),
        }
    }
}

impl TryFrom<Vec<f64>> for AccuracyThresholds {
    type Error = Error;

    fn try_from(thresholds_km: Vec<f64>) -> Result<Self> {
        AccuracyThresholds::new(thresholds_km)
    }
}

impl From<AccuracyThresholds> for Vec<f64> {
    fn from(thresholds: AccuracyThresholds) -> Self {
        thresholds.thresholds_km
    }
}

/// Whether an error equal to a threshold counts as within it. Papers differ: G3's and
/// GeoRanker's evaluation (and OSV-5M's) count `error < threshold`, GeoCLIP's counts
/// `error <= threshold`. Only errors exactly on a threshold tell them apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThresholdConvention {
    /// `error < threshold`: G3, GeoRanker, OSV-5M (the default).
    #[default]
    Strict,
    /// `error <= threshold`: GeoCLIP.
    Inclusive,
}

impl ThresholdConvention {
    /// The comparison as a symbol (`<` or `≤`).
    pub fn symbol(self) -> &'static str {
        match self {
            ThresholdConvention::Strict => "<",
            ThresholdConvention::Inclusive => "≤",
        }
    }

    /// Whether an error of `distance_km` counts as within `threshold_km`.
    pub fn within(self, distance_km: f64, threshold_km: f64) -> bool {
        match self {
            ThresholdConvention::Strict => distance_km < threshold_km,
            ThresholdConvention::Inclusive => distance_km <= threshold_km,
        }
    }
}

/// The geographic level the paper attaches to one of its thresholds, if `threshold_km` is one.
pub fn paper_level_name(threshold_km: f64) -> Option<&'static str> {
    const NAMES: [&str; 5] = ["street", "city", "region", "country", "continent"];
    AccuracyThresholds::PAPER_KM
        .iter()
        .position(|paper| *paper == threshold_km)
        .map(|index| NAMES[index])
}

/// Collects prediction errors one at a time and produces an [`AccuracyReport`].
///
/// Memory grows by one `f64` per row, which the exact median needs; nothing else is kept.
///
/// ```
/// use g3_core::{AccuracyAccumulator, AccuracyThresholds};
///
/// let mut accumulator = AccuracyAccumulator::new(AccuracyThresholds::default());
/// for distance_km in [0.5, 30.0, 1000.0, 5000.0] {
///     accumulator.push(distance_km)?;
/// }
/// let report = accumulator.finish();
/// assert_eq!(report.thresholds[0].within, 1); // < 1 km
/// assert_eq!(report.thresholds[4].percent, 75.0); // < 2500 km
/// assert_eq!(report.median_error_km, Some(515.0));
/// # Ok::<(), g3_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AccuracyAccumulator {
    thresholds: AccuracyThresholds,
    convention: ThresholdConvention,
    /// The GeoGuessr points summed over the rows pushed with one.
    geoguessr_sum: f64,
    geoguessr_rows: u64,
    /// `first_within[i]` counts rows whose smallest threshold above the error is threshold `i`
    /// (index `len` = beyond every threshold); cumulated in [`AccuracyAccumulator::finish`].
    first_within: Vec<u64>,
    distances_km: Vec<f64>,
    sum_km: f64,
    skipped_rows: u64,
}

impl AccuracyAccumulator {
    /// An empty accumulator for these thresholds.
    pub fn new(thresholds: AccuracyThresholds) -> Self {
        AccuracyAccumulator::with_convention(thresholds, ThresholdConvention::Strict)
    }

    /// An empty accumulator for these thresholds, counting an error on a threshold as
    /// `convention` says.
    pub fn with_convention(
        thresholds: AccuracyThresholds,
        convention: ThresholdConvention,
    ) -> Self {
        let buckets = thresholds.as_km().len() + 1;
        AccuracyAccumulator {
            thresholds,
            convention,
            geoguessr_sum: 0.0,
            geoguessr_rows: 0,
            first_within: vec![0; buckets],
            distances_km: Vec::new(),
            sum_km: 0.0,
            skipped_rows: 0,
        }
    }

    /// Records one prediction error in km. A row counts as correct at a threshold when its
    /// error is below it (strictly, as in the reference evaluation, unless the convention is
    /// [`ThresholdConvention::Inclusive`]).
    pub fn push(&mut self, distance_km: f64) -> Result<()> {
        if !distance_km.is_finite() || distance_km < 0.0 {
            return Err(Error::InvalidDistance { distance_km });
        }
        let convention = self.convention;
        // The first threshold the error is within.
        let bucket = self
            .thresholds
            .as_km()
            .partition_point(|threshold| !convention.within(distance_km, *threshold));
        self.first_within[bucket] += 1;
        self.distances_km.push(distance_km);
        self.sum_km += distance_km;
        Ok(())
    }

    /// Records one prediction's error in km and its GeoGuessr points
    /// ([`crate::geoguessr::geoguessr_score`]), which the report averages.
    pub fn push_with_geoguessr_points(&mut self, distance_km: f64, points: f64) -> Result<()> {
        self.push(distance_km)?;
        self.geoguessr_sum += points;
        self.geoguessr_rows += 1;
        Ok(())
    }

    /// Records a row that could not be evaluated (reported, never counted as right or wrong).
    pub fn record_skipped(&mut self) {
        self.skipped_rows += 1;
    }

    /// Number of errors recorded so far.
    pub fn len(&self) -> usize {
        self.distances_km.len()
    }

    /// Whether no error has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.distances_km.is_empty()
    }

    /// The errors recorded so far, in km, in the order they were pushed.
    pub fn distances_km(&self) -> &[f64] {
        &self.distances_km
    }

    /// Computes the report.
    pub fn finish(mut self) -> AccuracyReport {
        let rows = self.distances_km.len() as u64;
        let mut within = 0;
        let thresholds = self
            .thresholds
            .as_km()
            .iter()
            .zip(&self.first_within)
            .map(|(threshold_km, count)| {
                within += count;
                ThresholdAccuracy {
                    threshold_km: *threshold_km,
                    within,
                    percent: if rows == 0 {
                        0.0
                    } else {
                        100.0 * within as f64 / rows as f64
                    },
                }
            })
            .collect();
        AccuracyReport {
            rows,
            skipped_rows: self.skipped_rows,
            convention: self.convention,
            thresholds,
            mean_geoguessr_score: (self.geoguessr_rows > 0)
                .then(|| self.geoguessr_sum / self.geoguessr_rows as f64),
            mean_error_km: (rows > 0).then(|| self.sum_km / rows as f64),
            median_error_km: median(&mut self.distances_km),
        }
    }
}

/// The median (mean of the two middle values for an even count), as pandas computes it.
fn median(values: &mut [f64]) -> Option<f64> {
    let len = values.len();
    if len == 0 {
        return None;
    }
    let (_, upper, _) = values.select_nth_unstable_by(len / 2, f64::total_cmp);
    let upper = *upper;
    if len % 2 == 1 {
        return Some(upper);
    }
    let lower = values[..len / 2]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

/// Accuracy at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdAccuracy {
    /// The threshold in km.
    pub threshold_km: f64,
    /// Rows whose error is within the threshold (below it, or at most it under
    /// [`ThresholdConvention::Inclusive`]).
    pub within: u64,
    /// `within` as a percentage of the evaluated rows (0 when there are none).
    pub percent: f64,
}

/// Accuracy at each threshold plus error statistics, over the rows that could be evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// Rows evaluated.
    pub rows: u64,
    /// Rows skipped as invalid; not part of any percentage.
    pub skipped_rows: u64,
    /// Whether an error on a threshold counted as within it.
    #[serde(default)]
    pub convention: ThresholdConvention,
    /// One entry per threshold, increasing.
    pub thresholds: Vec<ThresholdAccuracy>,
    /// The mean GeoGuessr score (5000 · exp(−d / 1492.7 km), OSV-5M's haversine); `None`
    /// when no row was scored with one.
    #[serde(default)]
    pub mean_geoguessr_score: Option<f64>,
    /// Mean error in km; `None` when no row was evaluated.
    pub mean_error_km: Option<f64>,
    /// Median error in km; `None` when no row was evaluated.
    pub median_error_km: Option<f64>,
}

impl AccuracyReport {
    /// The report of a finished collection of errors in km.
    pub fn from_distances_km(
        distances_km: impl IntoIterator<Item = f64>,
        thresholds: AccuracyThresholds,
    ) -> Result<Self> {
        let mut accumulator = AccuracyAccumulator::new(thresholds);
        for distance_km in distances_km {
            accumulator.push(distance_km)?;
        }
        Ok(accumulator.finish())
    }
}

impl fmt::Display for AccuracyReport {
    /// A plain-text table, one line per threshold, then the error statistics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rows evaluated: {}", self.rows)?;
        if self.skipped_rows > 0 {
            write!(f, " (skipped as invalid: {})", self.skipped_rows)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>12}  {:<9}  {:>10}  {:>8}",
            format!("error {}", self.convention.symbol()),
            "level",
            "within",
            "accuracy"
        )?;
        for threshold in &self.thresholds {
            let label = format!("{} km", threshold.threshold_km);
            let level = paper_level_name(threshold.threshold_km).unwrap_or("");
            writeln!(
                f,
                "{label:>12}  {level:<9}  {:>10}  {:>7.2}%",
                threshold.within, threshold.percent
            )?;
        }
        let statistic = |value: Option<f64>| match value {
            Some(km) => format!("{km:.2} km"),
            None => "n/a".to_owned(),
        };
        writeln!(f, "mean error:   {}", statistic(self.mean_error_km))?;
        write!(f, "median error: {}", statistic(self.median_error_km))?;
        if let Some(score) = self.mean_geoguessr_score {
            write!(
                f,
                "\nGeoGuessr score: {score:.1} (mean of 5000·exp(−d/1492.7 km))"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_counts_only_strictly_below_a_threshold() {
        let report = AccuracyReport::from_distances_km(
            [1.0, 0.999, 25.0, 2500.0, 2499.9],
            AccuracyThresholds::default(),
        )
        .unwrap();
        let within: Vec<u64> = report.thresholds.iter().map(|t| t.within).collect();
        assert_eq!(within, [1, 2, 3, 3, 4]);
        assert_eq!(report.rows, 5);
        assert_eq!(report.thresholds[4].percent, 80.0);
    }

    #[test]
    fn the_inclusive_convention_counts_an_error_on_the_threshold() {
        let errors = [1.0, 0.999, 25.0, 2500.0, 2500.0001];
        let mut inclusive = AccuracyAccumulator::with_convention(
            AccuracyThresholds::default(),
            ThresholdConvention::Inclusive,
        );
        for error in errors {
            inclusive.push(error).unwrap();
        }
        let report = inclusive.finish();
        let within: Vec<u64> = report.thresholds.iter().map(|t| t.within).collect();
        assert_eq!(within, [2, 3, 3, 3, 4]);
        assert_eq!(report.convention, ThresholdConvention::Inclusive);
        assert!(report.to_string().contains("error ≤"), "{report}");
        let strict =
            AccuracyReport::from_distances_km(errors, AccuracyThresholds::default()).unwrap();
        let within: Vec<u64> = strict.thresholds.iter().map(|t| t.within).collect();
        assert_eq!(within, [1, 2, 3, 3, 3]);
        assert!(strict.to_string().contains("error <"), "{strict}");
    }

    #[test]
    fn median_and_mean_match_pandas() {
        let report =
            AccuracyReport::from_distances_km([4.0, 1.0, 3.0, 2.0], AccuracyThresholds::default())
                .unwrap();
        assert_eq!(report.median_error_km, Some(2.5));
        assert_eq!(report.mean_error_km, Some(2.5));
        let odd = AccuracyReport::from_distances_km([9.0, 1.0, 5.0], AccuracyThresholds::default())
            .unwrap();
        assert_eq!(odd.median_error_km, Some(5.0));
    }

    #[test]
    fn empty_report_has_no_statistics() {
        let mut accumulator = AccuracyAccumulator::new(AccuracyThresholds::default());
        accumulator.record_skipped();
        let report = accumulator.finish();
        assert_eq!(report.rows, 0);
        assert_eq!(report.skipped_rows, 1);
        assert_eq!(report.median_error_km, None);
        assert!(report.thresholds.iter().all(|t| t.percent == 0.0));
        assert!(report.to_string().contains("n/a"));
    }

    #[test]
    fn invalid_inputs_are_errors() {
        for bad in [
            vec![],
            vec![1.0, 1.0],
            vec![5.0, 1.0],
            vec![0.0],
            vec![f64::NAN],
        ] {
            assert!(AccuracyThresholds::new(bad.clone()).is_err(), "{bad:?}");
        }
        let mut accumulator = AccuracyAccumulator::new(AccuracyThresholds::default());
        assert!(accumulator.push(f64::NAN).is_err());
        assert!(accumulator.push(-1.0).is_err());
        assert!(accumulator.is_empty());
    }

    #[test]
    fn table_and_json_render_every_threshold() {
        let report =
            AccuracyReport::from_distances_km([0.5, 100.0], AccuracyThresholds::default()).unwrap();
        let table = report.to_string();
        assert!(
            table.contains("street") && table.contains("2500 km"),
            "{table}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["thresholds"][2]["within"], 2);
        assert_eq!(json["median_error_km"], 50.25);
        let custom = AccuracyThresholds::new(vec![10.0, 100.0]).unwrap();
        let thresholds: AccuracyThresholds = serde_json::from_str("[10, 100]").unwrap();
        assert_eq!(thresholds, custom);
    }
}
