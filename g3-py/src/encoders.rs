//! `g3rs.GpsEncoder` and `g3rs.ImageEncoder`: the alignment model's encoders on numpy.

use std::path::PathBuf;

use g3::Embeddings;
use g3::align::pretrained::ModelSource;
use g3::align::{
    ClipFiles, ComputeDevice, GpsEncoder, GpsEncoderConfig, ImageEmbeddingKind, ImageEncoder,
    ModelOptions, ModelSpec,
};
use g3::core::GpsEmbedder;
use g3::core::assets::Asset;
use image::RgbImage;
use numpy::{AllowTypeChange, PyArray2, PyArrayLikeDyn, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::{embeddings_to_array, setting};
use crate::errors::{G3Error, OrRaise};
use crate::images::images_from;
use crate::interrupt::in_interruptible_chunks;
use crate::points::points_from;

/// Photos embedded per chunk of a long `ImageEncoder.embed`; Ctrl-C is honoured between
/// chunks.
const IMAGES_PER_CHUNK: usize = 64;

fn device(name: &str) -> PyResult<g3::align::Device> {
    setting::<ComputeDevice>("device", name)?
        .to_device()
        .or_raise()
}

/// A GPS encoder: G3's (Mercator projection, random Fourier features and the location
/// projection, 768-d) read from G3's checkpoint, or GeoCLIP's location encoder (512-d).
///
/// `GpsEncoder(path, kind="g3")`; `GpsEncoder.geoclip()` loads GeoCLIP's published weights
/// from the asset cache (`g3 fetch geoclip`).
#[pyclass(frozen, name = "GpsEncoder", module = "g3rs")]
pub struct PyGpsEncoder {
    // Boxed: the library type is aligned beyond the 16 bytes Python's allocator guarantees
    // for the object that embeds a pyclass's fields (burn's devices hold 64-byte aligned
    // cache-padded state).
    encoder: Box<GpsEncoder>,
}

#[pymethods]
impl PyGpsEncoder {
    #[new]
    #[pyo3(signature = (path, kind = "g3", device = "cpu"))]
    fn new(py: Python<'_>, path: PathBuf, kind: &str, device: &str) -> PyResult<Self> {
        let device = self::device(device)?;
        let encoder = match kind {
            "g3" => py.detach(|| GpsEncoder::load_g3(&path, &device)),
            "geoclip" => {
                py.detach(|| GpsEncoder::load(&path, GpsEncoderConfig::geoclip(), &device))
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "kind: {other:?} is not a GPS encoder; expected \"g3\" or \"geoclip\""
                )));
            }
        }
        .or_raise()?;
        Ok(PyGpsEncoder {
            encoder: Box::new(encoder),
        })
    }

    /// GeoCLIP's location encoder from the asset cache (`g3 fetch geoclip` puts it there).
    #[staticmethod]
    #[pyo3(signature = (device = "cpu"))]
    fn geoclip(py: Python<'_>, device: &str) -> PyResult<Self> {
        let path = Asset::GEOCLIP_LOCATION_ENCODER.require().or_raise()?;
        PyGpsEncoder::new(py, path, "geoclip", device)
    }

    /// Embeddings of `points` ([N, 2] latitude, longitude in degrees), float32 [N, D],
    /// L2-normalised as the encoder's training compared them.
    fn embed<'py>(
        &self,
        py: Python<'py>,
        points: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let points = points_from(points, "points")?;
        let embeddings = py.detach(|| self.encoder.embed(&points)).or_raise()?;
        embeddings_to_array(py, embeddings)
    }

    /// Width of the embeddings.
    #[getter]
    fn dimension(&self) -> usize {
        self.encoder.dimension()
    }
}

/// An image encoder: CLIP, G3's image towers, or GeoCLIP's image side, computing `kind`
/// embeddings: `"database"` (G3's 2304-d database vector), `"gps"` (G3's image–GPS
/// embedding), `"clip"`, `"geoclip"` or `"clip_features"`.
///
/// `model` is an HF CLIP directory or a checkpoint file (G3's `g3.pth`, or heads trained by
/// `g3 train` with `aligned_clip` naming their CLIP); `clip` names the HF CLIP directory
/// whose config, preprocessing and tokenizer go with a checkpoint (default: ViT-L/14's).
#[pyclass(frozen, name = "ImageEncoder", module = "g3rs")]
pub struct PyImageEncoder {
    // Boxed: the library type is aligned beyond the 16 bytes Python's allocator guarantees
    // for the object that embeds a pyclass's fields (burn's devices hold 64-byte aligned
    // cache-padded state).
    encoder: Box<ImageEncoder>,
}

#[pymethods]
impl PyImageEncoder {
    #[new]
    #[pyo3(signature = (model, kind = "database", clip = None, aligned_clip = None, geoclip_image_mlp = None, batch_size = 16, device = "cpu"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        kind: &str,
        clip: Option<PathBuf>,
        aligned_clip: Option<PathBuf>,
        geoclip_image_mlp: Option<PathBuf>,
        batch_size: usize,
        device: &str,
    ) -> PyResult<Self> {
        let kind: ImageEmbeddingKind = setting("kind", kind)?;
        let device = self::device(device)?;
        let source = |path: &PathBuf| {
            ModelSource::from_path(path).ok_or_else(|| {
                G3Error::new_err(format!("{}: no such file or directory", path.display()))
            })
        };
        let options = ModelOptions {
            aligned_clip: aligned_clip.as_ref().map(source).transpose()?,
            clip_files: clip
                .as_deref()
                .map(ClipFiles::of_directory)
                .unwrap_or_default(),
            geoclip_image_mlp,
        };
        let spec = ModelSpec::from_source(source(&model)?, options, kind).or_raise()?;
        let encoder = py
            .detach(|| spec.load(&device)?.image_encoder(kind, batch_size.max(1)))
            .or_raise()?;
        Ok(PyImageEncoder {
            encoder: Box::new(encoder),
        })
    }

    /// Embeddings of `images` (a list of paths, encoded bytes or (id, bytes) pairs),
    /// float32 [N, D]. Photos are decoded and preprocessed exactly as PIL and the CLIP
    /// processor do. Runs off the calling thread; Ctrl-C stops it between chunks.
    fn embed<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let images = images_from(images)?;
        let dimension = self.encoder.dimension();
        let values = in_interruptible_chunks(py, &images, IMAGES_PER_CHUNK, |chunk| {
            Ok::<_, g3::align::AlignError>(self.encoder.embed(chunk)?.into_values())
        })?
        .or_raise()?;
        embeddings_to_array(py, Embeddings::new(dimension, values).or_raise()?)
    }

    /// Embeddings of decoded photos: a list of uint8 arrays [H, W, 3] in RGB (what
    /// `np.asarray(pil_image.convert("RGB"))` gives), resized, cropped and normalised as the
    /// CLIP processor does (PIL's bicubic resampling).
    fn embed_arrays<'py>(
        &self,
        py: Python<'py>,
        images: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let mut decoded = Vec::with_capacity(images.len());
        for (position, image) in images.iter().enumerate() {
            let array: PyReadonlyArray3<'py, u8> = image.extract().map_err(|_| {
                PyValueError::new_err(format!(
                    "images[{position}] must be a uint8 array of shape [H, W, 3] (RGB)"
                ))
            })?;
            let (height, width) = match *array.shape() {
                [height, width, 3] => (height, width),
                ref shape => {
                    return Err(PyValueError::new_err(format!(
                        "images[{position}] must be a uint8 array of shape [H, W, 3], not {shape:?}"
                    )));
                }
            };
            let pixels: Vec<u8> = match array.as_slice() {
                Ok(pixels) => pixels.to_vec(),
                Err(_) => array.as_array().iter().copied().collect(),
            };
            let size = |side: usize| {
                u32::try_from(side)
                    .map_err(|_| PyValueError::new_err(format!("images[{position}] is too large")))
            };
            let image =
                RgbImage::from_raw(size(width)?, size(height)?, pixels).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "images[{position}] has the wrong number of pixels"
                    ))
                })?;
            decoded.push(image);
        }
        let count = decoded.len();
        let embeddings = py
            .detach(|| {
                let processor = self.encoder.processor();
                let mut values = Vec::with_capacity(count * processor.values_per_image());
                for image in &decoded {
                    values.extend(processor.normalize(&processor.resize_and_crop(image)?));
                }
                self.encoder.embed_pixels(&values, count)
            })
            .or_raise()?;
        embeddings_to_array(py, embeddings)
    }

    /// Embeddings of preprocessed pixels (float32 [N, 3, S, S], CLIP-normalised, as the
    /// HF processor's `pixel_values`).
    fn embed_pixels<'py>(
        &self,
        py: Python<'py>,
        pixels: PyArrayLikeDyn<'py, f32, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let count = match *pixels.shape() {
            [count, 3, _, _] => count,
            ref shape => {
                return Err(PyValueError::new_err(format!(
                    "pixels must have shape [N, 3, S, S], not {shape:?}"
                )));
            }
        };
        let copy;
        let values: &[f32] = match pixels.as_slice() {
            Ok(values) => values,
            Err(_) => {
                copy = pixels.as_array().iter().copied().collect::<Vec<f32>>();
                &copy
            }
        };
        let embeddings = py
            .detach(|| self.encoder.embed_pixels(values, count))
            .or_raise()?;
        embeddings_to_array(py, embeddings)
    }

    /// Width of the embeddings.
    #[getter]
    fn dimension(&self) -> usize {
        self.encoder.dimension()
    }
}
