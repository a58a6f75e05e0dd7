//! A generator that needs no model and no network, so a whole pipeline can run offline.

use g3_core::{
    DistanceMetric, GeneratedAnswers, GeneratorDescription, GeoPoint, ImageInput, LmmAnswer,
    LmmGenerator, PromptRequest,
};
use serde::{Deserialize, Serialize};

/// Answers each retrieval-augmented prompt with the densest places among its quoted
/// similar-image coordinates, in the JSON format the prompts ask for.
///
/// The density of a reference is the rank-weighted count (weight `1 / (1 + rank)`) of quoted
/// references within [`DensityPeakGenerator::radius_km`] of it. Sample 0 is the densest
/// reference, sample 1 the densest one farther than the radius from sample 0, and so on,
/// cycling when there are fewer distinct peaks than samples. Zero-shot prompts get no answer:
/// without references there is nothing to reason from without reading the image.
///
/// It is a baseline and a test double, not a model: it never looks at the image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DensityPeakGenerator {
    /// Neighbourhood radius in km (default 25, the paper's city scale).
    pub radius_km: f64,
    /// How distances are measured (default haversine: peaks need no millimetres).
    pub metric: DistanceMetric,
}

impl Default for DensityPeakGenerator {
    fn default() -> Self {
        DensityPeakGenerator {
            radius_km: 25.0,
            metric: DistanceMetric::Haversine,
        }
    }
}

impl DensityPeakGenerator {
    /// The references of one prompt ordered as samples are drawn: distinct density peaks,
    /// densest first.
    pub fn peaks(&self, references: &[GeoPoint]) -> Vec<GeoPoint> {
        let near = |a: GeoPoint, b: GeoPoint| self.metric.distance_km(a, b) < self.radius_km;
        let density: Vec<f64> = references
            .iter()
            .map(|&point| {
                references
                    .iter()
                    .enumerate()
                    .filter(|&(_, &other)| near(point, other))
                    .map(|(rank, _)| 1.0 / (1.0 + rank as f64))
                    .sum()
            })
            .collect();
        let mut order: Vec<usize> = (0..references.len()).collect();
        // Densest first; among equals the better-ranked reference (stable sort keeps rank order).
        order.sort_by(|&a, &b| density[b].total_cmp(&density[a]));
        let mut peaks: Vec<GeoPoint> = Vec::new();
        for index in order {
            let point = references[index];
            if peaks.iter().all(|&peak| !near(peak, point)) {
                peaks.push(point);
            }
        }
        peaks
    }
}

impl LmmGenerator for DensityPeakGenerator {
    fn generate(
        &self,
        _image: &ImageInput,
        prompts: &[PromptRequest],
    ) -> g3_core::Result<GeneratedAnswers> {
        let mut answers = Vec::new();
        for prompt in prompts {
            let peaks = self.peaks(&prompt.similar);
            if peaks.is_empty() {
                continue;
            }
            for sample_index in 0..prompt.samples {
                let peak = peaks[sample_index as usize % peaks.len()];
                answers.push(LmmAnswer {
                    prompt_index: prompt.prompt_index,
                    sample_index,
                    text: format!(
                        r#"{{"latitude": {},"longitude": {}}}"#,
                        peak.lat_deg(),
                        peak.lon_deg()
                    ),
                });
            }
        }
        Ok(answers.into())
    }

    /// Says that no model is asked, so reports never pass these answers off as an LMM's.
    fn describe(&self) -> GeneratorDescription {
        GeneratorDescription {
            name: "offline density peak (no LMM)".into(),
            asks_model: false,
            notice: Some(
                "no LMM was asked: the offline generator answers with the densest coordinates among the retrieved images, without looking at the photo (configure [generation.generator] kind = \"openai\" for G3's results)".into(),
            ),
        }
    }
}
