//! Geo-alignment: the encoders that map images, GPS coordinates and text into one space.
//!
//! This crate will hold the models of G3's first stage (see the G3 paper, section 3.1):
//! the frozen CLIP ViT-L/14 vision and text towers, the GPS `LocationEncoder` (Mercator or
//! Equal Earth projection, then hierarchical random Fourier feature capsules), the trainable
//! projection heads, weight loading from HF, G3 and GeoCLIP checkpoints, and training.
//! They implement [`g3_core::ImageEmbedder`], [`g3_core::GpsEmbedder`] and
//! [`g3_core::TextEmbedder`]. The crate is empty until those models land.
#![deny(missing_docs)]
