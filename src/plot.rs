//! Charts of evaluation results: one run's cumulative error curve (`g3 eval --plot`, and each
//! run in `g3 report`), and several runs' curves on one chart (`g3 report`).

use std::path::Path;

use g3_core::AccuracyReport;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Half the Earth's circumference: no error on the ground is larger.
const LARGEST_ERROR_KM: f64 = 20_040.0;

/// Writes the cumulative error curve as an SVG: for each distance on a log axis, the share
/// of images predicted within it, with the report's thresholds marked and labelled with
/// their accuracy. `sorted_distances_km` is ascending (as
/// [`Evaluation::sorted_distances_km`](crate::evaluation::Evaluation::sorted_distances_km)).
/// The file appears complete or not at all.
pub fn write_error_curve_svg(
    path: &Path,
    sorted_distances_km: &[f64],
    report: &AccuracyReport,
    title: &str,
) -> Result<()> {
    let svg = error_curve_svg(sorted_distances_km, report, title)?;
    Ok(g3_core::atomic::write_atomically(path, svg.as_bytes())?)
}

/// The chart of [`write_error_curve_svg`] as SVG text (for pages that inline it).
pub fn error_curve_svg(
    sorted_distances_km: &[f64],
    report: &AccuracyReport,
    title: &str,
) -> Result<String> {
    if sorted_distances_km.is_empty() {
        return Err(Error::InvalidPipeline(
            "no scored rows: there is no error curve to plot".into(),
        ));
    }
    let mut svg = String::new();
    draw(&mut svg, sorted_distances_km, report, title)
        .map_err(|error| Error::InvalidPipeline(format!("drawing the error curve: {error}")))?;
    Ok(svg)
}

/// Font sizes as plotters takes them (it writes 0.81 of this into the SVG, 21 px for 26).
/// The report inlines charts at down to 0.6 of their 900 px width (two per row), where
/// 21 px of the chart still renders at 12.6 CSS px.
const CAPTION_FONT: u32 = 30;
const TEXT_FONT: u32 = 26;

/// The distance axis starts here (errors below it are drawn at it).
const SMALLEST_KM: f64 = 0.1;

/// The cumulative curve's points: one step per distinct error, thinned to at most ~2,000
/// points, from [`SMALLEST_KM`] to [`LARGEST_ERROR_KM`].
fn curve_points(sorted: &[f64]) -> Vec<(f64, f64)> {
    let count = sorted.len() as f64;
    let stride = (sorted.len() / 2000).max(1);
    let mut points = vec![(SMALLEST_KM, 0.0)];
    let below_smallest = sorted.partition_point(|d| *d < SMALLEST_KM);
    points.push((SMALLEST_KM, 100.0 * below_smallest as f64 / count));
    for (index, distance) in sorted
        .iter()
        .enumerate()
        .skip(below_smallest)
        .step_by(stride)
    {
        let x = distance.clamp(SMALLEST_KM, LARGEST_ERROR_KM);
        points.push((x, 100.0 * index as f64 / count));
        points.push((x, 100.0 * (index + 1) as f64 / count));
    }
    points.push((LARGEST_ERROR_KM, points.last().map_or(0.0, |p| p.1)));
    points
}

/// A chart of error curves: log distance against percent.
type ErrorChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<LogCoord<f64>, RangedCoordf64>>;

/// The chart every error curve is drawn on: a white 900 × 560 page, the distance on a log
/// axis from [`SMALLEST_KM`] to [`LARGEST_ERROR_KM`], the share of images from 0 to 100%.
fn error_axes<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> std::result::Result<ErrorChart<'a, 'b>, Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", CAPTION_FONT))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(72)
        .build_cartesian_2d((SMALLEST_KM..LARGEST_ERROR_KM).log_scale(), 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("error (km, log scale)")
        .y_desc("images within the error (%)")
        .label_style(("sans-serif", TEXT_FONT))
        .axis_desc_style(("sans-serif", TEXT_FONT))
        .x_label_formatter(&|km| format!("{km}"))
        .draw()?;
    Ok(chart)
}

fn draw(
    svg: &mut String,
    sorted: &[f64],
    report: &AccuracyReport,
    title: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (900, 560)).into_drawing_area();
    let mut chart = error_axes(&root, title)?;
    chart.draw_series(LineSeries::new(curve_points(sorted), BLUE.stroke_width(2)))?;

    let label_heights = label_heights(
        &report
            .thresholds
            .iter()
            .map(|threshold| threshold.percent)
            .collect::<Vec<_>>(),
    );
    for (threshold, label_y) in report.thresholds.iter().zip(label_heights) {
        let x = threshold.threshold_km;
        chart.draw_series(LineSeries::new(
            [(x, 0.0), (x, threshold.percent)],
            RED.mix(0.6).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Circle::new(
            (x, threshold.percent),
            4,
            RED.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{x} km: {:.1}%", threshold.percent),
            (x * 1.08, label_y),
            ("sans-serif", TEXT_FONT).into_font(),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// One run's curve on a chart of several ([`error_curves_svg`]).
#[derive(Debug, Clone, Copy)]
pub struct CurveSeries<'a> {
    /// The run's label, in the legend.
    pub label: &'a str,
    /// Its errors in km, ascending.
    pub sorted_distances_km: &'a [f64],
    /// Its colour (`#rrggbb`).
    pub colour: (u8, u8, u8),
}

/// Several runs' cumulative error curves on one chart, each in its colour, with a legend
/// and the thresholds marked: an ablation read at a glance. Runs without scored rows are
/// left out (and so is the chart, as an error, when none has any).
pub fn error_curves_svg(
    series: &[CurveSeries<'_>],
    thresholds_km: &[f64],
    title: &str,
) -> Result<String> {
    if series.iter().all(|run| run.sorted_distances_km.is_empty()) {
        return Err(Error::InvalidPipeline(
            "no scored rows: there is no error curve to plot".into(),
        ));
    }
    let mut svg = String::new();
    draw_overlay(&mut svg, series, thresholds_km, title)
        .map_err(|error| Error::InvalidPipeline(format!("drawing the error curves: {error}")))?;
    Ok(svg)
}

fn draw_overlay(
    svg: &mut String,
    series: &[CurveSeries<'_>],
    thresholds_km: &[f64],
    title: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (900, 560)).into_drawing_area();
    let mut chart = error_axes(&root, title)?;
    for &km in thresholds_km {
        chart.draw_series(LineSeries::new(
            [(km, 0.0), (km, 100.0)],
            BLACK.mix(0.25).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{km} km"),
            (km * 1.06, 98.0),
            ("sans-serif", TEXT_FONT).into_font().color(&BLACK.mix(0.6)),
        )))?;
    }
    for run in series
        .iter()
        .filter(|run| !run.sorted_distances_km.is_empty())
    {
        let colour = RGBColor(run.colour.0, run.colour.1, run.colour.2);
        chart
            .draw_series(LineSeries::new(
                curve_points(run.sorted_distances_km),
                colour.stroke_width(3),
            ))?
            .label(run.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", TEXT_FONT))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Where each threshold's label goes (in percent, the chart's y axis): just below its point,
/// but at least [`LABEL_SPACING`] above the previous label, so that thresholds with close
/// accuracies (750 km and 2500 km on a small run) get readable labels instead of one on top
/// of the other.
fn label_heights(percents: &[f64]) -> Vec<f64> {
    let mut heights = Vec::with_capacity(percents.len());
    let mut previous: Option<f64> = None;
    for &percent in percents {
        let natural = (percent - 6.0).max(2.0);
        let height = match previous {
            Some(below) => natural.max(below + LABEL_SPACING),
            None => natural,
        };
        heights.push(height);
        previous = Some(height);
    }
    // Labels pushed past the top come down together, keeping their spacing.
    let overflow = heights.last().map_or(0.0, |top| (top - 97.0).max(0.0));
    heights.iter().map(|height| height - overflow).collect()
}

/// Vertical distance between consecutive threshold labels, in percentage points (about one
/// line of 21 px text on the 560 px chart's plotting area).
const LABEL_SPACING: f64 = 6.0;

#[cfg(test)]
mod tests {
    use g3_core::{AccuracyReport, AccuracyThresholds};

    use super::*;

    #[test]
    fn the_curve_is_written_with_every_threshold_labelled() {
        let distances: Vec<f64> = (0..500).map(|i| 0.05 * 1.03f64.powi(i)).collect();
        let report = AccuracyReport::from_distances_km(
            distances.iter().copied(),
            AccuracyThresholds::default(),
        )
        .unwrap();
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("errors.svg");
        write_error_curve_svg(&path, &distances, &report, "test run").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for threshold in &report.thresholds {
            let label = format!("{} km: {:.1}%", threshold.threshold_km, threshold.percent);
            assert!(svg.contains(&label), "{label} missing");
        }
        assert!(svg.contains("test run"));
        assert!(write_error_curve_svg(&path, &[], &report, "empty").is_err());
    }

    #[test]
    fn labels_of_close_accuracies_do_not_overlap() {
        // A 12-photo run: 750 km and 2500 km both at 41.7%, 200 km close below.
        let heights = super::label_heights(&[0.0, 8.3, 33.3, 41.7, 41.7]);
        for pair in heights.windows(2) {
            assert!(
                pair[1] - pair[0] >= super::LABEL_SPACING - 1e-9,
                "{heights:?}"
            );
        }
        assert!(heights.iter().all(|height| (0.0..=100.0).contains(height)));
        // Far-apart accuracies keep their labels next to their points.
        assert_eq!(super::label_heights(&[10.0, 50.0, 90.0]), [4.0, 44.0, 84.0]);
        // Crowded near the top, they move down together.
        let top = super::label_heights(&[99.0, 99.5, 100.0]);
        assert!(
            top[2] <= 97.0 && top[1] - top[0] >= super::LABEL_SPACING - 1e-9,
            "{top:?}"
        );
    }
}
