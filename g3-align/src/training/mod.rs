//! Geo-alignment training: G3's contrastive objective over cached CLIP features.
//!
//! G3 freezes CLIP's towers and applies no augmentation, so each image's projected CLIP
//! features are the same in every epoch. Training therefore starts from features computed
//! once (`g3 cache-features`) and runs only what G3 trains: the GPS encoder, the four heads
//! and the temperatures ([`AlignmentModel`]). One step costs a few small matrix products
//! instead of a ViT-L/14 forward pass per image.
//!
//! ```no_run
//! use g3_align::training::{AlignmentModelConfig, FeatureTable, StepControl, Trainer, TrainingConfig};
//! use burn::prelude::Device;
//!
//! # #[allow(deprecated)]
//! let device = Device::ndarray().autodiff();
//! let model = AlignmentModelConfig::default()
//!     .init(&device, 0)?
//!     .load_location_encoder("location_encoder_weights.pth".as_ref())?;
//! # let point = g3_core::GeoPoint::new(48.85, 2.35)?;
//! # let data = FeatureTable::new(768, vec![0.5; 768], Some(vec![0.5; 768]), vec![point])?;
//! let mut trainer = Trainer::new(TrainingConfig::default(), model, &device)?;
//! while !trainer.is_finished() {
//!     trainer.train_epoch(&data, &mut |report| {
//!         println!("epoch {} batch {}: loss {:.4}", report.epoch, report.batch, report.loss);
//!         StepControl::Continue
//!     })?;
//!     trainer.model().save_checkpoint(format!("g3-epoch{}.safetensors", trainer.progress().epoch).as_ref())?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod data;
mod feature_cache;
mod model;
pub mod run;
mod state;
mod trainer;

pub use data::{AlignmentData, FeatureRows, FeatureTable};
pub use feature_cache::{
    FeatureCache, FeatureCacheWriter, IMAGE_FEATURES_FILE, METADATA_FILE, METADATA_HEADER,
    SKIPPED_FILE, SKIPPED_HEADER, TEXT_FEATURES_FILE,
};
pub use model::{
    AlignmentBatch, AlignmentLoss, AlignmentModel, AlignmentModelConfig, AlignmentVariant,
    clip_loss,
};
pub use trainer::{StepControl, StepReport, Trainer, TrainingConfig, TrainingProgress};
