//! Images on streams and the calculators that change them.
//!
//! * [`ImageFrame`]: the image packet type (SRGB, SRGBA, GRAY8), shared between consumers
//!   without copying and viewable as an OpenCV `Mat` without copying.
//! * [`ImageTransformationCalculator`]: resize (stretch / fit / fill-and-crop), rotate, flip.
//! * [`AnnotationOverlayCalculator`]: draws [`Annotations`] (boxes with label, score and id,
//!   points, lines and arrows, text) on frames.

pub mod annotation;
pub mod annotation_overlay;
pub mod image_frame;
pub mod image_transformation;

pub use annotation::{
    Annotations, Color, LineAnnotation, PointAnnotation, RectAnnotation, RenderAnnotation,
    TextAnnotation,
};
pub use annotation_overlay::{AnnotationOverlayCalculator, AnnotationOverlayCalculatorOptions};
pub use image_frame::{ImageFormat, ImageFrame};
pub use image_transformation::{
    ImageTransformationCalculator, ImageTransformationCalculatorOptions, RotationMode, ScaleMode,
};

/// Attaches "what was being done" to an OpenCV result, turning it into the crate's error.
pub(crate) trait CvContext<T> {
    /// Maps an OpenCV error into [`crate::Error::OpenCv`] naming `what`.
    fn cv(self, what: &str) -> crate::Result<T>;
}

impl<T> CvContext<T> for opencv::Result<T> {
    fn cv(self, what: &str) -> crate::Result<T> {
        self.map_err(|source| {
            crate::Error::OpenCv {
                what: what.to_string(),
                source,
            }
            .into()
        })
    }
}
