//! The GPS branch of G3's and GeoCLIP's module trees: the model, as the checkpoints name it.

use burn::module::Module;
use burn::prelude::*;

use crate::heads::ProjectionHead;
use crate::location::LocationEncoder;

/// The GPS branch of G3's module tree: `location_encoder` followed, optionally, by
/// `location_projection_else`. Field names are the reference's keys.
#[derive(Module, Debug)]
pub struct GpsBranch {
    /// The capsule encoder (GeoCLIP's `LocationEncoder`, G3's `CustomLocationEncoder`).
    pub location_encoder: LocationEncoder,
    /// G3's head into the space shared with images (512 → 768); absent for GeoCLIP.
    pub location_projection_else: Option<ProjectionHead>,
}

impl GpsBranch {
    /// `[batch, 2]` projected coordinates → `[batch, 512]`, or `[batch, 768]` with the head.
    pub fn forward(&self, projected: Tensor<2>) -> Tensor<2> {
        let features = self.location_encoder.forward(projected);
        match &self.location_projection_else {
            Some(head) => head.forward(features),
            None => features,
        }
    }

    /// Width of the output.
    pub fn output_size(&self) -> usize {
        match &self.location_projection_else {
            Some(head) => head.output_size(),
            None => self.location_encoder.output_size(),
        }
    }
}
